"""Exact order statistics (median, p90) of a column without sorting the whole period.

One engine for every report: a histogram of monotone buckets (storage/buckets.py `frt_bucket`,
kept on every appeal) tells which bucket holds each wanted rank and its rank inside the bucket;
only those ranks are read, with `ORDER BY value LIMIT … OFFSET …` inside the bucket. The
figures are exactly `statistics.median` and `statistics.quantiles(n=10, method="inclusive")[8]`
(docs/METRICS.md).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, bindparam, false, func, select, text
from sqlalchemy.sql.elements import TextClause
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.engine import core
from storage.types import UTCDateTime

logger = logging.getLogger(__name__)

Histogram = Mapping[int, int]  # bucket -> how many values fall into it

# Selects per UNION ALL statement (SQLite allows 500 by default).
UNION_PARTS = 200


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


def merged(histograms: Iterable[Histogram]) -> dict[int, int]:
    """The histogram of several histograms' values taken together."""
    total: dict[int, int] = defaultdict(int)
    for histogram in histograms:
        for bucket, count in histogram.items():
            total[bucket] += count
    return total


async def histogram(
    session: AsyncSession, value: Any, bucket: Any, where: ColumnElement[bool]
) -> dict[int, int]:
    """The bucket histogram of `value` over the rows matching `where`."""
    rows = await core(
        session,
        select(bucket, func.count()).where(where, value.is_not(None)).group_by(bucket),
    )
    return {int(number): int(count) for number, count in rows.all()}


