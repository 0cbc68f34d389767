"""Page discovery: the bot made an admin of a discussion group or channel registers the page."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import ChatMemberUpdated
from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.telegram.discussion import group_pages
from storage import repositories as repo

logger = logging.getLogger(__name__)


ADMIN_STATUSES = {"administrator", "creator"}


async def bot_membership(update: ChatMemberUpdated, bot: Bot, session: AsyncSession) -> None:
    status = str(update.new_chat_member.status)
    if status not in ADMIN_STATUSES:
        logger.info("bot is now %s in chat %r", status, update.chat.id)
        return
    chat = update.chat
    if chat.type == "channel":
        full = await bot.get_chat(chat.id)
        if full.linked_chat_id is None:
            logger.warning("channel %r has no discussion group; comments cannot be read", chat.id)
            return
        group = await bot.get_chat(full.linked_chat_id)
        ref = await group_pages.discover(bot, group)
    elif chat.type in ("group", "supergroup"):
        ref = await group_pages.discover(bot, chat)
    else:
        return
    page = await repo.ensure_page(session, ref)
    logger.info("page %r (%s) registered from chat %r", page.id, page.title, chat.id)


def create_router() -> Router:
    """A fresh router with this module's handlers (one per dispatcher)."""
    router = Router(name=__name__)
    router.my_chat_member.register(bot_membership)
    return router
