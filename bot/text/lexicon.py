"""Lexicon files (plain TSV/TXT a press office can edit) and a fast phrase matcher."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.text.normalize import Analyzer

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
LEXICON_DIR = DATA_DIR / "lexicon"

# Words of a phrase may be separated by at most this many other words («нет горячей воды»
# matches «нет воды»; «не работает» also matches «не всегда работает»).
MAX_GAP = 2


def read_rows(path: Path, columns: int) -> list[list[str]]:
    """Read a tab-separated file, skipping blank lines and # comments; bad rows are logged."""
    rows = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split("\t")]
        if len(parts) != columns or not all(parts):
            logger.warning("Skipping malformed lexicon line %s:%d: %r", path.name, number, raw)
            continue
        rows.append(parts)
    return rows


def read_weighted(path: Path) -> list[tuple[str, float]]:
    """Read «phrase<TAB>weight» rows."""
    result = []
    for phrase, weight in read_rows(path, 2):
        try:
            result.append((phrase, float(weight)))
        except ValueError:
            logger.warning("Skipping lexicon line with a bad weight in %s: %r", path.name, phrase)
    return result


def read_labelled(path: Path, weighted: bool) -> list[tuple[str, str, float]]:
    """Read «label<TAB>phrase[<TAB>weight]» rows."""
    result = []
    for parts in read_rows(path, 3 if weighted else 2):
        try:
            weight = float(parts[2]) if weighted else 1.0
        except ValueError:
            logger.warning("Skipping lexicon line with a bad weight in %s: %r", path.name, parts)
            continue
        result.append((parts[0], parts[1], weight))
    return result


def read_phrases(path: Path) -> list[str]:
    """Read one phrase a line."""
    return [parts[0] for parts in read_rows(path, 1)]


@dataclass(frozen=True)
class Entry:
    """One compiled lexicon phrase."""

    label: str
    rest: tuple[str, ...]
    weight: float
    ident: int
    first: str


class PhraseMatcher:
    """Finds lexicon phrases in analysed text; each phrase counts once per text."""

    def __init__(self, analyzer: Analyzer, items: Iterable[tuple[str, str, float]]) -> None:
        """Compile (label, phrase, weight) items with the analyzer's stemming."""
        self._index: dict[str, list[Entry]] = {}
        self.keys: set[str] = set()
        # Two forms of one word («газ», «газом») share a stem: the later line wins, so that
        # a phrase is never counted twice.
        compiled: dict[tuple[str, tuple[str, ...]], float] = {}
        for label, phrase, weight in items:
            elements = analyzer.phrase(phrase)
            if not elements:
                logger.warning("Lexicon phrase %r has no words; ignored", phrase)
                continue
            compiled[(label, elements)] = weight
        for ident, ((label, elements), weight) in enumerate(compiled.items()):
            self.keys.update(elements)
            entry = Entry(label, elements[1:], weight, ident, elements[0])
            self._index.setdefault(elements[0], []).append(entry)

    def _follows(
        self, tokens: Sequence[tuple[str, ...]], start: int, rest: tuple[str, ...]
    ) -> bool:
        """Check that rest occurs after position start, each element within MAX_GAP words."""
        position = start
        for element in rest:
            limit = min(len(tokens), position + MAX_GAP + 2)
            for candidate in range(position + 1, limit):
                if element in tokens[candidate]:
                    position = candidate
                    break
            else:
                return False
        return True

    def matches(self, tokens: Sequence[tuple[str, ...]]) -> list[Entry]:
        """Return every entry found in tokens (each at most once)."""
        return [entry for entry, _ in self.positions(tokens)]

    def positions(self, tokens: Sequence[tuple[str, ...]]) -> list[tuple[Entry, int]]:
        """Return every entry found in tokens with the position of its first word."""
        found: dict[int, tuple[Entry, int]] = {}
        index = self._index
        for position, keys in enumerate(tokens):
            for key in keys:
                entries = index.get(key)
                if not entries:
                    continue
                for entry in entries:
                    if entry.ident in found:
                        continue
                    if not entry.rest or self._follows(tokens, position, entry.rest):
                        found[entry.ident] = (entry, position)
        return list(found.values())

    def scores(self, tokens: Sequence[tuple[str, ...]]) -> dict[str, float]:
        """Sum the weights of found phrases per label."""
        totals: dict[str, float] = {}
        for entry in self.matches(tokens):
            totals[entry.label] = totals.get(entry.label, 0.0) + entry.weight
        return totals

    def any(self, tokens: Sequence[tuple[str, ...]]) -> bool:
        """Return whether any phrase occurs in tokens."""
        return bool(self.matches(tokens))
