"""The /stats report engine: docs/METRICS.md aggregates per page and in total, in SQL.

Every figure is a sum over the appeals received in `[since, until)` and by `at` (an appeal
received after `at` is not known at `at`), excluded ones («Не обращение») left out, as known
at `at`; the conditions are written once, in storage/metrics.py:

* answered at `at`: `answered_at <= at`, where `answered_at = min(first_response_at,
  answered_offline_at)` is kept on every flush (storage.models);
* in time: answered at `at` and `answered_at <= sla_deadline`; late: answered, not in time;
* overdue: not answered at `at` and `sla_deadline < at`; pending: not answered, deadline ahead;
* response-time statistics over appeals with an official reply known at `at`
  (`first_response_at <= at`), exact `statistics.median` and the inclusive p90;
* quality and templates of the answer known at `at`: the closing answer once its
  `final_response_at <= at`, the first reply before (`quality_at`).

`compute_report` sums per-day rollups of the appeals already final at `at` (storage/rollup.py)
and evaluates the rest row by row with the same conditions (docs/METRICS.md sec. 6); order
statistics are exact without sorting the period (bot/services/order_stats.py). Callers use the
report use cases of bot/services/reports.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, and_, false, func, or_, select
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import order_stats
from bot.services.figures import Figures, PageFigures, StatsReport
from bot.services.maturity import DEFAULT_WEIGHTS, MaturityWeights
from bot.services.policy import PageDefaults
from storage import metrics, rollup
from storage.buckets import day_number, day_start, month_days, month_of
from storage.engine import core
from storage.metrics import FRT_KINDS
from storage.pages import report_pages

A = metrics.A
R = rollup.R
T = rollup.T
H = rollup.H
HM = rollup.HM
F = rollup.F

# Per FRT kind, then per page: bucket -> count.
Histograms = dict[int, dict[int, dict[int, int]]]


def aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def known_until(until: datetime, at: datetime) -> datetime:
    """The end of the period as known at `at`: appeals received after `at` are not known yet.

    Times are stored to the microsecond, so `received_at < at + 1 µs` is `received_at <= at`.
    """
    return min(until, at + timedelta(microseconds=1))


async def compute_report(
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
    """The report over appeals received in `[since, until)` as known at `at`.

    `page_ids` limits "all pages" to these (an operator's view of the dashboard): the total is
    then theirs, medians included.

    Whole UTC days of the period whose appeals settled before the UTC day of `at` come from
    the rollups (storage/rollup.py); the rest — partial days at the edges and appeals that can
    still change at `at` — is computed row by row with the conditions of storage/metrics.py.
    """
    since, until, at = aware(since, "since"), aware(until, "until"), aware(at, "at")
    end = known_until(until, at)
    # Page-days written since the last refresh are recomputed first (deferred maintenance).
    only = [page_id] if page_id is not None else None if page_ids is None else sorted(page_ids)
    await rollup.sync(session, only)
    pages = await report_pages(session, page_id)
    if page_ids is not None:
        pages = [page for page in pages if page.id in page_ids]
    ids = [page.id for page in pages if page.id is not None]
    split = _Split.of(since, end, at)
    figures = {pid: Figures() for pid in ids}
    histograms: Histograms = {
        kind: {pid: defaultdict(int) for pid in ids} for kind, _, _ in FRT_KINDS
    }
    if ids and since < end:
        await _add_rollups(session, ids, split, figures, histograms)
        for where, topics, sign, replies in await _live_conditions(session, ids, split):
            await _add_rows(
                session, where, at, figures, histograms, topics=topics, sign=sign, replies=replies
            )
        # Final stages row by row: the edges, and the whole days' stages not settled at `at`
        # (those with nothing known at `at` but their deadline from the index alone; on the
        # edges SQLite would then scan a page's whole settle index instead of the edge).
        for where, sign in _parts(ids, split):
            await _add_final_rows(session, where, at, figures, sign)
        unsettled = await _unsettled_final(session, ids, split)
        if unsettled is not None:
            await _add_quiet_stages(session, unsettled, at, figures)
            await _add_final_rows(session, and_(unsettled, ~_quiet_at(at)), at, figures)
    per_page: list[PageFigures] = []
    total = Figures()
    for page in pages:
        assert page.id is not None
        page_figures = figures[page.id]
        page_figures.answered_late = page_figures.answered - page_figures.answered_in_time
        page_figures.pending = page_figures.appeals - page_figures.answered - page_figures.overdue
        page_figures.final_late = page_figures.final_answered - page_figures.final_in_time
        # A topic of a day's part outside the period only is taken off to 0: not listed.
        page_figures.topics = dict(sorted(t for t in page_figures.topics.items() if t[1]))
        total.add(page_figures)
        per_page.append(PageFigures(page.id, page.platform, page.title, page_figures))
    total.topics = dict(sorted(total.topics.items()))
    # Pages without appeals in the period are still listed when asked for by id.
    listed = [p for p in per_page if p.figures.appeals or page_id is not None]
    replied_pages = [item for item in listed if item.figures.replied]
    replied_ids = [item.page_id for item in replied_pages]
    replied = metrics.conditions(at)["replied"]
    where = and_(metrics.received(replied_ids, since, end), replied)
    # Each page's reads name their page: without the list of every page in each of them (a
    # thousand pages made every read carry a thousand parameters).
    in_period = order_stats.Rows(since, end, at)
    for kind, value, bucket in FRT_KINDS:
        if not replied_pages:
            break
        # Every page's order statistics in one statement, then the total's.
        by_page = await order_stats.median_p90_by_group(
            session,
            value,
            bucket,
            A.page_id,
            {pid: histograms[kind][pid] for pid in replied_ids},
            in_period,
        )
        for item in replied_pages:
            _set_times(item.figures, kind, *by_page[item.page_id])
        counts = order_stats.merged(histograms[kind][pid] for pid in replied_ids)
        median, p90 = await order_stats.median_p90(session, value, bucket, counts, where)
        _set_times(total, kind, median, p90)
    return StatsReport(since, until, at, total, listed, weights)


@dataclass(frozen=True)
class _Split:
    """The period cut into whole UTC days (rollups) and the partial days at its edges."""

    first_day: int  # whole days first_day <= d < end_day
    end_day: int
    edges: tuple[tuple[datetime, datetime], ...]
    at_day: int  # rollup rows settled on an earlier day are final at `at`
    minus: tuple[tuple[datetime, datetime], ...] = ()  # parts of whole days outside the period

    @classmethod
    def of(cls, since: datetime, until: datetime, at: datetime) -> _Split:
        first = day_number(since)
        if day_start(first) < since:
            first += 1
        end = day_number(until)
        if first >= end:
            return cls(first, first, ((since, until),), day_number(at))
        edges: list[tuple[datetime, datetime]] = []
        minus: list[tuple[datetime, datetime]] = []
        # An edge longer than half a day is cheaper as its whole day less the rest of that day
        # (every figure is a sum): a Moscow-time month's 21-hour edge costs 3 hours of rows.
        if since < day_start(first):
            if day_start(first) - since > HALF_DAY:
                first -= 1
                minus.append((day_start(first), since))
            else:
                edges.append((since, day_start(first)))
        if day_start(end) < until:
            if until - day_start(end) > HALF_DAY:
                end += 1
                minus.append((until, day_start(end)))
            else:
                edges.append((day_start(end), until))
        return cls(first, end, tuple(edges), day_number(at), tuple(minus))

    @property
    def whole_days(self) -> bool:
        return self.first_day < self.end_day

    def months(self) -> tuple[list[int], list[tuple[int, int]]]:
        """The whole days as the UTC months they fill and the day ranges `[a, b)` left over."""
        months: list[int] = []
        month = month_of(self.first_day)
        while True:
            first, end = month_days(month)
            if end > self.end_day:
                break
            if first >= self.first_day:
                months.append(month)
            month += 1
        if not months:
            return [], [(self.first_day, self.end_day)]
        start, stop = month_days(months[0])[0], month_days(months[-1])[1]
        rest = [(a, b) for a, b in ((self.first_day, start), (stop, self.end_day)) if a < b]
        return months, rest


HALF_DAY = timedelta(hours=12)
_ROLLUP_SUMS = ("appeals", *metrics.COUNTED)


async def _add_rollups(
    session: AsyncSession,
    ids: list[int],
    split: _Split,
    figures: dict[int, Figures],
    histograms: dict[int, dict[int, dict[int, int]]],
) -> None:
    """Add the settled rollup rows and the topics of the whole days."""
    if not split.whole_days:
        return
    settled = and_(
        R.c.page_id.in_(ids),
        R.c.day >= split.first_day,
        R.c.day < split.end_day,
        R.c.settle_day < split.at_day,
    )
    columns = [func.sum(R.c[name]) for name in _ROLLUP_SUMS]
    rows = await core(
        session,
        select(R.c.page_id, func.sum(R.c.quality_sum), *columns)
        .where(settled)
        .group_by(R.c.page_id),
    )
    for pid, quality_sum, *sums in rows.all():
        page = figures[int(pid)]
        page.quality_sum += float(quality_sum or 0.0)
        for name, value in zip(_ROLLUP_SUMS, sums, strict=True):
            setattr(page, name, getattr(page, name) + int(value or 0))
    # Settled stages with their final figures; stages whose first moment (final reply,
    # «Ответили вне соцсети», re-open, final deadline) comes after the day of `at` are pending
    # at `at`, however they settle later (`quiet_day`).
    settled = F.c.settle_day < split.at_day
    rows = await core(
        session,
        select(
            F.c.page_id,
            settled.label("settled"),
            *(func.sum(F.c[name]) for name in metrics.FINAL_COUNTED),
        )
        .where(
            F.c.page_id.in_(ids),
            F.c.day >= split.first_day,
            F.c.day < split.end_day,
            or_(settled, F.c.quiet_day > split.at_day),
        )
        .group_by(F.c.page_id, settled),
    )
    for pid, is_settled, *sums in rows.all():
        page = figures[int(pid)]
        found = {
            name: int(value or 0) for name, value in zip(metrics.FINAL_COUNTED, sums, strict=True)
        }
        if is_settled:
            for name, value in found.items():
                setattr(page, name, getattr(page, name) + value)
        else:
            # Every settled stage is answered or overdue: each of these is pending at `at`.
            page.final_pending += found["final_answered"] + found["final_overdue"]
    rows = await core(
        session,
        select(T.c.page_id, T.c.topic, func.sum(T.c.appeals))
        .where(T.c.page_id.in_(ids), T.c.day >= split.first_day, T.c.day < split.end_day)
        .group_by(T.c.page_id, T.c.topic),
    )
    for pid, topic, count in rows.all():
        topics = figures[int(pid)].topics
        topics[str(topic)] = topics.get(str(topic), 0) + int(count)
    await _add_histograms(session, ids, split, histograms)


async def _add_histograms(
    session: AsyncSession, ids: list[int], split: _Split, histograms: Histograms
) -> None:
    """The FRT histograms of the whole days' appeals replied before the day of `at`.

    Whole UTC months from their monthly sums less the entries replied on or after that day
    (few: only the latest replies); the days outside whole months from the daily rows.
    """
    kinds = [kind for kind, _, _ in FRT_KINDS]
    months, rest = split.months()
    parts: list[tuple[Any, int]] = []
    if months:
        parts.append(
            (
                select(HM.c.kind, HM.c.page_id, HM.c.bucket, func.sum(HM.c.count))
                .where(HM.c.page_id.in_(ids), HM.c.kind.in_(kinds), HM.c.month.in_(months))
                .group_by(HM.c.kind, HM.c.page_id, HM.c.bucket),
                1,
            )
        )
        first, end = month_days(months[0])[0], month_days(months[-1])[1]
        day = unindexed(session, H.c.day)
        latest = (
            select(H.c.kind, H.c.page_id, H.c.bucket, func.sum(H.c.count))
            .where(
                H.c.reply_day >= split.at_day,
                unindexed(session, H.c.page_id).in_(ids),
                unindexed(session, H.c.kind).in_(kinds),
                day >= first,
                day < end,
            )
            .group_by(H.c.kind, H.c.page_id, H.c.bucket)
        )
        parts.append((latest, -1))
    if rest:
        parts.append((_daily(ids, kinds, rest, H.c.reply_day < split.at_day), 1))
    for query, sign in parts:
        for kind, pid, bucket, count in (await core(session, query)).all():
            histograms[int(kind)][int(pid)][int(bucket)] += sign * int(count)


def _daily(ids: list[int], kinds: list[int], ranges: list[tuple[int, int]], replied: Any) -> Any:
    return (
        select(H.c.kind, H.c.page_id, H.c.bucket, func.sum(H.c.count))
        .where(
            H.c.page_id.in_(ids),
            H.c.kind.in_(kinds),
            or_(*(and_(H.c.day >= first, H.c.day < end) for first, end in ranges)),
            replied,
        )
        .group_by(H.c.kind, H.c.page_id, H.c.bucket)
    )


def _parts(ids: list[int], split: _Split) -> list[tuple[ColumnElement[bool], int]]:
    """The edges (added) and the parts of whole days outside the period (subtracted)."""
    return [
        (and_(A.page_id.in_(ids), A.received_at >= start, A.received_at < stop), sign)
        for parts, sign in ((split.edges, 1), (split.minus, -1))
        for start, stop in parts
    ]


async def _live_conditions(
    session: AsyncSession, ids: list[int], split: _Split
) -> list[tuple[ColumnElement[bool], bool, int, ColumnElement[bool] | None]]:
    """Appeals computed row by row: the edges, and whole-day appeals not settled before `at`.

    Each with whether its topics are needed (whole days have theirs in the topic rollup), its
    sign (-1: a part of a whole day outside the period, evaluated the same way, taken off) and
    which of its appeals' FRT histograms are needed (None: all; whole days have the replies
    before the day of `at` in the histogram rollup).
    """
    conditions: list[tuple[ColumnElement[bool], bool, int, ColumnElement[bool] | None]] = [
        (where, True, sign, None) for where, sign in _parts(ids, split)
    ]
    unsettled = await _unsettled(session, R, A.settle_day, ids, split)
    if unsettled is not None:
        # A first reply settles no later than its appeal, so these hold every later reply.
        late_reply = A.first_response_at >= day_start(split.at_day)
        conditions.append((unsettled, False, 1, late_reply))
    return conditions


async def _unsettled(
    session: AsyncSession,
    rollup_table: Table,
    settle_column: Column[Any],
    ids: list[int],
    split: _Split,
    *also: ColumnElement[bool],
) -> ColumnElement[bool] | None:
    """The whole days' appeals whose rollup row is not settled by `at` (None: there are none).

    The settle days that occur are read first: exact index seeks instead of a scan of later days.
    """
    if not split.whole_days:
        return None
    rows = await core(
        session,
        select(rollup_table.c.settle_day)
        .where(
            rollup_table.c.page_id.in_(ids),
            rollup_table.c.day >= split.first_day,
            rollup_table.c.day < split.end_day,
            rollup_table.c.settle_day >= split.at_day,
            *also,
        )
        .distinct(),
    )
    settle_days = sorted(int(day) for (day,) in rows.all())
    if not settle_days:
        return None
    received = unindexed(session, A.received_at)
    return and_(
        A.page_id.in_(ids),
        settle_column.in_(settle_days),
        received >= day_start(split.first_day),
        received < day_start(split.end_day),
    )


def unindexed(session: AsyncSession, column: Any) -> Any:
    """`column` in a form SQLite's planner does not seek an index by (unary `+`).

    Over a thousand pages SQLite preferred a range scan of the whole period on the covering
    `ix_appeal_stats` to the seeks of the few settle days on `ix_appeal_settle`, and a scan of
    a month's histogram rows to the seek of the latest replies on `ix_appeal_frt_rollup_reply`.
    """
    if session.get_bind().dialect.name != "sqlite":
        return column
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


async def _unsettled_final(
    session: AsyncSession, ids: list[int], split: _Split
) -> ColumnElement[bool] | None:
    """The whole days' stages not settled by `at` and not quiet until after its day (those are
    pending, from the rollup: `_add_rollups`); None: there are none.

    A stage waits up to ten days for its final answer, so at a month's end its last days are
    read here; the index `ix_appeal_final_settle` tells them apart without the table rows.
    """
    unsettled = await _unsettled(
        session, F, A.final_settle_day, ids, split, F.c.quiet_day <= split.at_day
    )
    if unsettled is None:
        return None
    end = day_start(split.at_day + 1)
    moments = (A.final_response_at, A.answered_offline_at, A.reopened_at, A.final_deadline)
    return and_(unsettled, or_(*(moment < end for moment in moments)))


def _quiet_at(at: datetime) -> ColumnElement[bool]:
    """No final reply, «Ответили вне соцсети» or re-open of the stage is known at `at`."""
    moments = (A.final_response_at, A.answered_offline_at, A.reopened_at)
    return and_(*(or_(moment.is_(None), moment > at) for moment in moments))


async def _add_quiet_stages(
    session: AsyncSession,
    where: ColumnElement[bool],
    at: datetime,
    figures: dict[int, Figures],
    sign: int = 1,
) -> None:
    """Stages of `where` with nothing known at `at` but their final deadline: overdue once it
    has passed, else pending (`final_conditions(at)` for such a stage), counted from the index
    `ix_appeal_final_settle` alone, without the reply joins."""
    overdue = metrics.count(A.final_deadline <= at)
    rows = await core(
        session,
        select(A.page_id, func.count(), overdue)
        .where(where, A.excluded == false(), A.final_deadline.is_not(None), _quiet_at(at))
        .group_by(A.page_id),
    )
    for pid, stages, late in rows.all():
        page = figures[int(pid)]
        page.final_overdue += sign * int(late)
        page.final_pending += sign * (int(stages) - int(late))


async def _add_final_rows(
    session: AsyncSession,
    where: ColumnElement[bool],
    at: datetime,
    figures: dict[int, Figures],
    sign: int = 1,
) -> None:
    """Add the final-stage figures of the appeals matching `where`, evaluated at `at`."""
    rows = await core(
        session,
        select(A.page_id, *metrics.final_counted(at))
        .select_from(metrics.final_source())
        .where(where, A.excluded == false())
        .group_by(A.page_id),
    )
    for row in rows.all():
        data = row._mapping
        page = figures[int(data["page_id"])]
        for name in metrics.FINAL_COUNTED:
            setattr(page, name, getattr(page, name) + sign * int(data[name]))


async def _add_rows(
    session: AsyncSession,
    where: ColumnElement[bool],
    at: datetime,
    figures: dict[int, Figures],
    histograms: dict[int, dict[int, dict[int, int]]],
    *,
    topics: bool,
    sign: int = 1,
    replies: ColumnElement[bool] | None = None,
) -> None:
    """Add (or, `sign` -1, take off) the figures of the appeals matching `where`, evaluated at
    `at` row by row."""
    where = and_(where, A.excluded == false())
    replied = metrics.conditions(at)["replied"]
    rows = await core(
        session, select(A.page_id, *metrics.counted(at)).where(where).group_by(A.page_id)
    )
    for row in rows.all():
        data = row._mapping
        page = figures[int(data["page_id"])]
        page.appeals += sign * int(data["appeals"])
        page.quality_sum += sign * float(data["quality_sum"] or 0.0)
        for name in metrics.COUNTED:
            setattr(page, name, getattr(page, name) + sign * int(data[name]))
    if topics:
        rows = await core(
            session,
            select(A.page_id, A.topic, func.count()).where(where).group_by(A.page_id, A.topic),
        )
        for pid, topic, count in rows.all():
            counts = figures[int(pid)].topics
            counts[str(topic)] = counts.get(str(topic), 0) + sign * int(count)
    if replies is not None:
        replied = and_(replied, replies)
    for kind, value, bucket in FRT_KINDS:
        rows = await core(
            session,
            select(A.page_id, bucket, func.count())
            .where(where, replied, value.is_not(None))
            .group_by(A.page_id, bucket),
        )
        for pid, number, count in rows.all():
            histograms[kind][int(pid)][int(number)] += sign * int(count)


def _set_times(figures: Figures, kind: int, median: float | None, p90: float | None) -> None:
    if kind == 0:
        figures.frt_median_s, figures.frt_p90_s = median, p90
    else:
        figures.frt_median_work_s = median
