"""SQLite query plans of what the product runs: no table read through a boolean's index, no
scan of the whole appeal, citizen_message, official_reply or decision table (docs/BENCHMARKS.md,
«Query plans»).

Other tables are scanned by a few statements (accepted, not checked): `page` and `staff` are
small.

The statements are recorded from the demo (intake of Telegram and VK, the scheduler's
reminders and rollups, /stats, the final stage) and from the dashboard's pages over its
database, then planned by SQLite **without statistics**: that is how a new database, and any
index newer than the last `ANALYZE` (storage/plan_stats.py), is planned, and statistics of a
few dozen appeals would say nothing about a large table. Plans over a million appeals with
statistics are timed by the dashboard benchmark (handlers/web/bench.py).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import AppContext
from bot.clock import SimulatedClock, utc_now
from bot.config import Settings
from bot.demo import START, run_demo
from bot.services.web_access import SESSION_COOKIE, session_value
from handlers.web.server import mount
from storage import repositories
from storage.db import SqliteDb, _sqlite_params
from storage.engine import create_engine, refresh_plan_statistics, session_factory
from storage.migrate import upgrade
from storage.models import Appeal, Page, Thread
from storage.writer import IntakeWriter
from tests.conftest import MONDAY_10_MSK

TOKEN = "42:plans-token"
SUPERVISOR = 7

# Statements that read every appeal on purpose, each with its reason.
WHOLE_TABLE = {
    # plan_stats.stale: the row count, from the narrowest index (6 ms over a million appeals).
    "SELECT count(*) FROM appeal",
    # Migration 0005 gives appeals stored before it their final deadline (once).
    "SELECT appeal.id, appeal.page_id, appeal.received_at, appeal.urgent  FROM appeal  "
    "WHERE appeal.final_deadline IS NULL",
    # rollup.rebuild (migration 0007, raw loads): every page's first and last appeal.
    "SELECT appeal.page_id, min(appeal.received_at) AS min_1, max(appeal.received_at) AS max_1  "
    "FROM appeal GROUP BY appeal.page_id",
    # quality.score_replies: the pages with replies, a skip from page to page over the leading
    # column of ix_official_reply_page_sent (1.5 ms over 1.08 million replies).
    "SELECT DISTINCT official_reply.page_id FROM official_reply",
}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Every SELECT, UPDATE and DELETE run on SQLite meanwhile, with its first parameters.

    The intake's plain SQL (storage/repositories.py) runs on the driver's connection, past
    SQLAlchemy's events, and on a SQLite file in the writer process: here it runs in this
    process (the same SQL, `storage.db.SqliteDb`), where it is recorded.
    """
    seen: dict[str, Any] = {}
    monkeypatch.setattr(IntakeWriter, "for_engine", classmethod(lambda *_, **__: None))
    plain = SqliteDb.rows

    def rows(self: SqliteDb, sql: str, params: Any) -> list[tuple[Any, ...]]:
        if sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
            seen.setdefault(sql, _sqlite_params(params))
        return plain(self, sql, params)

    monkeypatch.setattr(SqliteDb, "rows", rows)

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        words = ("SELECT", "WITH", "UPDATE", "DELETE")
        if conn.dialect.name == "sqlite" and statement.lstrip().upper().startswith(words):
            seen.setdefault(statement, parameters[0] if many else parameters)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def _browse_dashboard(url: str) -> None:
    """A supervisor's tour of the dashboard over the demo's database."""
    engine = create_engine(url)
    await upgrade(engine)
    settings = Settings(_env_file=None, TELEGRAM_BOT_TOKEN=TOKEN, SUPERVISOR_IDS=str(SUPERVISOR))
    at = START + timedelta(days=3)
    app = AppContext.create(settings, engine, clock=SimulatedClock(at))
    application = web.Application()
    mount(application, app)
    server = TestServer(application)
    await server.start_server(access_log=None)
    period = {"from": START.date().isoformat(), "to": at.date().isoformat()}
    try:
        async with TestClient(server) as client:
            client.session.cookie_jar.update_cookies(
                {SESSION_COOKIE: session_value(SUPERVISOR, TOKEN, utc_now())}
            )
            paths: list[tuple[str, dict[str, str]]] = [("/", period), ("/operators", period)]
            paths += [
                ("/appeals", {**period, "status": status})
                for status in ("", "answered_in_time", "answered_late", "overdue", "pending")
            ]
            paths += [("/appeals", {**period, "status": "excluded", "order": "wait"})]
            paths += [("/pages/1", period), ("/appeals/1", {})]
            for path, query in paths:
                response = await client.get(path, params=query)
                assert response.status == 200, (path, query, await response.text())
    finally:
        await server.close()
        await engine.dispose()


