"""VK intake end to end: the real vk_api over HTTP against the VK sandbox, on a real database."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import AppContext
from bot.config import Settings
from bot.events import Deleter
from bot.sandbox.vk import VkSandbox
from bot.services import roles
from bot.services.reports import build_report
from handlers.vk.intake import VkIntake, gap_cursor, ts_cursor
from handlers.vk.sync import Retry
from storage import repositories as repo
from storage.models import Appeal, CitizenMessage, OfficialReply, Page, RawUpdate
from tests.conftest import MONDAY_10_MSK, make_settings

GROUP_ID = 220_000_001
OTHER_GROUP_ID = 220_000_002
GROUP_TOKEN = "vk1.a.community-token-SECRET-1"
OTHER_TOKEN = "vk1.a.community-token-SECRET-2"
SERVICE_TOKEN = "service-token-SECRET-xyz"
WALL = -GROUP_ID
CITIZEN = 501
OTHER_CITIZEN = 502
ADMIN = 901
GOVERNOR = 1_000_001
T0 = MONDAY_10_MSK  # Monday 10:00 Moscow
APPEAL_TEXT = "Когда отремонтируют дорогу на улице Ленина? Огромные ямы, машины ломаются"
REPLY_TEXT = "Здравствуйте! Ремонт улицы Ленина включён в план, подрядчик выйдет 15 мая."
FAST_RETRY = Retry(attempts=4, base_s=0.01, cap_s=0.05)


def vk_settings(box: VkSandbox, *, service: bool = True, walls: str = "", **extra: Any) -> Settings:
    tokens = extra.pop("tokens", f"{GROUP_ID}:{GROUP_TOKEN}")
    return make_settings(
        VK_GROUP_TOKENS=tokens,
        VK_SERVICE_TOKEN=SERVICE_TOKEN if service else None,
        VK_WALL_OWNER_IDS=walls,
        VK_API_SERVER=box.base_url,
        **extra,
    )


def make_sandbox() -> VkSandbox:
    box = VkSandbox(clock=lambda: T0 + timedelta(hours=3))
    box.add_group(GROUP_ID, "Администрация города", GROUP_TOKEN, screen_name="city_adm")
    box.add_group(OTHER_GROUP_ID, "Минздрав области", OTHER_TOKEN, screen_name="minzdrav")
    box.add_service_token(SERVICE_TOKEN)
    box.add_user(CITIZEN, "Иван", "Петров")
    box.add_user(OTHER_CITIZEN, "Мария", "Сидорова")
    box.add_user(ADMIN, "Ольга", "Админова")
    box.add_user(GOVERNOR, "Пётр", "Губернаторов")
    return box


@pytest.fixture
async def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VkSandbox]:
    monkeypatch.chdir(tmp_path)  # vk_api must never write a config file anywhere
    async with make_sandbox() as box:
        yield box


class Running:
    """A VkIntake running in a task, as `otklik run` runs it."""

    def __init__(self, app: AppContext, **options: Any) -> None:
        options.setdefault("wait", 1)
        options.setdefault("rps_delay", 0)
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("backoff_s", 0.05)
        options.setdefault("wall_interval_s", 0.2)
        self.intake = VkIntake(app, **options)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> VkIntake:
        self.task = asyncio.create_task(self.intake.run())
        async with asyncio.timeout(10):
            await self.intake.wait_ready()
        return self.intake

    async def __aexit__(self, *exc_info: object) -> None:
        await self.intake.stop()
        assert self.task is not None
        async with asyncio.timeout(10):
            await self.task


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    """Poll `check` until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.02)


async def count(app: AppContext, model: Any, *where: Any) -> int:
    async with app.sessions() as session:
        result = await session.exec(select(func.count()).select_from(model).where(*where))
        return int(result.one())


async def appeals(app: AppContext) -> list[Appeal]:
    async with app.sessions() as session:
        return list((await session.exec(select(Appeal).order_by(col(Appeal.id)))).all())


async def answered(app: AppContext, n: int = 1) -> list[Appeal] | None:
    rows = await appeals(app)
    done = [a for a in rows if a.first_response_at is not None]
    return rows if len(done) >= n else None


async def processed(intake: VkIntake, n: int) -> bool:
    return intake.processed >= n


@pytest.fixture
async def vk_app(sqlite_engine: AsyncEngine, sandbox: VkSandbox) -> AppContext:
    return AppContext.create(vk_settings(sandbox), sqlite_engine)


