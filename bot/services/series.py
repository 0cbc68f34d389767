"""Report series: appeals per local day (or week) by their status at `at`, for charts.

Each row counts the appeals received that day with the conditions of storage/metrics.py and
takes the FRT median with the one order-statistics engine (bot/services/order_stats.py), so a
day of the series and a one-day report give the same figures.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import order_stats
from bot.services.figures import FRT_BINS_H, DayRow
from bot.services.stats import aware, known_until
from storage import metrics
from storage.engine import core
from storage.pages import report_pages

A = metrics.A

Step = Literal["day", "week"]


def _frt_bins(replied: ColumnElement[bool]) -> list[ColumnElement[bool]]:
    """One condition per bar of the FRT distribution (FRT_BINS_H, then one open bar)."""
    bins: list[ColumnElement[bool]] = []
    lower: float | None = None
    for upper in [*(bound * 3600 for bound in FRT_BINS_H), None]:
        parts = [replied]
        if lower is not None:
            parts.append(A.frt_s >= lower)
        if upper is not None:
            parts.append(A.frt_s < upper)
        bins.append(and_(*parts))
        lower = upper
    return bins


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)


async def compute_series(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_id: int | None = None,
    tz: str,
    step: Step = "day",
) -> list[DayRow]:
    """Per local day (or ISO week, keyed by its Monday) of `tz` in `[since, until)`."""
    since, until, at = aware(since, "since"), aware(until, "until"), aware(at, "at")
    zone = ZoneInfo(tz)
    ids = [p.id for p in await report_pages(session, page_id) if p.id is not None]
    conditions = metrics.conditions(at)
    bins = _frt_bins(conditions["replied"])
    known = known_until(until, at)
    length = timedelta(days=7 if step == "week" else 1)
    day = since.astimezone(zone).date()
    if step == "week":
        day -= timedelta(days=day.weekday())
    rows: list[DayRow] = []
    while True:
        start = max(_local_midnight(day, zone), since)
        if start >= until:
            break
        # Days after `at` are listed with nothing in them: nothing received then is known.
        end = min(_local_midnight(day + length, zone), known)
        rows.append(await _row(session, day, ids, start, end, at, bins))
        day += length
    return rows


async def _row(
    session: AsyncSession,
    day: date,
    ids: list[int],
    start: datetime,
    end: datetime,
    at: datetime,
    bins: list[ColumnElement[bool]],
) -> DayRow:
    if not ids or start >= end:
        return DayRow(day, 0, 0, 0, 0, 0, None, (0,) * len(bins))
    where = metrics.received(ids, start, end)
    found = (await core(session, select(*metrics.counted(at)).where(where))).one()._mapping
    appeals, answered = int(found["appeals"]), int(found["answered"])
    in_time, overdue = int(found["answered_in_time"]), int(found["overdue"])
    counts = (0,) * len(bins)
    median = median_work = None
    if int(found["replied"]):
        result = await core(session, select(*[metrics.count(c) for c in bins]).where(where))
        counts = tuple(int(value) for value in result.one())
        replied = and_(where, metrics.conditions(at)["replied"])
        histogram = await order_stats.histogram(session, A.frt_s, A.frt_bucket, replied)
        median, _ = await order_stats.median_p90(session, A.frt_s, A.frt_bucket, histogram, replied)
        work = await order_stats.histogram(session, A.frt_work_s, A.frt_work_bucket, replied)
        median_work, _ = await order_stats.median_p90(
            session, A.frt_work_s, A.frt_work_bucket, work, replied
        )
    return DayRow(
        day=day,
        appeals=appeals,
        in_time=in_time,
        late=answered - in_time,
        overdue=overdue,
        pending=appeals - answered - overdue,
        frt_median_s=median,
        frt_bins=counts,
        frt_median_work_s=median_work,
    )
