"""`otklik run` as a real process: refuses to start without a source, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.sandbox import TelegramSandbox
from tests.conftest import MONDAY_10_MSK
from tests.telegram_harness import CHANNEL, GROUP, TOKEN, setup_sandbox

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))}


async def _otklik(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--env-file",
        str(cwd / "missing.env"),
        *args,
        env=env,
        cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_run_without_a_source_exits_non_zero_naming_settings(tmp_path: Path) -> None:
    env = {**CLEAN_ENV, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = await _otklik("run", env=env, cwd=tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    message = stderr.decode()
    assert "TELEGRAM_BOT_TOKEN" in message
    assert "VK_GROUP_TOKENS" in message


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        yield box


async def test_sigterm_finishes_confirms_offset_and_exits_zero(
    tmp_path: Path, sandbox: TelegramSandbox
) -> None:
    database = tmp_path / "otklik.db"
    env = {
        **CLEAN_ENV,
        "PYTHONPATH": str(Path(__file__).parents[1]),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_SERVER": sandbox.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        # Not DEBUG: the test reads stderr only at the end, and a pipe full of debug lines
        # (64 KiB) would block the process on its next log line.
        "LOG_LEVEL": "INFO",
    }
    _, forward = sandbox.inject_channel_post(CHANNEL["id"], "Новость", date=MONDAY_10_MSK)
    assert forward is not None
    sandbox.inject_message(
        GROUP["id"],
        {"id": 501, "is_bot": False, "first_name": "Иван"},
        "Когда уберут снег во дворе дома 7 на улице Мира? Не пройти.",
        reply_to=forward["message_id"],
        date=MONDAY_10_MSK + timedelta(minutes=5),
    )
    process = await _otklik("run", env=env, cwd=tmp_path)
    try:
        await asyncio.wait_for(_appeal_stored(database), 30)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 15)
    log = stderr.decode()
    assert process.returncode == 0, log[-2000:]
    assert sandbox.pending_updates() == 0  # the last offset was confirmed on the way out
    assert TOKEN not in log and TOKEN not in stdout.decode()
    assert "Отклик запущен: Telegram (опрос), напоминания и сводки" in log
    assert "Отклик остановлен" in log
    # What an administrator reads is Russian: every line at INFO and above (issue 12).
    lines = [line for line in log.splitlines() if re.match(r"\S+ \S+ (INFO|WARNING|ERROR) ", line)]
    assert lines, log[-2000:]
    english = [line for line in lines if not re.search(r"[а-яё]", line.split(": ", 1)[-1], re.I)]
    assert english == [], english


async def _appeal_stored(database: Path) -> None:
    """Wait until the running process has stored an appeal.

    Each look is one short read-only connection, closed at once: a reader that keeps a
    connection (and its transaction) open would hold the SQLite lock that the process's
    migrations need to rebuild tables, and both would wait for each other.
    """
    while True:
        if database.exists():  # noqa: ASYNC240  (waiting for another process)
            connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.2)
            try:
                if connection.execute("SELECT 1 FROM appeal LIMIT 1").fetchone() is not None:
                    return
            except sqlite3.Error:  # the schema may not be there yet, or the file is locked
                pass
            finally:
                connection.close()
        await asyncio.sleep(0.2)
