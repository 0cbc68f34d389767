"""The intake hot path marks rollup page-days stale instead of recomputing them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlmodel import select

from bot.services.ingest import IngestService
from bot.services.policy import PageDefaults
from bot.services.reports import build_report
from storage.buckets import day_number
from storage.engine import SessionFactory
from storage.models import AppealRollup, RollupStale
from tests.conftest import MONDAY_10_MSK
from tests.factories import FINAL_ANSWER, citizen, hours, official


async def _marks(sessions: SessionFactory) -> list[tuple[int, int]]:
    async with sessions() as session:
        rows = await session.exec(select(RollupStale.page_id, RollupStale.day))
        return sorted((int(page), int(day)) for page, day in rows.all())


async def test_ingest_marks_then_report_refreshes(sessions: SessionFactory) -> None:
    """Both backends: one mark per written page-day, no rollup rows until a report asks."""
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await service.handle(citizen(MONDAY_10_MSK + hours(1), message_id="-1002:2", author="502"))
        await service.handle(official(MONDAY_10_MSK + hours(2), "-1002:1", FINAL_ANSWER))
        await session.commit()
    marks = await _marks(sessions)
    assert {day for _, day in marks} == {day_number(MONDAY_10_MSK)}
    if sessions.kw["bind"].dialect.name == "sqlite":
        assert len(marks) == 1  # one writer at a time: a key is marked once
    async with sessions() as session:
        count = (await session.exec(select(func.count()).select_from(AppealRollup))).one()
        assert count == 0
    async with sessions() as session:
        # A session without an open transaction refreshes on its own connection and commits.
        day = MONDAY_10_MSK.replace(hour=0)
        report = await build_report(
            session,
            since=day - timedelta(days=1),
            until=day + timedelta(days=2),
            at=day + timedelta(days=5),
            defaults=PageDefaults(),
        )
    assert (report.total.appeals, report.total.answered) == (2, 1)
    assert await _marks(sessions) == []
