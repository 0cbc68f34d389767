"""Keys of the report rollups: UTC day numbers, the settle moment and the FRT histogram bucket.

Pure functions without model imports, so that `storage.models` can derive its columns with them
and `storage.rollup` can group by them (docs/METRICS.md sec. 6).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)

# FRT histogram buckets: whole minutes below 2**FRT_BITS, then 2**(FRT_BITS-1) buckets per
# doubling (about 3-6 % wide). Any monotone bucketing gives exact order statistics; this one
# keeps both the histogram per day and the rows of one bucket small.
FRT_BITS = 4


def day_number(moment: datetime) -> int:
    """Days since 1970-01-01 of the UTC day holding `moment` (floor, also before 1970)."""
    return (moment.astimezone(UTC) - EPOCH) // DAY


def day_start(day: int) -> datetime:
    """The UTC midnight that starts day number `day`."""
    return EPOCH + day * DAY


def settle_moment(
    *,
    answered_at: datetime | None,
    first_response_at: datetime | None,
    final_response_at: datetime | None = None,
    reopened_at: datetime | None = None,
    rating: int | None,
    rated_at: datetime | None,
    sla_deadline: datetime,
) -> datetime:
    """The last moment at which the appeal's figures in a report can still depend on `at`.

    For every `at` strictly after it the appeal's status, FRT sample membership, quality and
    rating counts equal their final values: answered (`answered_at <= at`), replied
    (`first_response_at <= at`), the scored answer (the final one once `final_response_at <=
    at`, the first one before), re-opened (`reopened_at`), rated (`rated_at <= at`), and,
    while unanswered, overdue (`sla_deadline < at`). Strictness covers both the `<=` and the
    `<` comparisons.
    """
    moments = [
        m for m in (answered_at, first_response_at, final_response_at, reopened_at) if m is not None
    ]
    if rating is not None and rated_at is not None:
        moments.append(rated_at)
    if answered_at is None:
        moments.append(sla_deadline)
    return max(moments)


def frt_bucket(seconds: float | None) -> int | None:
    """Monotone (non-decreasing) integer bucket of a response time in seconds."""
    if seconds is None:
        return None
    if seconds < 0:
        return -1 - _positive_bucket(-seconds)
    return _positive_bucket(seconds)


def _positive_bucket(seconds: float) -> int:
    minutes = int(seconds // 60)
    if minutes < 1 << FRT_BITS:
        return minutes
    shift = minutes.bit_length() - FRT_BITS
    return (shift << (FRT_BITS - 1)) + (minutes >> shift)
