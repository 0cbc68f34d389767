"""A running Otklik Telegram intake against the Bot API sandbox, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiogram import Bot, Dispatcher
from sqlalchemy import func
from sqlmodel import select

from bot.app import AppContext
from bot.events import PageKind, PageRef, Platform
from bot.sandbox import TelegramSandbox
from handlers.telegram.middlewares import UpdateStoreMiddleware
from handlers.telegram.setup import allowed_updates, confirm_offset, make_bot, make_dispatcher
from storage import repositories as repo
from storage.models import RawUpdate

TOKEN = "123456:TEST-token-never-logged"
BOT_ID = 123456
CHANNEL_ID = -1001000000001
GROUP_ID = -1001000000002
PRESS_CHAT_ID = -1001000000009

CHANNEL = {
    "id": CHANNEL_ID,
    "type": "channel",
    "title": "Правительство области",
    "username": "gov_region",
    "linked_chat_id": GROUP_ID,
}
GROUP = {
    "id": GROUP_ID,
    "type": "supergroup",
    "title": "Обсуждение: Правительство области",
    "linked_chat_id": CHANNEL_ID,
}
PRESS = {"id": PRESS_CHAT_ID, "type": "supergroup", "title": "Пресс-служба"}


def setup_sandbox(sandbox: TelegramSandbox) -> None:
    sandbox.add_bot(TOKEN, BOT_ID, "otklik_test_bot", "Обратная связь")
    sandbox.add_chat(CHANNEL)
    sandbox.add_chat(GROUP)
    sandbox.add_chat(PRESS)


class RunningIntake:
    """Dispatcher.start_polling over HTTP against the sandbox, in a background task."""

    def __init__(self, app: AppContext, sandbox: TelegramSandbox) -> None:
        self.app = app
        self.sandbox = sandbox
        self.bot: Bot | None = None
        self.dp: Dispatcher | None = None
        self.store: UpdateStoreMiddleware | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.bot = make_bot(TOKEN, self.sandbox.base_url)
        self.dp, self.store = make_dispatcher(self.app)
        self.store.use_for_polling(self.bot)
        self.task = asyncio.create_task(
            self.dp.start_polling(
                self.bot,
                handle_signals=False,
                handle_as_tasks=False,
                close_bot_session=False,
                allowed_updates=allowed_updates(self.dp),
                polling_timeout=1,
            )
        )

    async def stop(self, *, graceful: bool = True) -> None:
        assert self.dp is not None and self.bot is not None and self.task is not None
        if graceful:
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            assert self.store is not None
            await confirm_offset(self.bot, self.store)
        else:
            self.task.cancel()  # a crash: no offset confirmation
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if not graceful:
            # Cancelling start_polling leaves its per-bot polling task running (asyncio.wait does
            # not cancel what it waits for): a crashed process has no such poller left.
            for task in _polling_tasks(self.dp):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert self.store is not None
        if graceful:
            await self.store.close()
        else:
            await self.store.abandon()  # a crash: what the writer had not committed is gone
        await self.bot.session.close()

    async def processed(self) -> int:
        async with self.app.sessions() as session:
            return (await session.exec(select(func.count()).select_from(RawUpdate))).one()

    async def wait_processed(self, count: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while await self.processed() < count:  # noqa: ASYNC110  (polling a database)
                await asyncio.sleep(0.02)


def _polling_tasks(dp: Dispatcher) -> list[asyncio.Task[Any]]:
    """The running `Dispatcher._polling` tasks of `dp`."""
    found = []
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        if (
            getattr(coro, "__qualname__", "") == "Dispatcher._polling"
            and frame is not None
            and frame.f_locals.get("self") is dp
        ):
            found.append(task)
    return found


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    """Poll `check` until it returns a truthy value."""
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def fed_intake(
    app: AppContext, sandbox: TelegramSandbox
) -> AsyncIterator[tuple[Dispatcher, UpdateStoreMiddleware, Bot]]:
    """The real dispatcher, fed directly (`feed_update`); the channel's page is known already.

    On a SQLite file its store has the intake writer; closed at the end.
    """
    async with app.sessions() as session:
        await repo.ensure_page(
            session,
            PageRef(
                Platform.TELEGRAM,
                str(CHANNEL_ID),
                PageKind.TG_CHANNEL,
                str(CHANNEL["title"]),
                str(CHANNEL["username"]),
                str(GROUP_ID),
            ),
        )
        await session.commit()
    bot = make_bot(TOKEN, sandbox.base_url)
    dp, store = make_dispatcher(app)
    try:
        yield dp, store, bot
    finally:
        await store.close()
        await bot.session.close()
