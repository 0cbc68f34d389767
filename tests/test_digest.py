"""The weekly digest: text, chart, Monday 09:00 delivery without duplicates, the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from bot.commands import print_digest
from bot.events import AuthorRole, MessageEvent, PageKind, PageRef, Platform, ThreadKind, ThreadRef
from bot.services.decisions import ANSWERED_OFFLINE, NOT_APPEAL, apply_decision
from bot.services.digest import (
    Week,
    _summary_line,
    build_digest,
    parse_week,
    plain_text,
)
from bot.services.scheduler import Scheduler
from storage.models import Appeal
from tests.test_reminders import (
    DIGEST_CHAT,
    HEATING,
    PRESS_CHAT,
    ROADS,
    WASTE,
    World,
    citizen_event,
    close_world,
    make_world,
    msk,
    page_reply,
)

VK_PAGE = PageRef(Platform.VK, "123", PageKind.VK_GROUP, "Минздрав края", "minzdrav")
VK_ANSWER = (
    "Здравствуйте, Мария! Бригада управляющей компании устранит течь до 10 ноября, "
    "ответственный — мастер участка, телефон 8 800 000-00-00."
)


def vk_comment(sent_at: datetime, text: str, author: str, comment: int) -> MessageEvent:
    return MessageEvent(
        page=VK_PAGE,
        thread=ThreadRef("post:55", ThreadKind.COMMENTS),
        message_id=f"wall:55:{comment}",
        sent_at=sent_at,
        author_role=AuthorRole.PERSON,
        author_id=author,
        author_name=f"Мария {author}",
        text=text,
        link=f"https://vk.com/wall-123_55?reply={comment}",
    )


def vk_reply(sent_at: datetime, reply_to: int, comment: int) -> MessageEvent:
    return MessageEvent(
        page=VK_PAGE,
        thread=ThreadRef("post:55", ThreadKind.COMMENTS),
        message_id=f"wall:55:{comment}",
        sent_at=sent_at,
        author_role=AuthorRole.PAGE,
        author_id="-123",
        text=VK_ANSWER,
        reply_to_id=f"wall:55:{reply_to}",
    )


@dataclass
class TwoWeeks:
    """Appeals of weeks 2026-W44 and W45 on a Telegram channel and a VK community."""

    ids: dict[str, int]


async def build_two_weeks(world: World) -> TwoWeeks:
    """Feed both weeks through the real ingest path, with the press office's decisions."""
    ids: dict[str, int] = {}
    events = [
        # Week 44: one answered in time, one late.
        ("p1", citizen_event(msk(10, 27, 10), ROADS, "401", 51)),
        (None, page_reply(msk(10, 27, 11), 51, 52)),
        ("p2", citizen_event(msk(10, 28, 10), WASTE, "402", 53)),
        (None, page_reply(msk(10, 29, 16), 53, 54)),
        # Week 45.
        ("a1", citizen_event(msk(11, 2, 10), ROADS, "501", 101)),
        (None, page_reply(msk(11, 2, 10, 30), 101, 102)),
        ("a2", citizen_event(msk(11, 2, 11), HEATING, "502", 103)),  # urgent: due 15:00
        (None, page_reply(msk(11, 3, 10), 103, 104)),  # late
        ("a3", citizen_event(msk(11, 3, 12), WASTE, "503", 105)),  # never answered
        ("v1", vk_comment(msk(11, 5, 9, 30), ROADS, "601", 901)),  # answered by phone
        ("v2", vk_comment(msk(11, 5, 10), WASTE, "602", 902)),  # «не обращение»
        ("v3", vk_comment(msk(11, 6, 15), ROADS.replace("Ленина", "Мира"), "603", 903)),
        (None, vk_reply(msk(11, 6, 16), 903, 904)),
    ]
    for name, event in events:
        world.clock.set(event.sent_at)
        appeal_id = await world.ingest(event)
        if name is not None:
            assert appeal_id is not None, name
            ids[name] = appeal_id
    async with world.app.sessions() as session:
        for name, action, at in (
            ("v1", ANSWERED_OFFLINE, msk(11, 5, 11)),
            ("v2", NOT_APPEAL, msk(11, 5, 10, 30)),
        ):
            appeal = await session.get(Appeal, ids[name])
            assert appeal is not None
            await apply_decision(
                session, appeal, action, actor_id="7001", actor_name="Анна Иванова", at=at
            )
        await session.commit()
    return TwoWeeks(ids)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    built = await make_world(tmp_path, msk(10, 26, 9), DIGEST_CHAT_IDS=str(DIGEST_CHAT))
    yield built
    await close_world(built)


