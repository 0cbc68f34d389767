"""Several workers on one PostgreSQL database: every reminder and digest goes out exactly once.

Each worker is what a separate process would have: its own engine (connection pool), app
context and `Scheduler`, over one shared schema. They tick concurrently across a simulated
Monday with a slow notifier so that ticks overlap; one of them crashes half-way through a
delivery; and two of them refresh the report rollups while a third writes appeals.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import bindparam, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import AppContext, defaults_from
from bot.clock import SimulatedClock
from bot.services import reminder_log
from bot.services import scheduler as scheduler_module
from bot.services.digest import DIGEST, DIGEST_CHART
from bot.services.notify import Keyboard
from bot.services.policy import PageDefaults
from bot.services.reminders import DEADLINE, HALF_SLA, OVERDUE_DAILY, URGENT
from bot.services.reports import build_report
from bot.services.scheduler import Scheduler
from bot.services.worktime import calendar_for
from storage import rollup
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import Appeal, Page, ReminderLog, Thread
from tests import test_stats_rollup as rollups
from tests.conftest import POSTGRES_URL, make_settings, require_postgres

# Each test builds its engines on PostgreSQL in the `cluster` fixture (tests/conftest.py: tiers).
pytestmark = pytest.mark.integration

MSK = ZoneInfo("Europe/Moscow")
PRESS_A = -1001000000101  # PRESS_CHAT_ID: page 1
PRESS_B = -1001000000102  # bound to page 2 with /bind
DIGEST_CHATS = (-1001000000701, -1001000000702)
TABLE = Appeal.__table__  # type: ignore[attr-defined]
TAKE_RE = re.compile(r"^ap:take:(\d+)$")


def msk(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK).astimezone(UTC)


# -- a shared schema, one engine per worker ------------------------------------------------


@dataclass
class Cluster:
    """One PostgreSQL schema and `size` engines on it, as separate processes would have."""

    schema: str
    engines: list[AsyncEngine]

    def engine(self) -> AsyncEngine:
        return create_engine(
            POSTGRES_URL, connect_args={"server_settings": {"search_path": self.schema}}
        )


@pytest.fixture
async def cluster(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    """PostgreSQL only: a fresh migrated schema and three engines on it."""
    require_postgres()
    # Advisory locks are database-wide: a key of this test's own keeps a suite running at the
    # same time on the same `test` database (another schema) from taking our workers' turns.
    monkeypatch.setattr(scheduler_module, "ADVISORY_LOCK_KEY", random.getrandbits(30))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    built = Cluster(schema, [])
    try:
        built.engines = [built.engine() for _ in range(3)]
        await upgrade(built.engines[0])
        yield built
    finally:
        for engine in built.engines:
            await engine.dispose()
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


# -- a notifier that records what went out -------------------------------------------------


class WorkerCrashed(RuntimeError):
    """Not a DeliveryError: the worker dies with the message already out."""


@dataclass
class Outgoing:
    worker: int
    chat_id: int
    method: str
    text: str
    message_id: int
    appeal_ids: list[int]


@dataclass
class Outbox:
    """Every message any worker sent, with ids unique across workers (like Telegram's)."""

    sent: list[Outgoing] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    edits: list[tuple[int, int, str]] = field(default_factory=list)

    def to(self, chat_id: int) -> list[Outgoing]:
        return [m for m in self.sent if m.chat_id == chat_id]


class RecordingNotifier:
    """Sends slowly (so ticks overlap) and can crash after `crash_after` successful sends."""

    def __init__(
        self, outbox: Outbox, worker: int, delay: float = 0.0, crash_after: int | None = None
    ) -> None:
        self.outbox = outbox
        self.worker = worker
        self.delay = delay
        self.crash_after = crash_after
        self.sends = 0

    async def _send(self, chat_id: int, method: str, body: str, buttons: Keyboard | None) -> int:
        if self.crash_after is not None and self.sends >= self.crash_after:
            raise WorkerCrashed(f"worker {self.worker} died")
        await asyncio.sleep(self.delay)
        ids = [
            int(match[1])
            for row in buttons or []
            for button in row
            if (match := TAKE_RE.match(button.callback_data or ""))
        ]
        message_id = next(self.outbox.ids)
        self.outbox.sent.append(Outgoing(self.worker, chat_id, method, body, message_id, ids))
        self.sends += 1
        return message_id

    async def send_text(
        self,
        chat_id: int,
        text: str,
        buttons: Keyboard | None = None,
        *,
        reply_to: int | None = None,
    ) -> int:
        return await self._send(chat_id, "text", text, buttons)

    async def edit_text(
        self, chat_id: int, message_id: int, text: str, buttons: Keyboard | None = None
    ) -> None:
        self.outbox.edits.append((chat_id, message_id, text))

    async def send_photo(self, chat_id: int, png: bytes, caption: str) -> int:
        assert png.startswith(b"\x89PNG")
        return await self._send(chat_id, "photo", caption, None)

    async def send_document(self, chat_id: int, data: bytes, filename: str, caption: str) -> int:
        return await self._send(chat_id, "document", caption, None)


def worker(
    cluster: Cluster, number: int, clock: SimulatedClock, notifier: RecordingNotifier
) -> Scheduler:
    settings = make_settings(
        PRESS_CHAT_ID=PRESS_A, DIGEST_CHAT_IDS=",".join(str(c) for c in DIGEST_CHATS)
    )
    app = AppContext.create(settings, cluster.engines[number], clock)
    app.notifier = notifier
    return Scheduler(app)


# -- the appeals of the simulated Monday -----------------------------------------------------


@dataclass(frozen=True)
class Spec:
    name: str
    page: int
    received: datetime
    urgent: bool = False
    answered: datetime | None = None


def monday_specs() -> list[Spec]:
    """Appeals whose ladders fall due all over Monday 2 November (working hours 09–18)."""
    specs = [
        Spec("old", 1, msk(10, 28, 10)),  # due Wed 28.10 18:00: deadline at 09:00, in the summary
        Spec("fri", 1, msk(10, 30, 12)),  # half Fri 16:00 (sent Mon 09:00), deadline Mon 11:00
        Spec("urgent", 2, msk(11, 2, 7, 20), urgent=True),  # 4 h: now, 11:00, 13:00
        Spec("answered", 2, msk(11, 2, 13), answered=msk(11, 2, 14)),  # answered before half
    ]
    # Half-time between 13:10 and 14:40, several due at one tick: grouped messages.
    specs += [Spec(f"mon{i}", 1, msk(11, 2, 9, 10) + timedelta(minutes=10 * i)) for i in range(10)]
    specs += [Spec(f"b{i}", 2, msk(11, 2, 10 + i)) for i in range(3)]  # half 14:00, 15:00, 16:00
    return specs


EXPECTED_DAY = {
    "old": [DEADLINE],
    "fri": [HALF_SLA, DEADLINE],
    "urgent": [URGENT, HALF_SLA, DEADLINE],
    "answered": [],
    # Received 09:10–10:00: due the same day by 18:00; from 10:10 on, due on Tuesday.
    **{f"mon{i}": [HALF_SLA, DEADLINE] if i <= 5 else [HALF_SLA] for i in range(10)},
    **{f"b{i}": [HALF_SLA, DEADLINE] if i == 0 else [HALF_SLA] for i in range(3)},
}


async def seed(engine: AsyncEngine, specs: Sequence[Spec]) -> dict[str, int]:
    """Two pages (one per press chat) and the appeals; their names → ids."""
    sessions = session_factory(engine)
    async with sessions() as session:
        session.add(Page(id=1, platform="telegram", external_id="-1001", kind="tg_channel"))
        session.add(
            Page(
                id=2,
                platform="vk",
                external_id="-77",
                kind="vk_group",
                title="Администрация района",
                press_chat_id=PRESS_B,
            )
        )
        await session.flush()
        for number in (1, 2):
            session.add(Thread(id=number, page_id=number, external_id="t", kind="comments"))
        await session.flush()
        appeals: dict[str, Appeal] = {}
        defaults = defaults_from(make_settings())
        calendar = calendar_for(defaults.timezone, defaults.work_hours, defaults.shorten_preholiday)
        for spec in specs:
            sla = defaults.sla_urgent_hours if spec.urgent else defaults.sla_hours
            received = spec.received
            deadline = calendar.add_working_hours(received, sla)
            frt = None if spec.answered is None else (spec.answered - received).total_seconds()
            appeals[spec.name] = Appeal(
                page_id=spec.page,
                thread_id=spec.page,
                received_at=received,
                urgent=spec.urgent,
                sla_hours=sla,
                sla_deadline=deadline,
                first_response_at=spec.answered,
                frt_s=frt,
                link=f"https://example.org/{spec.name}",
            )
        session.add_all(appeals.values())
        await session.commit()
        return {name: appeal.id for name, appeal in appeals.items() if appeal.id is not None}


async def reminder_rows(engine: AsyncEngine) -> list[ReminderLog]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(ReminderLog).order_by(col(ReminderLog.id)))).all())


