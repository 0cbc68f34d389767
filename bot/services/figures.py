"""What a report is made of: the figures of a page or of all pages, and their JSON.

The figures are defined in docs/METRICS.md; `StatsReport.to_json` is the `otklik stats --json`
object listed there (its field names are a contract with the press offices' tools: keep them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from bot.services.maturity import DEFAULT_WEIGHTS, MaturityWeights, maturity_index

if TYPE_CHECKING:
    from bot.services.health import PageHealth

# Upper bounds (hours, calendar) of the FRT distribution bars in the chart; the last is open.
FRT_BINS_H: tuple[float, ...] = (1, 4, 8, 24, 72)

SHARE_DIGITS = 4
QUALITY_DIGITS = 2


@dataclass
class Figures:
    """The figures of one page or of all pages (docs/METRICS.md)."""

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
    # The final-answer stage (bot/services/final_stage.py); appeals recorded before it existed
    # have no final deadline and are in none of these.
    final_answered: int = 0
    final_in_time: int = 0
    final_late: int = 0
    final_overdue: int = 0
    final_pending: int = 0
    formal_replies: int = 0  # final answers that are «отписка»
    reopened: int = 0  # re-opened by a 👎 or a dissatisfied return, waiting or answered again

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
    def expired(self) -> int:
        """The base of `within_sla_share`: answered, or unanswered past the deadline."""
        return self.answered_in_time + self.answered_late + self.overdue

    @property
    def final_expired(self) -> int:
        """The base of `final_within_deadline_share`: final answer given or deadline passed."""
        return self.final_in_time + self.final_late + self.final_overdue

    @property
    def final_within_deadline_share(self) -> float | None:
        return _share(self.final_in_time, self.final_expired)

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
            "final_answered",
            "final_in_time",
            "final_late",
            "final_overdue",
            "final_pending",
            "formal_replies",
            "reopened",
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
            "final_answered": self.final_answered,
            "final_in_time": self.final_in_time,
            "final_late": self.final_late,
            "final_overdue": self.final_overdue,
            "final_pending": self.final_pending,
            "final_within_deadline_share": self.final_within_deadline_share,
            "formal_replies": self.formal_replies,
            "reopened": self.reopened,
            "topics": dict(sorted(self.topics.items(), key=lambda item: (-item[1], item[0]))),
        }


@dataclass
class PageFigures:
    page_id: int
    platform: str
    title: str | None
    figures: Figures
    # Page health for the same period (bot/services/health.py), set by the report use case.
    health: PageHealth | None = None


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
        """The `otklik stats --json` object (its fields: docs/METRICS.md)."""
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
                    "health": page.health.as_json() if page.health is not None else None,
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
    frt_median_work_s: float | None = None  # the same median in working seconds

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        data["frt_bins"] = list(self.frt_bins)
        return data


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
