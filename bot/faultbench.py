"""`otklik bench faults`: updates through live `otklik run` processes under faults (issue 16).

Not a timed test: a script that prints what became of every update. For each path — Telegram
long polling, Telegram webhooks with two workers behind a round-robin balancer, VK Bots Long
Poll — N citizen comments are sent through the sandboxes (bot/sandbox/) in three parts, with
a fault in each part:

1. **kill -9** of the process (one of the two webhook workers) while it stores, then a restart;
2. **a database outage**: PostgreSQL is reached through a TCP proxy on 127.0.0.1
   (bot/sandbox/proxy.TcpProxy) that is cut for `outage_s` seconds, then restored;
3. **API faults**: the sandbox answers 502 to getUpdates (VK: `failed: 2` and error 10 on the
   key), the balancer answers 502 to webhook posts.

Then it waits until the processes have caught up and counts, by each comment's own marker:
sent, stored (distinct comments in `citizen_message`), lost (sent − stored), doubled (rows
beyond one per comment, in `citizen_message` and in `raw_update`), and kept as failed. It also
checks that no token appears in any process's log. Every process runs on its own fresh
PostgreSQL database (created and dropped here; trust auth on 127.0.0.1:5432 as in the tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

PG_HOST, PG_PORT = "127.0.0.1", 5432
TG_TOKEN = "424242:faultbench-TOKEN-never-logged"
VK_TOKEN = "vk1.a.faultbench-community-TOKEN"
SECRET = "faultbench-webhook-SECRET"
CHANNEL: dict[str, Any] = {
    "id": -1007700000001,
    "type": "channel",
    "title": "Правительство",
    "username": "gov",
}
GROUP: dict[str, Any] = {"id": -1007700000002, "type": "supergroup", "title": "Обсуждение"}
VK_GROUP = 227_000_001
START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
TEXT = "Когда отремонтируют дорогу у дома {n}? Ямы, не проехать. Метка fb{n}."


@dataclass
class PathResult:
    """What became of the comments sent along one path."""

    path: str
    sent: int = 0
    stored: int = 0
    doubled: int = 0
    failed: int = 0
    faults: list[str] = field(default_factory=list)
    token_in_logs: bool = False
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.stored

    def line(self) -> str:
        return (
            f"{self.path}: sent {self.sent}, stored {self.stored}, lost {self.lost}, "
            f"doubled {self.doubled}, kept as failed {self.failed}; token in logs: "
            f"{'YES' if self.token_in_logs else 'no'}; {self.seconds:.0f} s; faults: "
            + "; ".join(self.faults)
        )


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A fresh database: its name, and an engine on it that bypasses the proxy (for counting)."""
    name = f"otklik_faults_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(
        f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/postgres", isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    direct = create_async_engine(f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}")
    try:
        yield name, direct
    finally:
        await direct.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


