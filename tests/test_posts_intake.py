"""Page health, item 1: a page's own posts come in through the one intake path.

Telegram: channel_post / edited_channel_post / message_reaction_count through real aiogram
polling against the Bot API sandbox. VK: wall_post_new through the real vk_api long poll
against the VK sandbox. Both databases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import AppContext
from bot.sandbox import TelegramSandbox
from bot.sandbox.vk import VkSandbox
from bot.sandbox.vk.health import attachment
from storage.health_models import Post, PostCounter
from storage.models import Page
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import CHANNEL, CHANNEL_ID, RunningIntake, eventually, setup_sandbox
from tests.test_vk_intake import WALL, Running, make_sandbox, vk_settings

T0 = MONDAY_10_MSK


async def posts_of(app: AppContext) -> list[Post]:
    async with app.sessions() as session:
        return list((await session.exec(select(Post).order_by(col(Post.published_at)))).all())


@pytest.fixture
async def tg_sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        box.now = lambda: T0 + timedelta(days=3)
        setup_sandbox(box)
        yield box


async def test_telegram_channel_posts_kinds_edits_and_reaction_counts(
    engine: AsyncEngine, tg_sandbox: TelegramSandbox
) -> None:
    app = AppContext.create(make_settings(), engine)
    running = RunningIntake(app, tg_sandbox)
    await running.start()
    try:
        text, _ = tg_sandbox.inject_channel_post(CHANNEL_ID, "Итоги недели", date=T0)
        video, _ = tg_sandbox.inject_channel_post(
            CHANNEL_ID, "Как прошёл субботник", date=T0 + timedelta(hours=1), kind="video"
        )
        tg_sandbox.inject_channel_post(
            CHANNEL_ID, None, date=T0 + timedelta(hours=2), kind="video_note"
        )
        tg_sandbox.inject_channel_post(
            CHANNEL_ID, "Фото", date=T0 + timedelta(hours=3), kind="photo"
        )
        tg_sandbox.inject_channel_post(
            CHANNEL_ID, "Куда сходить?", date=T0 + timedelta(hours=4), kind="poll"
        )
        tg_sandbox.inject_message(
            CHANNEL_ID,
            None,
            "Новость партнёров",
            date=T0 + timedelta(hours=5),
            forward_origin={
                "type": "channel",
                "chat": {"id": -100777, "type": "channel", "title": "Партнёры"},
                "message_id": 9,
                "date": 1,
            },
        )
        tg_sandbox.inject_edited_message(
            text, "Итоги недели: всё о ремонте дорог", edit_date=T0 + timedelta(minutes=5)
        )
        tg_sandbox.inject_reaction_count(
            CHANNEL_ID, video["message_id"], {"👍": 7, "🔥": 3}, date=T0 + timedelta(hours=30)
        )
        tg_sandbox.inject_reaction_count(CHANNEL_ID, 999, {"👍": 1}, date=T0 + timedelta(hours=30))

        async def all_in() -> list[Post] | None:
            rows = await posts_of(app)
            return rows if len(rows) == 6 and any(r.likes for r in rows) else None

        rows = await eventually(all_in)
    finally:
        await running.stop()
    assert [row.kind for row in rows] == ["text", "video", "clip", "photo", "poll", "repost"]
    first = rows[0]
    assert first.external_id == str(text["message_id"])
    assert first.text_length == len("Итоги недели: всё о ремонте дорог")
    assert first.edited_at == T0 + timedelta(minutes=5)
    assert first.published_at == T0
    assert first.link == f"https://t.me/{CHANNEL['username']}/{text['message_id']}"
    assert first.views is None and first.likes is None  # unknown, not zero
    assert rows[1].likes == 10
    assert rows[1].counters_at == T0 + timedelta(hours=30)
    assert rows[2].text_length == 0
    async with app.sessions() as session:
        marks = (await session.exec(select(PostCounter))).all()
        assert [(m.post_id, m.mark_h, m.likes, m.views) for m in marks] == [
            (rows[1].id, 24, 10, None)
        ]
        page = (await session.exec(select(Page))).one()
        assert (page.external_id, page.kind) == (str(CHANNEL_ID), "tg_channel")


@pytest.fixture
async def vk_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VkSandbox]:
    monkeypatch.chdir(tmp_path)
    async with make_sandbox() as box:
        yield box


async def test_vk_wall_post_new_records_kind_length_link_and_comments_setting(
    engine: AsyncEngine, vk_box: VkSandbox
) -> None:
    app = AppContext.create(vk_settings(vk_box), engine)
    async with Running(app) as intake:
        vk_box.add_post(WALL, "Видео с открытия моста", T0, attachments=[attachment("video")])
        vk_box.add_post(
            WALL,
            "Клип",
            T0 + timedelta(hours=1),
            attachments=[attachment("clip"), attachment("photo")],
        )
        vk_box.add_post(
            WALL,
            "Фотоотчёт",
            T0 + timedelta(hours=2),
            attachments=[attachment("photo")],
            comments_open=False,
        )
        vk_box.add_post(WALL, "Голосуем", T0 + timedelta(hours=3), attachments=[attachment("poll")])
        plain = vk_box.add_post(WALL, "Объявление", T0 + timedelta(hours=4))
        await eventually(lambda: _processed(intake, 5))
    rows = await posts_of(app)
    assert [row.kind for row in rows] == ["video", "clip", "photo", "poll", "text"]
    assert [row.comments_open for row in rows] == [True, True, False, True, True]
    assert rows[4].external_id == str(plain)
    assert rows[4].text_length == len("Объявление")
    assert rows[4].link == f"https://vk.com/wall{WALL}_{plain}"
    assert rows[0].published_at == T0
    assert all(row.views is None for row in rows)


async def _processed(intake: object, n: int) -> bool:
    return getattr(intake, "processed", 0) >= n
