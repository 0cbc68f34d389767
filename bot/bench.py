"""The intake benchmark (a script, not a timed test; `otklik bench` runs it, bot/benchmarks.py).

It feeds Telegram updates through `Dispatcher.feed_update` with the real handlers, middleware
and SQLite storage, and the same updates through a dispatcher with a no-op handler, in one run.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram import Dispatcher, Router
from aiogram.types import Message, Update

from bot.memory import settle_after_start

TOKEN = "42:bench-token"
CHANNEL_ID = -1009900000001  # not the test harness ids: discussion.group_pages is per process
GROUP_ID = -1009900000002
START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)

APPEALS = (
    "Когда отремонтируют дорогу на улице Ленина? Сплошные ямы.",
    "Во дворе дома 12 не вывозят мусор уже неделю!",
    "Нет горячей воды в доме 5 по улице Мира третий день",
    "Спасибо за новости!",
    "Почему автобус 23 не ходит по расписанию?",
    "Прошу убрать снег с детской площадки на Садовой",
)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def build_updates(count: int, first_id: int = 1) -> list[Update]:
    """Comments from many citizens under 50 posts, every fourth one answered by the channel."""
    updates: list[Update] = []
    group = {"id": GROUP_ID, "type": "supergroup", "title": "Обсуждение"}
    channel = {"id": CHANNEL_ID, "type": "channel", "title": "Правительство"}
    message_id = 10_000 + first_id * 10
    last_comment: dict[int, int] = {}
    for n in range(count):
        message_id += 1
        post = 100 + n % 50
        moment = int((START + timedelta(seconds=30 * n)).timestamp())
        payload: dict[str, Any] = {
            "message_id": message_id,
            "date": moment,
            "chat": group,
            "message_thread_id": post,
        }
        if n % 4 == 3 and post in last_comment:
            payload.update(
                sender_chat=channel,
                **{"from": {"id": 136817688, "is_bot": True, "first_name": "Channel"}},
                text="Здравствуйте! Передали в управление, ответим до пятницы.",
                reply_to_message={"message_id": last_comment[post], "date": moment, "chat": group},
            )
        else:
            payload.update(
                **{"from": {"id": 5000 + n, "is_bot": False, "first_name": "Житель"}},
                text=APPEALS[n % len(APPEALS)],
            )
            last_comment[post] = message_id
        updates.append(Update.model_validate({"update_id": first_id + n, "message": payload}))
    return updates


async def _feed(
    dp: Dispatcher,
    bot: Any,
    updates: list[Update],
    settle: Callable[[], Awaitable[None]] | None = None,
) -> float:
    """Updates per second; `settle` (in the timed window) waits until all are committed."""
    started = time.perf_counter()
    for update in updates:
        await dp.feed_update(bot, update)
    if settle is not None:
        await settle()
    return len(updates) / (time.perf_counter() - started)


async def _stored_rows(app: Any) -> dict[str, int]:
    from sqlmodel import func, select

    from storage.models import CitizenMessage, OfficialReply, RawUpdate

    async with app.sessions() as session:
        raw = (await session.exec(select(func.count()).select_from(RawUpdate))).one()
        citizen = (await session.exec(select(func.count()).select_from(CitizenMessage))).one()
        official = (await session.exec(select(func.count()).select_from(OfficialReply))).one()
    return {"raw_updates": int(raw), "messages": int(citizen) + int(official)}


async def bench_intake(count: int = 10_000, *, bound: bool = False) -> dict[str, Any]:
    """Updates per second: real handlers + SQLite vs a no-op handler.

    The updates are built without a bot, so `feed_update` validates each one again with the
    bot attached, as webhook mode validates the JSON Telegram posts. `bound=True` feeds them
    already bound to the bot, as polling's getUpdates returns them (parsing not counted).
    """
    from bot.app import AppContext
    from bot.config import Settings
    from bot.events import PageKind, PageRef, Platform
    from handlers.telegram.setup import make_bot, make_dispatcher
    from storage import repositories as repo
    from storage.engine import create_engine
    from storage.migrate import upgrade

    updates = build_updates(count)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await upgrade(engine)
        app = AppContext.create(Settings(_env_file=None), engine)
        async with app.sessions() as session:
            # The page is known already, so no handler needs to call the Bot API.
            await repo.ensure_page(
                session,
                PageRef(
                    Platform.TELEGRAM,
                    str(CHANNEL_ID),
                    PageKind.TG_CHANNEL,
                    "Правительство",
                    None,
                    str(GROUP_ID),
                ),
            )
            await session.commit()
        bot = make_bot(TOKEN, "http://127.0.0.1:9")  # never called
        if bound:
            updates = [Update.model_validate(u.model_dump(), context={"bot": bot}) for u in updates]
        real, store = make_dispatcher(app)
        # As in polling (bot/runner.py): commits grouped, everything committed before the next
        # getUpdates; here before the clock stops.
        store.defer_commits = True
        noop = Dispatcher()
        router = Router()

        async def nothing(message: Message) -> None:
            return None

        router.message.register(nothing)
        noop.include_router(router)
        # Warm-up (imports, classifier dictionaries, SQLite caches) on other update and message
        # ids, so that the measured updates are all new.
        warm_up = build_updates(50, first_id=10 * count + 1)
        await _feed(noop, bot, warm_up)
        await _feed(real, bot, warm_up, store.flush)
        settle_after_start()  # as `otklik run` does once it has started (bot/memory.py)
        noop_rate = await _feed(noop, bot, updates)
        real_rate = await _feed(real, bot, updates, store.flush)
        batches = store.writer.batches if store.writer is not None else None
        await store.close()
        await bot.session.close()
        stored = await _stored_rows(app)
        await engine.dispose()
    expected = count + len(warm_up)
    if stored != {"raw_updates": expected, "messages": expected}:
        # A rate is worth nothing if the updates were not all stored.
        raise RuntimeError(f"expected {expected} updates and messages stored, found {stored}")
    return {
        "updates": count,
        "bound_to_bot": bound,
        "real_handlers_sqlite_per_s": round(real_rate),
        "noop_handler_per_s": round(noop_rate),
        "ratio": round(real_rate / noop_rate, 3),
        "stored": stored,
        "writer_commits": batches,
        "machine": machine(),
        # Other processes on the machine skew both rates; the ratio is steadier.
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
