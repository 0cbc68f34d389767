"""Comments in a channel's discussion group: citizens, the channel, anonymous admins, staff.

Most of the traffic. A comment, an edit or a reaction is only translated into an event and
submitted (`UpdateUnit.submit`, handlers/telegram/unit.py): on SQLite the intake writer decides
and stores it in the background (handlers/telegram/middlewares.py). Nothing here reads the
database on that path.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.types import Message, MessageReactionUpdated, ReactionTypeEmoji

from bot.app import AppContext
from bot.events import AuthorRole, MessageEvent, ReactionEvent, ThreadKind, ThreadRef
from handlers.telegram.common import (
    GroupPages,
    comment_link,
    content_kind,
    edit_event,
    message_key,
    message_text,
    person_name,
    utc,
)
from handlers.telegram.filters import AutomaticForward
from handlers.telegram.unit import UpdateUnit
from storage import repositories as repo

logger = logging.getLogger(__name__)

group_pages = GroupPages()


def _thread(message: Message) -> ThreadRef:
    if message.message_thread_id is not None:
        return ThreadRef(f"post:{message.message_thread_id}", ThreadKind.COMMENTS)
    return ThreadRef("chat", ThreadKind.COMMENTS, "Обсуждение вне постов")


async def channel_post_forwarded(
    message: Message, bot: Bot, app: AppContext, ingest: UpdateUnit
) -> None:
    """A channel post arrived in the discussion group: it opens a comment thread."""
    page = await group_pages.resolve(bot, app, message.chat, ingest.about_to_wait)
    await ingest.open()
    session = ingest.session
    assert session is not None
    stored = await repo.ensure_page(session, page)
    assert stored.id is not None
    await repo.ensure_thread(
        session,
        stored.id,
        ThreadRef(f"post:{message.message_id}", ThreadKind.COMMENTS, message_text(message)[:500]),
    )


async def comment(message: Message, bot: Bot, app: AppContext, ingest: UpdateUnit) -> None:
    page = await group_pages.resolve(bot, app, message.chat, ingest.about_to_wait)
    role = AuthorRole.PERSON
    author_id = str(message.from_user.id) if message.from_user else None
    author_name = person_name(message.from_user)
    if message.sender_chat is not None:
        author_name = person_name(None, message.sender_chat)
        if str(message.sender_chat.id) in (page.external_id, page.linked_chat_id):
            # The channel itself, or the group as an anonymous administrator.
            role = AuthorRole.PAGE
        author_id = str(message.sender_chat.id)
    reply_to = message.reply_to_message
    reply_to_id = None
    if reply_to is not None and not reply_to.is_automatic_forward:
        reply_to_id = message_key(message.chat.id, reply_to.message_id)
    event = MessageEvent(
        page=page,
        thread=_thread(message),
        message_id=message_key(message.chat.id, message.message_id),
        sent_at=utc(message.date),
        author_role=role,
        author_id=author_id,
        author_name=author_name,
        text=message_text(message),
        content_kind=content_kind(message),
        reply_to_id=reply_to_id,
        link=comment_link(message.chat, message.message_id, message.message_thread_id),
    )
    await ingest.submit(event)


async def comment_edited(message: Message, bot: Bot, app: AppContext, ingest: UpdateUnit) -> None:
    page = await group_pages.resolve(bot, app, message.chat, ingest.about_to_wait)
    await ingest.submit(edit_event(page, message))


async def reaction(
    update: MessageReactionUpdated, bot: Bot, app: AppContext, ingest: UpdateUnit
) -> None:
    page = await group_pages.resolve(bot, app, update.chat, ingest.about_to_wait)

    def emojis(reactions: list[object]) -> set[str]:
        return {r.emoji for r in reactions if isinstance(r, ReactionTypeEmoji)}

    old, new = emojis(list(update.old_reaction)), emojis(list(update.new_reaction))
    user_id = str(update.user.id) if update.user else None
    await ingest.submit(
        ReactionEvent(
            page,
            message_key(update.chat.id, update.message_id),
            user_id,
            utc(update.date),
            added=tuple(sorted(new - old)),
            removed=tuple(sorted(old - new)),
        )
    )


def create_router() -> Router:
    """A fresh router with this module's handlers (one per dispatcher)."""
    router = Router(name=__name__)
    router.message.register(channel_post_forwarded, AutomaticForward())
    router.message.register(comment)
    router.edited_message.register(comment_edited)
    router.message_reaction.register(reaction)
    return router