class Otklik:
    """One `otklik run` process, restartable, its log in a file."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.env = env
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    async def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "--env-file",
                str(self.workdir / "none.env"),
                "run",
                env=self.env,
                cwd=str(self.workdir),
                stdout=log,
                stderr=log,
            )

    async def ready(self, line: str, timeout: float = 120) -> bool:  # noqa: ASYNC109
        """Wait until the log says `line` once per start (VK delivers no event sent before)."""

        async def said() -> bool:
            return self.log.read_text(errors="replace").count(line) >= self.starts

        return await _until(said, timeout)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def _env(database: str, proxy_port: int, **settings: str) -> dict[str, str]:
    repo_root = Path(__file__).resolve().parents[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))}
    return {
        **clean,
        "PYTHONPATH": str(repo_root),
        "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{proxy_port}/{database}",
        "LOG_LEVEL": "INFO",
        **settings,
    }


async def _count(engine: AsyncEngine) -> tuple[int, int, int]:
    """(distinct comments stored, rows beyond one per comment, raw updates kept as failed)."""
    async with engine.connect() as connection:
        try:
            rows = (
                await connection.execute(
                    text("SELECT text FROM citizen_message WHERE text LIKE '%Метка fb%'")
                )
            ).all()
            raw = (
                await connection.execute(
                    text(
                        "SELECT count(*) - count(DISTINCT (source, update_key)), "
                        "count(*) FILTER (WHERE status = 'failed') FROM raw_update"
                    )
                )
            ).one()
        except Exception:  # the schema is not there yet
            return 0, 0, 0
    texts = [str(row[0]) for row in rows]
    return len(set(texts)), len(texts) - len(set(texts)) + int(raw[0]), int(raw[1])


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.25)
    return False


async def _drive(
    result: PathResult,
    engine: AsyncEngine,
    send: Callable[[int], None],
    count: int,
    processes: list[Otklik],
    proxy: Any,
    outage_s: float,
    api_faults: Callable[[], str],
) -> None:
    """Send `count` comments in three parts, a fault in each; wait for the processes."""
    third = max(1, count // 3)
    started = time.monotonic()

    async def stored_at_least(n: int) -> bool:
        return (await _count(engine))[0] >= n

    # 1: kill -9 while storing, then a restart.
    for n in range(third):
        send(n)
    await _until(lambda: stored_at_least(max(1, third // 3)), 120)
    victim = processes[0]
    await victim.kill()
    result.faults.append(f"kill -9 of {victim.name} at {(await _count(engine))[0]} stored")
    await victim.start()
    # 2: the database cut for outage_s while comments arrive.
    await _until(lambda: stored_at_least(third), 120)
    await proxy.cut()
    for n in range(third, 2 * third):
        send(n)
    await asyncio.sleep(outage_s)
    await proxy.start()
    result.faults.append(f"PostgreSQL cut for {outage_s:.0f} s")
    # 3: API faults while the rest arrives.
    result.faults.append(api_faults())
    for n in range(2 * third, count):
        send(n)
    result.sent = count
    await _until(lambda: stored_at_least(count), 180)
    # A little longer: anything doubled late would show.
    await asyncio.sleep(2)
    result.stored, result.doubled, result.failed = await _count(engine)
    result.seconds = time.monotonic() - started
    for process in processes:
        await process.stop()
    result.token_in_logs = any(
        secret in process.log.read_text(errors="replace")
        for process in processes
        for secret in (TG_TOKEN, TG_TOKEN.split(":", 1)[1], VK_TOKEN, SECRET)
    )


def _citizen(n: int) -> dict[str, Any]:
    return {"id": 50_000 + n, "is_bot": False, "first_name": "Житель"}


async def telegram_polling(count: int, outage_s: float, workdir: Path) -> PathResult:
    from bot.sandbox import TelegramSandbox
    from bot.sandbox.proxy import TcpProxy

    result = PathResult("Telegram long polling, PostgreSQL")
    async with TelegramSandbox() as sandbox, _database() as (name, engine):
        sandbox.add_bot(TG_TOKEN, 424242, "otklik_faults_bot", "Отклик")
        sandbox.add_chat({**CHANNEL, "linked_chat_id": GROUP["id"]})
        sandbox.add_chat({**GROUP, "linked_chat_id": CHANNEL["id"]})
        proxy = TcpProxy((PG_HOST, PG_PORT))
        await proxy.start()
        env = _env(
            name, proxy.port, TELEGRAM_BOT_TOKEN=TG_TOKEN, TELEGRAM_API_SERVER=sandbox.base_url
        )
        process = Otklik("polling", env, workdir)
        await process.start()

        def send(n: int) -> None:
            sandbox.inject_message(
                GROUP["id"], _citizen(n), TEXT.format(n=n), date=START + timedelta(seconds=n)
            )

        def api_faults() -> str:
            sandbox.fail_next("getUpdates", 3, status=502)
            return "getUpdates answered 502 three times"

        try:
            await _drive(result, engine, send, count, [process], proxy, outage_s, api_faults)
        finally:
            await process.stop()
            await proxy.close()
    return result


class Balancer:
    """Round-robin HTTP balancer over webhook workers; a refused connection tries the next."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.cycle(range(len(ports)))
        self.fail_next = 0
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = _free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=55))
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=502, text="bad gateway")
        body = await request.read()
        assert self._client is not None
        for _ in self.ports:
            port = self.ports[next(self._next)]
            try:
                async with self._client.post(
                    f"http://127.0.0.1:{port}{request.path}", data=body, headers=request.headers
                ) as answer:
                    return web.Response(status=answer.status, body=await answer.read())
            except aiohttp.ClientConnectionError:
                continue  # that worker is down: the next one
        return web.Response(status=502, text="no worker")


