"""Translating aiogram objects into the pieces of a normalised event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
)
from aiogram.types import Chat, Message, User
from sqlmodel import select

from bot.app import AppContext
from bot.events import EditEvent, PageKind, PageRef, Platform, ThreadKind, ThreadRef
from storage.models import Page

logger = logging.getLogger(__name__)

# Text-bearing kinds; everything else is stored with its kind and an empty or caption text.
_TEXT_KINDS = {"text"}


def message_key(chat_id: int, message_id: int) -> str:
    """Telegram message ids are per chat, so a page-wide id carries the chat."""
    return f"{chat_id}:{message_id}"


def reply_key(message: Message) -> str | None:
    """The page-wide id of the message `message` replies to, if any."""
    if message.reply_to_message is None:
        return None
    return message_key(message.chat.id, message.reply_to_message.message_id)


def edit_event(page: PageRef, message: Message) -> EditEvent:
    """An edited message as a normalised edit, dated by Telegram's `edit_date`."""
    edited_at = utc(message.edit_date) if message.edit_date else utc(message.date)
    return EditEvent(
        page, message_key(message.chat.id, message.message_id), message_text(message), edited_at
    )


def utc(moment: datetime | int) -> datetime:
    if isinstance(moment, int):
        return datetime.fromtimestamp(moment, UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def message_text(message: Message) -> str:
    return clean_text(message.text or message.caption or "")


def clean_text(text: str) -> str:
    """`text` as valid Unicode: a lone surrogate (Telegram's JSON can carry one) becomes «�»."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def content_kind(message: Message) -> str:
    kind = message.content_type
    return str(getattr(kind, "value", kind))


def person_name(user: User | None, chat: Chat | None = None) -> str | None:
    if user is not None:
        name = " ".join(p for p in (user.first_name, user.last_name) if p)
        return clean_text(name) if name else user.username
    if chat is not None:
        title = chat.title or chat.username
        return clean_text(title) if title else None
    return None


def internal_chat_id(chat_id: int) -> str:
    """The id used in t.me/c/ links: a supergroup's id without its -100 prefix."""
    text = str(chat_id)
    return text[4:] if text.startswith("-100") else text.lstrip("-")


def comment_link(chat: Chat, message_id: int, thread_id: int | None) -> str:
    base = (
        f"https://t.me/{chat.username}/{message_id}"
        if chat.username
        else f"https://t.me/c/{internal_chat_id(chat.id)}/{message_id}"
    )
    return f"{base}?thread={thread_id}" if thread_id else base


def bot_page_ref(me: User) -> PageRef:
    return PageRef(
        Platform.TELEGRAM, str(me.id), PageKind.TG_BOT, title=person_name(me), username=me.username
    )


def conversation(chat_id: int, title: str | None = None) -> ThreadRef:
    return ThreadRef(f"chat:{chat_id}", ThreadKind.CONVERSATION, title)


class GroupPages:
    """Which page a discussion group belongs to: its linked channel, learnt once and cached."""

    def __init__(self) -> None:
        self._cache: dict[int, PageRef] = {}

    def remember(self, group_id: int, ref: PageRef) -> None:
        self._cache[group_id] = ref

    async def resolve(
        self,
        bot: Bot,
        app: AppContext,
        chat: Chat,
        before_waiting: Callable[[], None] | None = None,
    ) -> PageRef:
        """The page of the group `chat`; `before_waiting` is called before a look-up that waits."""
        cached = self._cache.get(chat.id)
        if cached is not None:
            return cached
        if before_waiting is not None:
            before_waiting()
        async with app.sessions() as session:
            result = await session.exec(select(Page).where(Page.linked_chat_id == str(chat.id)))
            page = result.first()
        if page is not None:
            ref = PageRef(
                Platform.TELEGRAM,
                page.external_id,
                PageKind(page.kind),
                page.title,
                page.username,
                page.linked_chat_id,
            )
        else:
            ref = await self.discover(bot, chat)
        self._cache[chat.id] = ref
        return ref

    async def discover(self, bot: Bot, chat: Chat) -> PageRef:
        """Ask Telegram for the channel linked to `chat`; the group itself if there is none.

        Only Telegram's answer decides: a group whose getChat failed for a reason of the moment
        (5xx, network, flood control, a body that does not decode) is not taken for a page of
        its own — that would turn the channel's replies into citizen messages for good (issue
        16 item 4). `ChannelLookupUnavailable` keeps the update unconfirmed and retried.
        """
        try:
            full = await bot.get_chat(chat.id)
        except (TelegramBadRequest, TelegramForbiddenError) as error:
            logger.warning(
                "getChat(%r): Telegram отказал: %s; группа считается отдельной страницей",
                chat.id,
                error,
            )
            full = None
        except (TelegramAPIError, ClientDecodeError) as error:
            raise ChannelLookupUnavailable(f"getChat({chat.id}) failed: {error}") from error
        linked = full.linked_chat_id if full is not None else None
        if linked is not None:
            title, username = None, None
            try:
                channel = await bot.get_chat(linked)
                title, username = channel.title, channel.username
            except (TelegramAPIError, ClientDecodeError) as error:
                logger.warning("getChat(%r) для связанного канала не удался: %s", linked, error)
            ref = PageRef(
                Platform.TELEGRAM,
                str(linked),
                PageKind.TG_CHANNEL,
                _clean(title),
                username,
                str(chat.id),
            )
        else:
            ref = PageRef(
                Platform.TELEGRAM,
                str(chat.id),
                PageKind.TG_GROUP,
                _clean(chat.title),
                chat.username,
                str(chat.id),
            )
        self._cache[chat.id] = ref
        return ref


class ChannelLookupUnavailable(ConnectionError):
    """Telegram could not say which channel a group belongs to; try the update again later.

    A ConnectionError: the intake treats it as an outage (bot/services/intake.py
    `is_unavailable`) — it waits, backing off, and confirms nothing until the look-up succeeds.
    """


def _clean(title: str | None) -> str | None:
    """A chat title as valid Unicode (a lone surrogate would fail every write of the page)."""
    return None if title is None else clean_text(title)