def assert_consistent(rows: list[ReminderLog], outbox: Outbox) -> None:
    """One row per reminder; every message sent belongs to a sent row and every sent row to one.

    A second send of one reminder leaves a message no row points to (the row keeps one id),
    and a send whose "sent" mark was lost leaves one too, so both show here.
    """
    keys = [(r.kind, r.chat_id, r.due_key) for r in rows]
    assert len(keys) == len(set(keys))
    sent_rows = [r for r in rows if r.status == "sent"]
    for row in sent_rows:
        assert row.message_id is not None and row.sent_at is not None, row
        assert row.attempts == 1 and row.last_error is None, row
    assert {m.message_id for m in outbox.sent} == {r.message_id for r in sent_rows}
    assert all(r.status in ("sent", "skipped") for r in rows), [
        (r.kind, r.due_key, r.status) for r in rows if r.status not in ("sent", "skipped")
    ]


def reminders_by_appeal(outbox: Outbox, chats: Sequence[int]) -> dict[int, int]:
    """How many ladder reminders (not daily summaries) mention each appeal."""
    counts: dict[int, int] = {}
    for message in outbox.sent:
        if message.chat_id in chats and not message.text.startswith("<b>📋"):
            for appeal_id in message.appeal_ids:
                counts[appeal_id] = counts.get(appeal_id, 0) + 1
    return counts


