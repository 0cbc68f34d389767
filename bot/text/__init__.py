"""Text understanding: is a comment an appeal, its topic and urgency; what a reply contains."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import TextIO

from bot.text.classifier import TOPICS, Classification, Classifier
from bot.text.replies import ReplyContent, ReplyReader

logger = logging.getLogger(__name__)

__all__ = [
    "TOPICS",
    "TOPIC_TITLES_RU",
    "Classification",
    "ReplyContent",
    "classify",
    "classify_stream",
    "corrections_to_corpus",
    "get_classifier",
    "is_dissatisfied",
    "is_interim",
    "reply_content",
]

TOPIC_TITLES_RU: dict[str, str] = {
    "housing": "ЖКХ",
    "roads": "Дороги",
    "transport": "Транспорт",
    "amenities": "Благоустройство",
    "waste": "Мусор и отходы",
    "health": "Здравоохранение",
    "education": "Образование",
    "social": "Социальная поддержка",
    "ecology": "Экология",
    "safety": "Безопасность",
    "economy": "Экономика и работа",
    "other": "Другое",
}

# Media kinds that can carry an appeal even without text (we cannot transcribe them).
# Telegram says voice/video_note; VK calls a voice message audio_message.
_SPOKEN_KINDS = frozenset({"voice", "video_note", "audio_message"})
_NOT_APPEAL = Classification(is_appeal=False, topic="other", urgent=False)

_lock = threading.Lock()
_classifier: Classifier | None = None
_reader: ReplyReader | None = None


def get_classifier() -> Classifier:
    """Return the shared classifier, loading lexicons and the model once (thread-safe)."""
    global _classifier
    if _classifier is None:
        with _lock:
            if _classifier is None:
                _classifier = Classifier.load()
    return _classifier


def _get_reader() -> ReplyReader:
    """Return the shared reply reader, compiled once (thread-safe)."""
    global _reader
    if _reader is None:
        with _lock:
            if _reader is None:
                _reader = ReplyReader()
    return _reader


def classify(text: str, kind: str = "text") -> Classification:
    """Classify a citizen's message of the given kind ("text", "photo", "voice", "sticker", ...)."""
    if kind == "sticker":
        return _NOT_APPEAL
    if not text or not text.strip():
        if kind in _SPOKEN_KINDS:
            return Classification(is_appeal=True, topic="other", urgent=False)
        return _NOT_APPEAL
    return get_classifier().classify(text)


def is_interim(text: str) -> bool:
    """Return whether an official reply only acknowledges («передали», «взяли в работу»)."""
    return bool(text) and _get_reader().is_interim(text)


def is_dissatisfied(text: str) -> bool:
    """Return whether a citizen came back unhappy («не решено», «опять», «отписка»)."""
    return bool(text) and _get_reader().is_dissatisfied(text)


def reply_content(text: str) -> ReplyContent:
    """Describe what an official reply names: action, date, body, contact, the citizen."""
    if not text:
        return ReplyContent(False, False, False, False, False)
    return _get_reader().content(text)


def classify_stream(infile: TextIO, outfile: TextIO) -> int:
    """Classify JSON lines {"text": ...} into JSON lines, one output line per input line.

    Blank lines (a trailing newline, an empty line between records) are not records: skipped.
    """
    count = 0
    for number, line in enumerate(infile, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                raise ValueError('expected an object with a string "text"')
            kind = data.get("kind", "text")
            result = classify(data["text"], kind if isinstance(kind, str) else "text")
            output: dict[str, object] = {
                "is_appeal": result.is_appeal,
                "topic": result.topic,
                "urgent": result.urgent,
            }
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            logger.warning("classify: bad input line %d: %s", number, error)
            output = {"error": f"line {number}: {error}"}
        outfile.write(json.dumps(output, ensure_ascii=False) + "\n")
        count += 1
    outfile.flush()
    return count


def corrections_to_corpus(rows: Iterable[tuple[str, bool, str | None]]) -> list[str]:
    """Turn press-office corrections (text, is_appeal, topic) into corpus JSON lines."""
    from bot.text.corpus import corrections_to_corpus as convert

    return convert(rows)
