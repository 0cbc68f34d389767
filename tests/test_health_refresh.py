"""Page health, items 2, 5 and 6: counters refreshed through the real clients and the sandboxes.

VK through vk_api (groups.getById, execute of wall.getById), Telegram through aiogram
(getChatMemberCount) and the channel's web preview. A token without the right, a deleted post,
a channel that refuses the bot, a preview page that changed: a logged, explained gap, never a
crash and never a zero. Both databases.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.events import PageKind, PageRef, Platform, PostEvent, PostKind
from bot.sandbox import TelegramSandbox
from bot.sandbox.vk import VkSandbox
from bot.services.health_refresh import HealthRefresh
from bot.services.intake import Intake, IntakeJob
from handlers.telegram.health import (
    PREVIEW_CHANGED,
    PREVIEW_OFF,
    TelegramCounterSource,
)
from handlers.telegram.setup import make_bot
from handlers.vk.health import Backoff, VkCounterSource
from storage.health_models import PageSnapshot, Post, PostCounter
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import CHANNEL, CHANNEL_ID, TOKEN, setup_sandbox
from tests.test_vk_intake import (
    GROUP_ID,
    GROUP_TOKEN,
    OTHER_GROUP_ID,
    SERVICE_TOKEN,
    WALL,
    make_sandbox,
)

T0 = MONDAY_10_MSK
VK_PAGE = PageRef(Platform.VK, str(GROUP_ID), PageKind.VK_GROUP, "Администрация города")
OTHER_PAGE = PageRef(Platform.VK, str(OTHER_GROUP_ID), PageKind.VK_GROUP, "Минздрав области")
TG_PAGE = PageRef(
    Platform.TELEGRAM, str(CHANNEL_ID), PageKind.TG_CHANNEL, str(CHANNEL["title"]), "gov_region"
)


async def publish(intake: Intake, page: PageRef, post_id: int, at: datetime) -> None:
    event = PostEvent(page, str(post_id), at, PostKind.TEXT, 10)
    await intake.deliver(IntakeJob(raw=None, events=(event,)))


async def rows(app: AppContext, model: type, *order: object) -> list:  # type: ignore[type-arg]
    async with app.sessions() as session:
        return list((await session.exec(select(model).order_by(*order))).all())


@pytest.fixture
async def vk_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VkSandbox]:
    monkeypatch.chdir(tmp_path)  # vk_api must never write a config file anywhere
    async with make_sandbox() as box:
        yield box


def vk_source(box: VkSandbox, service: str | None = SERVICE_TOKEN) -> VkCounterSource:
    async def no_wait(_: float) -> None:
        return None

    return VkCounterSource(
        service_token=service,
        group_tokens={GROUP_ID: GROUP_TOKEN},
        api_server=box.base_url,
        rps_delay=0,
        backoff=Backoff(attempts=3, base_s=0.01, cap_s=0.01),
        sleep=no_wait,
    )


async def test_vk_members_views_marks_deleted_post_and_rate_limit(
    engine: AsyncEngine, vk_box: VkSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    app = AppContext.create(make_settings(), engine)
    intake = Intake(app.sessions, app.defaults)
    clock = SimulatedClock(T0)
    first = vk_box.add_post(WALL, "Первый", T0, emit=False)
    second = vk_box.add_post(WALL, "Второй", T0 + timedelta(hours=1), emit=False)
    await publish(intake, VK_PAGE, first, T0)
    await publish(intake, VK_PAGE, second, T0 + timedelta(hours=1))
    await publish(intake, OTHER_PAGE, 1, T0)  # a post VK does not have (deleted before)
    vk_box.set_members_count(GROUP_ID, 12_000)
    vk_box.set_members_count(OTHER_GROUP_ID, 800)
    source = vk_source(vk_box)
    refresh = HealthRefresh(app.sessions, intake, [source], clock=clock)

    # 24.5 h after the first post: only it is due (24 h mark); VK limits execute once.
    vk_box.set_post_counters(WALL, first, views=1500, likes=40, reposts=5)
    vk_box.fail_next("execute", 29)
    clock.advance(timedelta(hours=24, minutes=30))
    caplog.set_level(logging.WARNING)
    report = await refresh.run_once()
    assert report.pages == 2 and report.posts == 2  # the first post and the other page's one
    assert source.requests == 3  # groups.getById, execute (29), execute again
    assert "ошибка 29" in caplog.text

    # 72.5 h: the first post's 72 h mark and the second's 24 h mark are due; views grew.
    vk_box.set_post_counters(WALL, first, views=3000, likes=60)
    vk_box.set_post_counters(WALL, second, views=900, likes=9, reposts=1)
    vk_box.set_members_count(GROUP_ID, 12_100)
    clock.advance(timedelta(hours=48))
    await refresh.run_once()
    # Nothing due again within the same day: no request at all.
    before = source.requests
    await refresh.run_once()
    assert source.requests == before

    posts = await rows(app, Post, col(Post.id))
    by_id = {(p.page_id, p.external_id): p for p in posts}
    kept = await rows(app, PostCounter, col(PostCounter.post_id), col(PostCounter.mark_h))
    first_row = next(p for p in posts if p.external_id == str(first) and p.deleted_at is None)
    second_row = next(p for p in posts if p.external_id == str(second))
    marks = {(k.post_id, k.mark_h): (k.views, k.likes, k.reposts, k.comments) for k in kept}
    assert marks[(first_row.id, 24)] == (1500, 40, 5, 0)
    assert marks[(first_row.id, 72)] == (3000, 60, 5, 0)
    # The second post is first read 71.5 h after publication: that is its 24 h mark.
    assert marks[(second_row.id, 24)] == (900, 9, 1, 0)
    assert (second_row.id, 72) not in marks
    gone = [p for p in by_id.values() if p.deleted_at is not None]
    assert len(gone) == 1 and gone[0].counters_note == "пост удалён или скрыт"
    assert gone[0].views is None and all(k.post_id != gone[0].id for k in kept)
    snapshots = await rows(app, PageSnapshot, col(PageSnapshot.day), col(PageSnapshot.page_id))
    assert [(s.subscribers, s.note) for s in snapshots] == [
        (12_000, None),
        (800, None),
        (12_100, None),
        (800, None),
    ]


async def test_vk_token_without_right_and_no_service_token_are_explained_gaps(
    engine: AsyncEngine, vk_box: VkSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    app = AppContext.create(make_settings(), engine)
    intake = Intake(app.sessions, app.defaults)
    clock = SimulatedClock(T0 + timedelta(hours=30))
    post = vk_box.add_post(WALL, "Новость", T0, emit=False)
    vk_box.set_post_counters(WALL, post, views=100, likes=3)
    await publish(intake, VK_PAGE, post, T0)
    vk_box.deny_method(SERVICE_TOKEN, "wall.getById", 15)
    vk_box.deny_method(SERVICE_TOKEN, "groups.getById", 15)
    caplog.set_level(logging.WARNING)
    await HealthRefresh(app.sessions, intake, [vk_source(vk_box)], clock=clock).run_once()
    (row,) = await rows(app, Post, col(Post.id))
    assert (row.views, row.likes) == (None, None)
    assert row.counters_note is not None and "ошибка 15" in row.counters_note
    assert await rows(app, PostCounter, col(PostCounter.id)) == []
    (snapshot,) = await rows(app, PageSnapshot, col(PageSnapshot.id))
    assert snapshot.subscribers is None and "ошибка 15" in (snapshot.note or "")
    assert "wall.getById внутри execute" in caplog.text
    assert SERVICE_TOKEN not in caplog.text

    # No service token at all: the same gap, with the setting that would close it.
    clock.advance(timedelta(hours=1))
    await HealthRefresh(app.sessions, intake, [vk_source(vk_box, None)], clock=clock).run_once()
    (row,) = await rows(app, Post, col(Post.id))
    assert row.views is None and "VK_SERVICE_TOKEN" in (row.counters_note or "")


@pytest.fixture
async def tg_box() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        yield box


async def test_telegram_members_views_from_preview_changed_preview_and_banned_bot(
    engine: AsyncEngine, tg_box: TelegramSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    app = AppContext.create(make_settings(), engine)
    intake = Intake(app.sessions, app.defaults)
    clock = SimulatedClock(T0 + timedelta(hours=25))
    ids = []
    for hour in range(25):  # more posts than one preview page shows (20)
        post, _ = tg_box.inject_channel_post(CHANNEL_ID, f"Пост {hour}", date=T0)
        ids.append(int(post["message_id"]))
        tg_box.set_views(CHANNEL_ID, post["message_id"], 1000 + hour * 100)
    for message_id in ids[:2]:
        await publish(intake, TG_PAGE, message_id, T0)
    tg_box.set_member_count(CHANNEL_ID, 5400)
    bot = make_bot(TOKEN, tg_box.base_url)
    try:
        source = TelegramCounterSource(bot, preview_views=True, preview_server=tg_box.base_url)
        refresh = HealthRefresh(app.sessions, intake, [source], clock=clock)
        await refresh.run_once()
        posts = await rows(app, Post, col(Post.id))
        assert [p.views for p in posts] == [1000, 1100]  # the oldest two: second preview page
        kept = await rows(app, PostCounter, col(PostCounter.id))
        assert [(k.mark_h, k.views, k.likes) for k in kept] == [(24, 1000, None), (24, 1100, None)]
        (snapshot,) = await rows(app, PageSnapshot, col(PageSnapshot.id))
        assert snapshot.subscribers == 5400

        # Three days on: Telegram redesigned the preview, and the channel removed the bot.
        tg_box.preview_layout = "changed"
        tg_box.ban_bot(CHANNEL_ID)
        clock.advance(timedelta(hours=48))
        caplog.set_level(logging.WARNING)
        await refresh.run_once()
        posts = await rows(app, Post, col(Post.id))
        assert [p.counters_note for p in posts] == [PREVIEW_CHANGED, PREVIEW_CHANGED]
        assert [p.views for p in posts] == [1000, 1100]  # the last known, not zero
        kept = await rows(app, PostCounter, col(PostCounter.id))
        assert [(k.mark_h, k.views) for k in kept] == [
            (24, 1000),
            (24, 1100),
            (72, 1000),
            (72, 1100),
        ]
        assert all(k.note == PREVIEW_CHANGED for k in kept if k.mark_h == 72)
        snapshots = await rows(app, PageSnapshot, col(PageSnapshot.day))
        assert snapshots[-1].subscribers is None
        assert "не администратор канала" in (snapshots[-1].note or "")
        assert "веб-превью канала @gov_region" in caplog.text

        # Views off (the default): the gap names the setting.
        clock.advance(timedelta(days=4))
        off = TelegramCounterSource(bot, preview_views=False, preview_server=tg_box.base_url)
        await HealthRefresh(app.sessions, intake, [off], clock=clock).run_once()
        posts = await rows(app, Post, col(Post.id))
        assert [p.counters_note for p in posts] == [PREVIEW_OFF, PREVIEW_OFF]
    finally:
        await bot.session.close()


async def test_telegram_flood_control_is_waited_out(tg_box: TelegramSandbox) -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    tg_box.set_member_count(CHANNEL_ID, 777)
    tg_box.fail_next("getChatMemberCount", 2, status=429, retry_after=3)
    bot = make_bot(TOKEN, tg_box.base_url)
    try:
        source = TelegramCounterSource(
            bot, preview_views=False, preview_server=tg_box.base_url, sleep=sleep
        )
        (reading,) = await source.subscribers([TG_PAGE], T0)
    finally:
        await bot.session.close()
    assert (reading.subscribers, reading.note) == (777, None)
    assert waited == [3.0, 3.0]
