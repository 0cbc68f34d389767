"""A report shows what was known at `at` (docs/METRICS.md): later appeals, replies do not count."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.services.ingest import IngestService
from bot.services.policy import PageDefaults
from bot.services.reports import build_report, daily_series
from storage.engine import SessionFactory
from storage.models import Appeal, OfficialReply
from tests.conftest import MONDAY_10_MSK
from tests.factories import INTERIM_ANSWER, citizen, hours, official

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


async def test_quality_counts_the_answer_known_at_at(sessions: SessionFactory) -> None:
    """Before the final answer is sent the interim reply's score counts, after it the final's."""
    await _ingest(
        sessions,
        citizen(MONDAY_10_MSK, message_id="q:1"),
        official(MONDAY_10_MSK + hours(1), "q:1", INTERIM_ANSWER, message_id="q:2"),
        official(MONDAY_10_MSK + timedelta(days=3), "q:1", message_id="q:3"),
    )
    async with sessions() as session:
        replies = {r.external_id: r for r in (await session.exec(select(OfficialReply))).all()}
        [appeal] = (await session.exec(select(Appeal))).all()
        interim, final = replies["q:2"].quality_score, replies["q:3"].quality_score
        assert interim is not None and final is not None and interim < final
        assert appeal.quality_score == final and appeal.first_quality_score == interim
        reports = [
            await build_report(session, since=SINCE, until=UNTIL, at=at, defaults=DEFAULTS)
            for at in (
                MONDAY_10_MSK + hours(2),
                MONDAY_10_MSK + timedelta(days=3) - timedelta(microseconds=1),
                MONDAY_10_MSK + timedelta(days=3),
                MONDAY_10_MSK + timedelta(days=6),
            )
        ]
    assert [r.total.quality_mean for r in reports] == [interim, interim, final, final]
    # A later week's report reads the settled day from the rollups: still the final score.
    async with sessions() as session:
        later = await build_report(
            session, since=SINCE, until=UNTIL, at=UNTIL + timedelta(days=30), defaults=DEFAULTS
        )
    assert later.total.quality_mean == final
