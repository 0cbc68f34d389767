"""Private messages to the page's feedback bot: stored as appeals and relayed to the press chat."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.events import AuthorRole, MessageEvent, RatingEvent
from bot.services import roles
from bot.services.ingest import Outcome
from handlers.telegram.common import (
    bot_page_ref,
    clean_text,
    content_kind,
    conversation,
    message_key,
    message_text,
    person_name,
    reply_key,
    utc,
)
from handlers.telegram.filters import CallbackData, LooksLikeCommand
from handlers.telegram.press import RATE_PREFIX
from handlers.telegram.unit import UpdateUnit
from storage import repositories as repo

logger = logging.getLogger(__name__)


# /start of a citizen (handlers/telegram/onboarding.py answers /start and /help by role).
GREETING = (
    "Здравствуйте! Это официальный бот обратной связи. Напишите ваш вопрос, жалобу или "
    "предложение одним сообщением — его получат сотрудники, ответ придёт сюда же."
)
REPLY_HINT = "Ответьте на это сообщение — ответ уйдёт гражданину."
RECEIVED = "Спасибо, ваше обращение получено и передано сотрудникам."


async def unknown_command(message: Message, session: AsyncSession, app: AppContext) -> None:
    """A command nobody handles: staff are pointed to /help, citizens to writing a message."""
    user_id = message.from_user.id if message.from_user else None
    if (
        user_id is not None
        and await roles.role_of(session, app.settings, user_id) > roles.Role.NONE
    ):
        await message.answer("Такой команды нет. Список команд — /help.")
        return
    await message.answer("Такой команды нет. Просто напишите ваш вопрос сообщением.")


async def citizen_message(
    message: Message, bot: Bot, app: AppContext, session: AsyncSession, ingest: UpdateUnit
) -> None:
    me = await bot.me()
    page = bot_page_ref(me)
    user = message.from_user
    event = MessageEvent(
        page=page,
        thread=conversation(message.chat.id, person_name(user)),
        message_id=message_key(message.chat.id, message.message_id),
        sent_at=utc(message.date),
        author_role=AuthorRole.PERSON,
        author_id=str(user.id) if user else str(message.chat.id),
        author_name=person_name(user),
        text=message_text(message),
        content_kind=content_kind(message),
        reply_to_id=reply_key(message),
    )
    result = await ingest.handle(event)
    if result.outcome is Outcome.DUPLICATE:
        return
    await _relay(message, bot, app, session, event, result.page_id)
    if result.outcome is Outcome.APPEAL:
        # Stored as an appeal: the citizen is told so whatever became of the relay (it reaches
        # the press chat through the reminders all the same).
        await message.answer(RECEIVED)


async def _relay(
    message: Message,
    bot: Bot,
    app: AppContext,
    session: AsyncSession,
    event: MessageEvent,
    page_id: int | None,
) -> None:
    """Copy the citizen's message to the press chat, where a reply to it goes back to them."""
    press_chat = await _press_chat_for(app, session, page_id)
    if press_chat is None:
        logger.warning("пресс-чат не задан; личное сообщение %r не переслано", event.message_id)
        return
    user = message.from_user
    # «Автор: Татьяна Орлова», not «от Татьяна Орлова»: a name is not declined by guesswork.
    header = f"✉️ Личное сообщение боту. Автор: {event.author_name or 'житель'}"
    if user and user.username:
        header += f" (@{user.username})"
    try:
        if message.text is not None:
            sent = await bot.send_message(
                press_chat,
                # Cleaned: a lone surrogate cannot be sent as UTF-8 (issue 16 item 9).
                f"{header}:\n\n{clean_text(message.text)}\n\n{REPLY_HINT}",
            )
            relayed_id = sent.message_id
        else:
            copied = await bot.copy_message(
                press_chat,
                message.chat.id,
                message.message_id,
                caption=f"{header}. {message_text(message)}".strip()[:1024],
            )
            relayed_id = copied.message_id
    except TelegramAPIError as error:
        logger.error("не удалось переслать %r в пресс-чат: %s", event.message_id, error)
        return
    assert page_id is not None
    await repo.save_relay(
        session, page_id, press_chat, relayed_id, message.chat.id, message.message_id
    )


async def _press_chat_for(
    app: AppContext, session: AsyncSession, page_id: int | None
) -> int | None:
    if page_id is not None:
        from storage.models import Page

        page = await session.get(Page, page_id)
        if page is not None and page.press_chat_id is not None:
            return page.press_chat_id
    return app.settings.PRESS_CHAT_ID


async def rating(query: CallbackQuery, bot: Bot, app: AppContext, ingest: UpdateUnit) -> None:
    """The citizen pressed 👍 or 👎 under an answer."""
    assert query.data is not None
    _, mark, reply_id = query.data.split(":", 2)
    me = await bot.me()
    result = await ingest.handle(
        RatingEvent(
            page=bot_page_ref(me),
            reply_message_id=reply_id,
            user_id=str(query.from_user.id),
            positive=mark == "1",
            rated_at=app.clock(),
        )
    )
    if result.outcome is not Outcome.RATING:
        await query.answer("Не удалось сохранить оценку.", show_alert=False)
        return
    await query.answer("Спасибо за оценку!")
    if isinstance(query.message, Message):
        verdict = "👍 помогло" if mark == "1" else "👎 не помогло"
        try:
            await query.message.edit_text(f"Ваша оценка ответа: {verdict}. Спасибо!")
        except TelegramAPIError as error:
            logger.info("сообщение с оценкой не изменено: %s", error)


def create_router() -> Router:
    """A fresh router with this module's handlers (one per dispatcher)."""
    router = Router(name=__name__)
    router.callback_query.register(rating, CallbackData(RATE_PREFIX))
    router.message.register(unknown_command, LooksLikeCommand(captions=False))
    router.message.register(citizen_message)
    return router
