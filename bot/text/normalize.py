"""Russian text normalisation: case, ё, emoji, look-alike Latin letters, stems and typo repair."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import snowballstemmer

__all__ = ["Analyzer", "clean_word", "normalize", "raw_words", "words"]

# Spam and careless typing mix Latin look-alikes into Cyrillic words («cпacибo»).
_LATIN_LOOKALIKES = str.maketrans("aceopxykmtbh", "асеорхукмтвн")
_WORD_RE = re.compile(r"[a-zа-я0-9]+")
_REPEAT_RE = re.compile(r"(.)\1{2,}")
_CYRILLIC_RE = re.compile(r"[а-я]")
_LATIN_RE = re.compile(r"[a-z]")

# Stems shorter than this are never "repaired": short words have too many neighbours.
_MIN_TYPO_LEN = 5
# Caches are bounded so that a long-running worker fed with junk does not grow without limit.
_CACHE_LIMIT = 200_000


def normalize(text: str) -> str:
    """Lower-case, fold ё to е and squeeze letters repeated three times or more."""
    lowered = text.lower().replace("ё", "е")
    return _REPEAT_RE.sub(r"\1", lowered)


def words(text: str) -> list[str]:
    """Split text into normalised words (emoji and punctuation dropped, hyphens split)."""
    normalized = normalize(text)
    found: list[str] = _WORD_RE.findall(normalized)
    if not _LATIN_RE.search(normalized):  # most comments: no word mixes the alphabets
        return found
    return [_repair_lookalikes(word) for word in found]


def _repair_lookalikes(word: str) -> str:
    """Latin look-alikes inside a Cyrillic word mapped back («мусoр» with a Latin o)."""
    if _LATIN_RE.search(word) and _CYRILLIC_RE.search(word):
        return word.translate(_LATIN_LOOKALIKES)
    return word


def raw_words(text: str) -> list[str]:
    """The words of text before squeezing and look-alike repair: [clean_word(w) …] == words(text).

    A run of one repeated character lies wholly inside a word or wholly between words, so
    squeezing each word gives the words of the squeezed text; callers that cache per word
    (the classifier) do that work once per distinct word instead of once per text.
    """
    found: list[str] = _WORD_RE.findall(text.lower().replace("ё", "е"))
    return found


def clean_word(raw: str) -> str:
    """The normalised form of one word of raw_words() (as words() would give it)."""
    return _repair_lookalikes(_REPEAT_RE.sub(r"\1", raw))


def _snowball() -> Callable[[str], str]:
    """Return the Snowball Russian stemmer as a word function."""
    stemmer = snowballstemmer.stemmer("russian")
    return stemmer.stemWord


def _pymorphy() -> Callable[[str], str]:
    """Return the pymorphy3 lemmatiser as a word function (used for the comparison only)."""
    morph = _morph_analyzer()

    def lemma(word: str) -> str:
        return morph.parse(word)[0].normal_form

    return lemma


_morph_lock = threading.Lock()
_morph: object | None = None


def _morph_analyzer() -> Any:
    """Return the shared pymorphy3 analyzer, created on first use (thread-safe)."""
    global _morph
    if _morph is None:
        with _morph_lock:
            if _morph is None:
                import pymorphy3

                _morph = pymorphy3.MorphAnalyzer()
    return _morph


def _deletions(word: str) -> Iterable[str]:
    """Yield every string obtained from word by deleting one character."""
    for index in range(len(word)):
        yield word[:index] + word[index + 1 :]


class Analyzer:
    """Turns text into per-word keys: a stem (or lemma), plus matching prefix patterns."""

    def __init__(self, mode: str = "stem") -> None:
        """Create an analyzer; mode is "stem" (Snowball) or "lemma" (pymorphy3)."""
        if mode not in ("stem", "lemma"):
            raise ValueError(f"unknown analyzer mode {mode!r}")
        self.mode = mode
        self._base = _snowball() if mode == "stem" else _pymorphy()
        self._base_cache: dict[str, str] = {}
        self._word_cache: dict[str, tuple[str, ...]] = {}
        self._imperative_cache: dict[str, bool] = {}
        self._lemma_cache: dict[str, str] = {}
        self._known: set[str] = set()
        self._deletes: dict[str, str] = {}
        self._prefixes: set[str] = set()
        self._prefix_lengths: tuple[int, ...] = ()
        self._lock = threading.Lock()

    def base(self, word: str, cache: bool = True) -> str:
        """Return the stem or lemma of one normalised word (cached unless cache=False)."""
        cached = self._base_cache.get(word)
        if cached is None:
            cached = self._base(word) if len(word) > 2 else word
            if not cache:
                return cached
            if len(self._base_cache) > _CACHE_LIMIT:
                self._base_cache.clear()
            self._base_cache[word] = cached
        return cached

    def lemma(self, word: str) -> str:
        """Return pymorphy3's dictionary form of a word (cached); navec knows those best."""
        cached = self._lemma_cache.get(word)
        if cached is None:
            cached = _morph_analyzer().parse(word)[0].normal_form
            if len(self._lemma_cache) > _CACHE_LIMIT:
                self._lemma_cache.clear()
            self._lemma_cache[word] = cached
        return cached

    def is_imperative(self, word: str, cache: bool = True) -> bool:
        """Return whether word can be a plural imperative («сделайте», «продлите»): a request.

        cache=False: a caller that keeps the answer per word itself (the classifier).
        """
        cached = self._imperative_cache.get(word)
        if cached is None:
            cached = word.endswith(("ите", "йте", "ьте")) and any(
                "impr" in parse.tag and "plur" in parse.tag
                for parse in _morph_analyzer().parse(word)[:4]
            )
            if not cache:
                return cached
            if len(self._imperative_cache) > _CACHE_LIMIT:
                self._imperative_cache.clear()
            self._imperative_cache[word] = cached
        return cached

    def set_vocabulary(self, known: Iterable[str], prefixes: Iterable[str]) -> None:
        """Register known stems (for typo repair) and prefix patterns; clears caches."""
        with self._lock:
            self._known = set(known)
            deletes: dict[str, str] = {}
            for stem in sorted(self._known):
                if len(stem) >= _MIN_TYPO_LEN - 1:
                    for shorter in _deletions(stem):
                        deletes.setdefault(shorter, stem)
            self._deletes = deletes
            self._prefixes = set(prefixes)
            self._prefix_lengths = tuple(sorted({len(p) for p in self._prefixes}))
            self._word_cache = {}

    def repair(self, stem: str) -> str:
        """Map an unknown stem to a known one at edit distance one, if there is one."""
        if stem in self._known or len(stem) < _MIN_TYPO_LEN or stem.isdigit():
            return stem
        found = self._deletes.get(stem)  # a letter is missing
        if found is not None:
            return found
        for shorter in _deletions(stem):
            if shorter in self._known:  # an extra letter
                return shorter
        for shorter in _deletions(stem):
            found = self._deletes.get(shorter)  # a wrong or swapped letter
            if found is not None:
                return found
        return stem

    def word_keys(self, word: str, cache: bool = True) -> tuple[str, ...]:
        """Return the keys of one normalised word: its repaired stem and prefix patterns.

        cache=False: a caller that keeps the keys per word itself (the classifier).
        """
        cached = self._word_cache.get(word)
        if cached is not None:
            return cached
        stem = self.base(word, cache)
        # Only words the dictionary does not know are typos; «оторваны» must not become «оборваны».
        if stem not in self._known and not _morph_analyzer().word_is_known(word):
            stem = self.repair(stem)
        keys = [stem]
        for length in self._prefix_lengths:
            if len(word) >= length and word[:length] + "*" in self._prefixes:
                keys.append(word[:length] + "*")
        result = tuple(keys)
        if not cache:
            return result
        if len(self._word_cache) > _CACHE_LIMIT:
            self._word_cache = {}
        self._word_cache[word] = result
        return result

    def analyze(self, text: str) -> list[tuple[str, ...]]:
        """Return the keys of every word of text, in order."""
        return [self.word_keys(word) for word in words(text)]

    def phrase(self, phrase: str) -> tuple[str, ...]:
        """Turn a lexicon phrase into its sequence of keys (stems or «prefix*» patterns)."""
        elements = []
        for raw in phrase.split():
            if raw.endswith("*"):
                stem_words = words(raw[:-1])
                if stem_words:
                    elements.append("".join(stem_words) + "*")
                continue
            elements.extend(self.base(word) for word in words(raw))
        return tuple(elements)
