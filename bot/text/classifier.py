"""The comment classifier: appeal or not, topic, urgency — lexicons, navec and a linear model.

Lexicons (press-office editable) and the danger concepts give scores; bot.text.features turns a
text into n-gram, lexicon, concept and navec blocks; bot.text.linear holds the trained heads.
Without a model (a press office experimenting with lexicons) the lexicons decide alone.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from bot.memory import release_freed
from bot.text.embeddings import Embeddings, shared_embeddings
from bot.text.features import TOPICS, Featurizer, TextFeatures, WordFeatures
from bot.text.lexicon import (
    DATA_DIR,
    LEXICON_DIR,
    Candidates,
    Found,
    MatcherGroup,
    PhraseMatcher,
    label_scores,
    read_labelled,
    read_phrases,
    read_weighted,
)
from bot.text.linear import LinearModel
from bot.text.normalize import Analyzer, clean_word, raw_words, words

__all__ = ["MODEL_PATH", "TOPICS", "Analysis", "Classification", "Classifier"]

logger = logging.getLogger(__name__)

MODEL_PATH = DATA_DIR / "model.json"
MODEL_FORMAT = 2

# Shape marks added to the sparse features.
QUESTION = "<?>"
TO_COMMENTER = "<to-commenter>"
SHORT = "<short>"
LONG = "<long>"
REQUEST = "<request>"
CAPS = "<caps>"
EXCLAIM = "<!>"

_TO_COMMENTER_PENALTY = 3.0
# Topic words right after these («у школы», «возле поликлиники», «до больницы») name a place,
# not the subject of the complaint, so they count for less.
_LOCATIVE_STEMS = frozenset({"у", "возл", "окол", "рядом", "напрот", "до", "перед", "мим"})
_LOCATIVE_DISCOUNT = 0.3
# A comment with no topic cue at all (or only a weak, discounted one) is «other».
_OTHER_BASELINE = 0.5
# The lexicon-only rule (no model file): appeal if bias + cues + question + request > 0.
_LEXICON_BIAS = -0.5
_LEXICON_TOPIC_WEIGHT = 0.2
_LEXICON_URGENT_THRESHOLD = 2.0
_NAME_RE = re.compile(r"^\s*@?([А-ЯЁа-яёA-Za-z]+)(?:\s+([А-ЯЁа-яё]+))?\s*,")
_MENTION_RE = re.compile(r"^\s*@\w+")
_PATRONYMIC_ENDINGS = ("вич", "вна", "чна", "ична")
_UPPER_RE = re.compile(r"[А-ЯЁA-Z]")
_LETTER_RE = re.compile(r"[А-ЯЁа-яёA-Za-z]")
_CACHE_LIMIT = 200_000


@dataclass(frozen=True)
class Classification:
    """What a citizen's comment is."""

    is_appeal: bool
    topic: str
    urgent: bool
    # Confidence in the is_appeal decision (0.5..1): how sure the model is of what it said.
    confidence: float = 1.0


class _WordEntry(NamedTuple):
    """A word's keys (stem and prefix patterns), plural imperative mark and feature material."""

    keys: tuple[str, ...]
    imperative: bool
    material: WordFeatures
    candidates: Candidates  # lexicon phrases that may start here


@dataclass(frozen=True)
class Analysis:
    """Everything known about one text before the model decides."""

    features: TextFeatures
    appeal_lexicon: float
    topic_lexicon: dict[str, float]
    urgent_lexicon: float
    has_question: bool
    to_commenter: bool
    has_request: bool
    has_words: bool


