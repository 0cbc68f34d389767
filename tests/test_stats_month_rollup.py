"""Reports over whole months equal the row-by-row definitions (issue 14's 1 M-appeal overview).

The FRT histograms of whole UTC months come from `appeal_frt_month` less the entries replied on
or after the day of `at`, other whole days from the daily rows keyed by the first reply's day;
final stages still quiet after the day of `at` are pending from the rollup
(bot/services/stats.py). Random appeals over four months, Moscow-time and UTC months, random
periods of weeks to months and report times inside and after them; SQLite and PostgreSQL.
The order statistics must come from the histograms themselves, never from the fallback that
re-reads the sorted values (it would hide a wrong histogram).
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.final_stage import FinalCounts, final_counts
from bot.services.policy import PageDefaults
from bot.services.reports import build_report
from storage.engine import SessionFactory, session_factory
from storage.migrate import upgrade
from storage.models import Appeal
from tests.test_stats_rollup import (
    BASE,
    TABLE,
    add_pages,
    all_appeals,
    appeal_of,
    comparable,
    naive,
    rollups_as_rebuilt,
    specs_from,
)

MOSCOW = ZoneInfo("Europe/Moscow")
FINAL_FIELDS = tuple(vars(FinalCounts()))
DAY = 86400


def _month(year: int, month: int, tz: ZoneInfo | None = None) -> datetime:
    return datetime(year, month, 1, tzinfo=tz or UTC).astimezone(UTC)


async def _load(sessions: SessionFactory, rng: random.Random, count: int) -> None:
    specs = specs_from(rng, count)
    async with sessions() as session:
        for spec in specs:
            # BASE is 2 November: from late September to late December.
            spec.received = rng.uniform(-40 * DAY, 50 * DAY)
            appeal = appeal_of(spec)
            if rng.random() < 0.9:
                appeal.final_deadline = appeal.received_at + timedelta(
                    seconds=rng.uniform(0, 12 * DAY)
                )
            session.add(appeal)
        await session.commit()


def _periods(rng: random.Random) -> list[tuple[datetime, datetime, datetime]]:
    periods = []
    for tz in (MOSCOW, None):
        for first, end in (((2026, 10), (2026, 11)), ((2026, 10), (2026, 12))):
            since, until = _month(*first, tz), _month(*end, tz)
            # Right after the month as the benchmark, inside it, and well after it.
            for at in (
                until + timedelta(days=1),
                since + timedelta(days=17),
                until + timedelta(days=40),
            ):
                periods.append((since, until, at))
    for _ in range(14):
        since = BASE + timedelta(seconds=rng.uniform(-45 * DAY, 30 * DAY))
        until = since + timedelta(seconds=rng.uniform(7 * DAY, 75 * DAY))
        at = since + timedelta(seconds=rng.uniform(0, (until - since).total_seconds() + 20 * DAY))
        periods.append((since, until, at))
    return periods


async def _check(sessions: SessionFactory, appeals: list[Appeal], rng: random.Random) -> int:
    checked = 0
    for since, until, at in _periods(rng):
        async with sessions() as session:
            report = await build_report(
                session, since=since, until=until, at=at, defaults=PageDefaults()
            )
        async with sessions() as session:
            exact = await final_counts(session, since=since, until=until, at=at)
        expected_total = naive(appeals, [1, 2], since, until, at)
        got_total = comparable(report.total)
        for name in FINAL_FIELDS:
            got_total.pop(name)
        assert got_total == {
            k: v for k, v in comparable(expected_total).items() if k not in FINAL_FIELDS
        }, (since, until, at)
        for page in report.pages:
            expected = comparable(naive(appeals, [page.page_id], since, until, at))
            got = comparable(page.figures)
            finals = {name: got.pop(name) for name in FINAL_FIELDS}
            assert got == {k: v for k, v in expected.items() if k not in FINAL_FIELDS}
            assert finals == vars(exact.get(page.page_id, FinalCounts())), (since, until, at)
        checked += report.total.replied
    return checked


async def test_month_rollups_equal_definitions(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite and PostgreSQL: months, Moscow months and random long periods, then after writes."""
    caplog.set_level(logging.INFO, logger="bot.services.order_stats")
    rng = random.Random(1411)
    sessions = session_factory(engine)
    await add_pages(sessions)
    await _load(sessions, rng, 260)
    assert await _check(sessions, await all_appeals(sessions), rng) > 500
    # Writes move first replies across days and months; the monthly copy must follow.
    appeals = await all_appeals(sessions)
    async with sessions() as session:
        for appeal in rng.sample(appeals, 20):
            loaded = await session.get(Appeal, appeal.id)
            assert loaded is not None
            if loaded.first_response_at is not None:
                shift = timedelta(days=rng.uniform(-3, 20))
                loaded.first_response_at = max(loaded.received_at, loaded.first_response_at + shift)
                loaded.frt_s = (loaded.first_response_at - loaded.received_at).total_seconds()
        await session.commit()
    async with sessions() as session:
        connection = await session.connection()
        await connection.execute(
            update(TABLE).where(TABLE.c.topic == "roads").values(excluded=True)
        )
        await session.commit()
    await _check(sessions, await all_appeals(sessions), rng)
    await rollups_as_rebuilt(engine)
    assert "квантили сдвинулись" not in caplog.text


async def test_migration_fills_the_new_rollups_from_existing_appeals(db_url: str) -> None:
    """Appeals written at revision 0006 (rollups of the old shape), then migration 0007: the
    reply-day, monthly and quiet-day rollups are filled from them and the reports are exact."""
    from conftest import drop_engine, make_engine

    engine = await make_engine(db_url)
    try:
        await upgrade(engine, "0006_final_rollup")
        rng = random.Random(70)
        sessions = session_factory(engine)
        await add_pages(sessions)
        await _load(sessions, rng, 120)
        await upgrade(engine)
        await rollups_as_rebuilt(engine)
        assert await _check(sessions, await all_appeals(sessions), rng) > 100
    finally:
        await drop_engine(db_url, engine)
