"""`otklik backfill vk`: paging, threads, retries, resume — real vk_api against the sandbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import AppContext
from bot.sandbox.vk import VkSandbox
from handlers.vk.backfill import backfill_command, backfill_cursor
from storage import repositories as repo
from storage.models import Appeal, CitizenMessage, OfficialReply
from tests.test_vk_intake import (
    APPEAL_TEXT,
    CITIZEN,
    FAST_RETRY,
    GOVERNOR,
    GROUP_ID,
    OTHER_CITIZEN,
    REPLY_TEXT,
    T0,
    WALL,
    count,
    make_sandbox,
    vk_settings,
)

SINCE = T0 - timedelta(days=10)


@pytest.fixture
async def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VkSandbox]:
    monkeypatch.chdir(tmp_path)
    async with make_sandbox() as box:
        yield box


def fill_wall(box: VkSandbox) -> list[int]:
    """Three posts in the period (one with 105 comments, one with a long thread), one before."""
    old = box.add_post(WALL, "Давний пост", SINCE - timedelta(days=1), emit=False)
    box.add_comment(
        WALL, old, CITIZEN, "Когда починят крышу?", SINCE - timedelta(hours=1), emit=False
    )
    posts = []
    busy = box.add_post(WALL, "Отчёт главы", T0 - timedelta(days=5), emit=False)
    for n in range(105):
        box.add_comment(
            WALL,
            busy,
            1000 + n,
            f"Когда отремонтируют дом {n}?",
            T0 - timedelta(days=4),
            emit=False,
        )
    posts.append(busy)
    threaded = box.add_post(WALL, "Дороги", T0 - timedelta(days=3), emit=False)
    root = box.add_comment(WALL, threaded, CITIZEN, APPEAL_TEXT, T0 - timedelta(days=3), emit=False)
    for n in range(12):
        box.add_comment(
            WALL,
            threaded,
            2000 + n,
            f"Согласен, {n}",
            T0 - timedelta(days=3) + timedelta(minutes=n + 1),
            reply_to_comment=root,
            emit=False,
        )
    box.add_comment(
        WALL,
        threaded,
        WALL,
        REPLY_TEXT,
        T0 - timedelta(days=3) + timedelta(hours=2),
        reply_to_comment=root,
        emit=False,
    )
    posts.append(threaded)
    quiet = box.add_post(WALL, "Погода", T0 - timedelta(days=1), emit=False)
    box.add_comment(
        WALL, quiet, OTHER_CITIZEN, "Почему не убирают снег?", T0 - timedelta(hours=20), emit=False
    )
    posts.append(quiet)
    return posts


async def test_backfill_loads_posts_threads_and_dialogues_with_retries(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    app = AppContext.create(vk_settings(sandbox), sqlite_engine)
    _, threaded, _ = fill_wall(sandbox)
    sandbox.send_community_message(GROUP_ID, 700, 700, "Когда дадут отопление?", T0, emit=False)
    sandbox.send_community_message(
        GROUP_ID, 700, 901, REPLY_TEXT, T0 + timedelta(hours=1), out=True, emit=False
    )
    # Too many requests, then an internal error, in the middle: both retried with backoff.
    sandbox.fail_next("wall.getComments", 6, when={"post_id": threaded})
    sandbox.fail_next("wall.getComments", 10, when={"post_id": threaded, "offset": 0})
    code = await backfill_command(app, GROUP_ID, SINCE, rps_delay=0, retry=FAST_RETRY)
    assert code == 0
    out, err = capsys.readouterr()
    # The summary on stdout, in Russian; the progress bar on stderr.
    assert "прочитано постов: 3," in out and "ВКонтакте" in err
    # 105 + 13 in the thread + 1 + the dialogue's citizen message: all citizen messages.
    assert await count(app, CitizenMessage) == 105 + 13 + 1 + 1
    assert await count(app, OfficialReply) == 2
    async with app.sessions() as session:
        answered = (
            await session.exec(select(Appeal).where(col(Appeal.first_response_at).is_not(None)))
        ).all()
    assert sorted(a.frt_s or 0 for a in answered) == [3600, 7200]
    errors = [c.error_code for c in sandbox.calls if c.method == "wall.getComments"]
    assert 6 in errors and 10 in errors
    old_reads = [c for c in sandbox.calls if c.params.get("post_id") == "1"]
    assert old_reads == []  # the post before --since is not read
    # Idempotent: a second run over the same period adds nothing.
    assert await backfill_command(app, GROUP_ID, SINCE, rps_delay=0, retry=FAST_RETRY) == 0
    assert await count(app, CitizenMessage) == 120


async def test_backfill_resumes_after_an_interruption(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    app = AppContext.create(vk_settings(sandbox), sqlite_engine)
    busy, threaded, quiet = fill_wall(sandbox)
    # The token dies on the second post: the run stops, the first post is done.
    sandbox.fail_next("wall.getComments", 5, when={"post_id": threaded})
    assert await backfill_command(app, GROUP_ID, SINCE, rps_delay=0, retry=FAST_RETRY) == 1
    assert "Запустите ту же команду ещё раз" in capsys.readouterr().err
    async with app.sessions() as session:
        cursor = json.loads(await repo.get_cursor(session, backfill_cursor(WALL)) or "{}")
    assert cursor["post"] == busy
    assert await count(app, CitizenMessage) == 105
    sandbox.calls.clear()
    assert await backfill_command(app, GROUP_ID, SINCE, rps_delay=0, retry=FAST_RETRY) == 0
    read = {c.params.get("post_id") for c in sandbox.calls if c.method == "wall.getComments"}
    assert read == {str(threaded), str(quiet)}  # the completed post is not read again
    assert await count(app, CitizenMessage) == 105 + 13 + 1


async def test_backfill_skips_a_deleted_post_and_reads_a_personal_wall(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox
) -> None:
    app = AppContext.create(vk_settings(sandbox, walls=str(GOVERNOR)), sqlite_engine)
    sandbox.add_wall(GOVERNOR)
    gone = sandbox.add_post(GOVERNOR, "Удалённый пост", T0 - timedelta(days=2), emit=False)
    sandbox.add_comment(GOVERNOR, gone, CITIZEN, APPEAL_TEXT, T0 - timedelta(days=2), emit=False)
    kept = sandbox.add_post(GOVERNOR, "Приём граждан", T0 - timedelta(days=1), emit=False)
    root = sandbox.add_comment(GOVERNOR, kept, CITIZEN, APPEAL_TEXT, T0, emit=False)
    sandbox.add_comment(
        GOVERNOR, kept, GOVERNOR, REPLY_TEXT, T0 + timedelta(hours=5), root, emit=False
    )
    sandbox.fail_next("wall.getComments", 100, when={"post_id": gone})
    assert await backfill_command(app, GOVERNOR, SINCE, rps_delay=0, retry=FAST_RETRY) == 0
    async with app.sessions() as session:
        (appeal,) = (await session.exec(select(Appeal))).all()
    assert appeal.frt_s == 5 * 3600


async def test_backfill_without_service_token_says_what_to_set(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    app = AppContext.create(vk_settings(sandbox, service=False), sqlite_engine)
    assert await backfill_command(app, GROUP_ID, SINCE, rps_delay=0) == 2
    assert "VK_SERVICE_TOKEN" in capsys.readouterr().err
