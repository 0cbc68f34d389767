"""Page discovery and notices: the bot made an admin of a discussion group or channel registers
the page, and the press chat is told when a page connects or the bot loses its rights there."""

from __future__ import annotations

import html
import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ChatMemberUpdated
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.app import AppContext
from bot.services.cards import page_title
from bot.services.ladder import press_chat_of
from bot.services.page_check import check_text
from handlers.telegram.discussion import group_pages
from handlers.telegram.pages import ADMIN_STATUSES, check_telegram
from storage import repositories as repo
from storage.models import Page

logger = logging.getLogger(__name__)


async def notify_press_chat(bot: Bot, app: AppContext, page: Page | None, text: str) -> None:
    """Tell the page's press chat (or PRESS_CHAT_ID) about a page; a failure is only logged."""
    chat_id = press_chat_of(page, app.settings) if page is not None else app.settings.PRESS_CHAT_ID
    if chat_id is None:
        logger.info("некому сообщить, пресс-чат не задан: %s", text.splitlines()[0])
        return
    try:
        await bot.send_message(chat_id, html.escape(text), parse_mode="HTML")
    except TelegramAPIError as error:
        logger.warning("пресс-чату %r не удалось сообщить о странице: %s", chat_id, error)


async def _page_of_chat(session: AsyncSession, chat_id: int) -> Page | None:
    """The Telegram page a channel or discussion group belongs to."""
    found = await session.exec(
        select(Page).where(
            Page.platform == "telegram",
            or_(Page.external_id == str(chat_id), col(Page.linked_chat_id) == str(chat_id)),
        )
    )
    return found.first()


# The bot's status in a chat, as the log line says it.
_STATUS_RU = {
    "member": "участник без прав администратора",
    "restricted": "участник с ограничениями",
    "left": "не участник",
    "kicked": "исключён",
}


async def bot_membership(
    update: ChatMemberUpdated, bot: Bot, session: AsyncSession, app: AppContext
) -> None:
    status = str(update.new_chat_member.status)
    was_admin = str(update.old_chat_member.status) in ADMIN_STATUSES
    chat = update.chat
    if chat.type not in ("channel", "group", "supergroup"):
        return
    if status not in ADMIN_STATUSES:
        logger.info("бот теперь %s в чате %r", _STATUS_RU.get(status, status), chat.id)
        if was_admin:
            await _lost_rights(bot, session, app, update)
        return
    check, group = await check_telegram(bot, chat.id)
    if group is None:
        logger.warning("чат %r: нет группы обсуждений, которую бот может читать", chat.id)
        await notify_press_chat(bot, app, await _page_of_chat(session, chat.id), check_text(check))
        return
    ref = await group_pages.discover(bot, group)
    page = await repo.ensure_page(session, ref)
    check.page_id, check.title = page.id, page.title or check.title
    logger.info("страница %r (%s) подключена из чата %r", page.id, page.title, chat.id)
    if not was_admin:
        await notify_press_chat(bot, app, page, "🔌 " + check_text(check))


async def _lost_rights(
    bot: Bot, session: AsyncSession, app: AppContext, update: ChatMemberUpdated
) -> None:
    chat = update.chat
    page = await _page_of_chat(session, chat.id)
    name = f"«{page_title(page)}»" if page is not None else f"«{chat.title or chat.id}»"
    if chat.type == "channel":
        lost = "посты и охваты канала больше не учитываются (комментарии — учитываются)"
    else:
        lost = "комментарии жителей с этой страницы больше не приходят и не учитываются"
    await notify_press_chat(
        bot,
        app,
        page,
        f"⚠️ Бот больше не администратор в {name} ({ru.platform('telegram')}): {lost}. "
        "Верните бота администратором и проверьте права командой /page add.",
    )


def create_router() -> Router:
    """A fresh router with this module's handlers (one per dispatcher)."""
    router = Router(name=__name__)
    router.my_chat_member.register(bot_membership)
    return router
