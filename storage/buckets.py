"""Keys of the report rollups: UTC day numbers, the settle moment and the FRT histogram bucket.

Pure functions without model imports, so that `storage.models` can derive its columns with them
and `storage.rollup` can group by them (docs/METRICS.md sec. 6).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

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


def month_of(day: int) -> int:
    """Months since January 1970 of the UTC month holding day number `day`."""
    moment = day_start(day)
    return (moment.year - 1970) * 12 + moment.month - 1


def month_days(month: int) -> tuple[int, int]:
    """The day numbers `[first, end)` of month number `month` (`month_of`)."""
    year, index = divmod(month, 12)
    first = datetime(1970 + year, index + 1, 1, tzinfo=UTC)
    year, index = divmod(month + 1, 12)
    end = datetime(1970 + year, index + 1, 1, tzinfo=UTC)
    return day_number(first), day_number(end)


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
    `<` comparisons. The final-answer stage settles on its own (`final_settle_moment`).
    """
    moments = [
        m for m in (answered_at, first_response_at, final_response_at, reopened_at) if m is not None
    ]
    if rating is not None and rated_at is not None:
        moments.append(rated_at)
    if answered_at is None:
        moments.append(sla_deadline)
    return max(moments)


def final_settle_moment(
    *,
    final_deadline: datetime | None,
    final_response_at: datetime | None,
    answered_offline_at: datetime | None,
    reopened_at: datetime | None,
    reopen_deadline: datetime | None,
    reanswered_at: datetime | None,
) -> datetime | None:
    """The last moment at which the appeal's final-answer stage can still depend on `at`.

    None without a final deadline (the stage is counted nowhere). Otherwise, for every `at`
    strictly after it the stage (bot/services/final_stage.py `_stage`) is final: answered by the
    earlier of the final reply and «Ответили вне соцсети», else overdue once `final_deadline`
    has passed; after a re-open (`reopened_at`) answered by `reanswered_at`, else overdue once
    `reopen_deadline` has passed. Kept apart from `settle_moment`, whose figures settle within
    a day or two: a stage waits up to ten days for its answer, and the first-reaction rollups
    need not wait with it.
    """
    if final_deadline is None:
        return None
    answers = [m for m in (final_response_at, answered_offline_at) if m is not None]
    moments = [min(answers) if answers else final_deadline]
    if reopened_at is not None and reopen_deadline is not None:
        moments += [reopened_at, reanswered_at if reanswered_at is not None else reopen_deadline]
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


def derived_appeal_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """The appeal columns derived from the others, for every writer (ORM flush or plain SQL).

    `answered_at` is min(first_response_at, answered_offline_at), the moment the appeal counts
    as answered, so that reports range over one indexed column; `settle_day` and the FRT
    buckets are the report rollups' keys (above).
    """
    answered = [
        moment
        for moment in (values.get("first_response_at"), values.get("answered_offline_at"))
        if moment is not None
    ]
    answered_at = min(answered) if answered else None
    settle = None
    if values.get("sla_deadline") is not None:
        settle = day_number(
            settle_moment(
                answered_at=answered_at,
                first_response_at=values.get("first_response_at"),
                final_response_at=values.get("final_response_at"),
                reopened_at=values.get("reopened_at"),
                rating=values.get("rating"),
                rated_at=values.get("rated_at"),
                sla_deadline=values["sla_deadline"],
            )
        )
    final_settle = final_settle_moment(
        final_deadline=values.get("final_deadline"),
        final_response_at=values.get("final_response_at"),
        answered_offline_at=values.get("answered_offline_at"),
        reopened_at=values.get("reopened_at"),
        reopen_deadline=values.get("reopen_deadline"),
        reanswered_at=values.get("reanswered_at"),
    )
    return {
        "answered_at": answered_at,
        "settle_day": settle,
        "final_settle_day": None if final_settle is None else day_number(final_settle),
        "frt_bucket": frt_bucket(values.get("frt_s")),
        "frt_work_bucket": frt_bucket(values.get("frt_work_s")),
    }


# What `derived_appeal_columns` reads.
DERIVED_FROM = (
    "first_response_at",
    "answered_offline_at",
    "final_response_at",
    "reopened_at",
    "rating",
    "rated_at",
    "sla_deadline",
    "final_deadline",
    "reopen_deadline",
    "reanswered_at",
    "frt_s",
    "frt_work_s",
)
