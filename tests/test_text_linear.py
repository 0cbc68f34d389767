"""The linear model's compact vocabulary (hashed look-up) and its per-word caches."""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
import numpy.typing as npt
import pytest

from bot.text import linear
from bot.text.embeddings import DIM
from bot.text.features import DENSE_NAMES, TextFeatures, WordFeatures
from bot.text.linear import HEADS, LinearModel, Vocabulary, name_hashes

NAMES = ["w:дом", "c:<до", "c:дом", "c:ом>", "b:дом_двор", "f:дом", "<?>", "w:road", ""]


def _weak_hashes(names: list[str]) -> npt.NDArray[np.uint64]:
    """A hash that collides on purpose: the name's length."""
    return np.array([len(name) for name in names], np.uint64)


def _model(names: list[str], seed: int = 1) -> LinearModel:
    """A model over names with random weights."""
    rng = np.random.default_rng(seed)
    dense = len(DENSE_NAMES)
    return LinearModel(
        names,
        rng.standard_normal((len(names), HEADS)).astype(np.float32),
        rng.standard_normal((dense, HEADS)).astype(np.float32),
        (rng.standard_normal((DIM, HEADS)) / 10).astype(np.float32),
        rng.standard_normal(HEADS).astype(np.float32),
        rng.standard_normal(dense).astype(np.float32),
        rng.uniform(0.5, 2.0, dense).astype(np.float32),
        0.7,
        0.1,
        -0.2,
        3.0,
        1.3,
    )


def test_name_hashes_are_blake2b_of_the_utf8() -> None:
    """The same in every process (unlike hash()): 8 bytes of BLAKE2b, little-endian."""
    expected = [
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
        for name in NAMES
    ]
    assert name_hashes(NAMES).tolist() == expected
    assert name_hashes([]).tolist() == []


def test_known_names_find_their_columns_and_unknown_names_none() -> None:
    vocabulary = Vocabulary(NAMES)
    assert vocabulary.hashed
    assert len(vocabulary) == len(NAMES)
    for number, name in enumerate(NAMES):
        assert vocabulary.column(name) == number
        assert name in vocabulary
    unknown = ["w:дома", "c:<д", "W:дом", "b:двор_дом", " ", "w:дом\x00"]
    for name in unknown:
        assert vocabulary.column(name) is None
        assert name not in vocabulary
    # In the order asked, the unknown ones left out.
    asked = ["<?>", *unknown, "w:дом", "f:дом", "<?>"]
    assert vocabulary.columns(asked) == [6, 0, 5, 6]
    assert vocabulary.columns([]) == []


def test_the_names_come_back_exactly() -> None:
    vocabulary = Vocabulary(NAMES)
    assert vocabulary.names() == NAMES
    assert list(vocabulary) == NAMES
    assert vocabulary[1] == "c:<до"
    assert vocabulary[-2:] == NAMES[-2:]
    assert Vocabulary([]).names() == []
    assert Vocabulary([""]).names() == [""]
    assert Vocabulary([]).columns(["w:дом"]) == []


def test_to_dict_round_trips_the_vocabulary_and_the_weights() -> None:
    model = _model(NAMES)
    data = model.to_dict()
    assert data["vocabulary"] == NAMES
    again = LinearModel.from_dict(data)
    assert again.to_dict() == data
    assert list(again.vocabulary) == NAMES
    assert dict(again.index) == {name: number for number, name in enumerate(NAMES)}


def test_a_name_with_a_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="newline"):
        Vocabulary(["w:дом", "c:a\nb"])


