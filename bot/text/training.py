"""Training of the classifier's linear heads (bot.text.linear) from labelled texts.

`train()` (scripts/train_classifier.py) picks the regularisation of each head and the decision
shifts by cross-validation on the training part only, then fits on all of it; the chosen
hyper-parameters are stored in the model file. `train_local()` (`otklik train`) refits with the
built-in model's hyper-parameters on the corpus plus a press office's corrections: no search,
a few seconds.
"""

from __future__ import annotations

import json
import logging
import random
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.text.classifier import MODEL_FORMAT, MODEL_PATH, TOPICS, Analysis, Classifier
from bot.text.corpus import Example
from bot.text.features import DENSE_NAMES
from bot.text.finetune import fine_tune
from bot.text.linear import HEADS, LinearModel

logger = logging.getLogger(__name__)

FOLDS = 5
SEED = 20250601
# Targets the decision shifts are chosen for on out-of-fold scores (the costs are asymmetric:
# a missed appeal vanishes from every figure, a missed emergency gets the 8-hour deadline).
APPEAL_RECALL_TARGET = 0.98
URGENT_RECALL_TARGET = 0.96
# Share of non-appeals the «danger report → appeal» rule may turn into false appeals.
DANGER_EXTRA_FALSE_APPEALS = 0.01
# A missed appeal weighs this many false ones when the danger rule's margin is chosen.
MISSED_APPEAL_COST = 2
RULE_OFF = 1e9
_C_GRID = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class Hyper:
    """Hyper-parameters of a fit; stored in the model file for `otklik train`."""

    c_appeal: float = 2.0
    c_topic: float = 4.0
    c_urgent: float = 1.0
    emb_scale: float = 10.0
    min_df: int = 2
    appeal_shift: float = 0.0
    urgent_shift: float = 0.0
    danger_margin: float = 1e9
    appeal_temperature: float = 1.0
    blocks: tuple[str, ...] = ("sparse", "dense", "embedding")
    char_ngrams: bool = True
    # Urgency sees the danger-concept block (lexicon and concept scores, navec closeness to the
    # concepts' seed words) and, since the first blind set joined the training part, the words
    # and the navec mean too: on that set, written by other hands, the concept block alone
    # flagged 73 non-urgent appeals about the same subjects (docs/CLASSIFIER.md, "Candidates").
    urgent_blocks: tuple[str, ...] = ("dense", "sparse", "embedding")
    # The urgency head learns from every text (non-appeals are never urgent), not from appeals
    # alone: the «danger report → appeal» rule reads its score on every text, and a head that
    # never saw a condolence («соболезнования семьям погибших при пожаре») scores it as a fire.
    urgent_on_all: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        data = asdict(self)
        data["blocks"] = list(self.blocks)
        data["urgent_blocks"] = list(self.urgent_blocks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hyper:
        """Load from to_dict() output (unknown keys ignored)."""
        known = {key: data[key] for key in cls().to_dict() if key in data}
        for key in ("blocks", "urgent_blocks"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def analyse(examples: Sequence[Example], classifier: Classifier | None = None) -> list[Analysis]:
    """Analyse every text with a model-less classifier (features do not depend on a model)."""
    classifier = classifier or Classifier(model=None)
    return [classifier.analyze(example.text) for example in examples]


@dataclass(frozen=True)
class _Design:
    """Inputs of a fit: the vocabulary and the standardisation of the dense block."""

    vocabulary: list[str]
    dense_mean: npt.NDArray[np.float64]
    dense_scale: npt.NDArray[np.float64]


def _design(analyses: Sequence[Analysis], hyper: Hyper) -> _Design:
    """Vocabulary (names in at least min_df texts) and dense mean/scale from training texts."""
    counts: Counter[str] = Counter()
    for analysis in analyses:
        counts.update(analysis.features.sparse)
    vocabulary = sorted(
        name
        for name, count in counts.items()
        if count >= hyper.min_df and (hyper.char_ngrams or not name.startswith("c:"))
    )
    dense = np.array([a.features.dense for a in analyses])
    mean = dense.mean(axis=0)
    scale = dense.std(axis=0)
    scale[scale < 1e-6] = 1.0
    return _Design(vocabulary, mean, scale)


def _matrix(analyses: Sequence[Analysis], design: _Design, hyper: Hyper, blocks: Sequence[str]):  # type: ignore[no-untyped-def]
    """The input matrix (scipy CSR) of the given blocks, as LinearModel.scores computes it."""
    from scipy import sparse as sp

    parts = []
    index = {name: number for number, name in enumerate(design.vocabulary)}
    if "sparse" in blocks:
        rows, cols, values = [], [], []
        for row, analysis in enumerate(analyses):
            ids = sorted(index[n] for n in analysis.features.sparse if n in index)
            for col in ids:
                rows.append(row)
                cols.append(col)
                values.append(1.0 / np.sqrt(len(ids)))
        parts.append(
            sp.csr_matrix((values, (rows, cols)), shape=(len(analyses), len(design.vocabulary)))
        )
    if "dense" in blocks:
        dense = np.array([a.features.dense for a in analyses])
        parts.append(sp.csr_matrix((dense - design.dense_mean) / design.dense_scale))
    if "embedding" in blocks:
        parts.append(
            sp.csr_matrix(np.array([a.features.embedding for a in analyses]) * hyper.emb_scale)
        )
    return sp.hstack(parts, format="csr")


def _logistic(x: Any, y: Sequence[Any], c: float) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Fit an L2 logistic (softmax for more classes) regression; (coefficients, intercepts)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the problems are small, and more threads only fight over shared cores.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=c, max_iter=300, tol=1e-4)
        model.fit(x, list(y))
    return model.coef_, model.intercept_


def _unpack(
    weights: npt.NDArray[Any], design: _Design, blocks: Sequence[str]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
    """Split a head's coefficient row(s) into sparse, dense and embedding parts."""
    from bot.text.embeddings import DIM

    sizes = {"sparse": len(design.vocabulary), "dense": len(DENSE_NAMES), "embedding": DIM}
    out = {}
    offset = 0
    for block in ("sparse", "dense", "embedding"):
        if block in blocks:
            out[block] = weights[:, offset : offset + sizes[block]]
            offset += sizes[block]
        else:
            out[block] = np.zeros((weights.shape[0], sizes[block]))
    return out["sparse"], out["dense"], out["embedding"]


def fit(analyses: Sequence[Analysis], examples: Sequence[Example], hyper: Hyper) -> LinearModel:
    """Fit the three heads on analysed examples."""
    from bot.text.embeddings import DIM

    design = _design(analyses, hyper)
    sparse = np.zeros((len(design.vocabulary), HEADS))
    dense = np.zeros((len(DENSE_NAMES), HEADS))
    embedding = np.zeros((DIM, HEADS))
    bias = np.zeros(HEADS)

    def put(columns: slice, coef: npt.NDArray[Any], intercept: npt.NDArray[Any], blocks) -> None:  # type: ignore[no-untyped-def]
        s, d, e = _unpack(coef, design, blocks)
        sparse[:, columns], dense[:, columns], embedding[:, columns] = s.T, d.T, e.T
        bias[columns] = intercept

    x_all = _matrix(analyses, design, hyper, hyper.blocks)
    coef, intercept = _logistic(x_all, [e.is_appeal for e in examples], hyper.c_appeal)
    put(slice(0, 1), coef, intercept, hyper.blocks)
    appeals = [i for i, e in enumerate(examples) if e.is_appeal]
    topics = [examples[i].topic or "other" for i in appeals]
    coef, intercept = _logistic(x_all[appeals], topics, hyper.c_topic)
    order = [TOPICS.index(str(label)) for label in _classes(topics)]
    topic_coef = np.zeros((len(TOPICS), coef.shape[1]))
    topic_bias = np.full(len(TOPICS), -30.0)  # a topic absent from the data is never chosen
    topic_coef[order], topic_bias[order] = coef, intercept
    put(slice(1, 1 + len(TOPICS)), topic_coef, topic_bias, hyper.blocks)
    taught = range(len(examples)) if hyper.urgent_on_all else appeals
    x_urgent = _matrix([analyses[i] for i in taught], design, hyper, hyper.urgent_blocks)
    labels = [examples[i].urgent for i in taught]
    if len(set(labels)) == 2:
        coef, intercept = _logistic(x_urgent, labels, hyper.c_urgent)
        put(slice(HEADS - 1, HEADS), coef, intercept, hyper.urgent_blocks)
    else:
        bias[-1] = 30.0 if labels and labels[0] else -30.0
    return LinearModel(
        design.vocabulary,
        sparse.astype(np.float32),
        dense.astype(np.float32),
        embedding.astype(np.float32),
        bias.astype(np.float32),
        design.dense_mean.astype(np.float32),
        design.dense_scale.astype(np.float32),
        hyper.emb_scale,
        hyper.appeal_shift,
        hyper.urgent_shift,
        hyper.danger_margin,
        hyper.appeal_temperature,
    )


def _classes(labels: Sequence[str]) -> list[str]:
    """Class order of a scikit-learn fit (sorted distinct labels)."""
    return sorted(set(labels))


@dataclass(frozen=True)
class OutOfFold:
    """Scores of every example from a model that never saw it (shifts not applied)."""

    appeal: npt.NDArray[np.float64]
    topic: list[str]
    urgent: npt.NDArray[np.float64]


def out_of_fold(
    analyses: Sequence[Analysis], examples: Sequence[Example], hyper: Hyper, folds: int = FOLDS
) -> OutOfFold:
    """FOLDS-fold cross-validated scores on the given (training) examples."""
    order = list(range(len(examples)))
    random.Random(SEED).shuffle(order)
    appeal = np.zeros(len(examples))
    urgent = np.zeros(len(examples))
    topic = [""] * len(examples)
    unshifted = replace(hyper, appeal_shift=0.0, urgent_shift=0.0, danger_margin=1e9)
    for fold in range(folds):
        held = sorted(order[fold::folds])
        held_set = set(held)
        train_ids = [i for i in order if i not in held_set]
        model = fit([analyses[i] for i in train_ids], [examples[i] for i in train_ids], unshifted)
        for i in held:
            scores = model.scores(analyses[i].features)
            appeal[i], urgent[i] = scores.appeal, scores.urgent
            topic[i] = TOPICS[int(scores.topics.argmax())]
    return OutOfFold(appeal, topic, urgent)


def pick_shift(scores: npt.NDArray[np.float64], truth: Sequence[bool], recall: float) -> float:
    """The highest threshold that keeps recall ≥ target (halfway to the next score below)."""
    positives = np.sort(scores[np.array(truth, bool)])
    if positives.size == 0:
        return 0.0
    allowed_misses = int(np.floor((1.0 - recall) * positives.size))
    threshold = positives[allowed_misses]
    below = scores[scores < threshold]
    return float((threshold + below.max()) / 2) if below.size else float(threshold) - 0.1


def pick_danger_margin(
    oof: OutOfFold,
    examples: Sequence[Example],
    appeal_shift: float,
    urgent_shift: float,
    extra_false: float = DANGER_EXTRA_FALSE_APPEALS,
) -> float:
    """The margin of the «danger report → appeal» rule that pays for itself out of fold.

    The rule turns a text the appeal head rejects into an appeal when its urgency score clears
    the urgency threshold by the margin. Each candidate margin is weighed out of fold: a true
    appeal it saves counts MISSED_APPEAL_COST false ones (the costs are asymmetric), and at most
    extra_false of the non-appeals may become appeals through it. If no margin gains, the rule
    is off (an unreachable margin).
    """
    rejected = [i for i in range(len(examples)) if oof.appeal[i] <= appeal_shift]
    lifted = sorted(
        ((float(oof.urgent[i] - urgent_shift), examples[i].is_appeal) for i in rejected),
        reverse=True,
    )
    allowed = int(extra_false * sum(not e.is_appeal for e in examples))
    best_gain, best_margin = 0.0, RULE_OFF
    saved = false = 0
    for position, (score, is_appeal) in enumerate(lifted):
        if score <= 0:
            break
        saved += is_appeal
        false += not is_appeal
        if false > allowed:
            break
        following = lifted[position + 1][0] if position + 1 < len(lifted) else 0.0
        gain = MISSED_APPEAL_COST * saved - false
        if gain > best_gain and following < score:
            best_gain, best_margin = gain, max(0.0, (score + max(following, 0.0)) / 2)
    return best_margin


def temperature(oof: OutOfFold, examples: Sequence[Example], appeal_shift: float) -> float:
    """Scale of the shifted appeal score that makes its logistic a calibrated confidence.

    A one-feature logistic regression of the labels on the out-of-fold shifted scores; its
    slope is the temperature (the intercept is dropped: the decision stays at the shift).
    """
    x = (oof.appeal - appeal_shift).reshape(-1, 1)
    coef, _ = _logistic(x, [e.is_appeal for e in examples], 1e4)
    return round(float(max(coef[0][0], 0.05)), 4)


def figures(
    oof: OutOfFold,
    examples: Sequence[Example],
    appeal_shift: float,
    urgent_shift: float,
    danger_margin: float = 1e9,
) -> dict[str, float]:
    """Appeal accuracy/recall, topic accuracy, urgent recall/precision of shifted OOF scores."""
    truth = np.array([e.is_appeal for e in examples])
    predicted = (oof.appeal > appeal_shift) | (oof.urgent - urgent_shift > danger_margin)
    appeals = [int(i) for i in np.flatnonzero(truth)]
    topic_hits = sum(oof.topic[i] == examples[i].topic for i in appeals)
    urgent_truth = np.array([examples[i].urgent for i in appeals])
    urgent_predicted = (oof.urgent[appeals] > urgent_shift) & predicted[appeals]
    hits = int((urgent_truth & urgent_predicted).sum())
    return {
        "appeal_accuracy": round(float((predicted == truth).mean()), 4),
        "appeal_recall": round(float(predicted[truth].mean()), 4),
        "topic_accuracy": round(topic_hits / max(len(appeals), 1), 4),
        "urgent_recall": round(hits / max(int(urgent_truth.sum()), 1), 4),
        "urgent_precision": round(hits / max(int(urgent_predicted.sum()), 1), 4),
    }


def tune(
    analyses: Sequence[Analysis], examples: Sequence[Example], base: Hyper | None = None
) -> tuple[Hyper, dict[str, float]]:
    """Pick each head's C and the decision shifts by cross-validation on the given examples."""
    hyper = base or Hyper()
    appeals = [i for i, e in enumerate(examples) if e.is_appeal]
    best: dict[str, tuple[float, float]] = {}
    for c in _C_GRID:
        trial = replace(hyper, c_appeal=c, c_topic=c, c_urgent=c)
        oof = out_of_fold(analyses, examples, trial)
        truth = [e.is_appeal for e in examples]
        shift = pick_shift(oof.appeal, truth, APPEAL_RECALL_TARGET)
        appeal_accuracy = float(((oof.appeal > shift) == np.array(truth)).mean())
        topic_accuracy = sum(oof.topic[i] == examples[i].topic for i in appeals) / len(appeals)
        urgent_scores = oof.urgent[appeals]
        urgent_truth = [examples[i].urgent for i in appeals]
        u_shift = pick_shift(urgent_scores, urgent_truth, URGENT_RECALL_TARGET)
        flagged = urgent_scores > u_shift
        precision = float(np.array(urgent_truth)[flagged].mean()) if flagged.any() else 0.0
        for head, value in (
            ("appeal", appeal_accuracy),
            ("topic", topic_accuracy),
            ("urgent", precision),
        ):
            if value > best.get(head, (-1.0, 0.0))[0]:
                best[head] = (value, c)
        logger.info(
            "C=%s: appeal %.4f topic %.4f urgent precision %.4f",
            c,
            appeal_accuracy,
            topic_accuracy,
            precision,
        )
    hyper = replace(
        hyper, c_appeal=best["appeal"][1], c_topic=best["topic"][1], c_urgent=best["urgent"][1]
    )
    oof = out_of_fold(analyses, examples, hyper)
    appeal_shift = pick_shift(oof.appeal, [e.is_appeal for e in examples], APPEAL_RECALL_TARGET)
    urgent_shift = pick_shift(
        oof.urgent[appeals], [examples[i].urgent for i in appeals], URGENT_RECALL_TARGET
    )
    margin = pick_danger_margin(oof, examples, appeal_shift, urgent_shift)
    hyper = replace(
        hyper,
        appeal_shift=appeal_shift,
        urgent_shift=urgent_shift,
        danger_margin=margin,
        appeal_temperature=temperature(oof, examples, appeal_shift),
    )
    cv = figures(oof, examples, appeal_shift, urgent_shift, margin)
    report = {f"cv_{k}": v for k, v in cv.items()}
    return hyper, report


def model_dict(model: LinearModel, hyper: Hyper, trained_on: int, **extra: Any) -> dict[str, Any]:
    """The JSON object of a model file."""
    return {
        "format": MODEL_FORMAT,
        "mode": "stem",
        "trained_on": trained_on,
        "hyper": hyper.to_dict(),
        **extra,
        "linear": model.to_dict(),
    }


def train(
    examples: Sequence[Example], hyper: Hyper | None = None, search: bool = True
) -> tuple[dict[str, Any], dict[str, float]]:
    """Train the model JSON from examples (with the cross-validated search unless search=False)."""
    analyses = analyse(examples)
    report: dict[str, float] = {}
    hyper = hyper or Hyper()
    if search:
        hyper, report = tune(analyses, examples, hyper)
    model = fit(analyses, examples, hyper)
    return model_dict(model, hyper, len(examples), cv=report), report


def builtin_hyper() -> Hyper:
    """The hyper-parameters the shipped model was trained with."""
    try:
        data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
        return Hyper.from_dict(data["hyper"])
    except (OSError, ValueError, KeyError, TypeError):
        return Hyper()


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
    """Fold corrections into the built-in model; write the model file at out_path atomically.

    The built-in model (trained on the corpus) is the prior, the corrections are fitted on top
    of it (bot.text.finetune), each weighing CORRECTION_WEIGHT corpus texts. The same text
    corrected twice counts once (the last line wins). The same input gives the same file
    bytes; an unchanged file is not rewritten.
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
    if progress is not None:
        progress(1, steps)
    builtin = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    hyper = Hyper.from_dict(builtin["hyper"])
    tuned = fine_tune(
        LinearModel.from_dict(builtin["linear"]),
        analyse,
        list(latest.values()),
        hyper,
        CORRECTION_WEIGHT,
    )
    model = model_dict(
        tuned,
        hyper,
        builtin["trained_on"] + len(latest),
        corrections=len(latest),
        builtin=file_version(MODEL_PATH.read_bytes(), "builtin"),
    )
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
