"""`Notifier` over aiogram: Telegram's rate limits, 429 retries and named delivery errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)

from bot.services.notify import MAX_CAPTION, MAX_TEXT, DeliveryError, Keyboard, split_text

logger = logging.getLogger(__name__)

__all__ = ["DeliveryError", "RateLimiter", "TelegramNotifier"]

T = TypeVar("T")

# https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
GLOBAL_PER_SECOND = 30
GROUP_PER_MINUTE = 20
PRIVATE_PER_SECOND = 1

# How many times one call is repeated after 429 or a server/network error before giving up
# (the caller keeps the message pending and tries again on a later tick).
MAX_TRIES = 4
# A retry_after longer than this is not slept through here: the scheduler retries later.
MAX_RETRY_AFTER_S = 120.0


class RateLimiter:
    """Sliding windows: all chats together, each group per minute, each private chat per second."""

    def __init__(
        self,
        *,
        per_second: int = GLOBAL_PER_SECOND,
        group_per_minute: int = GROUP_PER_MINUTE,
        private_per_second: int = PRIVATE_PER_SECOND,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_second = per_second
        self.group_per_minute = group_per_minute
        self.private_per_second = private_per_second
        self.monotonic = monotonic
        self.sleep = sleep
        self._all: deque[float] = deque()
        self._chats: dict[int, deque[float]] = {}

    def _wait_for(self, chat_id: int, now: float) -> float:
        """Seconds to wait before a send to `chat_id` keeps every window within its limit."""
        waits = [_window_wait(self._all, self.per_second, 1.0, now)]
        window = self._chats.get(chat_id)
        if window is not None:
            if chat_id < 0:  # groups, supergroups and channels have negative ids
                waits.append(_window_wait(window, self.group_per_minute, 60.0, now))
            else:
                waits.append(_window_wait(window, self.private_per_second, 1.0, now))
        return max(waits)

    async def acquire(self, chat_id: int) -> None:
        """Wait until a message to `chat_id` may be sent, and count it as sent."""
        while True:
            now = self.monotonic()
            wait = self._wait_for(chat_id, now)
            if wait <= 0:
                self._all.append(now)
                self._chats.setdefault(chat_id, deque()).append(now)
                return
            logger.debug("rate limit: waiting %.2f s before sending to %r", wait, chat_id)
            await self.sleep(wait)


def _window_wait(window: deque[float], limit: int, span: float, now: float) -> float:
    while window and window[0] <= now - span:
        window.popleft()
    if len(window) < limit:
        return 0.0
    return window[0] + span - now


def _keyboard(buttons: Keyboard | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=button.text, callback_data=button.callback_data)
                if button.callback_data is not None
                else InlineKeyboardButton(text=button.text, url=button.url)
                for button in row
            ]
            for row in buttons
        ]
    )


class TelegramNotifier:
    """Implements `bot.services.notify.Notifier` with an aiogram `Bot`."""

    def __init__(
        self,
        bot: Bot,
        *,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bot = bot
        self.limiter = limiter or RateLimiter(sleep=sleep)
        self.sleep = sleep

    async def send_text(
        self,
        chat_id: int,
        text: str,
        buttons: Keyboard | None = None,
        *,
        reply_to: int | None = None,
    ) -> int:
        """Send HTML text (split at line breaks if too long; buttons go on the last piece)."""
        pieces = split_text(text)
        message_id = 0
        for number, piece in enumerate(pieces, 1):
            markup = _keyboard(buttons) if number == len(pieces) else None
            # A reply to a message that is gone is sent as a plain message.
            reply = (
                ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                if reply_to is not None and number == 1
                else None
            )

            def call(
                target: int, piece: str = piece, markup: object = markup, reply: object = reply
            ) -> Awaitable[Message]:
                return self.bot.send_message(
                    target,
                    piece,
                    parse_mode="HTML",
                    # Defaults bind loop values as `object`; they are the aiogram types expected.
                    reply_markup=markup,  # type: ignore[arg-type]
                    reply_parameters=reply,  # type: ignore[arg-type]
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )

            message = await self._deliver("sendMessage", chat_id, call)
            message_id = message.message_id
        return message_id

    async def edit_text(
        self, chat_id: int, message_id: int, text: str, buttons: Keyboard | None = None
    ) -> None:
        """Edit a message's HTML text and buttons in place; «not modified» is no error."""
        markup = _keyboard(buttons) or InlineKeyboardMarkup(inline_keyboard=[])

        def call(target: int) -> Awaitable[Message | bool]:
            return self.bot.edit_message_text(
                text=text[:MAX_TEXT],
                chat_id=target,
                message_id=message_id,
                parse_mode="HTML",
                reply_markup=markup,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )

        try:
            await self._deliver("editMessageText", chat_id, call)
        except DeliveryError as error:
            if "message is not modified" in str(error):
                return
            raise

    async def send_photo(self, chat_id: int, png: bytes, caption: str) -> int:
        """Send a PNG with an HTML caption."""

        def call(target: int) -> Awaitable[Message]:
            return self.bot.send_photo(
                target,
                BufferedInputFile(png, filename="chart.png"),
                caption=caption[:MAX_CAPTION],
                parse_mode="HTML",
            )

        return (await self._deliver("sendPhoto", chat_id, call)).message_id

    async def send_document(self, chat_id: int, data: bytes, filename: str, caption: str) -> int:
        """Send a file with an HTML caption."""

        def call(target: int) -> Awaitable[Message]:
            return self.bot.send_document(
                target,
                BufferedInputFile(data, filename=filename),
                caption=caption[:MAX_CAPTION],
                parse_mode="HTML",
            )

        return (await self._deliver("sendDocument", chat_id, call)).message_id

    async def _deliver(self, method: str, chat_id: int, call: Callable[[int], Awaitable[T]]) -> T:
        """Rate-limit and call; retry 429 and transient errors; else raise DeliveryError."""
        target = chat_id
        for attempt in range(1, MAX_TRIES + 1):
            await self.limiter.acquire(target)
            try:
                return await call(target)
            except TelegramRetryAfter as error:
                if error.retry_after > MAX_RETRY_AFTER_S or attempt == MAX_TRIES:
                    raise DeliveryError(
                        f"{method} to {chat_id}: flood control, retry after {error.retry_after} s"
                    ) from None
                logger.warning(
                    "%s в чат %r: Telegram просит подождать (429), повтор через %r с",
                    method,
                    target,
                    error.retry_after,
                )
                await self.sleep(float(error.retry_after))
            except TelegramMigrateToChat as error:
                # The group became a supergroup: the same message goes to its new id.
                logger.warning(
                    "чат %r стал супергруппой %r; отправляем туда", target, error.migrate_to_chat_id
                )
                target = error.migrate_to_chat_id
            except (TelegramServerError, TelegramNetworkError) as error:
                if attempt == MAX_TRIES:
                    raise DeliveryError(f"{method} to {chat_id}: {error.message}") from None
                logger.warning(
                    "%s в чат %r не удался (%s); повторяем", method, target, error.message
                )
                await self.sleep(float(attempt))
            except TelegramAPIError as error:
                # Bad request, forbidden (kicked), not found: repeating the call cannot help.
                raise DeliveryError(
                    f"{method} to {chat_id}: {error.message}", permanent=True
                ) from None
        raise DeliveryError(f"{method} to {chat_id}: gave up")  # pragma: no cover