async def tick_all(
    schedulers: Sequence[Scheduler], rng: random.Random, jitter: float = 0.02
) -> list[object]:
    """Every worker ticks at once, each after a random short pause (they never align exactly)."""

    async def one(scheduler: Scheduler) -> object:
        await asyncio.sleep(rng.uniform(0, jitter))
        return await scheduler.tick()

    return await asyncio.gather(*(one(s) for s in schedulers), return_exceptions=True)


# -- the tests -------------------------------------------------------------------------------


async def test_three_workers_send_each_reminder_and_digest_once(cluster: Cluster) -> None:
    """A simulated Monday, 07:00–19:00 every 10 minutes, three workers ticking each time."""
    ids = await seed(cluster.engines[0], monday_specs())
    clock = SimulatedClock(msk(11, 2, 7))
    outbox = Outbox()
    schedulers = [
        worker(cluster, n, clock, RecordingNotifier(outbox, n, delay=0.01)) for n in range(3)
    ]
    rng = random.Random(3)
    while clock() <= msk(11, 2, 19):
        results = await tick_all(schedulers, rng)
        assert not any(isinstance(result, BaseException) for result in results), results
        clock.advance(timedelta(minutes=10))
    # The lock passed between workers: more than one of them ran the jobs at some tick.
    assert sum(s._scored_at is not None for s in schedulers) >= 2

    rows = await reminder_rows(cluster.engines[0])
    assert_consistent(rows, outbox)
    names = {appeal_id: name for name, appeal_id in ids.items()}
    sent = sorted((names[r.appeal_id], r.kind) for r in rows if r.status == "sent" and r.appeal_id)
    assert sent == sorted((name, kind) for name, kinds in EXPECTED_DAY.items() for kind in kinds)
    mentioned = reminders_by_appeal(outbox, (PRESS_A, PRESS_B))
    assert {names[i]: n for i, n in mentioned.items()} == {
        name: len(kinds) for name, kinds in EXPECTED_DAY.items() if kinds
    }
    # One summary of overdue appeals (chat A at 09:00; chat B had none overdue then).
    summaries = [m for m in outbox.sent if m.text.startswith("<b>📋")]
    assert [(m.chat_id, m.appeal_ids) for m in summaries] == [(PRESS_A, [ids["old"]])]
    daily = sorted((r.chat_id, r.status) for r in rows if r.kind == OVERDUE_DAILY)
    assert daily == sorted([(PRESS_A, "sent"), (PRESS_B, "skipped")])
    # The digest of week 44: one text and one chart to each digest chat, at 09:00.
    for chat in DIGEST_CHATS:
        assert [m.method for m in outbox.to(chat)] == ["text", "photo"]
        assert outbox.to(chat)[0].text.startswith("📊 <b>Отклик: итоги недели 26 октября")
    digests = sorted(
        (r.kind, r.chat_id, r.due_key, r.status) for r in rows if r.kind in (DIGEST, DIGEST_CHART)
    )
    assert digests == sorted(
        (kind, chat, "2026-W44", "sent") for kind in (DIGEST, DIGEST_CHART) for chat in DIGEST_CHATS
    )
    assert all(r.sent_at == msk(11, 2, 9) for r in rows if r.kind in (DIGEST, DIGEST_CHART))


