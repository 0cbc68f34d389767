"""TEMPORARY stand-in for the report use case being built on branch `structure` (replaced by
its bot/services/reports.py at the merge); the same names and arguments the dashboard uses."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import stats
from bot.services.policy import PageDefaults
from bot.services.stats import DayRow, Figures, OverdueAppeal, StatsReport, overdue_appeals

__all__ = ["OverdueAppeal", "build_report", "daily_series", "overdue_appeals"]


async def build_report(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_id: int | None = None,
    page_ids: frozenset[int] | None = None,
    defaults: PageDefaults,
) -> StatsReport:
    report = await stats.build_report(
        session, since=since, until=until, at=at, page_id=page_id, defaults=defaults
    )
    if page_ids is None:
        return report
    pages = [p for p in report.pages if p.page_id in page_ids]
    total = Figures()
    for page in pages:
        total.add(page.figures)
    if len(pages) == 1:
        total = pages[0].figures
    return StatsReport(since, until, at, total, pages)


async def daily_series(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_id: int | None = None,
    tz: str,
    step: str = "day",
) -> list[DayRow]:
    days = await stats.daily_series(
        session, since=since, until=until, at=at, page_id=page_id, tz=tz
    )
    if step == "day":
        return days
    weeks: dict[Any, list[DayRow]] = defaultdict(list)
    for row in days:
        weeks[row.day - timedelta(days=row.day.weekday())].append(row)
    return [
        DayRow(
            day=start,
            appeals=sum(r.appeals for r in rows),
            in_time=sum(r.in_time for r in rows),
            late=sum(r.late for r in rows),
            overdue=sum(r.overdue for r in rows),
            pending=sum(r.pending for r in rows),
            frt_median_s=None,
            frt_bins=(),
        )
        for start, rows in sorted(weeks.items())
    ]