def test_a_hash_collision_falls_back_to_a_dict(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two names with one hash: found at build time; every name still gets its own column."""
    monkeypatch.setattr(linear, "name_hashes", _weak_hashes)
    names = ["w:аб", "w:вг", "c:<д"]  # three names of one length: one hash
    with caplog.at_level(logging.WARNING, logger="bot.text.linear"):
        vocabulary = Vocabulary(names)
    assert not vocabulary.hashed
    assert "совпадения" in caplog.text
    assert vocabulary.columns(["c:<д", "w:гд", "w:аб", "w:вг"]) == [2, 0, 1]
    assert vocabulary.column("w:гд") is None
    assert vocabulary.names() == names
    assert Vocabulary(["w:а", "w:аб"]).hashed  # distinct hashes: no fallback


def test_duplicate_names_keep_the_last_column_as_the_dict_did() -> None:
    vocabulary = Vocabulary(["w:дом", "w:двор", "w:дом"])
    assert not vocabulary.hashed
    assert vocabulary.column("w:дом") == 2


def test_no_name_takes_the_end_sentinel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sorted hashes end with 2⁶⁴−1: a name hashing to it is no column, or a collision."""
    top = np.uint64(2**64 - 1)

    def hashes(names: list[str]) -> npt.NDArray[np.uint64]:
        return np.array([top if name.startswith("x") else len(name) for name in names], np.uint64)

    monkeypatch.setattr(linear, "name_hashes", hashes)
    vocabulary = Vocabulary(["a", "bb"])
    assert vocabulary.hashed
    assert vocabulary.columns(["x", "bb", "xy", "a"]) == [1, 0]
    assert not Vocabulary(["a", "x"]).hashed  # a name on the sentinel: the dict instead
    assert Vocabulary(["a", "x"]).column("x") == 1


def _word(rng: np.random.Generator, stem: str, with_vector: bool) -> WordFeatures:
    vector = rng.standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return WordFeatures(stem, (), stem, (lambda _word: vector) if with_vector else None)


def _expected(model: LinearModel, features: TextFeatures) -> npt.NDArray[np.float64]:
    """The documented formula over the blocks (as training builds the inputs)."""
    ids = sorted({model.index[n] for n in features.sparse if n in model.index})
    inputs = np.concatenate(
        [model.dense_input(features.dense), features.embedding * model.emb_scale]
    )
    total = model.bias + inputs @ np.vstack([model.dense, model.embedding]).astype(np.float64)
    if ids:
        total += model.sparse[ids].astype(np.float64).sum(axis=0) / math.sqrt(len(ids))
    return total


def test_the_per_word_cache_grows_and_empties_without_changing_a_score(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Projection rows in one growing matrix; the cache emptied at its limit; same scores."""
    monkeypatch.setattr(linear, "_FIRST_ROWS", 2)
    monkeypatch.setattr(linear, "_CACHE_LIMIT", 7)
    rng = np.random.default_rng(5)
    stems = ["дом", "двор", "road", "яма", "свет", "газ", "вода", "мост", "лес", "снег"]
    words = [_word(rng, stem, with_vector=number % 3 != 2) for number, stem in enumerate(stems)]
    names = sorted({name for word in words for name in word.names})
    names = [*names[::2], "<?>", "b:дом_двор"]  # some names the model does not know
    model, fresh = _model(names, seed=3), _model(names, seed=3)
    assert model.vocabulary.hashed
    texts = []
    for _ in range(40):
        chosen = [words[i] for i in rng.integers(0, len(words), rng.integers(1, 6))]
        dense = rng.standard_normal(len(DENSE_NAMES))
        texts.append(TextFeatures(tuple(chosen), ("<?>", "b:дом_двор", "f:нет"), dense))
    first = [model.scores(features) for features in texts]
    assert model._generation > 0  # the limit was reached: emptied at least once
    # The same texts the other way round: other rows, other moments of emptying.
    backwards = [fresh.scores(features) for features in reversed(texts)][::-1]
    for features, scores, again in zip(texts, first, backwards, strict=True):
        assert (scores.appeal, scores.urgent) == (again.appeal, again.urgent)
        assert np.array_equal(scores.topics, again.topics)
        expected = _expected(model, features)
        assert scores.appeal == pytest.approx(expected[0] - model.appeal_shift, abs=1e-5)
        assert scores.urgent == pytest.approx(expected[-1] - model.urgent_shift, abs=1e-5)
        assert np.allclose(scores.topics, expected[1:-1], atol=1e-5)
        assert model.sparse_ids(features) == sorted(
            {model.index[n] for n in features.sparse if n in model.index}
        )
