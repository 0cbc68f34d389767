"""The learned part of the classifier: three linear heads over the blocks of bot.text.features.

Columns of every weight matrix: 0 = appeal (logistic), 1..12 = topics (softmax over the twelve
codes), 13 = urgent (logistic). A text's input is
`[sparse names present, each 1/sqrt(k)] ++ (dense − mean) / scale ++ embedding · emb_scale`;
a head's score is that input times its column plus its bias. The appeal and urgency decisions
are «score > shift»: the shifts move the thresholds to where the asymmetric costs put them
(a missed appeal or emergency costs far more than a false one), chosen by cross-validation.
A text whose urgency score clears the shift by `danger_margin` is an appeal whatever the appeal
head says: a report of a fire, gas or an accident on the page is a plea for help.

Stored inside the model JSON as base64 little-endian float32 arrays (compact; the same weights
give the same bytes, so `otklik train` can tell an unchanged model).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.text.embeddings import DIM
from bot.text.features import DENSE_NAMES, TOPICS, TextFeatures, WordFeatures

__all__ = ["HEADS", "LinearModel", "Scores", "decode_array", "encode_array"]

HEADS = 1 + len(TOPICS) + 1
_CACHE_LIMIT = 200_000
_TOPIC = slice(1, 1 + len(TOPICS))

Matrix = npt.NDArray[np.float32]
Projection = npt.NDArray[np.float64]


def encode_array(array: npt.NDArray[Any]) -> str:
    """Base64 of the little-endian float32 bytes of an array."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def decode_array(text: str, shape: tuple[int, ...]) -> Matrix:
    """Inverse of encode_array; ValueError if the size does not fit the shape."""
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    values = np.frombuffer(raw, dtype="<f4")
    if values.size != math.prod(shape):
        raise ValueError(f"array of {values.size} values does not fit the shape {shape}")
    return values.reshape(shape).astype(np.float32)


@dataclass(frozen=True)
class Scores:
    """Raw head outputs for one text."""

    appeal: float  # logit of «appeal», already shifted: > 0 means an appeal
    topics: npt.NDArray[np.float64]  # softmax logits, TOPICS order
    urgent: float  # logit of «urgent», shifted: > 0 means urgent (for an appeal)

    def is_appeal(self, danger_margin: float) -> bool:
        """An appeal by the appeal head, or a clear danger report (a plea for help as such)."""
        return self.appeal > 0 or self.urgent > danger_margin

    def appeal_probability(self, temperature: float = 1.0) -> float:
        """The logistic of the shifted appeal score (0.5 at the decision boundary)."""
        return 1.0 / (1.0 + math.exp(-max(min(temperature * self.appeal, 30.0), -30.0)))