async def test_wall_comment_becomes_appeal_and_community_reply_answers_it(
    engine: AsyncEngine, sandbox: VkSandbox
) -> None:
    """Both databases: comment → appeal; the community's reply sets FRT from VK's dates."""
    app = AppContext.create(vk_settings(sandbox), engine)
    post = sandbox.add_post(WALL, "Итоги недели", T0 - timedelta(days=1))
    async with Running(app) as intake:
        comment = sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        chatter = sandbox.add_comment(
            WALL, post, OTHER_CITIZEN, "Спасибо!", T0 + timedelta(minutes=1)
        )
        sandbox.add_comment(
            WALL, post, WALL, REPLY_TEXT, T0 + timedelta(minutes=30), reply_to_comment=comment
        )
        sandbox.edit_comment(WALL, comment, APPEAL_TEXT + " Уже месяц!")
        await eventually(lambda: processed(intake, 4))
    rows = await appeals(app)
    assert len(rows) == 1
    appeal = rows[0]
    assert appeal.received_at == T0
    assert appeal.first_response_at == T0 + timedelta(minutes=30)
    assert appeal.frt_s == 1800
    assert appeal.citizen_id == str(CITIZEN)
    assert appeal.link == f"https://vk.com/wall{WALL}_{post}?reply={comment}"
    async with app.sessions() as session:
        page = (await session.exec(select(Page))).one()
        assert (page.platform, page.external_id, page.kind) == ("vk", str(GROUP_ID), "vk_group")
        assert (page.title, page.username) == ("Администрация города", "city_adm")
        messages = {
            row.external_id: row for row in (await session.exec(select(CitizenMessage))).all()
        }
        message = messages[f"wall{WALL}_{comment}"]
        assert message.page_id == page.id and message.text.endswith("Уже месяц!")
        other = messages[f"wall{WALL}_{chatter}"]
        assert other.page_id == page.id and other.appeal_id is None
        reply = (await session.exec(select(OfficialReply))).one()
        assert reply.author_role == "page" and reply.appeal_id == appeal.id
        raw = (await session.exec(select(RawUpdate.source, RawUpdate.status))).all()
        assert sorted(raw) == [(f"vk:{GROUP_ID}", "done")] * 4
        # wall_post_new (ts 1) came before the intake; four events, ts 2..5: next is 6.
        assert await repo.get_cursor(session, ts_cursor(GROUP_ID)) == "6"


async def test_staff_reply_in_thread_and_reply_to_a_reply(
    vk_app: AppContext, sandbox: VkSandbox
) -> None:
    post = sandbox.add_post(WALL, "Новости", T0 - timedelta(days=1))
    async with vk_app.sessions() as session:
        await roles.set_role(session, str(ADMIN), "staff", platform="vk")
        await session.commit()
    async with Running(vk_app) as intake:
        first = sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        # Another citizen answers; the staff member then answers that reply (same thread).
        middle = sandbox.add_comment(
            WALL, post, OTHER_CITIZEN, "Поддерживаю", T0 + timedelta(minutes=5), first
        )
        sandbox.add_comment(WALL, post, ADMIN, REPLY_TEXT, T0 + timedelta(hours=2), middle)
        await eventually(lambda: processed(intake, 3))
    (appeal,) = await appeals(vk_app)
    assert appeal.first_response_at == T0 + timedelta(hours=2)
    async with vk_app.sessions() as session:
        reply = (await session.exec(select(OfficialReply))).one()
        assert reply.author_role == "staff"
        assert reply.link is not None and reply.link.endswith(f"&thread={first}")


