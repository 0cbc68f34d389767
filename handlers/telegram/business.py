"""An official's personal account connected through Telegram Business."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BusinessConnection, BusinessMessagesDeleted, Message
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.events import (
    AuthorRole,
    DeleteEvent,
    MessageEvent,
    PageKind,
    PageRef,
    Platform,
)
from bot.services.page_check import PageCheck, check_text
from handlers.telegram.common import (
    content_kind,
    conversation,
    edit_event,
    message_key,
    message_text,
    person_name,
    reply_key,
    utc,
)
from handlers.telegram.membership import notify_press_chat
from handlers.telegram.unit import UpdateUnit
from storage import repositories as repo
from storage.models import Page

logger = logging.getLogger(__name__)


def _page_ref(owner_id: int, name: str | None, username: str | None) -> PageRef:
    return PageRef(Platform.TELEGRAM, str(owner_id), PageKind.TG_BUSINESS, name, username)


async def _store_connection(update: BusinessConnection, session: AsyncSession) -> Page:
    page = await repo.ensure_page(
        session, _page_ref(update.user.id, person_name(update.user), update.user.username)
    )
    page.business_connection_id = update.id
    page.is_active = update.is_enabled
    logger.info(
        "Telegram Business %s для страницы %r",
        "подключён" if update.is_enabled else "отключён",
        page.id,
    )
    return page


def connection_check(update: BusinessConnection, page: Page) -> PageCheck:
    """What the connected account lets the bot do: reading is needed, replying is advised."""
    check = PageCheck("telegram", title=person_name(update.user), page_id=page.id)
    rights = update.rights
    can_read = rights.can_read_messages if rights is not None else True
    can_reply = rights.can_reply if rights is not None else bool(update.can_reply)
    if can_read:
        check.ok.append("бот видит сообщения в личных чатах аккаунта")
    else:
        check.missing.append(
            "нет права «Читать сообщения»: без него обращения в личные сообщения не учитываются"
        )
    if can_reply:
        check.ok.append("бот может отвечать от имени аккаунта")
    else:
        check.advice.append(
            "нет права «Отвечать на сообщения»: учёт работает, но ответить через бота нельзя"
        )
    return check


async def connection(
    update: BusinessConnection, bot: Bot, session: AsyncSession, app: AppContext
) -> None:
    """A Business account connected, changed its rights or disconnected: store it, tell them."""
    page = await _store_connection(update, session)
    who = person_name(update.user) or str(update.user.id)
    if update.user.username:
        who += f" (@{update.user.username})"
    if not update.is_enabled:
        text = (
            f"⚠️ Аккаунт Telegram Business {who} отключил бота: обращения в его личные "
            "сообщения больше не учитываются."
        )
    else:
        check = connection_check(update, page)
        heading = (
            f"🔌 Подключён аккаунт Telegram Business {who} (страница №{page.id})."
            if check.ready
            else f"🔌 Подключён аккаунт Telegram Business {who} (страница №{page.id}), "
            "но боту не хватает прав:"
        )
        text = check_text(check, heading=heading)
    await notify_press_chat(bot, app, page, text)


async def _owner(bot: Bot, session: AsyncSession, connection_id: str) -> PageRef | None:
    result = await session.exec(select(Page).where(Page.business_connection_id == connection_id))
    page = result.first()
    if page is not None:
        return _page_ref(int(page.external_id), page.title, page.username)
    try:
        info = await bot.get_business_connection(connection_id)
    except TelegramAPIError as error:
        logger.warning(
            "неизвестное подключение Telegram Business; getBusinessConnection не удался: %s", error
        )
        return None
    await _store_connection(info, session)
    return _page_ref(info.user.id, person_name(info.user), info.user.username)


async def business_message(
    message: Message, bot: Bot, session: AsyncSession, ingest: UpdateUnit
) -> None:
    if message.business_connection_id is None:
        return
    page = await _owner(bot, session, message.business_connection_id)
    if page is None:
        return
    sender = message.from_user
    own = sender is not None and str(sender.id) == page.external_id
    await ingest.handle(
        MessageEvent(
            page=page,
            thread=conversation(message.chat.id, person_name(None, message.chat)),
            message_id=message_key(message.chat.id, message.message_id),
            sent_at=utc(message.date),
            author_role=AuthorRole.PAGE if own else AuthorRole.PERSON,
            author_id=str(sender.id) if sender else None,
            author_name=person_name(sender),
            text=message_text(message),
            content_kind=content_kind(message),
            reply_to_id=reply_key(message),
            answers_conversation=own,
        )
    )


async def business_edited(
    message: Message, bot: Bot, session: AsyncSession, ingest: UpdateUnit
) -> None:
    if message.business_connection_id is None:
        return
    page = await _owner(bot, session, message.business_connection_id)
    if page is None:
        return
    await ingest.handle(edit_event(page, message))


async def business_deleted(
    update: BusinessMessagesDeleted,
    bot: Bot,
    app: AppContext,
    session: AsyncSession,
    ingest: UpdateUnit,
) -> None:
    page = await _owner(bot, session, update.business_connection_id)
    if page is None:
        return
    # Telegram gives no date for deletions; the recording time is the best we have and
    # deletions never enter response-time metrics.
    deleted_at = app.clock()
    for message_id in update.message_ids:
        await ingest.handle(DeleteEvent(page, message_key(update.chat.id, message_id), deleted_at))


def create_router() -> Router:
    """A fresh router with this module's handlers (one per dispatcher)."""
    router = Router(name=__name__)
    router.business_connection.register(connection)
    router.business_message.register(business_message)
    router.edited_business_message.register(business_edited)
    router.deleted_business_messages.register(business_deleted)
    return router