class Classifier:
    """Holds the analyzer, compiled lexicons and the model; immutable after construction."""

    def __init__(
        self,
        mode: str = "stem",
        model: dict[str, Any] | None = None,
        lexicon_dir: Path = LEXICON_DIR,
        embeddings: Embeddings | bool | None = True,
    ) -> None:
        """Compile lexicons from lexicon_dir; model is the parsed model.json (or None).

        embeddings: True for the process-wide navec model, None/False for none (tests of the
        lexicons alone), or an Embeddings instance.
        """
        self.analyzer = Analyzer(mode)
        analyzer = self.analyzer
        appeal_items = [("appeal", p, w) for p, w in read_weighted(lexicon_dir / "appeal.tsv")]
        topic_items = read_labelled(lexicon_dir / "topics.tsv", weighted=True)
        for topic, phrase, _ in topic_items:
            if topic not in TOPICS:
                logger.warning("Unknown topic %r for phrase %r in topics.tsv", topic, phrase)
        self.topics = PhraseMatcher(analyzer, [item for item in topic_items if item[0] in TOPICS])
        urgent_items = [("urgent", p, w) for p, w in read_weighted(lexicon_dir / "urgent.tsv")]
        concept_items = [
            item
            for item in read_labelled(lexicon_dir / "urgent_concepts.tsv", weighted=True)
            if item[0] not in ("appeal", "urgent")
        ]
        # Appeal cues, urgency cues and danger concepts in one pass over the words (labels).
        self.cues = PhraseMatcher(analyzer, [*appeal_items, *urgent_items, *concept_items])
        # Both searched in one pass over the words.
        self.lexicons = MatcherGroup(self.cues, self.topics)
        seeds = [(c, p) for c, p, _ in concept_items if " " not in p and not p.endswith("*")]
        self.names = frozenset(read_phrases(lexicon_dir / "names.txt"))
        self.linear: LinearModel | None = None
        if model is not None:
            self.linear = LinearModel.from_dict(model["linear"])
        if embeddings is True:
            embeddings = shared_embeddings()
        self.featurizer = Featurizer(analyzer, seeds, embeddings or None)
        # Typo repair maps unknown words onto lexicon stems only, so that training and
        # classifying see the same stems whatever the model's vocabulary.
        lexicon_keys = self.cues.keys | self.topics.keys
        known = {key for key in lexicon_keys if not key.endswith("*")}
        prefixes = {key for key in lexicon_keys if key.endswith("*")}
        analyzer.set_vocabulary(known, prefixes)
        self._words: dict[str, _WordEntry] = {}

    @classmethod
    def load(cls, path: Path = MODEL_PATH, mode: str = "stem") -> Classifier:
        """Load the shipped model (lexicons only if the model file is missing)."""
        model: dict[str, Any] | None = None
        if path.exists():
            model = json.loads(path.read_text(encoding="utf-8"))
            if model.get("mode", "stem") != mode:
                raise ValueError(f"model {path} was trained for mode {model.get('mode')!r}")
        else:
            logger.warning("модели классификатора %s нет; работают только словари", path)
        classifier = cls(mode=mode, model=model)
        del model  # the parsed JSON: its lists of floats are arrays now
        release_freed()
        return classifier

    def _to_commenter(self, text: str) -> bool:
        """Detect a comment addressed to another commenter («Марина, …», «@ivan …»)."""
        if _MENTION_RE.match(text):
            return True
        match = _NAME_RE.match(text)
        if match is None:
            return False
        name = match.group(1).lower().replace("ё", "е")
        second = (match.group(2) or "").lower()
        return name in self.names and not second.endswith(_PATRONYMIC_ENDINGS)

    def _word(self, raw: str) -> _WordEntry:
        """Everything known about one word of raw_words(), cached (one look-up per word)."""
        entry = self._words.get(raw)
        if entry is None:
            word = clean_word(raw)
            # This cache holds all of it per word: the analyzer's and featurizer's own caches
            # would hold the same again (a dict of 20,000+ words each).
            keys = self.analyzer.word_keys(word, cache=False)
            entry = _WordEntry(
                keys,
                self.analyzer.is_imperative(word, cache=False),
                self.featurizer.word(word, keys[0], cache=False),
                self.lexicons.candidates(keys),
            )
            if len(self._words) > _CACHE_LIMIT:
                self._words = {}
            self._words[raw] = entry
        return entry

    def analyze(self, text: str) -> Analysis:
        """Collect the lexicon evidence and the model's features for text."""
        cache = self._words
        entries = [cache.get(raw) or self._word(raw) for raw in raw_words(text)]
        tokens = [entry.keys for entry in entries]
        has_request = any([entry.imperative for entry in entries])
        has_question = "?" in text
        to_commenter = self._to_commenter(text)
        marks = []
        if has_request:
            marks.append(REQUEST)
        if has_question:
            marks.append(QUESTION)
        if to_commenter:
            marks.append(TO_COMMENTER)
        if len(tokens) <= 3:
            marks.append(SHORT)
        if len(tokens) > 40:
            marks.append(LONG)
        if "!" in text:
            marks.append(EXCLAIM)
        # More than 60 % of at least 8 letters in upper case; fewer than 5 capitals never are.
        capitals = len(_UPPER_RE.findall(text))
        if capitals >= 5:
            letters = len(_LETTER_RE.findall(text))
            if letters >= 8 and capitals > 0.6 * letters:
                marks.append(CAPS)
        cue_positions, topic_positions = self.lexicons.positions(
            tokens, [entry.candidates for entry in entries]
        )
        cues = label_scores(cue_positions)
        appeal_lexicon = cues.pop("appeal", 0.0)
        urgent_lexicon = cues.pop("urgent", 0.0)
        topic_lexicon = self._topic_lexicon(tokens, topic_positions)
        features = self.featurizer.assemble(
            [entry.material for entry in entries],
            tokens,
            marks,
            (appeal_lexicon, urgent_lexicon, topic_lexicon),
            cues,
        )
        return Analysis(
            features=features,
            appeal_lexicon=appeal_lexicon,
            topic_lexicon=topic_lexicon,
            urgent_lexicon=urgent_lexicon,
            has_question=has_question,
            to_commenter=to_commenter,
            has_request=has_request,
            has_words=bool(tokens),
        )

    def _topic_lexicon(self, tokens: list[tuple[str, ...]], found: Found) -> dict[str, float]:
        """Sum topic cue weights, discounting words that only name a place."""
        places: set[int] = set()
        for position, keys in enumerate(tokens):
            if keys[0] in _LOCATIVE_STEMS:
                places.update((position + 1, position + 2))
        totals: dict[str, float] = {}
        for entry, position in found:
            weight = entry.weight * (_LOCATIVE_DISCOUNT if position in places else 1.0)
            totals[entry.label] = totals.get(entry.label, 0.0) + weight
        return totals

    def decide(self, analysis: Analysis) -> Classification:
        """Turn the analysis into a classification (the model's, or the lexicons' alone)."""
        return self.decide_unrounded(analysis)[0]

    def decide_unrounded(self, analysis: Analysis) -> tuple[Classification, float]:
        """The classification and its confidence before rounding (tests compare it)."""
        if not analysis.has_words:
            return Classification(is_appeal=False, topic="other", urgent=False), 1.0
        if self.linear is None:
            score = lexicon_appeal_score(analysis)
            is_appeal = score > 0
            urgent = is_appeal and analysis.urgent_lexicon >= _LEXICON_URGENT_THRESHOLD
            confidence = 1.0 / (1.0 + math.exp(-min(abs(score), 30.0)))
            topic = lexicon_topic(analysis)
            return Classification(is_appeal, topic, urgent, round(confidence, 4)), confidence
        scores = self.linear.scores(analysis.features)
        is_appeal = scores.is_appeal(self.linear.danger_margin)
        probability = scores.appeal_probability(self.linear.appeal_temperature)
        if is_appeal and scores.appeal <= 0:  # a danger report: as sure as the danger is
            probability = 1.0 / (1.0 + math.exp(-min(scores.urgent, 30.0)))
        topic = TOPICS[int(scores.topics.argmax())]
        urgent = is_appeal and scores.urgent > 0
        confidence = max(probability, 1.0 - probability)
        return Classification(is_appeal, topic, urgent, round(confidence, 4)), confidence

    def is_urgent(self, analysis: Analysis) -> bool:
        """Decide urgency as if the text were an appeal."""
        if self.linear is None:
            return analysis.urgent_lexicon >= _LEXICON_URGENT_THRESHOLD
        return analysis.has_words and self.linear.scores(analysis.features).urgent > 0

    def classify(self, text: str) -> Classification:
        """Classify one comment text."""
        return self.decide(self.analyze(text))


def lexicon_topic(analysis: Analysis) -> str:
    """The topic with the largest lexicon score; «other» when nothing points elsewhere."""
    scores = dict.fromkeys(TOPICS, 0.0)
    scores["other"] = _OTHER_BASELINE
    for topic, value in analysis.topic_lexicon.items():
        scores[topic] += value
    return max(TOPICS, key=lambda name: scores[name])


def lexicon_appeal_score(analysis: Analysis) -> float:
    """The lexicons' appeal evidence alone: above zero means an appeal."""
    topic_evidence = max(analysis.topic_lexicon.values(), default=0.0)
    return (
        _LEXICON_BIAS
        + analysis.appeal_lexicon
        + _LEXICON_TOPIC_WEIGHT * min(topic_evidence, 6.0)
        + analysis.has_question
        + analysis.has_request
        - _TO_COMMENTER_PENALTY * analysis.to_commenter
    )


def text_has_words(text: str) -> bool:
    """Return whether text contains at least one word (not only emoji or punctuation)."""
    return bool(words(text))