def overdue_morning_specs() -> list[Spec]:
    """At Monday 09:00: ten half-time reminders in chat A (two messages), its summary, chat B."""
    specs = [Spec("old", 1, msk(10, 28, 10)), Spec("urgent", 2, msk(11, 2, 7, 20), urgent=True)]
    specs += [Spec(f"fri{i}", 1, msk(10, 30, 10) + timedelta(minutes=10 * i)) for i in range(10)]
    return specs


async def test_crash_mid_delivery_is_finished_by_another_worker(cluster: Cluster) -> None:
    """A worker dies after its first message; the next tick of another sends only the rest."""
    ids = await seed(cluster.engines[0], overdue_morning_specs())
    clock = SimulatedClock(msk(11, 2, 9))
    outbox = Outbox()
    crashing = worker(cluster, 0, clock, RecordingNotifier(outbox, 0, delay=0.01, crash_after=1))
    healthy = [worker(cluster, n, clock, RecordingNotifier(outbox, n, delay=0.01)) for n in (1, 2)]
    with pytest.raises(WorkerCrashed):
        await crashing.tick()
    assert len(outbox.sent) == 1
    first = outbox.sent[0]
    assert first.worker == 0 and first.chat_id == PRESS_A and len(first.appeal_ids) == 8
    # The crash released the lock: both others tick at once, one of them sends everything left
    # but the message the crash interrupted: that one is «sending», perhaps delivered, and goes
    # out again only once its lease is over (at least once; bot/services/reminder_log.py).
    clock.advance(timedelta(minutes=1))
    results = await tick_all(healthy, random.Random(5))
    assert not any(isinstance(result, BaseException) for result in results), results
    interrupted = [r for r in await reminder_rows(cluster.engines[0]) if r.status == "sending"]
    assert len(interrupted) == 3
    clock.advance(reminder_log.LEASE)
    await tick_all(healthy, random.Random(6))
    assert outbox.sent[0] == first and all(m.worker != 0 for m in outbox.sent[1:])

    rows = await reminder_rows(cluster.engines[0])
    assert_consistent(rows, outbox)
    names = {appeal_id: name for name, appeal_id in ids.items()}
    mentioned = {names[i]: n for i, n in reminders_by_appeal(outbox, (PRESS_A, PRESS_B)).items()}
    assert mentioned == {"old": 1, "urgent": 1, **{f"fri{i}": 1 for i in range(10)}}
    assert [m.method for m in outbox.sent if m.chat_id in DIGEST_CHATS].count("text") == 2
    assert [m.chat_id for m in outbox.sent if m.text.startswith("<b>📋")] == [PRESS_A]
    # The crashed worker comes back: nothing is left for it to send.
    crashing.app.notifier.crash_after = None
    clock.advance(timedelta(minutes=1))
    before = len(outbox.sent)
    await crashing.tick()
    assert len(outbox.sent) == before


