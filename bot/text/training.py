"""Training of the shipped model from the repository's corpus, with cross-validated weights."""

from __future__ import annotations

import itertools
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.text.classifier import TOPICS, Analysis, Classifier, appeal_score, best_topic
from bot.text.corpus import Example
from bot.text.model import NaiveBayes, Params

logger = logging.getLogger(__name__)

FOLDS = 5
SEED = 20250601

_GRID_APPEAL = {
    "appeal_bias": (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0),
    "appeal_model_weight": (0.0, 0.05, 0.1, 0.2, 0.35, 0.5),
    "appeal_topic_weight": (0.0, 0.1, 0.2, 0.3),
    "appeal_question_weight": (0.0, 1.0, 2.0),
    "appeal_request_weight": (0.0, 1.0, 2.0),
}
_GRID_TOPIC = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
_GRID_URGENT_WEIGHT = (0.0, 0.05, 0.1, 0.25, 0.5)
_GRID_URGENT_THRESHOLD = (1.0, 1.5, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class Models:
    """The three naive Bayes parts."""

    appeal: NaiveBayes
    topic: NaiveBayes
    urgent: NaiveBayes


def fit_models(analyses: Sequence[Analysis], examples: Sequence[Example]) -> Models:
    """Fit the appeal, topic and urgency models on analysed examples."""
    pairs = list(zip(analyses, examples, strict=True))
    appeal = NaiveBayes.train(
        ((a.features, "yes" if e.is_appeal else "no") for a, e in pairs), ("no", "yes")
    )
    topic = NaiveBayes.train(((a.features, e.topic or "") for a, e in pairs), TOPICS)
    urgent = NaiveBayes.train(
        ((a.features, "yes" if e.urgent else "no") for a, e in pairs if e.is_appeal),
        ("no", "yes"),
    )
    return Models(appeal, topic, urgent)


@dataclass(frozen=True)
class _OutOfFold:
    """Model outputs for one example from a model that never saw it."""

    appeal_odds: float
    topic_scores: list[float]
    urgent_odds: float


def _out_of_fold(analyses: Sequence[Analysis], examples: Sequence[Example]) -> list[_OutOfFold]:
    """Compute model outputs for every example by FOLDS-fold cross-validation."""
    order = list(range(len(examples)))
    random.Random(SEED).shuffle(order)
    result: list[_OutOfFold | None] = [None] * len(examples)
    for fold in range(FOLDS):
        held = set(order[fold::FOLDS])
        train = [i for i in order if i not in held]
        models = fit_models([analyses[i] for i in train], [examples[i] for i in train])
        for i in held:
            features = analyses[i].features
            result[i] = _OutOfFold(
                models.appeal.log_odds(features),
                models.topic.scores(features),
                models.urgent.log_odds(features),
            )
    return [item for item in result if item is not None]


def _appeal_accuracy(
    analyses: Sequence[Analysis],
    examples: Sequence[Example],
    oof: Sequence[_OutOfFold],
    params: Params,
) -> float:
    """Appeal accuracy of a parameter set on out-of-fold model outputs."""
    correct = 0
    for analysis, example, outputs in zip(analyses, examples, oof, strict=True):
        score = appeal_score(analysis, params, outputs.appeal_odds)
        predicted = analysis.has_words and score > 0
        correct += predicted == example.is_appeal
    return correct / len(examples)


def _topic_accuracy(
    analyses: Sequence[Analysis],
    examples: Sequence[Example],
    oof: Sequence[_OutOfFold],
    weight: float,
) -> float:
    """Topic accuracy on appeals for a model weight."""
    correct = total = 0
    for analysis, example, outputs in zip(analyses, examples, oof, strict=True):
        if not example.is_appeal:
            continue
        total += 1
        correct += best_topic(analysis, outputs.topic_scores, weight) == example.topic
    return correct / max(total, 1)


def _urgent_quality(
    analyses: Sequence[Analysis],
    examples: Sequence[Example],
    oof: Sequence[_OutOfFold],
    weight: float,
    threshold: float,
) -> float:
    """Recall plus half the precision of urgency on true appeals."""
    hits = predicted = actual = 0
    for analysis, example, outputs in zip(analyses, examples, oof, strict=True):
        if not example.is_appeal:
            continue
        urgent = analysis.urgent_lexicon + weight * outputs.urgent_odds >= threshold
        predicted += urgent
        actual += example.urgent
        hits += urgent and example.urgent
    recall = hits / max(actual, 1)
    precision = hits / max(predicted, 1)
    return recall + 0.5 * precision


def tune(
    analyses: Sequence[Analysis], examples: Sequence[Example]
) -> tuple[Params, dict[str, float]]:
    """Pick combination weights by cross-validation on the given (development) examples."""
    oof = _out_of_fold(analyses, examples)
    best_appeal: tuple[float, dict[str, float]] = (-1.0, {})
    keys = list(_GRID_APPEAL)
    for values in itertools.product(*(_GRID_APPEAL[key] for key in keys)):
        candidate = dict(zip(keys, values, strict=True))
        accuracy = _appeal_accuracy(analyses, examples, oof, Params(**candidate))
        if accuracy > best_appeal[0]:
            best_appeal = (accuracy, candidate)
    topic_results = [(_topic_accuracy(analyses, examples, oof, w), w) for w in _GRID_TOPIC]
    topic_accuracy, topic_weight = max(topic_results, key=lambda item: (item[0], -item[1]))
    urgent_results = [
        (_urgent_quality(analyses, examples, oof, w, t), w, t)
        for w in _GRID_URGENT_WEIGHT
        for t in _GRID_URGENT_THRESHOLD
    ]
    urgent_quality, urgent_weight, urgent_threshold = max(
        urgent_results, key=lambda item: (item[0], -item[1])
    )
    params = Params(
        **best_appeal[1],
        topic_model_weight=topic_weight,
        urgent_model_weight=urgent_weight,
        urgent_threshold=urgent_threshold,
    )
    report = {
        "cv_appeal_accuracy": round(best_appeal[0], 4),
        "cv_topic_accuracy": round(topic_accuracy, 4),
        "cv_urgent_recall_plus_half_precision": round(urgent_quality, 4),
    }
    return params, report


def train(
    examples: Sequence[Example], mode: str = "stem"
) -> tuple[dict[str, Any], dict[str, float]]:
    """Train the model JSON (naive Bayes parts and tuned weights) from examples."""
    lexicon_only = Classifier(mode=mode, model=None)
    analyses = [lexicon_only.analyze(example.text) for example in examples]
    params, report = tune(analyses, examples)
    models = fit_models(analyses, examples)
    model = {
        "format": 1,
        "mode": mode,
        "trained_on": len(examples),
        "params": params.to_dict(),
        "cv": report,
        "appeal": models.appeal.to_dict(),
        "topic": models.topic.to_dict(),
        "urgent": models.urgent.to_dict(),
    }
    return model, report


# -- local models from a press office's corrections (`otklik train`) ------------------------------

# A correction is a person's decision on a real message of the region: it outweighs a corpus line.
CORRECTION_WEIGHT = 3


@dataclass(frozen=True)
class TrainSummary:
    """What `train_local` did, in counts for a report."""

    path: Path
    corrections: int  # lines given
    used: int  # distinct valid corrections trained on
    rejected: int  # lines that were not valid corrections
    overriding: int  # corrections that changed the label of a text of the built-in corpus
    corpus: int  # built-in corpus texts trained on
    examples: int  # all distinct texts trained on
    changed: bool  # False: the file already held exactly this model («без изменений»)
    version: str

    def report_ru(self) -> str:
        """The summary a person reads after `otklik train`."""
        from bot import ru

        lines = [
            f"Исправлений прочитано: {ru.number(self.corrections)}, "
            f"учтено: {ru.number(self.used)}"
            + (f", пропущено с ошибками: {ru.number(self.rejected)}" if self.rejected else "")
            + ".",
        ]
        if self.overriding:
            verb = ru.plural(self.overriding, "поменяло", "поменяли", "поменяли")
            lines.append(
                f"{ru.quantity(self.overriding, 'исправление', 'исправления', 'исправлений')} "
                f"{verb} разметку встроенного корпуса."
            )
        lines.append(
            f"Модель обучена на {ru.number(self.examples)} "
            f"{ru.plural(self.examples, 'тексте', 'текстах', 'текстах')} "
            f"(встроенный корпус: {ru.number(self.corpus)})."
        )
        if self.changed:
            lines.append(f"Локальная модель записана: {self.path} ({self.version}).")
        else:
            lines.append(f"Локальная модель без изменений: {self.path} ({self.version}).")
        return "\n".join(lines)


def _correction(item: object) -> Example | None:
    """One `otklik corrections` line as an example; None if it is not a valid one."""
    if not isinstance(item, dict):
        return None
    text, is_appeal, topic = item.get("text"), item.get("is_appeal"), item.get("topic")
    urgent = item.get("urgent", False)
    if not isinstance(text, str) or not text.strip() or not isinstance(is_appeal, bool):
        return None
    if not isinstance(urgent, bool) or (topic is not None and topic not in TOPICS):
        return None
    if not is_appeal:
        return Example(text, False, None, False)
    return Example(text, True, topic or "other", urgent)


def train_local(
    corrections: Sequence[object],
    out_path: Path,
    progress: Callable[[int, int], None] | None = None,
) -> TrainSummary:
    """Train the built-in corpus plus corrections into a model file at out_path (atomically).

    The same text corrected twice counts once (the last line wins); a correction replaces the
    corpus label of the same text and weighs CORRECTION_WEIGHT corpus lines. The same input
    gives the same file bytes; an unchanged file is not rewritten.
    """
    from bot.text.corpus import DEV_CORPUS, HELDOUT_CORPUS, load_corpus
    from bot.text.store import file_version, write_atomically

    steps = 3
    if progress is not None:
        progress(0, steps)
    latest: dict[str, Example] = {}
    rejected = 0
    for item in corrections:
        example = _correction(item)
        if example is None:
            rejected += 1
            continue
        latest.pop(example.text, None)
        latest[example.text] = example
    corpus = {e.text: e for path in (DEV_CORPUS, HELDOUT_CORPUS) for e in load_corpus(path)}
    overriding = sum(1 for text, e in latest.items() if text in corpus and corpus[text] != e)
    base = [e for text, e in corpus.items() if text not in latest]
    examples = base + [e for e in latest.values() for _ in range(CORRECTION_WEIGHT)]
    if progress is not None:
        progress(1, steps)
    model, _ = train(examples)
    model["trained_on"] = len(base) + len(latest)
    model["corrections"] = len(latest)
    data = json.dumps(model, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    if progress is not None:
        progress(2, steps)
    try:
        changed = out_path.read_bytes() != data
    except OSError:
        changed = True
    if changed:
        write_atomically(out_path, data)
    if progress is not None:
        progress(3, steps)
    return TrainSummary(
        path=out_path,
        corrections=len(corrections),
        used=len(latest),
        rejected=rejected,
        overriding=overriding,
        corpus=len(base),
        examples=len(base) + len(latest),
        changed=changed,
        version=file_version(data, "local"),
    )
