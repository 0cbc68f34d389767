"""The /stats report: DESIGN sec. 2 aggregates per page and in total, computed in SQL.

Every figure is a sum over the appeals received in `[since, until)` and by `at` (an appeal
received after `at` is not known at `at`), excluded ones («Не обращение») left out, as known
at `at`:

* answered at `at`: `answered_at <= at`, where `answered_at = min(first_response_at,
  answered_offline_at)` is kept on every flush (storage.models);
* in time: answered at `at` and `answered_at <= sla_deadline`; late: answered, not in time;
* overdue: not answered at `at` and `sla_deadline < at`; pending: not answered, deadline ahead;
* response-time statistics over appeals with an official reply known at `at`
  (`first_response_at <= at`), exact `statistics.median` and the inclusive p90;
* quality and templates of the answer known at `at`: the closing answer once its
  `final_response_at <= at`, the first reply before (`quality_at`).

`build_report` sums per-day rollups of the appeals already final at `at` (storage/rollup.py)
and evaluates the rest row by row with the conditions below (docs/METRICS.md sec. 6); order
statistics are exact without sorting the period: a histogram of FRT buckets finds the bucket that
holds the wanted rank, and only that rank is read from the bucket. `daily_series` still runs one
`SUM(CASE …)` range scan per page and day over the covering index `ix_appeal_stats`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    and_,
    case,
    cast,
    false,
    func,
    or_,
    select,
    true,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.maturity import DEFAULT_WEIGHTS, MaturityWeights, maturity_index
from bot.services.policy import PageDefaults
from storage import rollup
from storage.buckets import day_number, day_start
from storage.models import Appeal, CitizenMessage, Page
from storage.rollup import FRT_KINDS

logger = logging.getLogger(__name__)

A = Appeal.__table__.c  # type: ignore[attr-defined]
R = rollup.R
T = rollup.T
H = rollup.H

# Width of the histogram buckets used to find order statistics (seconds). Any width gives the
# exact result; one minute keeps both the histogram and the fetched bucket small.
BUCKET_S = 60.0

# Upper bounds (hours, calendar) of the FRT distribution bars in the chart; the last is open.
FRT_BINS_H: tuple[float, ...] = (1, 4, 8, 24, 72)

SHARE_DIGITS = 4
QUALITY_DIGITS = 2


async def core(
    session: AsyncSession, statement: Executable, params: list[dict[str, Any]] | None = None
) -> Any:
    """Run a Core statement on the session's connection after flushing pending ORM changes.

    SQLModel deprecates `AsyncSession.execute`; Core rows (sums, tuples, executemany updates)
    are what these reports need, so they go to the connection directly.
    """
    await session.flush()
    connection = await session.connection()
    if params is None:
        return await connection.execute(statement)
    return await connection.execute(statement, params)


# -- exact order statistics -------------------------------------------------------------------


def median_of(getter: Callable[[int], float], count: int) -> float | None:
    """`statistics.median` of a sorted sequence of `count` values given by rank."""
    if count == 0:
        return None
    middle = count // 2
    if count % 2 == 1:
        return getter(middle)
    return (getter(middle - 1) + getter(middle)) / 2


def p90_of(getter: Callable[[int], float], count: int) -> float | None:
    """`statistics.quantiles(data, n=10, method="inclusive")[8]`; one value gives that value."""
    if count == 0:
        return None
    if count == 1:
        return getter(0)
    j, delta = divmod(9 * (count - 1), 10)
    # The same expression as CPython's statistics.quantiles, so the floats are identical.
    return (getter(j) * (10 - delta) + getter(j + 1) * delta) / 10


def median_ranks(count: int) -> set[int]:
    if count == 0:
        return set()
    return {count // 2} if count % 2 else {count // 2 - 1, count // 2}


def p90_ranks(count: int) -> set[int]:
    if count <= 1:
        return {0} if count else set()
    j = 9 * (count - 1) // 10
    return {j, j + 1}


# -- the report ---------------------------------------------------------------------------------


@dataclass
class Figures:
    """The figures of one page or of all pages (DESIGN sec. 3)."""

    appeals: int = 0
    answered: int = 0
    answered_in_time: int = 0
    answered_late: int = 0
    overdue: int = 0
    pending: int = 0
    answered_offline: int = 0  # answered only by «Ответили вне соцсети» at `at`
    replied: int = 0  # with an official reply known at `at`: the FRT sample size
    frt_median_s: float | None = None
    frt_p90_s: float | None = None
    frt_median_work_s: float | None = None
    quality_sum: float = 0.0
    quality_count: int = 0
    templated: int = 0
    rated: int = 0
    rated_positive: int = 0
    deleted_by_page: int = 0
    topics: dict[str, int] = field(default_factory=dict)

    @property
    def unanswered(self) -> int:
        return self.appeals - self.answered

    @property
    def answered_share(self) -> float | None:
        return _share(self.answered, self.appeals)

    @property
    def within_sla_share(self) -> float | None:
        return _share(self.answered_in_time, self.appeals - self.pending)

    @property
    def quality_mean(self) -> float | None:
        if self.quality_count == 0:
            return None
        return round(self.quality_sum / self.quality_count, QUALITY_DIGITS)

    @property
    def templated_share(self) -> float | None:
        return _share(self.templated, self.quality_count)

    @property
    def csat(self) -> float | None:
        return _share(self.rated_positive, self.rated)

    def maturity(self, weights: MaturityWeights = DEFAULT_WEIGHTS) -> float | None:
        return maturity_index(
            self.answered_share, self.within_sla_share, self.quality_mean, self.csat, weights
        )

    def add(self, other: Figures) -> None:
        """Add the counts of `other` (order statistics are computed separately)."""
        for name in (
            "appeals",
            "answered",
            "answered_in_time",
            "answered_late",
            "overdue",
            "pending",
            "answered_offline",
            "replied",
            "quality_count",
            "templated",
            "rated",
            "rated_positive",
            "deleted_by_page",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.quality_sum += other.quality_sum
        for topic, count in other.topics.items():
            self.topics[topic] = self.topics.get(topic, 0) + count

    def to_json(self, weights: MaturityWeights = DEFAULT_WEIGHTS) -> dict[str, Any]:
        maturity = self.maturity(weights)
        return {
            "appeals": self.appeals,
            "answered": self.answered,
            "unanswered": self.unanswered,
            "answered_share": self.answered_share,
            "answered_in_time": self.answered_in_time,
            "answered_late": self.answered_late,
            "overdue": self.overdue,
            "pending": self.pending,
            "within_sla_share": self.within_sla_share,
            "frt_median_s": _round_s(self.frt_median_s),
            "frt_p90_s": _round_s(self.frt_p90_s),
            "frt_median_work_s": _round_s(self.frt_median_work_s),
            "quality_mean": self.quality_mean,
            "templated_share": self.templated_share,
            "deleted_by_page": self.deleted_by_page,
            "csat": self.csat,
            "maturity_index": maturity,
            "answered_offline": self.answered_offline,
            "replied": self.replied,
            "rated": self.rated,
            "topics": dict(sorted(self.topics.items(), key=lambda item: (-item[1], item[0]))),
        }


@dataclass
class PageFigures:
    page_id: int
    platform: str
    title: str | None
    figures: Figures


@dataclass
class StatsReport:
    """The /stats report over `[since, until)` as known at `at`."""

    since: datetime
    until: datetime
    at: datetime
    total: Figures
    pages: list[PageFigures]
    weights: MaturityWeights = DEFAULT_WEIGHTS

    def to_json(self) -> dict[str, Any]:
        """The `otklik stats --json` object of DESIGN sec. 3."""
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "at": _iso(self.at),
            "total": self.total.to_json(self.weights),
            "pages": [
                {
                    "page_id": page.page_id,
                    "platform": page.platform,
                    "title": page.title,
                    **page.figures.to_json(self.weights),
                }
                for page in self.pages
            ],
        }


def _share(part: int, whole: int) -> float | None:
    if whole <= 0:
        return None
    return round(part / whole, SHARE_DIGITS)


def _round_s(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def known_until(until: datetime, at: datetime) -> datetime:
    """The end of the period as known at `at`: appeals received after `at` are not known yet.

    Times are stored to the microsecond, so `received_at < at + 1 µs` is `received_at <= at`.
    """
    return min(until, at + timedelta(microseconds=1))


def _period(page_id: int, since: datetime, until: datetime) -> ColumnElement[bool]:
    """Appeals of one page received in `[since, until)`, excluded ones left out."""
    return and_(
        A.page_id == page_id,
        A.received_at >= since,
        A.received_at < until,
        A.excluded == false(),
    )


def _count(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _answer_known(at: datetime) -> ColumnElement[bool]:
    """Whether the scored answer at `at` is the closing one (else the first reply is)."""
    return or_(A.final_response_at.is_(None), A.final_response_at <= at)


def quality_at(at: datetime) -> Any:
    """The quality of the answer known at `at`: a final reply sent after `at` does not count.

    `quality_score` is the closing answer's (the first final reply, else the first reply), so
    without a final reply it is the first reply's too (DESIGN sec. 2).
    """
    return case((_answer_known(at), A.quality_score), else_=A.first_quality_score)


def templated_at(at: datetime) -> Any:
    """Whether the answer known at `at` is a template (as `quality_at`)."""
    return case((_answer_known(at), A.answer_templated), else_=A.first_answer_templated)


def _conditions(at: datetime) -> dict[str, ColumnElement[bool]]:
    answered = A.answered_at <= at
    replied = A.first_response_at <= at
    scored = and_(replied, quality_at(at).is_not(None))
    rated = and_(A.rating.is_not(None), or_(A.rated_at.is_(None), A.rated_at <= at))
    return {
        "answered": answered,
        "answered_in_time": and_(answered, A.answered_at <= A.sla_deadline),
        "overdue": and_(or_(A.answered_at.is_(None), A.answered_at > at), A.sla_deadline < at),
        "answered_offline": and_(answered, or_(A.first_response_at.is_(None), ~replied)),
        "replied": replied,
        "quality_count": scored,
        "templated": and_(scored, templated_at(at) == true()),
        "rated": rated,
        "rated_positive": and_(rated, A.rating == 1),
        "deleted_by_page": A.deleted_by_page == true(),
    }


async def _page_counts(
    session: AsyncSession, page_id: int, since: datetime, until: datetime, at: datetime
) -> Figures:
    conditions = _conditions(at)
    columns = [func.count().label("appeals")]
    columns += [_count(condition).label(name) for name, condition in conditions.items()]
    columns.append(
        func.coalesce(func.sum(case((conditions["quality_count"], quality_at(at)))), 0.0).label(
            "quality_sum"
        )
    )
    row = (
        (await core(session, select(*columns).where(_period(page_id, since, until)))).one()._mapping
    )
    figures = Figures(appeals=int(row["appeals"]), quality_sum=float(row["quality_sum"] or 0.0))
    for name in conditions:
        setattr(figures, name, int(row[name]))
    figures.answered_late = figures.answered - figures.answered_in_time
    figures.pending = figures.appeals - figures.answered - figures.overdue
    return figures


async def _page_topics(
    session: AsyncSession, page_id: int, since: datetime, until: datetime
) -> dict[str, int]:
    rows = await core(
        session,
        select(A.topic, func.count()).where(_period(page_id, since, until)).group_by(A.topic),
    )
    return {str(topic): int(count) for topic, count in rows.all()}


class _OrderStatistics:
    """Exact order statistics of one column over several pages' period, via a histogram."""

    def __init__(
        self,
        session: AsyncSession,
        column: Any,
        condition: Callable[[int], ColumnElement[bool]],
        page_ids: Sequence[int],
    ) -> None:
        self.session = session
        self.column = column
        self.condition = condition
        self.page_ids = list(page_ids)
        self.bucket = cast(column / BUCKET_S, Integer)
        self.histograms: dict[int, dict[int, int]] = {}

    async def load_histograms(self) -> None:
        for page_id in self.page_ids:
            rows = await core(
                self.session,
                select(self.bucket, func.count())
                .where(self.condition(page_id), self.column.is_not(None))
                .group_by(self.bucket),
            )
            self.histograms[page_id] = {int(bucket): int(count) for bucket, count in rows.all()}

    def _needed(self, page_ids: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
        """For `page_ids` together: rank -> (bucket, rank inside the merged bucket)."""
        histogram: dict[int, int] = defaultdict(int)
        for page_id in page_ids:
            for bucket, count in self.histograms[page_id].items():
                histogram[bucket] += count
        total = sum(histogram.values())
        wanted = sorted(median_ranks(total) | p90_ranks(total))
        needed: dict[int, list[tuple[int, int]]] = {}
        start = 0
        for bucket in sorted(histogram):
            count = histogram[bucket]
            for rank in wanted:
                if start <= rank < start + count:
                    needed.setdefault(rank, []).append((bucket, rank - start))
            start += count
        return needed

    async def quantiles(
        self, groups: Sequence[Sequence[int]]
    ) -> list[tuple[float | None, float | None]]:
        """(median, p90) for each group of pages taken together, fetching each page once."""
        plans = [(group, self._needed(group)) for group in groups]
        buckets: dict[int, set[int]] = defaultdict(set)
        for group, needed in plans:
            wanted_buckets = {bucket for places in needed.values() for bucket, _ in places}
            for page_id in group:
                buckets[page_id] |= {b for b in wanted_buckets if self.histograms[page_id].get(b)}
        values: dict[tuple[int, int], list[float]] = defaultdict(list)
        for page_id, wanted in buckets.items():
            if not wanted:
                continue
            rows = await core(
                self.session,
                select(self.bucket, self.column).where(
                    self.condition(page_id),
                    self.column.is_not(None),
                    self.bucket.in_(sorted(wanted)),
                ),
            )
            for bucket, value in rows.all():
                values[(page_id, int(bucket))].append(float(value))
        results: list[tuple[float | None, float | None]] = []
        for group, needed in plans:
            found: dict[int, float] = {}
            merged: dict[int, list[float]] = {}
            for rank, places in needed.items():
                bucket, inside = places[0]
                if bucket not in merged:
                    merged[bucket] = sorted(
                        value for page_id in group for value in values.get((page_id, bucket), ())
                    )
                found[rank] = merged[bucket][inside]
            total = sum(sum(self.histograms[page_id].values()) for page_id in group)
            results.append((median_of(found.__getitem__, total), p90_of(found.__getitem__, total)))
        return results


async def _report_pages(session: AsyncSession, page_id: int | None) -> list[Page]:
    query = select(Page).order_by(Page.id)  # type: ignore[arg-type]
    if page_id is not None:
        query = query.where(Page.id == page_id)  # type: ignore[arg-type]
    return list((await session.exec(query)).scalars().all())  # type: ignore[call-overload]


async def build_report(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_id: int | None = None,
    defaults: PageDefaults,
    weights: MaturityWeights = DEFAULT_WEIGHTS,
) -> StatsReport:
    """The report over appeals received in `[since, until)` as known at `at`.

    Whole UTC days of the period whose appeals settled before the UTC day of `at` come from
    the rollups (storage/rollup.py); the rest — partial days at the edges and appeals that can
    still change at `at` — is computed row by row with the definitions of this module.
    """
    since, until, at = _aware(since, "since"), _aware(until, "until"), _aware(at, "at")
    end = known_until(until, at)
    # Page-days written since the last refresh are recomputed first (deferred maintenance).
    await rollup.sync(session, None if page_id is None else [page_id])
    pages = await _report_pages(session, page_id)
    ids = [page.id for page in pages if page.id is not None]
    split = _Split.of(since, end, at)
    figures = {pid: Figures() for pid in ids}
    histograms: dict[int, dict[int, dict[int, int]]] = {
        kind: {pid: defaultdict(int) for pid in ids} for kind, _, _ in FRT_KINDS
    }
    if ids and since < end:
        await _add_rollups(session, ids, split, figures, histograms)
        for where, topics in await _live_conditions(session, ids, split):
            await _add_rows(session, where, at, figures, histograms, topics=topics)
    per_page: list[PageFigures] = []
    total = Figures()
    for page in pages:
        assert page.id is not None
        page_figures = figures[page.id]
        page_figures.answered_late = page_figures.answered - page_figures.answered_in_time
        page_figures.pending = page_figures.appeals - page_figures.answered - page_figures.overdue
        page_figures.topics = dict(sorted(page_figures.topics.items()))
        total.add(page_figures)
        per_page.append(PageFigures(page.id, page.platform, page.title, page_figures))
    total.topics = dict(sorted(total.topics.items()))
    # Pages without appeals in the period are still listed when asked for by id.
    listed = [p for p in per_page if p.figures.appeals or page_id is not None]
    replied_pages = [item for item in listed if item.figures.replied]
    groups: list[list[int]] = [[item.page_id] for item in replied_pages]
    if replied_pages:
        groups.append([item.page_id for item in replied_pages])
    for kind, value, bucket in FRT_KINDS:
        attribute = "frt" if kind == 0 else "frt_work"
        results = await _quantiles(session, value, bucket, histograms[kind], groups, since, end, at)
        for item, (median, p90) in zip(replied_pages, results, strict=False):
            _set_times(item.figures, attribute, median, p90)
        if replied_pages:
            median, p90 = results[-1]
            _set_times(total, attribute, median, p90)
    return StatsReport(since, until, at, total, listed, weights)


@dataclass(frozen=True)
class _Split:
    """The period cut into whole UTC days (rollups) and the partial days at its edges."""

    first_day: int  # whole days first_day <= d < end_day
    end_day: int
    edges: tuple[tuple[datetime, datetime], ...]
    at_day: int  # rollup rows settled on an earlier day are final at `at`

    @classmethod
    def of(cls, since: datetime, until: datetime, at: datetime) -> _Split:
        first = day_number(since)
        if day_start(first) < since:
            first += 1
        end = day_number(until)
        if first >= end:
            return cls(first, first, ((since, until),), day_number(at))
        edges = tuple(
            (start, stop)
            for start, stop in ((since, day_start(first)), (day_start(end), until))
            if start < stop
        )
        return cls(first, end, edges, day_number(at))

    @property
    def whole_days(self) -> bool:
        return self.first_day < self.end_day


_ROLLUP_SUMS = (
    "appeals",
    "answered",
    "answered_in_time",
    "overdue",
    "answered_offline",
    "replied",
    "quality_count",
    "templated",
    "rated",
    "rated_positive",
    "deleted_by_page",
)


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
    rows = await core(
        session,
        select(T.c.page_id, T.c.topic, func.sum(T.c.appeals))
        .where(T.c.page_id.in_(ids), T.c.day >= split.first_day, T.c.day < split.end_day)
        .group_by(T.c.page_id, T.c.topic),
    )
    for pid, topic, count in rows.all():
        topics = figures[int(pid)].topics
        topics[str(topic)] = topics.get(str(topic), 0) + int(count)
    rows = await core(
        session,
        select(H.c.kind, H.c.page_id, H.c.bucket, func.sum(H.c.count))
        .where(
            H.c.page_id.in_(ids),
            H.c.kind.in_([kind for kind, _, _ in FRT_KINDS]),
            H.c.day >= split.first_day,
            H.c.day < split.end_day,
            H.c.settle_day < split.at_day,
        )
        .group_by(H.c.kind, H.c.page_id, H.c.bucket),
    )
    for kind, pid, bucket, count in rows.all():
        histograms[int(kind)][int(pid)][int(bucket)] += int(count)


async def _live_conditions(
    session: AsyncSession, ids: list[int], split: _Split
) -> list[tuple[ColumnElement[bool], bool]]:
    """Appeals computed row by row: the edges, and whole-day appeals not settled before `at`.

    Each with whether its topics are needed (whole days have theirs in the topic rollup).
    """
    conditions: list[tuple[ColumnElement[bool], bool]] = [
        (and_(A.page_id.in_(ids), A.received_at >= start, A.received_at < stop), True)
        for start, stop in split.edges
    ]
    if split.whole_days:
        rows = await core(
            session,
            select(R.c.settle_day)
            .where(
                R.c.page_id.in_(ids),
                R.c.day >= split.first_day,
                R.c.day < split.end_day,
                R.c.settle_day >= split.at_day,
            )
            .distinct(),
        )
        # The settle days that occur: exact index seeks instead of a scan of later days.
        settle_days = sorted(int(day) for (day,) in rows.all())
        if settle_days:
            conditions.append(
                (
                    and_(
                        A.page_id.in_(ids),
                        A.settle_day.in_(settle_days),
                        A.received_at >= day_start(split.first_day),
                        A.received_at < day_start(split.end_day),
                    ),
                    False,
                )
            )
    return conditions


async def _add_rows(
    session: AsyncSession,
    where: ColumnElement[bool],
    at: datetime,
    figures: dict[int, Figures],
    histograms: dict[int, dict[int, dict[int, int]]],
    *,
    topics: bool,
) -> None:
    """Add the figures of the appeals matching `where`, evaluated at `at` row by row."""
    where = and_(where, A.excluded == false())
    conditions = _conditions(at)
    replied = conditions["replied"]
    columns = [func.count().label("appeals")]
    columns += [_count(condition).label(name) for name, condition in conditions.items()]
    columns.append(
        func.coalesce(func.sum(case((conditions["quality_count"], quality_at(at)))), 0.0).label(
            "quality_sum"
        )
    )
    rows = await core(session, select(A.page_id, *columns).where(where).group_by(A.page_id))
    for row in rows.all():
        data = row._mapping
        page = figures[int(data["page_id"])]
        page.appeals += int(data["appeals"])
        page.quality_sum += float(data["quality_sum"] or 0.0)
        for name in conditions:
            setattr(page, name, getattr(page, name) + int(data[name]))
    if topics:
        rows = await core(
            session,
            select(A.page_id, A.topic, func.count()).where(where).group_by(A.page_id, A.topic),
        )
        for pid, topic, count in rows.all():
            counts = figures[int(pid)].topics
            counts[str(topic)] = counts.get(str(topic), 0) + int(count)
    for kind, value, bucket in FRT_KINDS:
        rows = await core(
            session,
            select(A.page_id, bucket, func.count())
            .where(where, replied, value.is_not(None))
            .group_by(A.page_id, bucket),
        )
        for pid, number, count in rows.all():
            histograms[kind][int(pid)][int(number)] += int(count)


async def _quantiles(
    session: AsyncSession,
    value: Any,
    bucket: Any,
    histograms: dict[int, dict[int, int]],
    groups: Sequence[Sequence[int]],
    since: datetime,
    until: datetime,
    at: datetime,
) -> list[tuple[float | None, float | None]]:
    """(median, p90) of `value` for each group of pages from their exact bucket histograms.

    The histogram gives the bucket and the rank inside it of every wanted order statistic;
    only those ranks are read, with `ORDER BY value LIMIT … OFFSET …` inside the bucket.
    """
    results: list[tuple[float | None, float | None]] = []
    for group in groups:
        merged: dict[int, int] = defaultdict(int)
        for pid in group:
            for number, count in histograms[pid].items():
                merged[number] += count
        total = sum(merged.values())
        wanted = sorted(median_ranks(total) | p90_ranks(total))
        places: dict[int, list[int]] = defaultdict(list)  # bucket -> ranks inside it
        where_rank: dict[int, tuple[int, int]] = {}
        start = 0
        for number in sorted(merged):
            count = merged[number]
            for rank in wanted:
                if start <= rank < start + count:
                    places[number].append(rank - start)
                    where_rank[rank] = (number, rank - start)
            start += count
        answered = (
            A.page_id.in_(list(group)),
            A.received_at >= since,
            A.received_at < until,
            A.excluded == false(),
            A.first_response_at <= at,
            value.is_not(None),
        )
        found_inside: dict[tuple[int, int], float] = {}
        for number, inside in places.items():
            low, high = min(inside), max(inside)
            rows = await core(
                session,
                select(value)
                .where(*answered, bucket == number)
                .order_by(value)
                .limit(high - low + 1)
                .offset(low),
            )
            for offset, (item,) in enumerate(rows.all()):
                found_inside[(number, low + offset)] = float(item)
        try:
            found = {rank: found_inside[place] for rank, place in where_rank.items()}
        except KeyError:
            # Another worker committed between the histogram and these reads (PostgreSQL, READ
            # COMMITTED): fall back to one consistent read of the sorted values.
            logger.info("quantiles moved under a concurrent write; reading them in one pass")
            rows = await core(session, select(value).where(*answered).order_by(value))
            values = [float(item) for (item,) in rows.all()]
            results.append(
                (
                    median_of(values.__getitem__, len(values)),
                    p90_of(values.__getitem__, len(values)),
                )
            )
            continue
        results.append((median_of(found.__getitem__, total), p90_of(found.__getitem__, total)))
    return results


def _set_times(figures: Figures, attribute: str, median: float | None, p90: float | None) -> None:
    if attribute == "frt":
        figures.frt_median_s, figures.frt_p90_s = median, p90
    else:
        figures.frt_median_work_s = median


# -- per-day series for the chart ---------------------------------------------------------------


@dataclass
class DayRow:
    """One local day of the chart: appeals received that day by their status at `at`."""

    day: date
    appeals: int
    in_time: int
    late: int
    overdue: int
    pending: int
    frt_median_s: float | None
    frt_bins: tuple[int, ...]  # FRT distribution over FRT_BINS_H (+ one open bin)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        data["frt_bins"] = list(self.frt_bins)
        return data


async def daily_series(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_id: int | None = None,
    tz: str,
) -> list[DayRow]:
    """Per local day of `tz` in `[since, until)`: in time / late / overdue / pending, FRT median."""
    since, until, at = _aware(since, "since"), _aware(until, "until"), _aware(at, "at")
    zone = ZoneInfo(tz)
    page_ids = [p.id for p in await _report_pages(session, page_id) if p.id is not None]
    conditions = _conditions(at)
    replied = conditions["replied"]
    bounds = [bound * 3600 for bound in FRT_BINS_H]
    bin_conditions: list[ColumnElement[bool]] = []
    lower: float | None = None
    for upper in [*bounds, None]:
        parts = [replied]
        if lower is not None:
            parts.append(A.frt_s >= lower)
        if upper is not None:
            parts.append(A.frt_s < upper)
        bin_conditions.append(and_(*parts))
        lower = upper
    rows: list[DayRow] = []
    known = known_until(until, at)
    day = since.astimezone(zone).date()
    while True:
        start = max(datetime.combine(day, datetime.min.time(), zone).astimezone(UTC), since)
        # Days after `at` are listed with nothing in them: nothing received then is known.
        end = min(
            datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC),
            known,
        )
        if start >= until:
            break
        counts = Figures()
        bins = [0] * len(bin_conditions)
        for pid in page_ids:
            figures = await _page_counts(session, pid, start, end, at)
            counts.add(figures)
            if figures.replied:
                result = await core(
                    session,
                    select(*[_count(c) for c in bin_conditions]).where(_period(pid, start, end)),
                )
                for index, value in enumerate(result.one()):
                    bins[index] += int(value)
        median = None
        if counts.replied:
            ids = list(page_ids)

            def replied_on_day(pid: int, s: datetime = start, e: datetime = end) -> Any:
                return and_(_period(pid, s, e), A.first_response_at <= at)

            stats = _OrderStatistics(session, A.frt_s, replied_on_day, ids)
            await stats.load_histograms()
            [(median, _)] = await stats.quantiles([ids])
        rows.append(
            DayRow(
                day=day,
                appeals=counts.appeals,
                in_time=counts.answered_in_time,
                late=counts.answered_late,
                overdue=counts.overdue,
                pending=counts.pending,
                frt_median_s=median,
                frt_bins=tuple(bins),
            )
        )
        day += timedelta(days=1)
    return rows