def _boolean_indexes(database: Path) -> set[str]:
    """Indexes, of any table, all of whose columns are booleans."""
    connection = sqlite3.connect(database)
    try:
        found = set()
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        for (table,) in tables.fetchall():
            kinds = {
                row[1]: str(row[2]).upper()
                for row in connection.execute(f'PRAGMA table_info("{table}")')
            }
            for row in connection.execute(f'PRAGMA index_list("{table}")'):
                info = connection.execute(f'PRAGMA index_info("{row[1]}")')
                columns = [column[2] for column in info]
                if columns and all(kinds.get(name) == "BOOLEAN" for name in columns):
                    found.add(str(row[1]))
        return found
    finally:
        connection.close()


def _plans(database: Path, statements: dict[str, Any]) -> dict[str, str]:
    """EXPLAIN QUERY PLAN of each statement that reads a table, without statistics."""
    dropping = sqlite3.connect(database)
    dropping.execute("DROP TABLE IF EXISTS sqlite_stat1")
    dropping.commit()
    dropping.close()  # a connection keeps the statistics it loaded: plan on a new one
    connection = sqlite3.connect(database)
    try:
        plans = {}
        for statement, parameters in statements.items():
            if "sqlite_" in statement:
                continue  # plan_stats reading the statistics themselves
            rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plan = " | ".join(str(row[3]) for row in rows)
            if re.search(r"\b(SCAN|SEARCH) \w", plan):
                plans[statement] = plan
        return plans
    finally:
        connection.close()