async def test_without_the_lock_workers_would_duplicate(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with the lock taken away the same morning goes out more than once."""

    @contextlib.asynccontextmanager
    async def always(self: Scheduler) -> AsyncIterator[bool]:
        yield True

    monkeypatch.setattr(Scheduler, "_exclusive", always)
    await seed(cluster.engines[0], overdue_morning_specs())
    clock = SimulatedClock(msk(11, 2, 9))
    outbox = Outbox()
    schedulers = [
        worker(cluster, n, clock, RecordingNotifier(outbox, n, delay=0.05)) for n in range(2)
    ]
    await asyncio.gather(*(s.tick() for s in schedulers), return_exceptions=True)
    counts = reminders_by_appeal(outbox, (PRESS_A, PRESS_B))
    assert max(counts.values()) > 1


# -- rollups: two refreshers and a writer ----------------------------------------------------


async def test_concurrent_refreshes_while_a_worker_writes(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers refresh (one as a report, one as the tick) while a third writes appeals."""
    writer_engine, tick_engine, report_engine = cluster.engines
    rng = random.Random(17)
    await rollups.add_pages(session_factory(writer_engine))
    await rollups.load(session_factory(writer_engine), rollups.specs_from(rng, 40))
    done = asyncio.Event()
    rebuilds = 0

    async def writer() -> None:
        nonlocal rebuilds
        sessions = session_factory(writer_engine)
        for round_number in range(25):
            async with sessions() as session:
                session.add_all(
                    [rollups.appeal_of(s) for s in rollups.specs_from(rng, rng.randint(1, 4))]
                )
                existing = (await session.exec(select(Appeal))).all()
                for appeal in rng.sample(list(existing), min(3, len(existing))):
                    choice = rng.random()
                    if choice < 0.3:
                        appeal.excluded = not appeal.excluded
                    elif choice < 0.6:
                        appeal.answered_offline_at = appeal.received_at + timedelta(hours=3)
                    elif choice < 0.8:
                        appeal.received_at += timedelta(days=rng.choice((-1, 1)))
                    else:
                        await session.delete(appeal)
                await session.flush()
                if round_number % 5 == 0:
                    # A bulk Core update by primary key, as quality scoring runs it.
                    picked = [a.id for a in existing[:5] if a.id is not None]
                    connection = await session.connection()
                    await connection.execute(
                        update(TABLE)
                        .where(TABLE.c.id == bindparam("aid"))
                        .values(quality_score=bindparam("q")),
                        [{"aid": i, "q": float(rng.randrange(0, 101))} for i in picked],
                    )
                if round_number % 8 == 3:
                    # Rows the statement touches cannot be told: the writer rebuilds at once.
                    connection = await session.connection()
                    await connection.execute(
                        update(TABLE)
                        .where(TABLE.c.topic == bindparam("t"))
                        .values(deleted_by_page=bindparam("d")),
                        [{"t": "roads", "d": True}, {"t": "other", "d": False}],
                    )
                    rebuilds += 1
                # Hold the transaction a moment, so refreshes run while it is open.
                await asyncio.sleep(rng.uniform(0, 0.01))
                await session.commit()
        done.set()

    async def refresher(work: Callable[[], Awaitable[object]]) -> int:
        rounds = 0
        while not done.is_set():
            await work()
            rounds += 1
            await asyncio.sleep(rng.uniform(0, 0.005))
        return rounds

    async def tick_refresh() -> object:
        async with tick_engine.begin() as connection:
            return await connection.run_sync(rollup.refresh)

    async def report_refresh() -> None:
        # What a report does first (`build_report` → `sync`), once on a connection of its own
        # and once inside a session transaction that has read the table already.
        async with session_factory(report_engine)() as session:
            await rollup.sync(session)
        async with session_factory(report_engine)() as session:
            await session.exec(select(Appeal.id).limit(1))
            await rollup.sync(session)
            await session.commit()

    _, ticks, reports = await asyncio.gather(
        writer(), refresher(tick_refresh), refresher(report_refresh)
    )
    assert ticks > 1 and reports > 1
    # ORM flushes of several appeals mark their page-days; only the statements whose rows
    # cannot be told rebuilt every rollup in the writer's transaction (without deadlocking).
    assert caplog.text.count("пересчитываем все сводные данные") == rebuilds == 3
    appeals = await rollups.all_appeals(session_factory(writer_engine))
    # Reports from any worker equal the definitions; the rollups equal a fresh full rebuild.
    await rollups.check_periods(session_factory(report_engine), rng, 8, appeals)
    await rollups.rollups_as_rebuilt(tick_engine)
    async with session_factory(report_engine)() as session:
        kept = await build_report(
            session,
            since=rollups.BASE - timedelta(days=2),
            until=rollups.BASE + timedelta(days=8),
            at=rollups.BASE + timedelta(days=10),
            defaults=PageDefaults(),
        )
    assert rollups.comparable(kept.total) == rollups.comparable(
        rollups.naive(
            appeals,
            [1, 2],
            rollups.BASE - timedelta(days=2),
            rollups.BASE + timedelta(days=8),
            rollups.BASE + timedelta(days=10),
        )
    )
