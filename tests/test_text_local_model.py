"""The region's local model: where it lives, loading it safely, training it from corrections."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import text as text_analysis
from bot.text import (
    DOUBTFUL_CONFIDENCE,
    MODEL_ENV,
    Classification,
    classify,
    is_doubtful,
    local_model_path,
    model_version,
    train_local,
    use_local_model,
)
from bot.text.corpus import DEV_CORPUS, load_corpus
from bot.text.store import BUILTIN_MODEL_PATH, file_version

ROOT = Path(__file__).parents[1]
# A message the built-in corpus does not contain, corrected by the press office.
REGION_TEXT = "Когда в Заозёрном откроют новую баню на Песчаной?"


@pytest.fixture(autouse=True)
def builtin_afterwards() -> Iterator[None]:
    """Every test leaves the process with the built-in model (the state is process-wide)."""
    yield
    assert use_local_model(None) is None
    assert MODEL_ENV not in os.environ


def test_local_model_path_next_to_sqlite_file_none_in_memory_cwd_for_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert local_model_path(f"sqlite+aiosqlite:///{tmp_path}/data/otklik.db") == (
        tmp_path / "data" / "otklik.model.json"
    )
    assert local_model_path("sqlite+aiosqlite:///region.db") == Path("region.model.json")
    assert local_model_path("sqlite+aiosqlite://") is None
    assert local_model_path("sqlite+aiosqlite:///:memory:") is None
    assert local_model_path("not a url") is None
    monkeypatch.chdir(tmp_path)
    assert local_model_path("postgresql+asyncpg://otklik@db.local:5432/region") == (
        tmp_path / "region.model.json"
    )


def test_missing_file_means_the_builtin_model(tmp_path: Path) -> None:
    builtin = file_version(BUILTIN_MODEL_PATH.read_bytes(), "builtin")
    assert use_local_model(tmp_path / "otklik.model.json") is None
    assert model_version() == builtin
    assert use_local_model(None) is None
    assert model_version() == builtin


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"garbage\x00\xff", "повреждён"),
        (b'{"format": 2, "mode": "stem", "linear": {}}', "повреждён"),
        (b'{"format": 2, "mode": "stem", "linear": {"heads": []}}', "повреждён"),
        (b'{"format": 1, "mode": "stem", "appeal": {}}', "другой версией"),
        (b'{"format": 99}', "другой версией"),
        (b"[1, 2, 3]", "другой версией"),
        (b"", "повреждён"),
    ],
)
def test_corrupt_file_is_reported_in_russian_and_the_builtin_model_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, reason: str
) -> None:
    path = tmp_path / "otklik.model.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        message = use_local_model(path)
    assert message is not None and reason in message and str(path) in message
    assert message.endswith("используется встроенная модель.")
    assert message in caplog.text
    assert model_version().startswith("builtin-")
    assert classify("Когда починят дорогу на Ленина?").is_appeal
    assert path.read_bytes() == content  # nothing is deleted or rewritten by loading


def test_unreadable_file_is_reported_not_raised(tmp_path: Path) -> None:
    message = use_local_model(tmp_path)  # a directory: reading it fails with an OSError
    assert message is not None and "не читается" in message
    assert model_version().startswith("builtin-")


def test_train_is_idempotent_and_corrections_win(tmp_path: Path) -> None:
    path = tmp_path / "otklik.model.json"
    steps: list[tuple[int, int]] = []
    corrections: list[dict[str, object]] = [
        {"text": REGION_TEXT, "is_appeal": True, "topic": "other", "urgent": False},
        {"text": "Спасибо за новую дорогу!", "is_appeal": True, "topic": "roads", "urgent": False},
        {"text": "", "is_appeal": True, "topic": None, "urgent": False},  # not valid
        {"text": "Газ", "is_appeal": True, "topic": "weather", "urgent": False},  # not valid
        {"text": "Продам гараж недорого", "is_appeal": False, "topic": None, "urgent": False},
    ]
    first = train_local(corrections, path, lambda done, total: steps.append((done, total)))
    assert first.changed and path.exists()
    assert (first.corrections, first.used, first.rejected) == (5, 3, 2)
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]
    data = path.read_bytes()
    second = train_local(corrections, path)
    assert not second.changed and path.read_bytes() == data
    assert second.version == first.version == file_version(data, "local")
    assert "без изменений" in second.report_ru()
    assert "записана" in first.report_ru()

    assert use_local_model(path) is None
    assert model_version() == first.version
    assert os.environ[MODEL_ENV] == str(path.resolve())  # child processes take the same file
    assert classify(REGION_TEXT).is_appeal
    # The press office's decisions win over the built-in model's on the texts they corrected.
    assert classify("Спасибо за новую дорогу!").is_appeal
    assert classify("Спасибо за новую дорогу!").topic == "roads"
    assert not classify("Продам гараж недорого").is_appeal


def test_report_uses_russian_plurals(tmp_path: Path) -> None:
    flipped = [
        {"text": e.text, "is_appeal": not e.is_appeal, "topic": None if e.is_appeal else "other"}
        for e in load_corpus(DEV_CORPUS)[:2]
    ]
    one = train_local(flipped[:1], tmp_path / "a.model.json")
    assert one.overriding == 1
    assert "1\u00a0исправление поменяло разметку" in one.report_ru()
    two = train_local(flipped, tmp_path / "b.model.json")
    assert "2\u00a0исправления поменяли разметку" in two.report_ru()
    assert "Исправлений прочитано: 2, учтено: 2." in two.report_ru()


def test_doubtful_is_a_non_appeal_below_the_threshold() -> None:
    assert 0.5 <= DOUBTFUL_CONFIDENCE <= 1
    assert is_doubtful(Classification(False, "other", False, DOUBTFUL_CONFIDENCE - 0.01))
    assert not is_doubtful(Classification(False, "other", False, DOUBTFUL_CONFIDENCE))
    assert not is_doubtful(Classification(True, "roads", False, 0.51))
    assert not is_doubtful(classify("", "sticker"))
    sure = classify("Продам гараж, недорого, звоните")
    assert not sure.is_appeal and 0.5 <= sure.confidence <= 1


def _otklik(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))}
    env.pop(MODEL_ENV, None)
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{cwd}/otklik.db")
    return subprocess.run(
        [sys.executable, "-m", "bot", "--env-file", str(cwd / "none.env"), *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_train_command_twice_then_a_corrupt_file(tmp_path: Path) -> None:
    first = _otklik("train", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Локальная модель записана" in first.stdout
    path = tmp_path / "otklik.model.json"
    data = path.read_bytes()
    second = _otklik("train", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "без изменений" in second.stdout and path.read_bytes() == data
    assert "Traceback" not in first.stderr + second.stderr

    path.write_text("{broken", encoding="utf-8")
    line = json.dumps({"text": "Когда починят дорогу на Ленина?"}, ensure_ascii=False)
    classified = _otklik("classify", cwd=tmp_path, stdin=line + "\n")
    assert classified.returncode == 0
    assert "повреждён" in classified.stderr and "встроенная модель" in classified.stderr
    out = json.loads(classified.stdout)
    assert out["is_appeal"] is True and 0.5 <= out["confidence"] <= 1

    again = _otklik("train", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "повреждён" in again.stderr and "Локальная модель записана" in again.stdout
    assert path.read_bytes() == data  # the corrupt file is replaced by the same model as before


def test_the_intake_writer_process_inherits_the_choice(tmp_path: Path) -> None:
    path = tmp_path / "otklik.model.json"
    train_local([], path)
    assert use_local_model(path) is None
    child = subprocess.run(
        [sys.executable, "-c", "from bot import text; print(text.model_version())"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert child.stdout.strip() == text_analysis.model_version()
