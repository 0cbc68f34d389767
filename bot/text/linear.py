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

In memory the vocabulary (50,000+ sparse names) is not a tuple of str objects and a dict: it is
one UTF-8 blob of the names plus a sorted array of their stable 64-bit hashes and the matching
column numbers (`Vocabulary`), ~1.4 MB instead of ~10 MB. Per word the model caches its known
columns (an int32 array) and the row of its navec projection in one float64 matrix
(docs/CLASSIFIER.md, «Speed and memory»).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from bot.text.embeddings import DIM
from bot.text.features import DENSE_NAMES, TOPICS, TextFeatures, WordFeatures

__all__ = [
    "HEADS",
    "LinearModel",
    "Scores",
    "Vocabulary",
    "decode_array",
    "encode_array",
    "name_hashes",
]

logger = logging.getLogger(__name__)

HEADS = 1 + len(TOPICS) + 1
_CACHE_LIMIT = 200_000
# Rows of the per-word projection matrix allocated at first (it doubles when full).
_FIRST_ROWS = 1024
# The ones vector that sums a text's sparse rows; longer only for a text with more names.
_ONES = 1024
_NO_ROW = -1
# A cached word is one int: (start << 32 | count) << 24 | row + 1 — its `count` columns sit at
# `start` in one int32 array, its projection in `row` of one matrix (0 below: no vector).
_ROW_BITS = 24
_ROW_MASK = (1 << _ROW_BITS) - 1
_COUNT_MASK = (1 << 32) - 1
_START_SHIFT = _ROW_BITS + 32
assert _CACHE_LIMIT + 2 < _ROW_MASK, "a cached word's row must fit its bits"
_SENTINEL = np.uint64(2**64 - 1)
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


def name_hashes(names: Sequence[str]) -> npt.NDArray[np.uint64]:
    """Stable 64-bit hashes of names: BLAKE2b (8 bytes) of the UTF-8, the same in every process.

    Not hash(): it is salted per process, so a collision would come and go between runs.
    """
    digests = [hashlib.blake2b(name.encode(), digest_size=8).digest() for name in names]
    return np.frombuffer(b"".join(digests), "<u8").astype(np.uint64)


class Vocabulary(Sequence[str]):
    """The model's sparse names in their column order, kept compact and looked up by hash.

    The names live as one UTF-8 blob (decoded when the whole list is asked for: saving a model,
    fine-tuning); a look-up hashes the name (`name_hashes`) and finds it in a sorted array of the
    vocabulary's hashes. Two names with one hash (or a name twice) are found when the vocabulary
    is built: then it keeps a plain dict instead, with a warning, so that any model file works.
    A name outside the vocabulary that shares a 64-bit hash with one inside would take that
    name's column: with 50,000 names, a chance of 3·10⁻¹⁵ per look-up.
    """

    __slots__ = ("_blob", "_columns", "_fallback", "_hashes", "_size")

    def __init__(self, names: Iterable[str]) -> None:
        """Build from the names in column order; ValueError if one is not a str or has a newline."""
        listed = list(names)
        for name in listed:
            if not isinstance(name, str) or "\n" in name:
                raise ValueError(f"a vocabulary name must be a str without a newline: {name!r}")
        self._size = len(listed)
        self._blob = "\n".join(listed).encode()
        hashes = name_hashes(listed)
        order = np.argsort(hashes, kind="stable")
        # A sentinel above every hash: a search never runs off the end. A name that hashes to
        # it counts as a collision below.
        self._hashes = np.append(hashes[order], _SENTINEL)
        self._columns = np.append(order, _NO_ROW).astype(np.int32)
        self._fallback: dict[str, int] | None = None
        if bool(np.any(self._hashes[1:] == self._hashes[:-1])):
            self._fallback = {name: number for number, name in enumerate(listed)}
            logger.warning(
                "в словаре модели классификатора есть совпадения 64-битных отпечатков имён "
                "(или повторы имён): поиск идёт по обычному словарю, памяти нужно больше"
            )

    @property
    def hashed(self) -> bool:
        """Whether look-ups go through the hashes (False: a collision, a plain dict)."""
        return self._fallback is None

    def names(self) -> list[str]:
        """Every name, in column order (decoded from the blob at each call)."""
        return self._blob.decode().split("\n") if self._size else []

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    @overload
    def __getitem__(self, number: int) -> str: ...

    @overload
    def __getitem__(self, number: slice) -> list[str]: ...

    def __getitem__(self, number: int | slice) -> str | list[str]:
        """The name of a column (decodes the whole blob: for rare use)."""
        return self.names()[number]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.columns((name,)))

    def column(self, name: str) -> int | None:
        """The column of a name, None if the vocabulary does not have it."""
        found = self.columns((name,))
        return found[0] if found else None

    def columns(self, names: Sequence[str]) -> list[int]:
        """The columns of the names the vocabulary has, in the order of names (others left out)."""
        if self._fallback is not None:
            index = self._fallback
            return [index[name] for name in names if name in index]
        if not names:
            return []
        keys = name_hashes(names)
        positions = self._hashes.searchsorted(keys)
        found: list[int] = self._columns[positions[self._hashes[positions] == keys]].tolist()
        if _NO_ROW in found:  # an unknown name hashed to the sentinel itself (2⁻⁶⁴)
            found = [column for column in found if column != _NO_ROW]
        return found