def test_weeks() -> None:
    week = Week(2026, 45)
    assert week.label() == "2–8 ноября 2026"
    assert week.previous() == Week(2026, 44)
    assert Week(2026, 44).label() == "26 октября – 1 ноября 2026"
    assert Week(2026, 53).label() == "28 декабря 2026 – 3 января 2027"
    assert parse_week(None, msk(11, 9, 10), "Europe/Moscow") == week
    assert parse_week("2026-W45", msk(1, 1, 0), "Europe/Moscow") == week
    with pytest.raises(ValueError):
        parse_week("2026-W60", msk(1, 1, 0), "Europe/Moscow")


async def test_digest_text_and_chart(world: World, tmp_path: Path) -> None:
    data = await build_two_weeks(world)
    world.clock.set(msk(11, 9, 10))
    async with world.app.sessions() as session:
        digest = await build_digest(session, world.app, Week(2026, 45))
    text = plain_text(digest.text).replace("\u00a0", " ")
    total = digest.report["total"]
    # a1 in time; a2 late; a3 overdue; v1 answered elsewhere in time; v3 in time; v2 excluded.
    assert (total["appeals"], total["answered"], total["overdue"]) == (5, 4, 1)
    assert total["answered_offline"] == 1
    assert digest.previous["total"]["appeals"] == 2
    assert text.startswith("📊 Отклик: итоги недели 2–8 ноября 2026")
    assert "Индекс цифровой зрелости:" in text
    # Every share with its base (issue 12 item 5), as in /stats.
    assert "• ответили: 4 из 5 обращений, 80 % ▼ −20 п. п." in text  # 4/5 against 2/2
    assert "• ответили в срок: 3 из 5 с истёкшим сроком, 60 % ▲ +10 п. п." in text  # 1/2 before
    assert "Поступило 5 обращений (неделей раньше — 2)" in text
    assert "(из них 1 вне соцсети)" in text
    assert "• Правительство области: 3 обращения" in text
    assert "• Минздрав края: 2 обращения" in text
    assert "Дольше всего ждали ответа" in text
    assert (
        "Просрочены и всё ещё без ответа на 9 ноября 09:00: 1 обращение"
        " (за все недели; из них поступили на этой неделе — 1)\n"
        f"• №{data.ids['a3']} · Правительство области · Мусор и отходы «" in text
    )
    assert "Показаны" not in text  # the one overdue appeal is the whole list
    assert "; 90 % ответов — не дольше " in text and "быстрее" not in text
    assert " %" not in digest.text  # the percent sign never wraps away from its number
    assert "просрочено на 3 дня 22 ч · открыть [https://t.me/c/1000000002/105?thread=10]" in text
    assert "Минздрав края · Дороги — 1 ч 30 мин (ответ вне соцсети)" in text
    assert "Темы обращений" in text and "Дороги — 3" in text
    assert len(digest.text) < 4096
    chart = tmp_path / "digest-W45.png"
    chart.write_bytes(digest.chart_png)
    assert digest.chart_png.startswith(b"\x89PNG") and len(digest.chart_png) > 10_000
    assert data.ids["a3"] > 0