async def test_failed_2_mid_stream_and_restart_resume_without_loss_or_duplicates(
    vk_app: AppContext, sandbox: VkSandbox
) -> None:
    post = sandbox.add_post(WALL, "Новости", T0 - timedelta(days=1))
    async with Running(vk_app) as intake:
        sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        await eventually(lambda: processed(intake, 1))
        sandbox.fail_next_poll(GROUP_ID, 2)
        await asyncio.sleep(1.2)  # the current poll ends; the next one meets failed 2
        sandbox.add_comment(WALL, post, OTHER_CITIZEN, "Когда уберут снег во дворе дома 5?", T0)
        await eventually(lambda: processed(intake, 2))
    key_requests = [c for c in sandbox.calls if c.method == "groups.getLongPollServer"]
    assert len(key_requests) == 2  # the start, then a new key after failed 2
    # Down: comments keep coming, VK keeps them in the long poll history.
    for minute in range(3):
        sandbox.add_comment(WALL, post, 600 + minute, f"Когда починят фонарь у дома {minute}?", T0)
    async with vk_app.sessions() as session:
        stored_ts = await repo.get_cursor(session, ts_cursor(GROUP_ID))
    assert stored_ts == "4"  # post ts 1 (before the intake), comments ts 2 and 3
    async with Running(vk_app) as intake:
        await eventually(lambda: processed(intake, 3))
    assert await count(vk_app, CitizenMessage) == 5
    assert len(await appeals(vk_app)) == 5
    async with vk_app.sessions() as session:
        assert await repo.get_cursor(session, ts_cursor(GROUP_ID)) == "7"
    assert await count(vk_app, RawUpdate) == 5


async def test_deletions_by_page_by_admin_and_by_citizen(
    vk_app: AppContext, sandbox: VkSandbox
) -> None:
    post = sandbox.add_post(WALL, "Новости", T0 - timedelta(days=1))
    async with Running(vk_app) as intake:
        by_page = sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        by_admin = sandbox.add_comment(
            WALL, post, OTHER_CITIZEN, "Почему не вывозят мусор на Садовой?", T0
        )
        by_self = sandbox.add_comment(WALL, post, 503, "Где записаться к врачу?", T0)
        sandbox.delete_comment(WALL, by_page, WALL)
        sandbox.delete_comment(WALL, by_admin, ADMIN)
        sandbox.delete_comment(WALL, by_self, 503)
        await eventually(lambda: processed(intake, 6))
        sandbox.restore_comment(WALL, by_admin)
        await eventually(lambda: processed(intake, 7))
    async with vk_app.sessions() as session:
        rows = (await session.exec(select(CitizenMessage).order_by(col(CitizenMessage.id)))).all()
        assert [m.deleted_by for m in rows] == [Deleter.PAGE.value, None, Deleter.CITIZEN.value]
        report = await build_report(
            session,
            since=T0 - timedelta(days=1),
            until=T0 + timedelta(days=1),
            at=T0 + timedelta(days=1),
            defaults=vk_app.defaults,
        )
    assert report.to_json()["total"]["deleted_by_page"] == 1


async def test_conversation_three_messages_one_reply_is_one_answered_appeal(
    vk_app: AppContext, sandbox: VkSandbox
) -> None:
    async with Running(vk_app) as intake:
        texts = [
            "Здравствуйте, у нас во дворе третий день нет горячей воды",
            "Адрес: улица Мира, 12",
            "Когда дадут воду?",
        ]
        for minute, text in enumerate(texts):
            sandbox.send_community_message(
                GROUP_ID, CITIZEN, CITIZEN, text, T0 + timedelta(minutes=minute)
            )
        sandbox.send_community_message(
            GROUP_ID, CITIZEN, ADMIN, REPLY_TEXT, T0 + timedelta(minutes=40), out=True
        )
        sandbox.edit_message(GROUP_ID, 3, "Когда дадут горячую воду?", T0 + timedelta(minutes=3))
        await eventually(lambda: processed(intake, 5))
    (appeal,) = await appeals(vk_app)
    assert appeal.messages_count == 3
    assert appeal.first_response_at == T0 + timedelta(minutes=40)
    assert appeal.link == f"https://vk.com/gim{GROUP_ID}?sel={CITIZEN}"
    async with vk_app.sessions() as session:
        last = (await session.exec(select(CitizenMessage).order_by(col(CitizenMessage.id)))).all()[
            -1
        ]
        assert last.text == "Когда дадут горячую воду?"
        assert last.external_id == f"msg{CITIZEN}_3"