class LinearModel:
    """Weights of the three heads; immutable after construction."""

    def __init__(
        self,
        vocabulary: Sequence[str],
        sparse: Matrix,
        dense: Matrix,
        embedding: Matrix,
        bias: Matrix,
        dense_mean: Matrix,
        dense_scale: Matrix,
        emb_scale: float,
        appeal_shift: float,
        urgent_shift: float,
        danger_margin: float = 1e9,
        appeal_temperature: float = 1.0,
    ) -> None:
        """Build from the arrays (shapes: F×HEADS, D×HEADS, DIM×HEADS, HEADS, D, D)."""
        self.vocabulary = tuple(vocabulary)
        self.index = {name: number for number, name in enumerate(self.vocabulary)}
        # Per word (the featurizer's cached objects): its known sparse columns and its navec
        # vector's projection onto the heads.
        self._word_cache: dict[WordFeatures, tuple[tuple[int, ...], Projection | None]] = {}
        if sparse.shape != (len(self.vocabulary), HEADS):
            raise ValueError("sparse weights do not match the vocabulary")
        if dense.shape != (len(DENSE_NAMES), HEADS) or embedding.shape != (DIM, HEADS):
            raise ValueError("dense or embedding weights have the wrong shape")
        self.sparse = sparse
        self.dense = dense
        self.embedding = embedding
        self.bias = bias.astype(np.float64)
        self.dense_mean = dense_mean.astype(np.float64)
        self.dense_scale = dense_scale.astype(np.float64)
        self.emb_scale = float(emb_scale)
        self.appeal_shift = float(appeal_shift)
        self.urgent_shift = float(urgent_shift)
        self.danger_margin = float(danger_margin)
        # Confidence = logistic(temperature × shifted appeal score); the temperature is fitted
        # on out-of-fold scores, because in-sample scores of a fitted model are overconfident.
        self.appeal_temperature = float(appeal_temperature)
        # The dense standardisation folded into the dense weights and the bias, and the
        # embedding scale into the embedding weights: a text costs one small product.
        self._bias_folded = self.bias - (self.dense_mean / self.dense_scale) @ self.dense
        self._dense_folded = self.dense.astype(np.float64) / self.dense_scale[:, None]
        self._embedding_scaled = self.embedding.astype(np.float64) * self.emb_scale
        self._ones = np.ones(len(self.vocabulary))

    def _word(self, word: WordFeatures) -> tuple[tuple[int, ...], Projection | None]:
        """A word's known sparse columns and its vector's projection onto the heads, cached."""
        entry = self._word_cache.get(word)
        if entry is None:
            index = self.index
            ids = tuple(index[name] for name in word.names if name in index)
            projection = None
            if word.vector is not None:
                projection = word.vector.astype(np.float64) @ self._embedding_scaled
            entry = (ids, projection)
            if len(self._word_cache) > _CACHE_LIMIT:
                self._word_cache.clear()
            self._word_cache[word] = entry
        return entry

    def sparse_ids(self, features: TextFeatures) -> list[int]:
        """Column numbers of the text's known sparse names, distinct and sorted."""
        ids: set[int] = set()
        for word in features.words:
            ids.update(self._word(word)[0])
        index = self.index
        for name in features.extra:
            column = index.get(name)
            if column is not None:
                ids.add(column)
        return sorted(ids)

    def dense_input(self, dense: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Standardised dense block."""
        return (dense - self.dense_mean) / self.dense_scale

    def scores(self, features: TextFeatures) -> Scores:
        """Score one text.

        The embedding block is the mean of the words' vectors and the heads are linear, so its
        share is the mean of the words' cached projections (14 numbers each), not a 300-d mean.
        """
        cache = self._word_cache
        groups = []
        projections = []
        for word in features.words:
            columns, projection = cache.get(word) or self._word(word)
            groups.append(columns)
            if projection is not None:
                projections.append(projection)
        known = [column for column in map(self.index.get, features.extra) if column is not None]
        ids = set().union(*groups, known)
        total = self._bias_folded + features.dense @ self._dense_folded
        if projections:
            total += sum(projections) / len(projections)
        if ids:
            rows = self.sparse.take(np.fromiter(ids, np.intp, len(ids)), axis=0)
            # Each present name weighs 1/sqrt(k); a matrix-vector product sums the rows fastest,
            # in float64 (the float32 rows are widened), so their order does not matter.
            total += (self._ones[: len(ids)] @ rows) / math.sqrt(len(ids))
        return Scores(
            appeal=float(total[0]) - self.appeal_shift,
            topics=total[_TOPIC],
            urgent=float(total[-1]) - self.urgent_shift,
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialise to JSON-able data."""
        return {
            "heads": ["appeal", *TOPICS, "urgent"],
            "dense_names": list(DENSE_NAMES),
            "vocabulary": list(self.vocabulary),
            "sparse": encode_array(self.sparse),
            "dense": encode_array(self.dense),
            "embedding": encode_array(self.embedding),
            "bias": encode_array(self.bias),
            "dense_mean": encode_array(self.dense_mean),
            "dense_scale": encode_array(self.dense_scale),
            "emb_scale": self.emb_scale,
            "appeal_shift": round(self.appeal_shift, 6),
            "urgent_shift": round(self.urgent_shift, 6),
            "danger_margin": round(self.danger_margin, 6),
            "appeal_temperature": round(self.appeal_temperature, 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearModel:
        """Load from to_dict() output; ValueError/KeyError/TypeError if it does not fit."""
        if data["heads"] != ["appeal", *TOPICS, "urgent"]:
            raise ValueError("the model's heads are not this version's topics")
        if data["dense_names"] != list(DENSE_NAMES):
            raise ValueError("the model's dense features are not this version's")
        vocabulary = data["vocabulary"]
        if not isinstance(vocabulary, list) or not all(isinstance(v, str) for v in vocabulary):
            raise TypeError("vocabulary must be a list of strings")
        dense_count = len(DENSE_NAMES)
        return cls(
            vocabulary,
            decode_array(data["sparse"], (len(vocabulary), HEADS)),
            decode_array(data["dense"], (dense_count, HEADS)),
            decode_array(data["embedding"], (DIM, HEADS)),
            decode_array(data["bias"], (HEADS,)),
            decode_array(data["dense_mean"], (dense_count,)),
            decode_array(data["dense_scale"], (dense_count,)),
            float(data["emb_scale"]),
            float(data["appeal_shift"]),
            float(data["urgent_shift"]),
            float(data["danger_margin"]),
            float(data.get("appeal_temperature", 1.0)),
        )