async def test_overdue_heading_counts_what_it_lists_in_an_empty_week(world: World) -> None:
    """W47 has no appeals; twelve of W45 are still overdue: the heading says so, exactly."""
    ids = []
    for number in range(12):
        world.clock.set(msk(11, 2, 10, number))
        text = ROADS.replace("Ленина", f"Ленина, {number + 1}")
        event = citizen_event(world.clock(), text, f"70{number}", 300 + number, post=30 + number)
        appeal_id = await world.ingest(event)
        assert appeal_id is not None
        ids.append(appeal_id)
    world.clock.set(msk(11, 30, 12))
    async with world.app.sessions() as session:
        digest = await build_digest(session, world.app, Week(2026, 47))
    text = plain_text(digest.text).replace("\u00a0", " ")
    assert "Поступило 0 обращений (неделей раньше — 0)." in text
    assert (
        "Просрочены и всё ещё без ответа на 23 ноября 09:00: 12 обращений"
        " (за все недели; из них поступили на этой неделе — 0).\n"
        "Показаны 10 самых давних:" in text
    )
    listed = [line for line in text.splitlines() if "просрочено на" in line]
    # The appeal ids (what /topic takes), the longest overdue first; no list positions.
    assert [line.split(" · ")[0] for line in listed] == [f"• №{i}" for i in ids[:10]]
    assert "больше" not in text


def test_summary_numbers_are_russian() -> None:
    total = {"appeals": 1234, "answered": 1200, "answered_offline": 1010, "overdue": 20}
    total["pending"] = 14
    line = _summary_line(total, {"appeals": 2345}).replace("\u00a0", " ")
    assert line == (
        "Поступило 1\u202f234 обращения (неделей раньше — 2\u202f345), ответили на 1\u202f200"
        " (из них 1\u202f010 вне соцсети), просрочено 20, ждут ответа 14."
    )


async def test_digest_goes_out_monday_0900_once(world: World) -> None:
    await build_two_weeks(world)
    world.clock.set(msk(11, 9, 8, 59))
    await Scheduler(world.app).tick()
    assert world.sandbox.sent_messages(DIGEST_CHAT) == []
    world.clock.set(msk(11, 9, 9))
    report = await Scheduler(world.app).tick()
    assert report.failed == 0
    sent = world.sandbox.sent_messages(DIGEST_CHAT)
    assert [m.method for m in sent] == ["sendMessage", "sendPhoto"]
    assert sent[0].message["text"].startswith("📊 Отклик: итоги недели 2–8 ноября 2026")
    assert sent[1].files[0].size > 10_000
    # Later ticks and a restart send nothing again.
    world.clock.set(msk(11, 9, 9, 30))
    await Scheduler(world.app).tick()
    scheduler = await world.restart()
    await scheduler.tick()
    assert len(world.sandbox.sent_messages(DIGEST_CHAT)) == 2
    assert all(m.chat_id in (DIGEST_CHAT, PRESS_CHAT) for m in world.sandbox.sent)


async def test_digest_chart_failure_retried_alone(world: World) -> None:
    await build_two_weeks(world)
    world.clock.set(msk(11, 9, 9))
    world.sandbox.fail_next("sendPhoto", 1, status=400)
    report = await Scheduler(world.app).tick()
    assert report.failed == 1
    world.clock.set(msk(11, 9, 9, 5))
    await Scheduler(world.app).tick()
    assert [m.method for m in world.sandbox.sent_messages(DIGEST_CHAT)] == [
        "sendMessage",
        "sendPhoto",
    ]


async def test_digest_command_prints_and_writes_chart(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await build_two_weeks(world)
    world.clock.set(msk(11, 12, 12))
    monkeypatch.chdir(tmp_path)
    assert await print_digest(world.app, week="2026-W45", send=False) == 0
    out = capsys.readouterr().out
    assert "итоги недели 2–8 ноября 2026" in out and "<b>" not in out
    assert (tmp_path / "otklik-digest-2026-W45.png").stat().st_size > 10_000
    assert f"График: {tmp_path / 'otklik-digest-2026-W45.png'}" in out
    assert "Chart" not in out