async def test_photo_video_market_and_board_comments(
    vk_app: AppContext, sandbox: VkSandbox
) -> None:
    async with Running(vk_app) as intake:
        photo = sandbox.add_photo_comment(WALL, 77, CITIZEN, "Когда отремонтируют этот мост?", T0)
        sandbox.add_photo_comment(WALL, 77, WALL, REPLY_TEXT, T0 + timedelta(hours=1), photo)
        sandbox.add_video_comment(WALL, 88, OTHER_CITIZEN, "Почему не работает светофор?", T0)
        sandbox.add_market_comment(
            WALL, 99, 503, "Когда выплатят детскую субсидию? Нет уже два месяца", T0
        )
        board = sandbox.add_board_comment(GROUP_ID, 5, 504, "Где можно сдать старую мебель?", T0)
        sandbox.add_board_comment(
            GROUP_ID, 5, WALL, f"[post{board}|Анна], {REPLY_TEXT}", T0 + timedelta(hours=3)
        )
        await eventually(lambda: processed(intake, 6))
    rows = await appeals(vk_app)
    assert len(rows) == 4
    frts = sorted(a.frt_s for a in rows if a.frt_s is not None)
    assert frts == [3600, 3 * 3600]
    async with vk_app.sessions() as session:
        links = sorted(m.link or "" for m in (await session.exec(select(CitizenMessage))).all())
    assert f"https://vk.com/topic{WALL}_5?post={board}" in links
    assert f"https://vk.com/photo{WALL}_77" in links


async def test_failed_1_fills_the_gap_from_the_wall_and_dialogues(
    vk_app: AppContext, sandbox: VkSandbox
) -> None:
    post = sandbox.add_post(WALL, "Новости", T0 - timedelta(days=1))
    async with Running(vk_app) as intake:
        first = sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        await eventually(lambda: processed(intake, 1))
        # VK loses these events (a long outage): they exist only on the wall and in dialogues.
        lost = sandbox.add_comment(
            WALL, post, OTHER_CITIZEN, "Когда уберут снег?", T0 + timedelta(minutes=10), emit=False
        )
        sandbox.add_comment(
            WALL,
            post,
            WALL,
            REPLY_TEXT,
            T0 + timedelta(minutes=20),
            reply_to_comment=first,
            emit=False,
        )
        sandbox.send_community_message(
            GROUP_ID, 505, 505, "Когда откроют поликлинику?", T0 + timedelta(minutes=15), emit=False
        )
        sandbox.fail_next_poll(GROUP_ID, 1)
        await eventually(lambda: _has_message(vk_app, "msg505_1"))
        # Live again afterwards, and nothing doubled.
        sandbox.add_comment(
            WALL, post, 506, "Когда починят лифт в доме 3?", T0 + timedelta(hours=1)
        )
        await eventually(lambda: processed(intake, 2))
    async with vk_app.sessions() as session:
        assert await repo.get_cursor(session, gap_cursor(GROUP_ID)) == ""
    assert await count(vk_app, CitizenMessage) == 4
    rows = await appeals(vk_app)
    assert rows[0].first_response_at == T0 + timedelta(minutes=20)
    assert await _has_message(vk_app, f"wall{WALL}_{lost}")


