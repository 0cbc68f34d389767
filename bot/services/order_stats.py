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
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, tuple_
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.engine import core

logger = logging.getLogger(__name__)

Histogram = Mapping[int, int]  # bucket -> how many values fall into it


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
        logger.info("quantiles moved under a concurrent write; reading them in one pass")
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
    for number in sorted(counts):
        count = counts[number]
        for rank in wanted:
            if start <= rank < start + count:
                where_rank[rank] = (number, rank - start)
        start += count
    return total, where_rank


async def median_p90_by_group(
    session: AsyncSession,
    value: Any,
    bucket: Any,
    group: Any,
    histograms: Mapping[int, Histogram],
    where: ColumnElement[bool],
) -> dict[int, tuple[float | None, float | None]]:
    """`median_p90` of every group (a value of the column `group`, e.g. a page) in one query.

    The wanted ranks are numbered inside their (group, bucket) with `row_number()`, so only the
    buckets holding them are sorted and only those rows come back: one statement however many
    pages a report has (a dashboard of 1,000 pages), instead of a few per page.
    """
    plans = {key: _places(counts) for key, counts in histograms.items()}
    pairs = sorted(
        {(key, place[0]) for key, (_, ranks) in plans.items() for place in ranks.values()}
    )
    triples = sorted(
        {
            (key, number, inside + 1)
            for key, (_, ranks) in plans.items()
            for number, inside in ranks.values()
        }
    )
    found: dict[tuple[int, int, int], float] = {}
    # Chunks keep the statement under the databases' parameter limits.
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        keys = {key for key, _ in chunk}
        numbered = (
            select(
                group.label("grp"),
                bucket.label("bkt"),
                value.label("val"),
                func.row_number().over(partition_by=(group, bucket), order_by=value).label("rn"),
            )
            .where(where, value.is_not(None), tuple_(group, bucket).in_(chunk))
            .subquery()
        )
        wanted = [triple for triple in triples if triple[0] in keys]
        rows = await core(
            session,
            select(numbered.c.grp, numbered.c.bkt, numbered.c.rn, numbered.c.val).where(
                tuple_(numbered.c.grp, numbered.c.bkt, numbered.c.rn).in_(wanted)
            ),
        )
        for key, number, rank, item in rows.all():
            found[(int(key), int(number), int(rank))] = float(item)
    result: dict[int, tuple[float | None, float | None]] = {}
    for key, (total, ranks) in plans.items():
        try:
            values = {rank: found[(key, *place[:1], place[1] + 1)] for rank, place in ranks.items()}
        except KeyError:
            # A concurrent commit moved the ranks (PostgreSQL, READ COMMITTED): one group at a
            # time, with the fallback of `median_p90`.
            logger.info("quantiles moved under a concurrent write; reading group %r again", key)
            result[key] = await median_p90(
                session, value, bucket, histograms[key], and_(where, group == key)
            )
            continue
        result[key] = median_of(values.__getitem__, total), p90_of(values.__getitem__, total)
    return result
