"""A channel's own posts and their reaction counts (page health; the bot is a channel admin).

`channel_post` and `edited_channel_post` become `PostEvent`s; `message_reaction_count` (the
anonymous reactions channels have) a `PostCountersEvent` with the sum of the reactions as
likes. Only translation here: the intake decides and stores them (bot/services/posts.py).
An album arrives as several posts with one `media_group_id`: it is one publication.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import Chat, Message, MessageReactionCountUpdated

from bot.events import PageKind, PageRef, Platform, PostCountersEvent, PostEvent, PostKind
from handlers.telegram.common import clean_text, internal_chat_id, message_text, utc
from handlers.telegram.unit import UpdateUnit


def channel_ref(chat: Chat) -> PageRef:
    """The page of a channel as its own updates show it."""
    title = clean_text(chat.title) if chat.title else None
    return PageRef(Platform.TELEGRAM, str(chat.id), PageKind.TG_CHANNEL, title, chat.username)


def post_kind(message: Message) -> PostKind:
    """What the post carries, in the six kinds of page health (docs/METRICS.md)."""
    if message.forward_origin is not None:
        return PostKind.REPOST
    if message.video_note is not None:
        return PostKind.CLIP
    if message.video is not None:
        return PostKind.VIDEO
    if message.poll is not None:
        return PostKind.POLL
    if message.photo or message.animation is not None:
        return PostKind.PHOTO
    return PostKind.TEXT


def post_key(message: Message) -> str:
    """An album's parts are one post; any other message is a post of its own."""
    if message.media_group_id:
        return f"album:{message.media_group_id}"
    return str(message.message_id)


def post_link(chat: Chat, message_id: int) -> str:
    if chat.username:
        return f"https://t.me/{chat.username}/{message_id}"
    return f"https://t.me/c/{internal_chat_id(chat.id)}/{message_id}"


def post_event(message: Message, *, edited: bool) -> PostEvent:
    edited_at = None
    if edited:
        edited_at = utc(message.edit_date) if message.edit_date else utc(message.date)
    return PostEvent(
        page=channel_ref(message.chat),
        post_id=post_key(message),
        published_at=utc(message.date),
        kind=post_kind(message),
        text_length=len(message_text(message)),
        link=post_link(message.chat, message.message_id),
        edited_at=edited_at,
    )


async def channel_post(message: Message, ingest: UpdateUnit) -> None:
    await ingest.submit(post_event(message, edited=False))


async def channel_post_edited(message: Message, ingest: UpdateUnit) -> None:
    await ingest.submit(post_event(message, edited=True))


async def reaction_count(update: MessageReactionCountUpdated, ingest: UpdateUnit) -> None:
    """The channel's anonymous reactions to a post: their sum is the post's likes."""
    if update.chat.type != "channel":
        return  # a group's counts: the group's reactions come one by one (discussion.py)
    total = sum(reaction.total_count for reaction in update.reactions)
    await ingest.submit(
        PostCountersEvent(
            page=channel_ref(update.chat),
            post_id=str(update.message_id),
            observed_at=utc(update.date),
            likes=total,
        )
    )


def create_router() -> Router:
    """A fresh router with this module's handlers (one per dispatcher)."""
    router = Router(name=__name__)
    router.channel_post.register(channel_post)
    router.edited_channel_post.register(channel_post_edited)
    router.message_reaction_count.register(reaction_count)
    return router
