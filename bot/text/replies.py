"""Reading official replies and citizens' follow-ups: interim-only, dissatisfied, reply content."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.text.lexicon import LEXICON_DIR, PhraseMatcher, read_labelled, read_phrases
from bot.text.normalize import Analyzer

_MONTHS = "январ|феврал|март|апрел|ма[яйе]|июн|июл|август|сентябр|октябр|ноябр|декабр"
_DATE_RE = re.compile(
    r"\b\d{1,2}[./]\d{1,2}(?:[./]\d{2,4})?\b"
    rf"|\b\d{{1,2}}\s+(?:{_MONTHS})"
    r"|\bв\s+течени[ие]\s+(?:\d+|одного|двух|трех|трёх|пяти|десяти|недели|месяца|дня|суток)"
    r"|\bдо\s+\d{1,2}\b"
    r"|\b\d{1,2}:\d{2}\b"
    r"|\bв\s+\d{4}\s+год",
    re.IGNORECASE,
)
_PHONE_RE = re.compile(
    r"(?:\+7|\b8)[\s\-(]*\d{3}[\s\-)]*\d{3}[\s\-]*\d{2}[\s\-]*\d{2}|\b\d{2,3}-\d{2}-\d{2}\b"
)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b")
_URL_RE = re.compile(r"\bhttps?://\S+|\b[\w-]+\.(?:ru|рф|su)\b", re.IGNORECASE)
_ADDRESS_RE = re.compile(r"\b(?:ул|пр|пр-т|каб|д)\.\s*\S+|\bкабинет\s*№?\s*\d+", re.IGNORECASE)
_NAME_PATRONYMIC_RE = re.compile(r"^\s*[А-ЯЁ][а-яё]+\s+[А-ЯЁ][а-яё]+(?:вич|вна|чна|ична)\b")


@dataclass(frozen=True)
class ReplyContent:
    """What an official reply contains, for its quality score."""

    names_action: bool
    names_date: bool
    names_body: bool
    names_contact: bool
    addresses_citizen: bool


class ReplyReader:
    """Compiled reply lexicons; immutable after construction."""

    def __init__(self, analyzer: Analyzer | None = None) -> None:
        """Compile the interim, dissatisfaction and reply-cue lexicons."""
        self.analyzer = analyzer or Analyzer("stem")
        self.interim = PhraseMatcher(
            self.analyzer,
            (("interim", p, 1.0) for p in read_phrases(LEXICON_DIR / "interim.txt")),
        )
        self.dissatisfied = PhraseMatcher(
            self.analyzer,
            (("dissatisfied", p, 1.0) for p in read_phrases(LEXICON_DIR / "dissatisfied.txt")),
        )
        self.redirect = PhraseMatcher(
            self.analyzer,
            (("redirect", p, 1.0) for p in read_phrases(LEXICON_DIR / "redirect.txt")),
        )
        self.cues = PhraseMatcher(
            self.analyzer, read_labelled(LEXICON_DIR / "reply_cues.tsv", weighted=False)
        )

    def content(self, text: str) -> ReplyContent:
        """Describe what a reply names."""
        tokens = self.analyzer.analyze(text)
        labels = {entry.label for entry in self.cues.matches(tokens)}
        return ReplyContent(
            names_action="action" in labels,
            names_date="date" in labels or bool(_DATE_RE.search(text)),
            names_body="body" in labels,
            names_contact="contact" in labels
            or bool(
                _PHONE_RE.search(text)
                or _EMAIL_RE.search(text)
                or _URL_RE.search(text)
                or _ADDRESS_RE.search(text)
            ),
            addresses_citizen="address" in labels or bool(_NAME_PATRONYMIC_RE.match(text)),
        )

    def is_interim(self, text: str) -> bool:
        """Return whether a reply only acknowledges («передали», «взяли в работу»), no action."""
        tokens = self.analyzer.analyze(text)
        if not self.interim.any(tokens):
            return False
        labels = {entry.label for entry in self.cues.matches(tokens)}
        return "action" not in labels

    def is_redirect(self, text: str) -> bool:
        """Return whether a reply sends the citizen elsewhere («обратитесь в…»)."""
        return self.redirect.any(self.analyzer.analyze(text))

    def is_dissatisfied(self, text: str) -> bool:
        """Return whether a citizen's follow-up says the problem is not solved."""
        return self.dissatisfied.any(self.analyzer.analyze(text))
