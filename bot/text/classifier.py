"""The comment classifier: appeal or not, topic, urgency — lexicons plus a naive Bayes model."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.text.lexicon import (
    DATA_DIR,
    LEXICON_DIR,
    PhraseMatcher,
    read_labelled,
    read_phrases,
    read_weighted,
)
from bot.text.model import NaiveBayes, Params
from bot.text.normalize import Analyzer, words

logger = logging.getLogger(__name__)

MODEL_PATH = DATA_DIR / "model.json"

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

# Pseudo-features added to the stems: they let the model learn from the shape of a comment.
QUESTION = "<?>"
TO_COMMENTER = "<to-commenter>"
SHORT = "<short>"

REQUEST = "<request>"

_TO_COMMENTER_PENALTY = 3.0
# Topic words right after these («у школы», «возле поликлиники», «до больницы») name a place,
# not the subject of the complaint, so they count for less.
_LOCATIVE_STEMS = frozenset({"у", "возл", "окол", "рядом", "напрот", "до", "перед", "мим"})
_LOCATIVE_DISCOUNT = 0.3
# A comment with no topic cue at all (or only a weak, discounted one) is «other».
_OTHER_BASELINE = 0.5
_NAME_RE = re.compile(r"^\s*@?([А-ЯЁа-яёA-Za-z]+)(?:\s+([А-ЯЁа-яё]+))?\s*,")
_MENTION_RE = re.compile(r"^\s*@\w+")
_PATRONYMIC_ENDINGS = ("вич", "вна", "чна", "ична")


@dataclass(frozen=True)
class Classification:
    """What a citizen's comment is."""

    is_appeal: bool
    topic: str
    urgent: bool
    # Confidence in the is_appeal decision (0.5..1): how sure the model is of what it said.
    confidence: float = 1.0


