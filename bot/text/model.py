"""A small multinomial naive Bayes model over word stems, stored as JSON inside the package."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NaiveBayes", "Params"]


class NaiveBayes:
    """Multinomial naive Bayes with binarised features and Laplace smoothing."""

    def __init__(
        self, classes: Sequence[str], priors: Sequence[float], logp: dict[str, list[float]]
    ) -> None:
        """Build from per-class log priors and per-feature per-class log likelihoods."""
        self.classes = tuple(classes)
        self.priors = list(priors)
        self.logp = logp

    @classmethod
    def train(
        cls,
        samples: Iterable[tuple[Iterable[str], str]],
        classes: Sequence[str],
        alpha: float = 0.5,
    ) -> NaiveBayes:
        """Fit from (features, label) samples; labels outside classes are ignored."""
        class_docs: Counter[str] = Counter()
        counts: dict[str, Counter[str]] = {label: Counter() for label in classes}
        for features, label in samples:
            if label not in counts:
                continue
            class_docs[label] += 1
            counts[label].update(set(features))
        vocabulary = sorted({feature for counter in counts.values() for feature in counter})
        total_docs = sum(class_docs.values())
        priors = [
            math.log((class_docs[label] + 1) / (total_docs + len(classes))) for label in classes
        ]
        denominators = [sum(counts[label].values()) + alpha * len(vocabulary) for label in classes]
        logp = {
            feature: [
                round(math.log((counts[label][feature] + alpha) / denominator), 4)
                for label, denominator in zip(classes, denominators, strict=True)
            ]
            for feature in vocabulary
        }
        return cls(classes, priors, logp)

    def scores(self, features: Iterable[str]) -> list[float]:
        """Return the unnormalised log posterior of every class."""
        totals = list(self.priors)
        logp = self.logp
        width = len(totals)
        for feature in features:
            row = logp.get(feature)
            if row is not None:
                for index in range(width):
                    totals[index] += row[index]
        return totals

    def log_odds(self, features: Iterable[str]) -> float:
        """For a two-class model, return log P(second class) − log P(first class)."""
        first, second = self.scores(features)
        return second - first

    def to_dict(self) -> dict[str, Any]:
        """Serialise to plain JSON-able data."""
        return {
            "classes": list(self.classes),
            "priors": [round(p, 4) for p in self.priors],
            "logp": self.logp,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NaiveBayes:
        """Load from to_dict() output."""
        return cls(data["classes"], data["priors"], data["logp"])


@dataclass(frozen=True)
class Params:
    """How lexicon evidence and the model are combined (tuned by cross-validation)."""

    appeal_bias: float = -0.5
    appeal_model_weight: float = 0.5
    appeal_topic_weight: float = 0.2
    appeal_question_weight: float = 1.0
    appeal_request_weight: float = 1.0
    topic_model_weight: float = 0.5
    urgent_model_weight: float = 0.2
    urgent_threshold: float = 2.0

    def to_dict(self) -> dict[str, float]:
        """Serialise to JSON-able data."""
        return {
            "appeal_bias": self.appeal_bias,
            "appeal_model_weight": self.appeal_model_weight,
            "appeal_topic_weight": self.appeal_topic_weight,
            "appeal_question_weight": self.appeal_question_weight,
            "appeal_request_weight": self.appeal_request_weight,
            "topic_model_weight": self.topic_model_weight,
            "urgent_model_weight": self.urgent_model_weight,
            "urgent_threshold": self.urgent_threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> Params:
        """Load from to_dict() output, ignoring unknown keys."""
        known = {key: float(value) for key, value in data.items() if key in cls().to_dict()}
        return cls(**known)