async def telegram_webhooks(count: int, outage_s: float, workdir: Path) -> PathResult:
    from bot.sandbox import TelegramSandbox
    from bot.sandbox.proxy import TcpProxy

    result = PathResult("Telegram webhooks, two workers, PostgreSQL")
    ports = [_free_port(), _free_port()]
    balancer = Balancer(ports)
    await balancer.start()
    async with TelegramSandbox() as sandbox, _database() as (name, engine):
        sandbox.add_bot(TG_TOKEN, 424242, "otklik_faults_bot", "Отклик")
        sandbox.add_chat({**CHANNEL, "linked_chat_id": GROUP["id"]})
        sandbox.add_chat({**GROUP, "linked_chat_id": CHANNEL["id"]})
        proxy = TcpProxy((PG_HOST, PG_PORT))
        await proxy.start()
        workers = [
            Otklik(
                f"webhook-{number}",
                _env(
                    name,
                    proxy.port,
                    TELEGRAM_BOT_TOKEN=TG_TOKEN,
                    TELEGRAM_API_SERVER=sandbox.base_url,
                    WEBHOOK_URL=balancer.base_url,
                    WEBHOOK_SECRET=SECRET,
                    WEBHOOK_LISTEN=f"127.0.0.1:{port}",
                ),
                workdir,
            )
            for number, port in enumerate(ports, 1)
        ]
        # One after the other: the first creates the schema, the second finds it.
        await workers[0].start()
        await workers[0].ready("webhook server on")
        await workers[1].start()
        await workers[1].ready("webhook server on")

        def send(n: int) -> None:
            sandbox.inject_message(
                GROUP["id"], _citizen(n), TEXT.format(n=n), date=START + timedelta(seconds=n)
            )

        def api_faults() -> str:
            balancer.fail_next = 5
            return "the balancer answered 502 to five webhook posts"

        try:
            await _drive(result, engine, send, count, workers, proxy, outage_s, api_faults)
        finally:
            for worker in workers:
                await worker.stop()
            await proxy.close()
    await balancer.stop()
    return result


async def vk_long_poll(count: int, outage_s: float, workdir: Path) -> PathResult:
    from bot.sandbox.proxy import TcpProxy
    from bot.sandbox.vk import VkSandbox

    result = PathResult("VK Bots Long Poll, PostgreSQL")
    box = VkSandbox(clock=lambda: START + timedelta(hours=3))
    box.add_group(VK_GROUP, "Администрация", VK_TOKEN, screen_name="adm")
    async with box, _database() as (name, engine):
        post = box.add_post(-VK_GROUP, "Новости", START - timedelta(hours=1))
        proxy = TcpProxy((PG_HOST, PG_PORT))
        await proxy.start()
        env = _env(
            name, proxy.port, VK_GROUP_TOKENS=f"{VK_GROUP}:{VK_TOKEN}", VK_API_SERVER=box.base_url
        )
        process = Otklik("vk", env, workdir)
        await process.start()
        # VK's long poll delivers only what happens after the first connection.
        await process.ready("long poll started")

        def send(n: int) -> None:
            box.add_comment(
                -VK_GROUP, post, 60_000 + n, TEXT.format(n=n), START + timedelta(seconds=n)
            )

        def api_faults() -> str:
            box.fail_next_poll(VK_GROUP, 2)
            box.fail_next("groups.getLongPollServer", 10, 2)
            return "long poll failed 2, then error 10 twice on a new key"

        try:
            await _drive(result, engine, send, count, [process], proxy, outage_s, api_faults)
        finally:
            await process.stop()
            await proxy.close()
    return result


