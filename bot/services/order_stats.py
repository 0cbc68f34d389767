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

from sqlalchemy import ColumnElement, func, select
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
        logger.info("квантили сдвинулись из-за одновременной записи; читаем их за один проход")
        rows = await core(session, select(value).where(*rows_of).order_by(value))
        values = [float(item) for (item,) in rows.all()]
        return median_of(values.__getitem__, len(values)), p90_of(values.__getitem__, len(values))
    return median_of(found.__getitem__, total), p90_of(found.__getitem__, total)
