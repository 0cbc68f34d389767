"""`otklik run` as a real process: refuses to start without a source, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.sandbox import TelegramSandbox
from storage.engine import create_engine, session_factory
from storage.models import Appeal
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
        "LOG_LEVEL": "DEBUG",
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
    assert "stopped" in log


async def _appeal_stored(database: Path) -> None:
    while not database.exists():  # noqa: ASYNC110, ASYNC240  (waiting for another process)
        await asyncio.sleep(0.1)
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    sessions = session_factory(engine)
    try:
        while True:
            try:
                async with sessions() as session:
                    if (await session.exec(select(Appeal))).first() is not None:
                        return
            except Exception:  # the schema may not be there yet
                pass
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
