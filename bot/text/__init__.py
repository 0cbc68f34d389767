"""Text understanding: is a comment an appeal, its topic and urgency; what a reply contains."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.text.classifier import TOPICS, Classification, Classifier
from bot.text.replies import ReplyContent, ReplyReader
from bot.text.store import (
    BUILTIN_MODEL_PATH,
    ModelFileError,
    file_version,
    load_model_bytes,
    local_model_path,
)

if TYPE_CHECKING:
    from bot.text.training import TrainSummary

logger = logging.getLogger(__name__)

__all__ = [
    "DOUBTFUL_CONFIDENCE",
    "MODEL_ENV",
    "TOPICS",
    "TOPIC_TITLES_RU",
    "Classification",
    "ReplyContent",
    "classify",
    "classify_stream",
    "corrections_to_corpus",
    "get_classifier",
    "is_dissatisfied",
    "is_doubtful",
    "is_interim",
    "local_model_path",
    "model_version",
    "reply_content",
    "train_local",
    "use_local_model",
]

# A non-appeal decided with less confidence than this is doubtful: the press chat is asked
# «Возможно, обращение» (docs/CLASSIFIER.md). Chosen on the held-out part (docs/CLASSIFIER.md): it
# sends 5 of the 6 missed appeals to people and asks about 20 of 249 true non-appeals (8 %).
DOUBTFUL_CONFIDENCE = 0.9
# The local model file chosen by use_local_model(), for child processes (the intake writer runs
# in its own process and classifies there): they inherit the environment.
MODEL_ENV = "OTKLIK_CLASSIFIER_MODEL"

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
_version: str = ""
_reader: ReplyReader | None = None


def _builtin() -> tuple[Classifier, str]:
    """Load the model shipped in the package."""
    data = BUILTIN_MODEL_PATH.read_bytes()
    return load_model_bytes(data, BUILTIN_MODEL_PATH), file_version(data, "builtin")


def _load(path: Path | None) -> tuple[Classifier, str, str | None]:
    """Load the local model at path, or the built-in one; the third item says why not local."""
    if path is not None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            pass
        except OSError as error:
            message = (
                f"Файл модели {path} не читается ({error.strerror or error}); "
                "используется встроенная модель."
            )
            return (*_builtin(), message)
        else:
            try:
                return load_model_bytes(data, path), file_version(data, "local"), None
            except ModelFileError as error:
                return (*_builtin(), error.message_ru)
    return (*_builtin(), None)


def get_classifier() -> Classifier:
    """Return the classifier in use, loading it once (thread-safe).

    A process that never called use_local_model() takes the file its parent chose (MODEL_ENV).
    """
    global _classifier, _version
    if _classifier is None:
        with _lock:
            if _classifier is None:
                inherited = os.environ.get(MODEL_ENV)
                classifier, version, problem = _load(Path(inherited) if inherited else None)
                if problem:
                    logger.warning("%s", problem)
                _classifier, _version = classifier, version
    return _classifier


def use_local_model(path: Path | None) -> str | None:
    """Make the model file at path the one classify() uses; the built-in one if it is missing.

    Returns None when the local file was loaded or there is none; a Russian message (also
    logged) when the file exists but cannot be used — then the built-in model is used. Never
    raises for a bad file.
    """
    global _classifier, _version
    classifier, version, problem = _load(path)
    with _lock:
        _classifier, _version = classifier, version
        if path is not None and problem is None and version.startswith("local-"):
            os.environ[MODEL_ENV] = str(path.resolve())
        else:
            os.environ.pop(MODEL_ENV, None)
    if problem:
        logger.warning("%s", problem)
    elif version.startswith("local-"):
        logger.debug("classifier: local model %s (%s)", path, version)
    return problem


def model_version() -> str:
    """A stable id of the model in use: «builtin-<hash>» or «local-<hash>» of the file."""
    get_classifier()
    return _version


def is_doubtful(result: Classification) -> bool:
    """A non-appeal the model is not sure of: the press chat asks «Возможно, обращение»."""
    return not result.is_appeal and result.confidence < DOUBTFUL_CONFIDENCE


def train_local(
    corrections: list[dict[str, object]],
    out_path: Path,
    progress: Callable[[int, int], None] | None = None,
) -> TrainSummary:
    """Train the built-in corpus plus corrections into a local model file (see training.py)."""
    from bot.text.training import train_local as train

    return train(corrections, out_path, progress)


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


def is_redirect(text: str) -> bool:
    """Return whether an official reply sends the citizen elsewhere («обратитесь в …»)."""
    return bool(text) and _get_reader().is_redirect(text)


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
            try:
                data = json.loads(line)
            except ValueError:
                raise ValueError("строка — не JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                raise ValueError('ожидается объект JSON с текстом в поле "text"')
            kind = data.get("kind", "text")
            result = classify(data["text"], kind if isinstance(kind, str) else "text")
            output: dict[str, object] = {
                "is_appeal": result.is_appeal,
                "topic": result.topic,
                "urgent": result.urgent,
                "confidence": result.confidence,
            }
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            logger.warning("classify: строка %d пропущена: %s", number, error)
            output = {"error": f"строка {number}: {error}"}
        outfile.write(json.dumps(output, ensure_ascii=False) + "\n")
        count += 1
    outfile.flush()
    return count


def corrections_to_corpus(rows: Iterable[tuple[str, bool, str | None]]) -> list[str]:
    """Turn press-office corrections (text, is_appeal, topic) into corpus JSON lines."""
    from bot.text.corpus import corrections_to_corpus as convert

    return convert(rows, get_classifier())
