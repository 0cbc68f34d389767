"""Navec news word embeddings (250,000 words × 300 dimensions) read from the `natasha` wheel.

The `natasha` package ships `navec_news_v1_1B_250K_300d_100q.tar` (MIT licence); nothing is
downloaded. The `navec` package's own loader precomputes norms for all 250,000 vectors and
briefly needs ~150 MB for it; we need a handful of vectors per text, so this loader keeps only
the product-quantised codes (25 MB of uint8) and the word index, and rebuilds a vector on demand.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import logging
import tarfile
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["DIM", "Embeddings", "navec_path", "shared_embeddings"]

logger = logging.getLogger(__name__)

NAVEC_FILE = "navec_news_v1_1B_250K_300d_100q.tar"
DIM = 300

Vector = npt.NDArray[np.float32]


def navec_path() -> Path | None:
    """Where the installed natasha package keeps the navec tar (None if not installed)."""
    spec = importlib.util.find_spec("natasha")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "emb" / NAVEC_FILE
        if path.exists():
            return path
    return None


class Embeddings:
    """Word → 300-d vector (float32) of the navec news model; None for unknown words."""

    def __init__(self, words: list[str], indexes: npt.NDArray[np.uint8], codes: Vector) -> None:
        """Build from the vocabulary, the per-word centroid indexes and the centroid codes."""
        # A sorted array of the words' hashes instead of a dict of 250,000 str objects: ~3 MB
        # instead of ~40 MB resident. hash() is per process, so it is built at every load.
        hashes = np.fromiter((hash(word) for word in words), np.int64, count=len(words))
        self._order = np.argsort(hashes, kind="stable").astype(np.int32)  # 1 MB, not 2
        self._hashes = hashes[self._order]
        self._indexes = indexes  # vectors × qdim
        self._codes = codes  # qdim × centroids × (dim / qdim)
        self._qdims = np.arange(codes.shape[0])

    @classmethod
    def load(cls, path: Path | None = None) -> Embeddings | None:
        """Read the navec tar; None (logged) if it is missing or unreadable."""
        path = path or navec_path()
        if path is None:
            logger.warning("векторы navec не найдены (установлен ли пакет natasha?)")
            return None
        try:
            with tarfile.open(path) as archive:
                meta = json.loads(_member(archive, "meta.json"))
                vocab = _member(archive, "vocab.bin")
                pq = _member(archive, "pq.bin")
        except (OSError, KeyError, tarfile.TarError, ValueError) as error:
            logger.warning("векторы navec %s не читаются: %s", path, error)
            return None
        with gzip.GzipFile(fileobj=io.BytesIO(vocab)) as handle:
            raw = handle.read()
        (size,) = np.frombuffer(raw[:4], np.uint32)
        words = raw[4 + 4 * int(size) :].decode("utf-8").split("\n")
        vectors, dim, qdim, centroids = (int(x) for x in np.frombuffer(pq[:16], np.uint32))
        if dim != DIM or len(words) != vectors or "id" not in meta:
            logger.warning("файл navec %s — не та модель, что ожидается", path)
            return None
        indexes = np.frombuffer(pq, np.uint8, count=vectors * qdim, offset=16)
        codes = np.frombuffer(pq, np.float32, offset=16 + vectors * qdim)
        return cls(words, indexes.reshape(vectors, qdim), codes.reshape(qdim, centroids, -1))

    def _id(self, word: str) -> int | None:
        """The row of a word, None if unknown (a 64-bit hash collision is negligible here)."""
        key = hash(word)
        position = int(np.searchsorted(self._hashes, key))
        if position < len(self._hashes) and self._hashes[position] == key:
            return int(self._order[position])
        return None

    def __contains__(self, word: str) -> bool:
        return self._id(word) is not None

    def get(self, word: str) -> Vector | None:
        """Return the vector of a word, or None."""
        number = self._id(word)
        if number is None:
            return None
        return self._codes[self._qdims, self._indexes[number]].reshape(DIM)


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    """Read one member of the tar archive."""
    handle = archive.extractfile(name)
    if handle is None:
        raise KeyError(name)
    return handle.read()


_shared_lock = threading.Lock()
_shared: list[Embeddings | None] = []


def shared_embeddings() -> Embeddings | None:
    """The process-wide embeddings, loaded once (every classifier instance shares them)."""
    if not _shared:
        with _shared_lock:
            if not _shared:
                _shared.append(Embeddings.load())
    return _shared[0]
