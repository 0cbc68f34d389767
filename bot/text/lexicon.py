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
    # The keys of rest as a set: a phrase whose other words are not in the text is skipped
    # without walking the text.
    needs: frozenset[str] = frozenset()


Found = list[tuple[Entry, int]]
# key → (matcher number, entry) for every phrase whose first key it is.
_Index = dict[str, list[tuple[int, Entry]]]


def _follows(tokens: Sequence[tuple[str, ...]], start: int, rest: tuple[str, ...]) -> bool:
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


Candidates = tuple[tuple[int, Entry], ...]


def _candidates(index: _Index, keys: tuple[str, ...]) -> Candidates:
    """The entries whose phrase may start at a word with these keys, in the keys' order."""
    return tuple(item for key in keys for item in index.get(key, ()))


def _positions(
    matchers: int, tokens: Sequence[tuple[str, ...]], candidates: Sequence[Candidates]
) -> list[Found]:
    """Every entry of each matcher found in tokens, with the position of its first word.

    candidates[i] are the entries whose first key the i-th word has (_candidates). One pass
    over the words for all matchers; each entry is found at most once, at the first position
    where the whole phrase follows, in the order of discovery.
    """
    found: list[dict[int, tuple[Entry, int]]] = [{} for _ in range(matchers)]
    present: set[str] | None = None
    for position, entries in enumerate(candidates):
        for slot, entry in entries:
            seen = found[slot]
            if entry.ident in seen:
                continue
            if entry.rest:
                if present is None:
                    present = {key for keys in tokens for key in keys}
                if not entry.needs <= present or not _follows(tokens, position, entry.rest):
                    continue
            seen[entry.ident] = (entry, position)
    return [list(seen.values()) for seen in found]


class PhraseMatcher:
    """Finds lexicon phrases in analysed text; each phrase counts once per text."""

    def __init__(self, analyzer: Analyzer, items: Iterable[tuple[str, str, float]]) -> None:
        """Compile (label, phrase, weight) items with the analyzer's stemming."""
        self._index: _Index = {}
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
            rest = elements[1:]
            entry = Entry(label, rest, weight, ident, elements[0], frozenset(rest))
            self._index.setdefault(elements[0], []).append((0, entry))

    def matches(self, tokens: Sequence[tuple[str, ...]]) -> list[Entry]:
        """Return every entry found in tokens (each at most once)."""
        return [entry for entry, _ in self.positions(tokens)]

    def positions(self, tokens: Sequence[tuple[str, ...]]) -> Found:
        """Return every entry found in tokens with the position of its first word."""
        index = self._index
        return _positions(1, tokens, [_candidates(index, keys) for keys in tokens])[0]

    def scores(self, tokens: Sequence[tuple[str, ...]]) -> dict[str, float]:
        """Sum the weights of found phrases per label."""
        return label_scores(self.positions(tokens))

    def any(self, tokens: Sequence[tuple[str, ...]]) -> bool:
        """Return whether any phrase occurs in tokens."""
        return bool(self.matches(tokens))


def label_scores(found: Found) -> dict[str, float]:
    """Sum the weights of found phrases per label."""
    totals: dict[str, float] = {}
    for entry, _ in found:
        totals[entry.label] = totals.get(entry.label, 0.0) + entry.weight
    return totals


class MatcherGroup:
    """Several phrase matchers searched in one pass over the words (the classifier's lexicons)."""

    def __init__(self, *matchers: PhraseMatcher) -> None:
        """Merge the matchers' indexes; each keeps its own entries and results."""
        self._count = len(matchers)
        self._index: _Index = {}
        for slot, matcher in enumerate(matchers):
            for key, entries in matcher._index.items():
                self._index.setdefault(key, []).extend((slot, entry) for _, entry in entries)

    def candidates(self, keys: tuple[str, ...]) -> Candidates:
        """The entries whose phrase may start at a word with these keys (cache it per word)."""
        return _candidates(self._index, keys)

    def positions(
        self, tokens: Sequence[tuple[str, ...]], candidates: Sequence[Candidates] | None = None
    ) -> list[Found]:
        """Each matcher's positions(tokens), in the matchers' order.

        candidates: self.candidates() of each word, if the caller has them cached.
        """
        if candidates is None:
            candidates = [self.candidates(keys) for keys in tokens]
        return _positions(self._count, tokens, candidates)