@dataclass(frozen=True)
class Analysis:
    """Lexicon evidence for one text, independent of the learned model."""

    features: frozenset[str]
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
    ) -> None:
        """Compile lexicons from lexicon_dir; model is the parsed model.json (or None)."""
        self.analyzer = Analyzer(mode)
        analyzer = self.analyzer
        self.appeal = PhraseMatcher(
            analyzer, (("appeal", p, w) for p, w in read_weighted(lexicon_dir / "appeal.tsv"))
        )
        topic_items = read_labelled(lexicon_dir / "topics.tsv", weighted=True)
        for topic, phrase, _ in topic_items:
            if topic not in TOPICS:
                logger.warning("Unknown topic %r for phrase %r in topics.tsv", topic, phrase)
        self.topics = PhraseMatcher(analyzer, [item for item in topic_items if item[0] in TOPICS])
        self.urgent = PhraseMatcher(
            analyzer, (("urgent", p, w) for p, w in read_weighted(lexicon_dir / "urgent.tsv"))
        )
        self.names = frozenset(read_phrases(lexicon_dir / "names.txt"))
        self.appeal_model: NaiveBayes | None = None
        self.topic_model: NaiveBayes | None = None
        self.urgent_model: NaiveBayes | None = None
        self.params = Params()
        model_vocabulary: set[str] = set()
        if model is not None:
            self.appeal_model = NaiveBayes.from_dict(model["appeal"])
            self.topic_model = NaiveBayes.from_dict(model["topic"])
            self.urgent_model = NaiveBayes.from_dict(model["urgent"])
            self.params = Params.from_dict(model.get("params", {}))
            for part in (self.appeal_model, self.topic_model, self.urgent_model):
                model_vocabulary.update(part.logp)
        lexicon_keys = self.appeal.keys | self.topics.keys | self.urgent.keys
        known = {key for key in lexicon_keys | model_vocabulary if not key.endswith("*")}
        prefixes = {key for key in lexicon_keys if key.endswith("*")}
        analyzer.set_vocabulary(known, prefixes)

    @classmethod
    def load(cls, path: Path = MODEL_PATH, mode: str = "stem") -> Classifier:
        """Load the shipped model (lexicons only if the model file is missing)."""
        model: dict[str, Any] | None = None
        if path.exists():
            model = json.loads(path.read_text(encoding="utf-8"))
            if model.get("mode", "stem") != mode:
                raise ValueError(f"model {path} was trained for mode {model.get('mode')!r}")
        else:
            logger.warning("Classifier model %s is missing; using lexicons only", path)
        return cls(mode=mode, model=model)

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

    def analyze(self, text: str) -> Analysis:
        """Collect the lexicon evidence for text."""
        word_list = words(text)
        tokens = [self.analyzer.word_keys(word) for word in word_list]
        features = {keys[0] for keys in tokens}
        has_request = any(self.analyzer.is_imperative(word) for word in word_list)
        if has_request:
            features.add(REQUEST)
        has_question = "?" in text
        to_commenter = self._to_commenter(text)
        if has_question:
            features.add(QUESTION)
        if to_commenter:
            features.add(TO_COMMENTER)
        if len(tokens) <= 3:
            features.add(SHORT)
        appeal_lexicon = self.appeal.scores(tokens).get("appeal", 0.0)
        return Analysis(
            features=frozenset(features),
            appeal_lexicon=appeal_lexicon,
            topic_lexicon=self._topic_lexicon(tokens),
            urgent_lexicon=self.urgent.scores(tokens).get("urgent", 0.0),
            has_question=has_question,
            to_commenter=to_commenter,
            has_request=has_request,
            has_words=bool(tokens),
        )

    def _topic_lexicon(self, tokens: list[tuple[str, ...]]) -> dict[str, float]:
        """Sum topic cue weights, discounting words that only name a place."""
        places: set[int] = set()
        for position, keys in enumerate(tokens):
            if keys[0] in _LOCATIVE_STEMS:
                places.update((position + 1, position + 2))
        totals: dict[str, float] = {}
        for entry, position in self.topics.positions(tokens):
            weight = entry.weight * (_LOCATIVE_DISCOUNT if position in places else 1.0)
            totals[entry.label] = totals.get(entry.label, 0.0) + weight
        return totals

    def decide(self, analysis: Analysis) -> Classification:
        """Combine lexicon evidence with the model into a classification."""
        if not analysis.has_words:
            return Classification(is_appeal=False, topic="other", urgent=False)
        model_odds = 0.0
        if self.appeal_model is not None:
            model_odds = self.appeal_model.log_odds(analysis.features)
        score = appeal_score(analysis, self.params, model_odds)
        is_appeal = score > 0
        topic = self._topic(analysis)
        urgent = is_appeal and self.is_urgent(analysis)
        # The score is a sum of log-odds-like evidence; its logistic is a usable confidence.
        confidence = 1.0 / (1.0 + math.exp(-min(abs(score), 30.0)))
        return Classification(is_appeal, topic, urgent, round(confidence, 4))

    def is_urgent(self, analysis: Analysis) -> bool:
        """Decide urgency as if the text were an appeal."""
        urgent_score = analysis.urgent_lexicon
        if self.urgent_model is not None:
            urgent_score += self.params.urgent_model_weight * self.urgent_model.log_odds(
                analysis.features
            )
        return urgent_score >= self.params.urgent_threshold

    def _topic(self, analysis: Analysis) -> str:
        """Pick the topic with the largest combined lexicon and model score."""
        model_scores = None
        if self.topic_model is not None:
            model_scores = self.topic_model.scores(analysis.features)
        return best_topic(analysis, model_scores, self.params.topic_model_weight)

    def classify(self, text: str) -> Classification:
        """Classify one comment text."""
        return self.decide(self.analyze(text))


def best_topic(analysis: Analysis, model_scores: list[float] | None, weight: float) -> str:
    """Combine topic lexicon scores with the model's; «other» wins when nothing points elsewhere."""
    scores = dict.fromkeys(TOPICS, 0.0)
    scores["other"] = _OTHER_BASELINE
    for topic, value in analysis.topic_lexicon.items():
        scores[topic] += value
    if model_scores is not None:
        best = max(model_scores)
        for topic, value in zip(TOPICS, model_scores, strict=True):
            scores[topic] += weight * (value - best)
    return max(TOPICS, key=lambda name: scores[name])


def appeal_score(analysis: Analysis, params: Params, model_odds: float) -> float:
    """Combine appeal evidence: above zero means an appeal."""
    topic_evidence = max(analysis.topic_lexicon.values(), default=0.0)
    return (
        params.appeal_bias
        + analysis.appeal_lexicon
        + params.appeal_topic_weight * min(topic_evidence, 6.0)
        + params.appeal_question_weight * analysis.has_question
        + params.appeal_request_weight * analysis.has_request
        - _TO_COMMENTER_PENALTY * analysis.to_commenter
        + params.appeal_model_weight * model_odds
    )


def text_has_words(text: str) -> bool:
    """Return whether text contains at least one word (not only emoji or punctuation)."""
    return bool(words(text))
