"""Speed work must not change decisions: the corpus classified as the reference file says.

tests/data/classifier_reference.json was written by scripts/classifier_reference.py from the
code before the speed work (issue 11); it pins every corpus text's is_appeal, topic, urgent and
confidence. A retrained model.json (or a changed corpus) legitimately changes them: the file names
the model and the texts it was made with, and the test fails for others until the script has
written it again (a skipped comparison would protect nothing).
"""

from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.text.classifier import MODEL_PATH, TOPICS, Classifier
from bot.text.corpus import DEV_CORPUS, HELDOUT_CORPUS, load_corpus
from bot.text.normalize import clean_word, raw_words, words

REFERENCE = Path(__file__).resolve().parent / "data" / "classifier_reference.json"
TOLERANCE = 1e-6


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.load()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [example.text for path in (DEV_CORPUS, HELDOUT_CORPUS) for example in load_corpus(path)]


def _near_rounding_boundary(value: float) -> bool:
    """Whether rounding to 4 places could go either way within the tolerance."""
    scaled = value * 1e4
    return abs(scaled - math.floor(scaled) - 0.5) * 1e-4 < TOLERANCE


def test_every_corpus_decision_matches_the_reference(
    classifier: Classifier, texts: list[str]
) -> None:
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert reference["model_sha256"] == _digest(MODEL_PATH.read_bytes()), (
        "model.json was retrained: run scripts/classifier_reference.py"
    )
    assert reference["texts_sha256"] == _digest(json.dumps(texts, ensure_ascii=False).encode()), (
        "the corpus changed: run scripts/classifier_reference.py"
    )
    assert len(reference["rows"]) == len(texts) > 3000
    differences = []
    for text, row in zip(texts, reference["rows"], strict=True):
        is_appeal, topic, urgent, rounded, unrounded = row
        result = classifier.classify(text)
        _, confidence = classifier.decide_unrounded(classifier.analyze(text))
        same = (
            (result.is_appeal, result.topic, result.urgent)
            == (bool(is_appeal), TOPICS[topic], bool(urgent))
            and abs(confidence - unrounded) <= TOLERANCE
            and (result.confidence == rounded or _near_rounding_boundary(unrounded))
        )
        if not same:
            differences.append((text, row, result, confidence))
    assert differences == []


def test_fast_scores_equal_the_training_formula(classifier: Classifier, texts: list[str]) -> None:
    """Whatever the model: the scores are the documented linear formula over the blocks.

    Training and fine-tuning build their inputs from TextFeatures (the mean navec vector, the
    sparse names, the dense block); classifying may take shortcuts but must land on the same
    numbers.
    """
    model = classifier.linear
    assert model is not None
    for text in texts[::7]:
        features = classifier.analyze(text).features
        ids = sorted({model.index[name] for name in features.sparse if name in model.index})
        inputs = np.concatenate(
            [model.dense_input(features.dense), features.embedding * model.emb_scale]
        )
        weights = np.vstack([model.dense, model.embedding]).astype(np.float64)
        expected = model.bias + inputs @ weights
        if ids:
            expected += model.sparse[ids].astype(np.float64).sum(axis=0) / math.sqrt(len(ids))
        scores = model.scores(features)
        assert scores.appeal == pytest.approx(expected[0] - model.appeal_shift, abs=1e-5)
        assert scores.urgent == pytest.approx(expected[-1] - model.urgent_shift, abs=1e-5)
        assert np.allclose(scores.topics, expected[1:-1], atol=1e-5)


def test_raw_words_cleaned_are_the_words(texts: list[str]) -> None:
    """The classifier caches per raw word; cleaning each one must give words(text)."""
    tricky = [
        "Ямыыыы!!! нааааа ДОРОГЕЕЕ, cпacибo ёёё 111222 ---- aaa-bbb xxxaaa",
        "Когда уберут мусoр???\n\n\nВо двoре ужасссс",
        "",
        "👍👍👍",
    ]
    for text in [*texts, *tricky]:
        assert [clean_word(raw) for raw in raw_words(text)] == words(text)


def test_one_classifier_shared_by_threads_decides_as_alone(texts: list[str]) -> None:
    """Caches fill from several threads at once (a fresh classifier): the same decisions."""
    sample = texts[::8]
    alone = Classifier.load()
    expected = [alone.classify(text) for text in sample]
    shared = Classifier.load()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(shared.classify, sample))
    assert results == expected