async def median_p90(
    session: AsyncSession, value: Any, bucket: Any, counts: Histogram, where: ColumnElement[bool]
) -> tuple[float | None, float | None]:
    """(median, p90) of `value` over the rows matching `where`, whose histogram is `counts`."""
    total = sum(counts.values())
    wanted = sorted(median_ranks(total) | p90_ranks(total))
    places: dict[int, list[int]] = defaultdict(list)  # bucket -> ranks inside it
    where_rank: dict[int, tuple[int, int]] = {}
    start = 0
    for number in sorted(counts):
        count = counts[number]
        for rank in wanted:
            if start <= rank < start + count:
                places[number].append(rank - start)
                where_rank[rank] = (number, rank - start)
        start += count
    rows_of = (where, value.is_not(None))
    found_inside: dict[tuple[int, int], float] = {}
    for number, inside in places.items():
        low, high = min(inside), max(inside)
        rows = await core(
            session,
            select(value)
            .where(*rows_of, bucket == number)
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
        logger.info("квантили сдвинулись из-за одновременной записи; читаем их за один проход")
        rows = await core(session, select(value).where(*rows_of).order_by(value))
        values = [float(item) for (item,) in rows.all()]
        return median_of(values.__getitem__, len(values)), p90_of(values.__getitem__, len(values))
    return median_of(found.__getitem__, total), p90_of(found.__getitem__, total)


def _places(counts: Histogram) -> tuple[int, dict[int, tuple[int, int]]]:
    """The sample size and, per wanted rank, its (bucket, rank inside the bucket)."""
    total = sum(counts.values())
    wanted = sorted(median_ranks(total) | p90_ranks(total))
    where_rank: dict[int, tuple[int, int]] = {}
    start = 0
    index = 0  # the next wanted rank (ascending)
    for number in sorted(counts):
        if index == len(wanted):
            break
        count = counts[number]
        while index < len(wanted) and wanted[index] < start + count:
            if wanted[index] >= start:
                where_rank[wanted[index]] = (number, wanted[index] - start)
            index += 1
        start += count
    return total, where_rank


@dataclass(frozen=True)
class Rows:
    """The rows a report's order statistics range over: one table's rows received in
    `[since, until)`, not excluded, with a first reply known at `at` (docs/METRICS.md)."""

    since: datetime
    until: datetime
    at: datetime

    def condition(self, table: Any) -> ColumnElement[bool]:
        columns = table.c
        return and_(
            columns.received_at >= self.since,
            columns.received_at < self.until,
            columns.excluded == false(),
            columns.first_response_at <= self.at,
        )


@lru_cache(maxsize=64)
def _union(table: str, value: str, bucket: str, group: str, parts: int) -> TextClause:
    """`parts` rank reads as one UNION ALL text: each the `ORDER BY … LIMIT … OFFSET` seek
    inside one group's bucket, with parameters `:g<i>`, `:b<i>`, `:n<i>`, `:o<i>` and the
    period's `:since`, `:until`, `:at`, `:no`. Built once per shape: parsing the text and
    binding thousands of parameters into it cost more than the reads."""
    moments = UTCDateTime(timezone=True)
    return text(_union_sql(table, value, bucket, group, parts)).bindparams(
        bindparam("since", type_=moments),
        bindparam("until", type_=moments),
        bindparam("at", type_=moments),
        bindparam("no", type_=Boolean()),
    )


def _union_sql(table: str, value: str, bucket: str, group: str, parts: int) -> str:
    rows = (
        f"FROM {table} WHERE {table}.received_at >= :since AND {table}.received_at < :until"
        f" AND {table}.excluded = :no AND {table}.first_response_at <= :at"
        f" AND {table}.{value} IS NOT NULL"
    )
    return " UNION ALL ".join(
        f"SELECT {index} AS part, val FROM (SELECT {table}.{value} AS val {rows}"
        f" AND {table}.{group} = :g{index} AND {table}.{bucket} = :b{index}"
        f" ORDER BY {table}.{value} LIMIT :n{index} OFFSET :o{index}) AS part{index}"
        for index in range(parts)
    )


async def median_p90_by_group(
    session: AsyncSession,
    value: Any,
    bucket: Any,
    group: Any,
    histograms: Mapping[int, Histogram],
    rows: Rows,
) -> dict[int, tuple[float | None, float | None]]:
    """`median_p90` of every group (a value of the column `group`, e.g. a page) at once, over
    `rows` and `group == key`.

    The same index seeks as `median_p90` (`ORDER BY value LIMIT … OFFSET …` inside the bucket
    holding a wanted rank), joined with UNION ALL into a few statements however many pages a
    report has (a dashboard of 1,000 pages), instead of a few round trips per page. The
    statement is plain SQL text, the same for every report of the same size: building
    thousands of SQLAlchemy selects cost seconds. (A `row_number()` window over the wanted
    buckets was tried: it sorts every row of them and was ten times slower on SQLite.)
    """
    plans = {key: _places(counts) for key, counts in histograms.items()}
    reads: list[tuple[int, int, int, int]] = []  # (group, bucket, first rank inside, count)
    for key, (_, ranks) in plans.items():
        inside: dict[int, list[int]] = defaultdict(list)
        for number, rank in ranks.values():
            inside[number].append(rank)
        for number, wanted in sorted(inside.items()):
            reads.append((key, number, min(wanted), max(wanted) - min(wanted) + 1))
    table = value.table
    values: dict[tuple[int, int, int], float] = {}
    for start in range(0, len(reads), UNION_PARTS):
        chunk = reads[start : start + UNION_PARTS]
        statement = _union(table.name, value.name, bucket.name, group.name, len(chunk))
        params: dict[str, Any] = {
            "since": rows.since,
            "until": rows.until,
            "at": rows.at,
            "no": False,
        }
        for index, (key, number, low, count) in enumerate(chunk):
            params.update({f"g{index}": key, f"b{index}": number, f"n{index}": count})
            params[f"o{index}"] = low
        got: dict[int, list[float]] = defaultdict(list)
        for part, item in (await core(session, statement, [params])).all():
            got[int(part)].append(float(item))
        for index, (key, number, low, _) in enumerate(chunk):
            for offset, item in enumerate(sorted(got[index])):
                values[(key, number, low + offset)] = item
    result: dict[int, tuple[float | None, float | None]] = {}
    for key, (total, ranks) in plans.items():
        try:
            found = {rank: values[(key, *place)] for rank, place in ranks.items()}
        except KeyError:
            # A concurrent commit moved the ranks (PostgreSQL, READ COMMITTED): this group
            # again, with the fallback of `median_p90`.
            logger.info(
                "квантили сдвинулись из-за одновременной записи; группа %r читается заново", key
            )
            result[key] = await median_p90(
                session, value, bucket, histograms[key], and_(rows.condition(table), group == key)
            )
            continue
        result[key] = median_of(found.__getitem__, total), p90_of(found.__getitem__, total)
    return result
