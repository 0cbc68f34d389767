"""Telegram counters for page health: channel subscribers and post views.

Subscribers: `getChatMemberCount` on the channel (the bot is its administrator). Reactions
arrive by themselves (`message_reaction_count`, handlers/telegram/channel.py). Views: the Bot
API has none; with TELEGRAM_PREVIEW_VIEWS on they are read from the public channel's web
preview (handlers/telegram/preview.py), else the gap says so. Flood control (429) waits as
long as Telegram asks, a few times; a channel that refuses the bot is a gap with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)

from bot.events import PageRef, Platform, PostCountersEvent, SubscribersEvent
from bot.services.health_refresh import DuePost
from handlers.telegram.preview import PreviewChanged, parse_preview

logger = logging.getLogger(__name__)

ATTEMPTS = 4
MAX_RETRY_AFTER_S = 60.0
# Preview pages (20 posts each) read per channel and refresh, going back with ?before=.
MAX_PREVIEW_PAGES = 10

PREVIEW_OFF = (
    "просмотры: Bot API их не даёт; включите TELEGRAM_PREVIEW_VIEWS, чтобы читать их "
    "с открытой страницы публичного канала"
)
PRIVATE_CHANNEL = "просмотры: канал закрытый (без имени), открытой страницы с просмотрами нет"
PREVIEW_CHANGED = (
    "просмотры: страница t.me/s/ изменилась, Отклик не смог прочитать просмотры (нужно "
    "обновить Отклик)"
)
PREVIEW_UNREACHABLE = "просмотры: страница t.me/s/ недоступна"
NOT_IN_PREVIEW = "просмотры: пост не найден на открытой странице канала (удалён или слишком старый)"
ALBUM = "просмотры: у альбома нет одного номера сообщения на открытой странице"


def bot_refused(error: TelegramAPIError) -> str:
    return (
        "Telegram отказал боту в данных канала: бот не администратор канала или удалён из "
        f"него ({error.message})"
    )


class TelegramCounterSource:
    """`CounterSource` for Telegram channels (bot/services/health_refresh.py)."""

    platform = Platform.TELEGRAM

    def __init__(
        self,
        bot: Bot,
        *,
        preview_views: bool,
        preview_server: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.bot = bot
        self.preview_views = preview_views
        self.preview_server = preview_server.rstrip("/")
        self.sleep = sleep

    async def subscribers(self, pages: Sequence[PageRef], at: datetime) -> list[SubscribersEvent]:
        events = []
        for page in pages:
            try:
                count = await self._member_count(int(page.external_id))
            except (TelegramForbiddenError, TelegramBadRequest) as error:
                logger.warning(
                    "getChatMemberCount(%s): Telegram отказал: %s", page.external_id, error
                )
                events.append(SubscribersEvent(page, at, None, bot_refused(error)))
                continue
            except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as error:
                logger.warning(
                    "getChatMemberCount(%s) не удался: %s; повторим позже", page.external_id, error
                )
                continue
            events.append(SubscribersEvent(page, at, count))
        return events

    async def _member_count(self, chat_id: int) -> int:
        for attempt in range(ATTEMPTS):
            try:
                return await self.bot.get_chat_member_count(chat_id)
            except TelegramRetryAfter as error:
                if attempt + 1 == ATTEMPTS:
                    raise
                await self.sleep(min(float(error.retry_after), MAX_RETRY_AFTER_S))
        raise AssertionError("unreachable")  # pragma: no cover

    async def counters(self, posts: Sequence[DuePost], at: datetime) -> list[PostCountersEvent]:
        by_page: dict[str, list[DuePost]] = {}
        for post in posts:
            by_page.setdefault(post.page.external_id, []).append(post)
        events: list[PostCountersEvent] = []
        for page_posts in by_page.values():
            events.extend(await self._page_counters(page_posts, at))
        return events

    async def _page_counters(self, posts: list[DuePost], at: datetime) -> list[PostCountersEvent]:
        page = posts[0].page

        def gap(post: DuePost, note: str) -> PostCountersEvent:
            return PostCountersEvent(post.page, post.post_id, at, note=note)

        if not self.preview_views:
            return [gap(post, PREVIEW_OFF) for post in posts]
        if not page.username:
            return [gap(post, PRIVATE_CHANNEL) for post in posts]
        wanted = {int(post.post_id) for post in posts if post.post_id.isdigit()}
        try:
            views = await self._preview_views(page.username, min(wanted) if wanted else None)
        except PreviewChanged as error:
            logger.warning("веб-превью канала @%s: %s", page.username, error)
            return [gap(post, PREVIEW_CHANGED) for post in posts]
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.warning("веб-превью канала @%s недоступно: %s", page.username, error)
            return [gap(post, PREVIEW_UNREACHABLE) for post in posts]
        if wanted and not views:
            logger.warning("в веб-превью канала @%s нет известных нам постов", page.username)
            return [gap(post, PREVIEW_CHANGED) for post in posts]
        events = []
        for post in posts:
            if not post.post_id.isdigit():
                events.append(gap(post, ALBUM))
                continue
            shown = views.get(int(post.post_id))
            if shown is None:
                note = NOT_IN_PREVIEW if int(post.post_id) not in views else PREVIEW_CHANGED
                events.append(gap(post, note))
                continue
            events.append(PostCountersEvent(post.page, post.post_id, at, views=shown))
        return events

    async def _preview_views(self, username: str, oldest: int | None) -> dict[int, int | None]:
        """Views of the channel's posts back to message `oldest` (at most MAX_PREVIEW_PAGES)."""
        found: dict[int, int | None] = {}
        before: int | None = None
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(MAX_PREVIEW_PAGES):
                url = f"{self.preview_server}/s/{username}"
                params = {"before": str(before)} if before is not None else None
                async with http.get(url, params=params) as response:
                    response.raise_for_status()
                    page = parse_preview(await response.text())
                if not page:
                    break
                found.update(page)
                first = min(page)
                if oldest is None or first <= oldest or (before is not None and first >= before):
                    break
                before = first
        return found


def preview_server(api_server: str) -> str:
    """Where the web preview is: t.me, or the sandbox that stands in for the Bot API."""
    from bot.config import TELEGRAM_DEFAULT_SERVER
    from handlers.telegram.preview import TELEGRAM_PREVIEW_SERVER

    if api_server.rstrip("/") == TELEGRAM_DEFAULT_SERVER:
        return TELEGRAM_PREVIEW_SERVER
    return api_server
