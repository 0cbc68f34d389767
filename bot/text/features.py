"""What the learned model sees of a text: n-grams, lexicon scores, danger concepts and navec.

Three blocks, the same for training and for classifying (one path):

- **sparse**: names of binary features — Snowball stems («w:»), stem bigrams («b:»), the first
  stem («f:», where «когда», «где», «будет ли» sit), character 3- and 4-grams of every word
  («c:», robust to typos and odd endings) and shape marks (a question mark, a plural imperative,
  talk to another commenter, CAPS, a short text);
- **dense**: lexicon scores (appeal cues, the twelve topics, urgency cues), the danger concepts
  of `urgent_concepts.tsv` (phrases found, and how close the text's words come to the concept's
  seed words in navec space), the length;
- **embedding**: the mean of the unit navec vectors of the text's words (300 numbers), which
  gives words the corpus never had a place near the ones it had.

Per-word work (stems, character n-grams, concept similarities) is cached, so a warm classifier
spends its time on a few dictionary look-ups and small numpy sums per text. The 300-d vectors are
not kept (1.2 KB a word): a linear model scores the mean of the words' projections onto its heads
instead (docs/CLASSIFIER.md, «Speed and memory»), and the embedding block is rebuilt for training.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from bot.text.embeddings import DIM, Embeddings
from bot.text.normalize import Analyzer

__all__ = ["CONCEPTS", "DENSE_NAMES", "Featurizer", "TextFeatures", "WordFeatures"]

TOPICS: tuple[str, ...] = (
    "housing",
    "roads",
    "transport",
    "amenities",
    "waste",
    "health",
    "education",
    "social",
    "ecology",
    "safety",
    "economy",
    "other",
)
CONCEPTS: tuple[str, ...] = (
    "gas",
    "fire",
    "trapped",
    "unconscious",
    "help_late",
    "child_danger",
    "animals",
    "collapse",
    "flooding",
    "no_heating",
    "no_water",
    "toxic",
    "wires",
    "medicine",
    "accident",
)
DENSE_NAMES: tuple[str, ...] = (
    "appeal_lexicon",
    "urgent_lexicon",
    *(f"topic:{topic}" for topic in TOPICS),
    *(f"concept:{concept}" for concept in CONCEPTS),
    *(f"near:{concept}" for concept in CONCEPTS),
    # Shared across concepts, so that a rare concept (few examples) still counts as danger.
    "concepts_total",
    "concepts_max",
    "near_max",
    "log_words",
)
_CONCEPT_OFFSET = 2 + len(TOPICS)
_NEAR_OFFSET = _CONCEPT_OFFSET + len(CONCEPTS)
_TOPIC_COLUMN = {topic: 2 + index for index, topic in enumerate(TOPICS)}
_CONCEPT_COLUMN = {concept: _CONCEPT_OFFSET + index for index, concept in enumerate(CONCEPTS)}
# Cosine similarity to a seed word below this is noise (unrelated words sit at 0.1–0.3).
_NEAR_FLOOR = 0.45
_CACHE_LIMIT = 200_000

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False, slots=True)
class WordFeatures:
    """Cached per-word material; compared and hashed by identity (models cache per word)."""

    stem: str
    # (concept number, closeness) where the word comes near a concept's seed words: the
    # max similarity above the floor, rescaled (float32 values); empty for most words.
    near: tuple[tuple[int, float], ...]
    word: str
    # Rebuilds the unit navec vector (None: the word has none). Not kept: 1.2 KB a word, and
    # only training needs it again; a model keeps the vector's projection onto its heads.
    source: Callable[[str], Vector | None] | None

    @property
    def names(self) -> tuple[str, ...]:
        """The word's sparse names: «w:» stem and «c:» character 3- and 4-grams."""
        # Built again at every call, not kept (~1 KB a word): a model caches their columns.
        marked = f"<{self.word}>"
        grams = {marked[i : i + n] for n in (3, 4) for i in range(len(marked) - n + 1)}
        return (f"w:{self.stem}", *sorted(f"c:{gram}" for gram in grams))

    @property
    def vector(self) -> Vector | None:
        """The word's unit navec vector (decoded again at every call)."""
        return None if self.source is None else self.source(self.word)


@dataclass(frozen=True)
class TextFeatures:
    """The three feature blocks of one text.

    The sparse names are kept as the per-word material (the cached objects, so that a model can
    cache their columns and projections per word) plus the text's own names (marks, bigrams,
    the first stem). The embedding block is computed when asked for: a linear model can score
    the words' cached projections instead (mean(vectors) @ W == mean(vectors @ W)).
    """

    words: tuple[WordFeatures, ...]
    extra: tuple[str, ...]
    dense: npt.NDArray[np.float64]

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        """The sparse names of each word."""
        return tuple(word.names for word in self.words)

    @cached_property
    def embedding(self) -> Vector:
        """The mean of the words' unit navec vectors (zeros if none has one)."""
        vectors = [word.vector for word in self.words if word.vector is not None]
        return np.mean(vectors, axis=0) if vectors else np.zeros(DIM, np.float32)

    @property
    def sparse(self) -> frozenset[str]:
        """Every sparse name present (binary features)."""
        names = set(self.extra)
        for word in self.words:
            names.update(word.names)
        return frozenset(names)