# -- overdue appeals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueAppeal:
    """An appeal unanswered past its deadline at `at`, with what a press officer needs."""

    appeal_id: int
    page_id: int
    page_title: str | None
    received_at: datetime
    sla_deadline: datetime
    overdue_s: float  # calendar seconds past the deadline at `at`
    topic: str
    urgent: bool
    link: str | None
    citizen_name: str | None
    text: str


async def overdue_appeals(
    session: AsyncSession, *, at: datetime, page_id: int | None = None, limit: int = 50
) -> list[OverdueAppeal]:
    """Appeals overdue at `at` (unanswered, deadline passed), the most overdue first."""
    at = _aware(at, "at")
    query = (
        select(Appeal, Page.title, CitizenMessage.text)  # type: ignore[call-overload]
        .join(Page, Page.id == Appeal.page_id)
        .outerjoin(CitizenMessage, CitizenMessage.id == Appeal.first_message_id)
        .where(
            A.excluded == false(),
            A.received_at <= at,
            A.sla_deadline < at,
            or_(A.answered_at.is_(None), A.answered_at > at),
        )
        .order_by(A.sla_deadline, A.id)
        .limit(limit)
    )
    if page_id is not None:
        query = query.where(A.page_id == page_id)
    result: list[OverdueAppeal] = []
    for appeal, title, text in (await session.exec(query)).all():  # type: ignore[call-overload]
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