async def test_restart_after_a_long_outage_fills_the_gap(
    sqlite_engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored ts fell out of VK's history (failed 1 with an old ts): read the wall back."""
    monkeypatch.chdir(tmp_path)
    box = make_sandbox()
    box.history_limit = 3
    async with box:
        app = AppContext.create(vk_settings(box), sqlite_engine)
        post = box.add_post(WALL, "Новости", T0 - timedelta(days=1))
        async with Running(app) as intake:
            box.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
            await eventually(lambda: processed(intake, 1))
        # Down for long: more events than VK keeps.
        for n in range(5):
            box.add_comment(WALL, post, 700 + n, f"Когда починят лифт в доме {n}?", T0)
        async with Running(app):
            await eventually(lambda: count(app, CitizenMessage, col(CitizenMessage.id) > 5))
        assert await count(app, CitizenMessage) == 6
        assert len(await appeals(app)) == 6


async def _has_message(app: AppContext, external_id: str) -> bool:
    return await count(app, CitizenMessage, CitizenMessage.external_id == external_id) == 1


async def test_expired_token_names_the_community_and_others_keep_working(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    settings = vk_settings(
        sandbox, tokens=f"{GROUP_ID}:{GROUP_TOKEN},{OTHER_GROUP_ID}:{OTHER_TOKEN}"
    )
    app = AppContext.create(settings, sqlite_engine)
    sandbox.revoke_token(GROUP_TOKEN)
    post = sandbox.add_post(-OTHER_GROUP_ID, "Прививки", T0 - timedelta(days=1))
    with caplog.at_level(logging.INFO):
        async with Running(app) as intake:
            sandbox.add_comment(-OTHER_GROUP_ID, post, CITIZEN, "Где сделать прививку?", T0)
            await eventually(lambda: processed(intake, 1))
            assert intake.listeners[GROUP_ID].failed is not None
    assert len(await appeals(app)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(GROUP_ID) in e and "отклонён" in e for e in errors)
    assert all(GROUP_TOKEN not in r.getMessage() for r in caplog.records)
    assert all(OTHER_TOKEN not in r.getMessage() for r in caplog.records)


async def test_unknown_types_and_missing_fields_are_kept_raw_and_skipped(
    vk_app: AppContext, sandbox: VkSandbox
) -> None:
    post = sandbox.add_post(WALL, "Новости", T0 - timedelta(days=1))
    async with Running(vk_app) as intake:
        sandbox.emit_raw(GROUP_ID, "group_join", {"user_id": CITIZEN, "join_type": "join"})
        sandbox.emit_raw(GROUP_ID, "wall_reply_new", {"id": 5, "text": "без автора"})
        sandbox.emit_raw(GROUP_ID, "message_new", {"message": {"text": "нет peer_id"}})
        sandbox.emit_raw(GROUP_ID, "wall_reply_delete", {"owner_id": WALL, "id": 999})
        sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        await eventually(lambda: processed(intake, 5))
    assert len(await appeals(vk_app)) == 1
    async with vk_app.sessions() as session:
        raws = (await session.exec(select(RawUpdate).order_by(col(RawUpdate.id)))).all()
    assert [(r.update_type, r.status) for r in raws] == [
        ("group_join", "skipped"),
        ("wall_reply_new", "skipped"),
        ("message_new", "skipped"),
        ("wall_reply_delete", "skipped"),
        ("wall_reply_new", "done"),
    ]
    assert raws[1].note is not None and "from_id" in raws[1].note


async def test_personal_wall_is_polled_and_the_owners_reply_counts(
    sqlite_engine: AsyncEngine, sandbox: VkSandbox
) -> None:
    settings = vk_settings(sandbox, tokens="", walls=str(GOVERNOR))
    app = AppContext.create(settings, sqlite_engine, clock=lambda: T0 + timedelta(hours=3))
    sandbox.add_wall(GOVERNOR)
    post = sandbox.add_post(GOVERNOR, "Встреча с жителями", T0 - timedelta(days=1))
    old = sandbox.add_post(GOVERNOR, "Старый пост", T0 - timedelta(days=30))
    sandbox.add_comment(GOVERNOR, old, CITIZEN, "Когда построят школу?", T0 - timedelta(days=29))
    comment = sandbox.add_comment(GOVERNOR, post, CITIZEN, APPEAL_TEXT, T0)
    async with Running(app) as intake:
        await eventually(lambda: _rounds(intake, 1))
        sandbox.add_comment(GOVERNOR, post, GOVERNOR, REPLY_TEXT, T0 + timedelta(hours=1), comment)
        await eventually(lambda: answered(app))
    (appeal,) = await appeals(app)
    assert appeal.frt_s == 3600
    async with app.sessions() as session:
        page = (await session.exec(select(Page))).one()
    assert (page.kind, page.external_id, page.title) == (
        "vk_wall",
        str(GOVERNOR),
        "Пётр Губернаторов",
    )


async def _rounds(intake: VkIntake, n: int) -> bool:
    return intake.wall_rounds >= n


async def test_stop_returns_within_seconds_even_with_a_long_poll_wait(
    vk_app: AppContext, sandbox: VkSandbox
) -> None:
    runner = Running(vk_app, wait=25)
    await runner.__aenter__()
    await asyncio.sleep(0.3)  # the thread is now blocked in a 25 s poll
    started = time.monotonic()
    await runner.__aexit__(None, None, None)
    assert time.monotonic() - started < 3
    thread = runner.intake.listeners[GROUP_ID].thread
    assert thread is not None and not thread.is_alive()


async def test_network_errors_are_retried(vk_app: AppContext, sandbox: VkSandbox) -> None:
    post = sandbox.add_post(WALL, "Новости", T0 - timedelta(days=1))
    sandbox.fail_next("groups.getLongPollServer", 10, times=2)
    async with Running(vk_app) as intake:
        sandbox.add_comment(WALL, post, CITIZEN, APPEAL_TEXT, T0)
        await eventually(lambda: processed(intake, 1))
    assert len(await appeals(vk_app)) == 1