class Featurizer:
    """Turns analysed text into TextFeatures; caches per-word work (thread-safe enough)."""

    def __init__(
        self,
        analyzer: Analyzer,
        seeds: Sequence[tuple[str, str]],
        embeddings: Embeddings | None,
    ) -> None:
        """Seeds are (concept, word) pairs looked up in navec for the «near:» features."""
        self.analyzer = analyzer
        self.embeddings = embeddings
        self._cache: dict[str, WordFeatures] = {}
        self._lock = threading.Lock()
        self._source = self._lookup  # one bound method shared by the cached words
        self._seed_matrix: Vector | None = None
        self._seed_concepts: npt.NDArray[np.intp] = np.zeros(0, np.intp)
        if embeddings is not None:
            rows, owners = [], []
            for concept, word in seeds:
                vector = self._lookup(word)
                if vector is not None and concept in CONCEPTS:
                    rows.append(vector)
                    owners.append(CONCEPTS.index(concept))
            if rows:
                order = np.argsort(np.array(owners), kind="stable")
                self._seed_matrix = np.array(rows, np.float32)[order].T.copy()
                self._seed_concepts = np.array(owners, np.intp)[order]

    def _lookup(self, word: str) -> Vector | None:
        """The unit navec vector of a word (also tried in its dictionary form)."""
        if self.embeddings is None:
            return None
        vector = self.embeddings.get(word)
        if vector is None:
            lemma = self.analyzer.lemma(word)
            if lemma != word:
                vector = self.embeddings.get(lemma)
        if vector is None:
            return None
        norm = float(np.linalg.norm(vector))
        return (vector / norm).astype(np.float32) if norm > 0 else None

    def word(self, word: str, stem: str, cache: bool = True) -> WordFeatures:
        """Per-word material, cached (cache=False: the caller keeps it per word itself)."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        vector = self._lookup(word) if not word.isdigit() else None
        near: tuple[tuple[int, float], ...] = ()
        if vector is not None and self._seed_matrix is not None:
            similarity = vector @ self._seed_matrix
            closest = np.zeros(len(CONCEPTS), np.float32)
            np.maximum.at(closest, self._seed_concepts, similarity)
            closest = np.clip((closest - _NEAR_FLOOR) / (1 - _NEAR_FLOOR), 0.0, 1.0)
            near = tuple((column, value) for column, value in enumerate(closest.tolist()) if value)
        result = WordFeatures(stem, near, word, None if vector is None else self._source)
        if not cache:
            return result
        with self._lock:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache = {}
            self._cache[word] = result
        return result

    def extract(
        self,
        word_list: Sequence[str],
        tokens: Sequence[tuple[str, ...]],
        marks: Sequence[str],
        lexicon: tuple[float, float, dict[str, float]],
        concepts: dict[str, float],
    ) -> TextFeatures:
        """Build the blocks from the words, their keys, shape marks, lexicon and concept scores."""
        materials = [self.word(word, keys[0]) for word, keys in zip(word_list, tokens, strict=True)]
        return self.assemble(materials, tokens, marks, lexicon, concepts)

    def assemble(
        self,
        materials: Sequence[WordFeatures],
        tokens: Sequence[tuple[str, ...]],
        marks: Sequence[str],
        lexicon: tuple[float, float, dict[str, float]],
        concepts: dict[str, float],
    ) -> TextFeatures:
        """Build the blocks from the words' material (self.word) and the rest, as extract."""
        extra: list[str] = list(marks)
        previous = ""
        for keys in tokens:
            stem = keys[0]
            if previous:
                extra.append(f"b:{previous}_{stem}")
            previous = stem
        if tokens:
            extra.append(f"f:{tokens[0][0]}")
        # Plain Python on a few short lists, one array at the end: numpy's per-call cost is
        # what a warm classifier would otherwise spend its time on.
        appeal_lexicon, urgent_lexicon, topic_lexicon = lexicon
        values = [0.0] * len(DENSE_NAMES)
        values[0] = appeal_lexicon
        values[1] = urgent_lexicon
        for topic, score in topic_lexicon.items():
            values[_TOPIC_COLUMN[topic]] = score
        if concepts:
            for concept, score in concepts.items():
                column = _CONCEPT_COLUMN.get(concept)
                if column is not None:
                    values[column] = score
            concept_scores = values[_CONCEPT_OFFSET:_NEAR_OFFSET]
            # Two terms and zeros add up exactly in any order; more go through numpy, whose
            # pairwise summation the model was trained with.
            if len(concepts) <= 2:
                values[-4] = sum(concept_scores)
            else:
                values[-4] = float(np.sum(concept_scores))
            values[-3] = max(concept_scores)
        near_max = 0.0
        for material in materials:
            for number, value in material.near:
                if value > values[_NEAR_OFFSET + number]:
                    values[_NEAR_OFFSET + number] = value
                    if value > near_max:
                        near_max = value
        values[-2] = near_max
        values[-1] = math.log1p(len(tokens))
        dense = np.array(values)
        return TextFeatures(tuple(materials), tuple(extra), dense)
