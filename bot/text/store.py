"""Model files: the built-in one inside the package and a press office's local one next to its db.

A local model file is written by `otklik train` (`bot.text.training.train_local`) and read by
every command at start (`bot.text.use_local_model`). A file that is missing, unreadable or made
by another version of Otklik never stops a command: the built-in model is used and the reason is
reported in Russian.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bot.text.classifier import MODEL_FORMAT, MODEL_PATH, Classifier

__all__ = [
    "BUILTIN_MODEL_PATH",
    "LOCAL_SUFFIX",
    "ModelFileError",
    "file_version",
    "load_model_bytes",
    "local_model_path",
    "write_atomically",
]

BUILTIN_MODEL_PATH = MODEL_PATH
LOCAL_SUFFIX = ".model.json"
# Where a PostgreSQL installation keeps its local model: the working directory of the commands,
# named after the database (all workers of one installation run from one directory).
_SERVER_DEFAULT_NAME = "otklik"


class ModelFileError(ValueError):
    """A model file cannot be used: unreadable, corrupt, or made by another version."""

    def __init__(self, message_ru: str) -> None:
        super().__init__(message_ru)
        self.message_ru = message_ru


def local_model_path(database_url: str) -> Path | None:
    """The local model file for a database: next to a SQLite file, in the cwd for a server db.

    `sqlite+aiosqlite:///data/otklik.db` → `data/otklik.model.json`; an in-memory SQLite
    database has no sensible place (None); PostgreSQL `…/region` → `./region.model.json`.
    """
    # Imported here, not at the top: the classifier itself never needs SQLAlchemy, and a process
    # that only classifies (the benchmark, `otklik classify`) is ~10 MB smaller without it.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        return None
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return None
        db_path = Path(database)
        return db_path.with_name(db_path.stem + LOCAL_SUFFIX)
    name = Path(url.database or _SERVER_DEFAULT_NAME).name or _SERVER_DEFAULT_NAME
    return Path.cwd() / f"{name}{LOCAL_SUFFIX}"


def file_version(data: bytes, prefix: str) -> str:
    """A stable id of a model file's content: «builtin-1a2b3c4d5e6f», «local-…»."""
    return f"{prefix}-{hashlib.sha256(data).hexdigest()[:12]}"


def load_model_bytes(data: bytes, path: Path) -> Classifier:
    """Build a classifier from a model file's bytes; ModelFileError says why it cannot be used."""
    try:
        model: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(
            f"Файл модели {path} повреждён ({error}); используется встроенная модель."
        ) from None
    if (
        not isinstance(model, dict)
        or model.get("format") != MODEL_FORMAT
        or model.get("mode") != "stem"
    ):
        raise ModelFileError(
            f"Файл модели {path} создан другой версией Otklik или не является моделью; "
            "используется встроенная модель."
        )
    try:
        return Classifier(mode="stem", model=model)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, binascii.Error) as error:
        raise ModelFileError(
            f"Файл модели {path} повреждён ({type(error).__name__}: {error}); "
            "используется встроенная модель."
        ) from None


def write_atomically(path: Path, data: bytes) -> None:
    """Write data to path so that a reader sees the old file or the new one, never a half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a model is not secret
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