@pytest.mark.e2e  # the demo runs the Telegram and VK sandboxes
async def test_appeals_are_read_by_selective_indexes(
    tmp_path: Path, recorded: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "demo.db"
    url = f"sqlite+aiosqlite:///{database}"
    assert await run_demo(days=3, database_url=url) == 0
    await _browse_dashboard(url)
    capsys.readouterr()  # the demo's printout is not this test's business
    plans = _plans(database, recorded)
    # What the scenario must have exercised, or the check below proves little.
    texts = "\n".join(plans)
    for needed in (
        "thread_id = :thread AND citizen_id = :citizen",  # repositories.open_appeal_row
        "FROM appeal WHERE thread_id = :thread AND ",  # repositories.unfinished_rows
        "appeal.sla_deadline <",  # overdue counts and reminders
        "appeal.final_deadline",  # the final stage
        "count(*) AS appeals",  # the report (/stats, the overview)
        "appeal.excluded = 1",  # the dashboard's «не обращение» list
        "citizen_message.doubtful = 1",  # doubtful.DoubtfulService.plan
        "FROM official_reply WHERE page_id = :page AND reply_to_external_id",  # waiting replies
        "GROUP BY official_reply.author_id",  # the operators page: replies
        "GROUP BY decision.actor_id",  # the operators page: appeals taken
    ):
        assert needed in texts, needed
    assert len(plans) >= 40
    boolean = _boolean_indexes(database)
    wrong = {
        statement: plan
        for statement, plan in plans.items()
        if any(f"INDEX {name} " in f"{plan} " for name in boolean)
        or (
            re.search(r"\bSCAN (appeal|citizen_message|official_reply|decision)\b", plan)
            and " ".join(statement.split()) not in {" ".join(s.split()) for s in WHOLE_TABLE}
        )
    }
    assert not wrong, "\n\n".join(f"{plan}\n    {sql[:400]}" for sql, plan in wrong.items())


async def _add_appeals(engine: AsyncEngine, count: int) -> None:
    async with session_factory(engine)() as session:
        if await session.get(Page, 1) is None:
            session.add(Page(id=1, platform="telegram", external_id="-1001", kind="tg_channel"))
            session.add(Thread(id=1, page_id=1, external_id="t", kind="comments"))
            await session.flush()
        for number in range(count):
            received = MONDAY_10_MSK + timedelta(minutes=number)
            session.add(
                Appeal(
                    page_id=1,
                    thread_id=1,
                    received_at=received,
                    sla_deadline=received + timedelta(hours=8),
                )
            )
        await session.commit()


async def _appeal_statistics(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'appeal' ORDER BY idx")
        )
        return [str(stat) for (stat,) in rows]


async def test_statistics_are_refreshed_when_missing_or_a_quarter_off(
    sqlite_engine: AsyncEngine,
) -> None:
    # An empty table: nothing to analyze.
    assert await refresh_plan_statistics(sqlite_engine) is False
    await _add_appeals(sqlite_engine, 8)
    # Appeals without statistics: analyzed, every appeal index counted.
    assert await refresh_plan_statistics(sqlite_engine) is True
    stats = await _appeal_statistics(sqlite_engine)
    async with sqlite_engine.connect() as connection:
        indexes = await connection.run_sync(lambda c: inspect(c).get_indexes("appeal"))
    whole = [index for index in indexes if "sqlite_where" not in index["dialect_options"]]
    assert len(stats) == len(whole)  # the partial ix_appeal_taken_by has no rows yet
    assert {stat.split()[0] for stat in stats} == {"8"}
    # Fresh: not again (a quarter of 8 is 2).
    assert await refresh_plan_statistics(sqlite_engine) is False
    await _add_appeals(sqlite_engine, 2)
    assert await refresh_plan_statistics(sqlite_engine) is False
    await _add_appeals(sqlite_engine, 1)
    assert await refresh_plan_statistics(sqlite_engine) is True
    assert {stat.split()[0] for stat in await _appeal_statistics(sqlite_engine)} == {"11"}
    # An index without statistics (a migration added it): analyzed again.
    async with sqlite_engine.begin() as connection:
        await connection.execute(text("CREATE INDEX ix_test_topic ON appeal (topic)"))
    assert await refresh_plan_statistics(sqlite_engine) is True
    assert await refresh_plan_statistics(sqlite_engine, force=True) is True


async def test_postgresql_keeps_its_own_statistics(engine: AsyncEngine) -> None:
    """Nothing is run on PostgreSQL (autovacuum analyzes); SQLite has nothing to do empty."""
    assert await refresh_plan_statistics(engine) is False
    async with engine.connect() as connection:
        indexes = await connection.run_sync(lambda c: inspect(c).get_indexes("appeal"))
    names = {index["name"] for index in indexes}
    assert "ix_appeal_excluded" not in names  # migration 0008, on both databases
    assert "ix_appeal_taken_by" in names


class _RecordingDb(SqliteDb):
    """The intake's SQL on a plain sqlite3 connection, each statement kept for its plan."""

    statements: list[tuple[str, Any]]

    def rows(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        self.statements.append((sql, _sqlite_params(params)))
        return super().rows(sql, params)


async def test_waiting_replies_are_sought_by_what_they_reply_to(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    """With statistics of replies mostly without `reply_to_external_id` (conversations) and few
    unlinked, SQLite took `appeal_id IS NULL` for the seek and read every unlinked reply."""
    database = tmp_path / "otklik.db"
    connection = sqlite3.connect(database)
    try:
        sent = "2026-11-02 10:00:00.000000"
        connection.execute(
            "INSERT INTO page (id, platform, external_id, kind, is_active, recorded_at) "
            "VALUES (1, 'vk', '1', 'vk_group', 1, ?)",
            (sent,),
        )
        connection.execute(
            "INSERT INTO thread (id, page_id, external_id, kind, recorded_at) "
            "VALUES (1, 1, 't', 'comments', ?)",
            (sent,),
        )
        for reply_id, appeal_id in ((1, None), (2, 7), (3, None)):
            connection.execute(
                "INSERT INTO official_reply (id, page_id, thread_id, external_id, author_role, "
                "content_kind, text, sent_at, reply_to_external_id, appeal_id, is_interim, "
                "recorded_at) VALUES (?, 1, 1, ?, 'page', 'text', '', ?, 'm1', ?, 0, ?)",
                (reply_id, f"r{reply_id}", sent, appeal_id, sent),
            )
        # A million replies: four a (page, reply_to) value (three in four are NULL), two an
        # appeal (the unlinked ones count as one value) — measured in docs/BENCHMARKS.md.
        connection.execute("ANALYZE")
        connection.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'official_reply'")
        connection.executemany(
            "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('official_reply', ?, ?)",
            [
                ("ix_official_reply_reply_to", "1000000 50000 4"),
                ("ix_official_reply_appeal_id", "1000000 2"),
                ("ix_official_reply_page_sent", "1000000 50000 1"),
                ("ix_official_reply_thread_sent", "1000000 50000 1"),
            ],
        )
        connection.commit()
    finally:
        connection.close()
    connection = sqlite3.connect(database)  # loads the statistics above
    try:
        db = _RecordingDb(connection)
        db.statements = []
        waiting = repositories.waiting_reply_rows(db, 1, "m1")
        assert [reply_id for reply_id, _, _ in waiting] == [1, 3]
        ((sql, params),) = db.statements
        plan = " | ".join(
            str(row[3]) for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        )
        assert "ix_official_reply_reply_to" in plan, plan
    finally:
        connection.close()