class _Index(Mapping[str, int]):
    """A read-only name → column view of a Vocabulary (the dict the model once kept)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self._vocabulary = vocabulary

    def __getitem__(self, name: str) -> int:
        column = self._vocabulary.column(name)
        if column is None:
            raise KeyError(name)
        return column

    def __contains__(self, name: object) -> bool:
        return name in self._vocabulary

    def __iter__(self) -> Iterator[str]:
        return iter(self._vocabulary)

    def __len__(self) -> int:
        return len(self._vocabulary)


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
        if isinstance(vocabulary, Vocabulary):
            self.vocabulary = vocabulary
        else:
            self.vocabulary = Vocabulary(vocabulary)
        # Per word (the featurizer's cached objects) one int (_ROW_BITS above): where its known
        # sparse columns sit in self._word_columns (int32, in the order of its names) and the
        # row of its navec vector's projection onto the heads in self._projections. No tuple,
        # no int per column, no ndarray per word: ~400 bytes a word less.
        self._word_cache: dict[WordFeatures, int] = {}
        self._word_columns = array("i")
        self._projections: Projection = np.empty((_FIRST_ROWS, HEADS))
        self._rows = 0
        # Bumped when the per-word cache is emptied: a text scored meanwhile starts again.
        self._generation = 0
        self._lock = threading.Lock()
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
        self._ones = np.ones(min(len(self.vocabulary), _ONES))

    @property
    def index(self) -> Mapping[str, int]:
        """Name → column, as a read-only view of the vocabulary (no dict is kept)."""
        return _Index(self.vocabulary)

    def _word(self, word: WordFeatures) -> int:
        """A word's cached entry (its columns' place and its projection's row; _ROW_BITS)."""
        entry = self._word_cache.get(word)
        if entry is None:
            columns = self.vocabulary.columns(word.names)
            vector = word.vector
            projection = None
            if vector is not None:
                projection = vector.astype(np.float64) @ self._embedding_scaled
            with self._lock:
                if len(self._word_cache) > _CACHE_LIMIT:
                    self._generation += 1
                    self._word_cache = {}
                    self._word_columns = array("i")
                    self._projections = np.empty((_FIRST_ROWS, HEADS))
                    self._rows = 0
                row = _NO_ROW
                if projection is not None:
                    row = self._rows
                    if row == len(self._projections):
                        grown = np.empty((2 * row, HEADS))
                        grown[:row] = self._projections
                        self._projections = grown
                    self._projections[row] = projection
                    self._rows = row + 1
                start = len(self._word_columns)
                self._word_columns.extend(columns)
                entry = ((start << 32 | len(columns)) << _ROW_BITS) | (row + 1)
                self._word_cache[word] = entry
        return entry

    def sparse_ids(self, features: TextFeatures) -> list[int]:
        """Column numbers of the text's known sparse names, distinct and sorted."""
        generation = self._generation
        ids: set[int] = set()
        for word in features.words:
            entry = self._word(word)
            start = entry >> _START_SHIFT
            ids.update(self._word_columns[start : start + (entry >> _ROW_BITS & _COUNT_MASK)])
        if self._generation != generation:  # the cache was emptied meanwhile (another thread)
            return self.sparse_ids(features)
        ids.update(self.vocabulary.columns(features.extra))
        return sorted(ids)

    def dense_input(self, dense: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Standardised dense block."""
        return (dense - self.dense_mean) / self.dense_scale

    def scores(self, features: TextFeatures) -> Scores:
        """Score one text.

        The embedding block is the mean of the words' vectors and the heads are linear, so its
        share is the mean of the words' cached projections (14 numbers each), not a 300-d mean.
        """
        generation = self._generation
        cache = self._word_cache
        pool = self._word_columns
        groups = []
        projected = []
        for word in features.words:
            entry = cache.get(word) or self._word(word)
            start = entry >> _START_SHIFT
            groups.append(pool[start : start + (entry >> _ROW_BITS & _COUNT_MASK)])
            row = entry & _ROW_MASK
            if row:
                projected.append(row - 1)
        # Read before the check: the cache is emptied (generation bumped) before new arrays
        # replace these; a grown matrix keeps every row.
        projections = self._projections
        if self._generation != generation:  # the cache was emptied meanwhile (another thread)
            return self.scores(features)
        known = self.vocabulary.columns(features.extra)
        ids = set().union(*groups, known)
        total = self._bias_folded + features.dense @ self._dense_folded
        if projected:
            # Summed row after row in order, as sum() over the rows would (the same bits).
            total += projections.take(projected, axis=0).sum(axis=0) / len(projected)
        if ids:
            rows = self.sparse.take(np.fromiter(ids, np.intp, len(ids)), axis=0)
            # Each present name weighs 1/sqrt(k); a matrix-vector product sums the rows fastest,
            # in float64 (the float32 rows are widened), so their order does not matter.
            ones = self._ones if len(ids) <= len(self._ones) else np.ones(len(ids))
            total += (ones[: len(ids)] @ rows) / math.sqrt(len(ids))
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
            "vocabulary": self.vocabulary.names(),
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
