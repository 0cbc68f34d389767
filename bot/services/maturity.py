"""The digital maturity index (0–100): a weighted mean of four shares (docs/METRICS.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MaturityWeights:
    """Relative weights of the index parts; they need not sum to 1 (the index divides by the sum).

    Defaults: answering at all and answering on time weigh most (they are what the regional
    "цифровая зрелость" scoring of feedback on official pages looks at first), then the quality
    of the answers, then the citizens' own ratings, which few citizens give.
    """

    answered: float = 0.30
    within_sla: float = 0.30
    quality: float = 0.25
    satisfaction: float = 0.15

    def __post_init__(self) -> None:
        parts = (self.answered, self.within_sla, self.quality, self.satisfaction)
        if any(weight < 0 for weight in parts) or sum(parts) <= 0:
            raise ValueError("maturity weights must be non-negative with a positive sum")


DEFAULT_WEIGHTS = MaturityWeights()


def maturity_index(
    answered_share: float | None,
    within_sla_share: float | None,
    quality_mean: float | None,
    csat: float | None,
    weights: MaturityWeights = DEFAULT_WEIGHTS,
) -> float | None:
    """100 × Σ wᵢ·xᵢ / Σ wᵢ over the parts that are defined; None without any appeal.

    `quality_mean` is 0..100 and is scaled to 0..1; the other parts are shares 0..1. A part that
    is undefined (no scored answer, nobody rated) is left out and the weights of the others are
    re-normalised, so a page is neither punished nor rewarded for missing ratings.
    """
    if answered_share is None:
        return None
    parts = [
        (weights.answered, answered_share),
        (weights.within_sla, within_sla_share),
        (weights.quality, None if quality_mean is None else quality_mean / 100.0),
        (weights.satisfaction, csat),
    ]
    known = [(weight, value) for weight, value in parts if value is not None and weight > 0]
    total_weight = sum(weight for weight, _ in known)
    if total_weight <= 0:
        return None
    return round(100.0 * sum(weight * value for weight, value in known) / total_weight, 1)
