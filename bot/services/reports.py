"""Report use cases: the one home of every figure a person sees (STYLE 13).

`/stats` (handlers/telegram/supervisors.py), `otklik stats` (bot/commands.py), the weekly
digest (bot/services/digest.py), the export (bot/services/export.py) and the dashboard call
these functions and only format what they return. The figures are defined in docs/METRICS.md;
the engines behind them are bot/services/stats.py (the report), bot/services/series.py (per
day or week) and bot/services/order_stats.py (medians and p90).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import false, func
from sqlmodel import col
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import health
from bot.services.figures import DayRow, Figures, OverdueAppeal, PageFigures, StatsReport
from bot.services.health import BestPost, HealthWeek, best_post, health_weeks
from bot.services.maturity import DEFAULT_WEIGHTS, MaturityWeights
from bot.services.policy import PageDefaults
from bot.services.series import Step, compute_series
from bot.services.stats import aware, compute_report
from storage import metrics
from storage.models import Appeal, CitizenMessage, Page

A = metrics.A


async def build_report(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_id: int | None = None,
    page_ids: frozenset[int] | None = None,
    defaults: PageDefaults,
    weights: MaturityWeights = DEFAULT_WEIGHTS,
) -> StatsReport:
    """The report over appeals received in `[since, until)` as known at `at` (all pages or one;
    `page_ids`: only these of all pages, as the dashboard shows an operator).

    Each page carries its page health for the same period (bot/services/health.py); a page with
    posts or subscriber readings but no appeals is listed too.
    """
    report = await compute_report(
        session,
        since=since,
        until=until,
        at=at,
        page_id=page_id,
        page_ids=page_ids,
        defaults=defaults,
        weights=weights,
    )
    await _add_page_health(session, report, defaults, page_id, page_ids)
    return report


async def daily_series(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_id: int | None = None,
    tz: str,
    step: Step = "day",
) -> list[DayRow]:
    """Per local day (or week) of `tz`: in time / late / overdue / pending, FRT median."""
    return await compute_series(
        session, since=since, until=until, at=at, page_id=page_id, tz=tz, step=step
    )


def _overdue_at(at: datetime) -> Any:
    """Unanswered past the deadline at `at` (the `overdue` of storage/metrics.py), any period."""
    return (
        A.excluded == false(),
        A.received_at <= at,
        metrics.conditions(at)["overdue"],
    )


async def overdue_appeals(
    session: AsyncSession, *, at: datetime, page_id: int | None = None, limit: int = 50
) -> list[OverdueAppeal]:
    """Appeals overdue at `at` (unanswered, deadline passed), the most overdue first."""
    at = aware(at, "at")
    query = (
        orm_select(Appeal, Page.title, CitizenMessage.text)
        .join(Page, col(Page.id) == col(Appeal.page_id))
        .outerjoin(CitizenMessage, col(CitizenMessage.id) == col(Appeal.first_message_id))
        .where(*_overdue_at(at))
        .order_by(A.sla_deadline, A.id)
        .limit(limit)
    )
    if page_id is not None:
        query = query.where(A.page_id == page_id)
    result: list[OverdueAppeal] = []
    for appeal, title, text in (await session.exec(query)).all():
        assert appeal.id is not None
        result.append(
            OverdueAppeal(
                appeal_id=appeal.id,
                page_id=appeal.page_id,
                page_title=title,
                received_at=appeal.received_at,
                sla_deadline=appeal.sla_deadline,
                overdue_s=(at - appeal.sla_deadline).total_seconds(),
                topic=appeal.topic,
                urgent=appeal.urgent,
                link=appeal.link,
                citizen_name=appeal.citizen_name,
                text=text or "",
            )
        )
    return result


async def count_overdue(
    session: AsyncSession, at: datetime, received: tuple[datetime, datetime] | None = None
) -> int:
    """How many appeals are overdue at `at` (of those received in `received`, if given)."""
    query = orm_select(func.count()).where(*_overdue_at(at))
    if received is not None:
        query = query.where(A.received_at >= received[0], A.received_at < received[1])
    return (await session.exec(query)).one()


async def slowest_answered(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    limit: int,
    page_id: int | None = None,
) -> list[tuple[Appeal, Page]]:
    """The appeals of `[since, until)` answered by `at` that waited longest for the answer."""
    query = (
        orm_select(Appeal, Page)
        .join(Page, col(Page.id) == col(Appeal.page_id))
        .where(
            Appeal.received_at >= since,
            Appeal.received_at < until,
            col(Appeal.excluded).is_(False),
            col(Appeal.answered_at).is_not(None),
            col(Appeal.answered_at) <= at,
        )
    )
    if page_id is not None:
        query = query.where(A.page_id == page_id)
    rows = (await session.exec(query)).all()
    return sorted(
        rows,
        key=lambda pair: (
            -_waited(pair[0]),
            pair[0].id or 0,
        ),
    )[:limit]


def _waited(appeal: Appeal) -> float:
    assert appeal.answered_at is not None  # the query selects answered appeals
    return (appeal.answered_at - appeal.received_at).total_seconds()


@dataclass(frozen=True)
class DigestFigures:
    """What a digest of one period shows, as known at its moment, and the period before."""

    report: dict[str, Any]  # `StatsReport.to_json()`
    previous: dict[str, Any]
    slowest: list[tuple[Appeal, Page]]
    overdue: list[OverdueAppeal]  # of every period, the most overdue first
    overdue_total: int
    overdue_in_period: int
    series: list[DayRow]
    best_post: BestPost | None = None  # page health: the most viewed post of the period


async def digest_figures(
    session: AsyncSession,
    *,
    period: tuple[datetime, datetime, datetime],
    previous: tuple[datetime, datetime, datetime],
    defaults: PageDefaults,
    slowest: int,
    overdue: int,
) -> DigestFigures:
    """The figures of a digest: `period` and `previous` are (since, until, at) each."""
    since, until, at = period
    report = await build_report(session, since=since, until=until, at=at, defaults=defaults)
    before = await build_report(
        session, since=previous[0], until=previous[1], at=previous[2], defaults=defaults
    )
    slow = await slowest_answered(session, since=since, until=until, at=at, limit=slowest)
    listed = await overdue_appeals(session, at=at, limit=overdue)
    total = await count_overdue(session, at) if listed else 0
    in_period = await count_overdue(session, at, (since, until)) if listed else 0
    series = await daily_series(session, since=since, until=until, at=at, tz=defaults.timezone)
    best = await best_post(session, [page.page_id for page in report.pages], since, until, at)
    return DigestFigures(
        report.to_json(), before.to_json(), slow, listed, total, in_period, series, best
    )


async def health_series(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_ids: list[int],
    tz: str,
) -> list[HealthWeek]:
    """Page health per local week of `tz`: posts and subscribers (the page-health chart)."""
    return await health_weeks(session, page_ids, since, until, at, tz)


async def _add_page_health(
    session: AsyncSession,
    report: StatsReport,
    defaults: PageDefaults,
    page_id: int | None,
    page_ids: frozenset[int] | None = None,
) -> None:
    """Give every page of `report` its health; list pages with health data but no appeals
    (only among `page_ids` when the caller may see just those)."""
    end = min(report.until, report.at)
    listed = {page.page_id for page in report.pages}
    if page_id is None:
        extra = [
            pid
            for pid in await health.pages_with_health(session, report.since, end)
            if pid not in listed and (page_ids is None or pid in page_ids)
        ]
        if extra:
            rows = (await session.exec(orm_select(Page).where(col(Page.id).in_(extra)))).all()
            for row in sorted(rows, key=lambda row: row.id or 0):
                assert row.id is not None
                report.pages.append(PageFigures(row.id, row.platform, row.title, Figures()))
    kinds = {
        page.id: page.kind
        for page in (
            await session.exec(
                orm_select(Page).where(col(Page.id).in_([p.page_id for p in report.pages]))
            )
        ).all()
    }
    followed = [p.page_id for p in report.pages if kinds.get(p.page_id) in health.HEALTH_KINDS]
    found = await health.report_health(
        session, followed, report.since, report.until, report.at, defaults
    )
    for item in report.pages:
        item.health = found.get(item.page_id)