async def run_faults(count: int = 300, outage_s: float = 10.0) -> int:
    """Every path in turn; prints one line per path. Exit code 1 if anything was lost."""
    from bot.bench import machine

    # The sandboxes log every request; the processes' own logs are in their files.
    for noisy in ("bot.sandbox", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not postgres_reachable():
        print(f"bench faults: PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}; skipped")
        return 2
    print(f"machine: {machine()}; {count} comments per path, database outage {outage_s:.0f} s")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for bench in (telegram_polling, telegram_webhooks, vk_long_poll):
            workdir = Path(tmp) / bench.__name__
            workdir.mkdir()
            result = await bench(count, outage_s, workdir)
            results.append(result)
            print(result.line(), flush=True)
    window = await reminder_window()
    print(
        f"reminder send window («sending» committed → «sent» committed, {window['sends']} "
        f"sends, SQLite, Telegram sandbox): median {window['median_ms']} ms, "
        f"p90 {window['p90_ms']} ms, max {window['max_ms']} ms"
    )
    bad = any(r.lost or r.doubled or r.token_in_logs for r in results)
    return 1 if bad else 0


async def reminder_window(sends: int = 19) -> dict[str, float]:
    """The window in which a crash can double a reminder, in ms (bot/services/reminder_log.py).

    From «sending» committed to «sent» committed: one sendMessage to the Telegram sandbox on
    127.0.0.1 through the real notifier, and one SQLite commit; median, p90 and max. Fewer
    than 20 sends: the sandbox, as Telegram, allows a group 20 messages a minute (more would
    measure its flood-control waits).
    """
    import statistics

    from bot.clock import utc_now
    from bot.sandbox import TelegramSandbox
    from bot.services import reminder_log
    from handlers.telegram.notifier import RateLimiter, TelegramNotifier
    from handlers.telegram.setup import make_bot
    from storage.engine import create_engine, session_factory
    from storage.migrate import upgrade
    from storage.models import ReminderLog

    chat = -1007700000009
    windows: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/window.db")
        await upgrade(engine)
        sessions = session_factory(engine)
        async with TelegramSandbox() as sandbox:
            sandbox.add_bot(TG_TOKEN, 424242, "otklik_faults_bot", "Отклик")
            sandbox.add_chat({"id": chat, "type": "supergroup", "title": "Пресс-служба"})
            bot = make_bot(TG_TOKEN, sandbox.base_url)
            # Without the notifier's pacing (a group chat gets at most 20 messages a minute):
            # that wait, when a chat gets many reminders at once, adds to the window.
            notifier = TelegramNotifier(bot, limiter=RateLimiter(sleep=_no_sleep))
            try:
                async with sessions() as session:
                    for n in range(sends):
                        now = utc_now()
                        row = ReminderLog(kind="half_sla", chat_id=chat, due_key=str(n), due_at=now)
                        session.add(row)
                        await session.commit()
                        text_ = await reminder_log.begin(session, [row], f"Напоминание {n}", now)
                        opened = time.perf_counter()
                        row.message_id = await notifier.send_text(chat, text_)
                        row.status, row.sent_at = "sent", now
                        await session.commit()
                        windows.append((time.perf_counter() - opened) * 1000)
            finally:
                await bot.session.close()
        await engine.dispose()
    ordered = sorted(windows)
    return {
        "sends": sends,
        "median_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def _no_sleep(seconds: float) -> None:
    return None
