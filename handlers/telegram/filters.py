"""Small async filters for the routers.

aiogram runs a synchronous filter (a magic `F` filter included) in a thread pool, one thread hop
per check; these are coroutines, so a check costs microseconds (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message, MessageReactionUpdated

from bot.app import AppContext

COMMAND_PREFIX = "/"


class InPressChat(Filter):
    """The message is in a press chat (PRESS_CHAT_ID or one bound with /bind)."""

    def __init__(self, app: AppContext) -> None:
        self.app = app

    async def __call__(self, message: Message) -> bool:
        return message.chat.id in self.app.press_chats


class ChatType(Filter):
    """The chat is of one of the given types ("private", "group", "supergroup", …)."""

    def __init__(self, *types: str) -> None:
        self.types = frozenset(types)

    async def __call__(self, message: Message) -> bool:
        return message.chat.type in self.types


class DiscussionChat(Filter):
    """A group or supergroup that is not a press chat: where citizens comment (and react)."""

    def __init__(self, app: AppContext) -> None:
        self.app = app

    async def __call__(self, event: Message | MessageReactionUpdated) -> bool:
        chat = event.chat
        return chat.type in ("group", "supergroup") and chat.id not in self.app.press_chats


class LooksLikeCommand(Filter):
    """The text starts with "/" (as aiogram's `Command`, the caption too unless told not to)."""

    def __init__(self, *, captions: bool = True) -> None:
        self.captions = captions

    async def __call__(self, message: Message) -> bool:
        text = message.text or (message.caption if self.captions else None)
        # aiogram's `Command` splits on whitespace first, so "  /stats" is a command too.
        return text is not None and text.lstrip().startswith(COMMAND_PREFIX)


class AutomaticForward(Filter):
    """A channel post Telegram forwarded into the channel's discussion group."""

    async def __call__(self, message: Message) -> bool:
        return bool(message.is_automatic_forward)


class IsReply(Filter):
    """The message replies to another message."""

    async def __call__(self, message: Message) -> bool:
        return message.reply_to_message is not None


class CallbackData(Filter):
    """The button's callback data starts with `prefix`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def __call__(self, query: CallbackQuery) -> bool:
        return query.data is not None and query.data.startswith(self.prefix)
