"""A report shows what was known at `at` (DESIGN sec. 2): later appeals and replies do not count."""

from __future__ import annotations

from datetime import timedelta

from bot.services.ingest import IngestService
from bot.services.policy import PageDefaults
from bot.services.stats import build_report, daily_series
from storage.engine import SessionFactory
from tests.conftest import MONDAY_10_MSK
from tests.factories import citizen, hours, official

DEFAULTS = PageDefaults()
SINCE = MONDAY_10_MSK - hours(10)  # Monday 00:00 Moscow
UNTIL = SINCE + timedelta(days=7)


async def _ingest(sessions: SessionFactory, *events: object) -> None:
    async with sessions() as session:
        service = IngestService(session, DEFAULTS)
        for event in events:
            await service.handle(event)  # type: ignore[arg-type]
        await session.commit()


async def test_appeals_received_after_at_are_not_counted(sessions: SessionFactory) -> None:
    await _ingest(
        sessions,
        citizen(MONDAY_10_MSK, message_id="k:1", author="1"),
        official(MONDAY_10_MSK + hours(1), "k:1"),
        # Received on Friday, after the report's `at` on Wednesday.
        citizen(MONDAY_10_MSK + timedelta(days=4), message_id="k:2", author="2"),
    )
    at = MONDAY_10_MSK + timedelta(days=2)
    async with sessions() as session:
        report = await build_report(session, since=SINCE, until=UNTIL, at=at, defaults=DEFAULTS)
        series = await daily_series(session, since=SINCE, until=UNTIL, at=at, tz="Europe/Moscow")
    data = report.to_json()["total"]
    assert data["appeals"] == 1
    assert data["answered"] == 1
    assert data["pending"] == 0
    assert data["answered_share"] == 1.0
    assert report.until == UNTIL  # the period asked for is still reported as asked
    assert len(series) == 7
    assert sum(row.appeals for row in series) == 1
    assert sum(row.pending for row in series) == 0
    # Exactly at the moment of receipt the appeal is known (pending), a microsecond before not.
    friday = MONDAY_10_MSK + timedelta(days=4)
    async with sessions() as session:
        on_time = await build_report(
            session, since=SINCE, until=UNTIL, at=friday, defaults=DEFAULTS
        )
        before = await build_report(
            session,
            since=SINCE,
            until=UNTIL,
            at=friday - timedelta(microseconds=1),
            defaults=DEFAULTS,
        )
    assert on_time.total.appeals == 2 and on_time.total.pending == 1
    assert before.total.appeals == 1 and before.total.pending == 0
