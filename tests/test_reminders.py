"""The reminder ladder over a simulated week, sent by the real aiogram Bot to the sandbox."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot
from sqlmodel import col, select

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.config import Settings
from bot.events import AuthorRole, MessageEvent, PageKind, PageRef, Platform, ThreadKind, ThreadRef
from bot.sandbox import TelegramSandbox
from bot.sandbox.telegram import SentMessage
from bot.services.cards import content_kind_ru, format_duration, page_title
from bot.services.ingest import IngestService
from bot.services.reminders import ReminderService, TickReport
from bot.services.scheduler import Scheduler
from handlers.telegram.notifier import RateLimiter, TelegramNotifier
from handlers.telegram.setup import make_bot
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.models import Appeal, Page, ReminderLog
from tests.conftest import make_settings

MSK = ZoneInfo("Europe/Moscow")
TOKEN = "123456:TEST-reminders-token"
BOT_ID = 123456
PRESS_CHAT = -1001000000009
DIGEST_CHAT = -1001000000077
GROUP_ID = -1001000000002
CHANNEL_PAGE = PageRef(
    Platform.TELEGRAM,
    "-1001000000001",
    PageKind.TG_CHANNEL,
    "Правительство области",
    "gov",
    str(GROUP_ID),
)

ROADS = "Когда отремонтируют дорогу на улице Ленина? Сплошные ямы, невозможно проехать."
HEATING = "Нет отопления в доме на Садовой 5, дети мёрзнут, батареи холодные третий день!"
WASTE = "Во дворе на Мира 12 не вывозят мусор уже неделю, контейнеры переполнены. Примите меры!"
ANSWER = (
    "Здравствуйте! Ремонт дороги на улице Ленина включён в план на июнь, работы выполнит "
    "управление дорожного хозяйства."
)


def msk(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK).astimezone(UTC)


def citizen_event(
    sent_at: datetime, text: str, author: str, number: int, post: int = 10
) -> MessageEvent:
    return MessageEvent(
        page=CHANNEL_PAGE,
        thread=ThreadRef(f"post:{post}", ThreadKind.COMMENTS),
        message_id=f"{GROUP_ID}:{number}",
        sent_at=sent_at,
        author_role=AuthorRole.PERSON,
        author_id=author,
        author_name=f"Житель {author}",
        text=text,
        reply_to_id=None,
        link=f"https://t.me/c/1000000002/{number}?thread={post}",
    )


def page_reply(sent_at: datetime, reply_to: int, number: int) -> MessageEvent:
    return MessageEvent(
        page=CHANNEL_PAGE,
        thread=ThreadRef("post:10", ThreadKind.COMMENTS),
        message_id=f"{GROUP_ID}:{number}",
        sent_at=sent_at,
        author_role=AuthorRole.PAGE,
        author_id=CHANNEL_PAGE.external_id,
        text=ANSWER,
        reply_to_id=f"{GROUP_ID}:{reply_to}",
    )


@dataclass
class World:
    """The sandbox, a database in tmp_path, a simulated clock and the real Bot + notifier."""

    sandbox: TelegramSandbox
    clock: SimulatedClock
    settings: Settings
    db_path: Path
    app: AppContext
    bot: Bot
    notifier: TelegramNotifier
    sleeps: list[float] = field(default_factory=list)

    async def ingest(self, event: MessageEvent) -> int | None:
        async with self.app.sessions() as session:
            result = await IngestService(session, self.app.defaults).handle(event)
            await session.commit()
        return result.appeal_ids[0] if result.appeal_ids else None

    async def restart(self) -> Scheduler:
        """A new process: new engine, app context and scheduler on the same database file."""
        await self.app.engine.dispose()
        engine = create_engine(f"sqlite+aiosqlite:///{self.db_path}")
        await upgrade(engine)
        self.app = AppContext.create(self.settings, engine, self.clock)
        self.app.notifier = self.notifier
        return Scheduler(self.app)

    async def rows(self) -> list[ReminderLog]:
        async with self.app.sessions() as session:
            return list(
                (await session.exec(select(ReminderLog).order_by(col(ReminderLog.id)))).all()
            )


async def make_world(tmp_path: Path, start: datetime, **settings: object) -> World:
    sandbox = TelegramSandbox()
    await sandbox.start()
    sandbox.add_bot(TOKEN, BOT_ID, "otklik_test_bot", "Отклик")
    sandbox.add_chat({"id": PRESS_CHAT, "type": "supergroup", "title": "Пресс-служба"})
    sandbox.add_chat({"id": DIGEST_CHAT, "type": "supergroup", "title": "Руководство"})
    clock = SimulatedClock(start)
    sandbox.now = clock
    config = make_settings(PRESS_CHAT_ID=PRESS_CHAT, **settings)
    db_path = tmp_path / "otklik.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
    await upgrade(engine)
    app = AppContext.create(config, engine, clock)
    bot = make_bot(TOKEN, sandbox.base_url)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    notifier = TelegramNotifier(bot, limiter=RateLimiter(sleep=fake_sleep), sleep=fake_sleep)
    app.notifier = notifier
    return World(sandbox, clock, config, db_path, app, bot, notifier, sleeps)


async def close_world(world: World) -> None:
    await world.bot.session.close()
    await world.app.engine.dispose()
    await world.sandbox.stop()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    built = await make_world(tmp_path, msk(10, 30, 15))
    yield built
    await close_world(built)


def appeal_ids(message: SentMessage) -> list[int]:
    """The appeals a reminder is about, read from its «Взять в работу» buttons."""
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [
        int(button["callback_data"].split(":")[2])
        for row in rows
        for button in row
        if button.get("callback_data", "").startswith("ap:take:")
    ]


def local_time(message: SentMessage) -> str:
    return message.date.astimezone(MSK).strftime("%a %d.%m %H:%M")


async def test_ladder_across_weekend_and_holiday_with_restart(world: World) -> None:
    """Friday → weekend → Monday, Wednesday 4 November (a holiday) → Friday, 15-minute ticks."""
    plan = {
        "A": (msk(10, 30, 16), ROADS, "501", 101),  # Fri 16:00: half Mon 11:00, due Mon 15:00
        "C": (msk(10, 30, 17, 30), ROADS, "503", 103),  # answered Mon 09:30: no reminders
        "U": (msk(10, 31, 12), HEATING, "502", 102),  # Sat, urgent (4 h): alert now, Mon 11/13
        "B": (msk(11, 3, 15), WASTE, "504", 104),  # Tue 15:00: half Thu 10:00, due Thu 14:00
    }
    reply_c = msk(11, 2, 9, 30)
    ids: dict[str, int] = {}
    scheduler = Scheduler(world.app)
    restarted = False
    end = msk(11, 6, 12)
    while world.clock() <= end:
        now = world.clock()
        for name, (sent_at, text, author, number) in plan.items():
            if name not in ids and sent_at <= now:
                appeal_id = await world.ingest(citizen_event(sent_at, text, author, number))
                assert appeal_id is not None, name
                ids[name] = appeal_id
        if reply_c <= now and "C-reply" not in ids:
            assert await world.ingest(page_reply(reply_c, 103, 200)) == ids["C"]
            ids["C-reply"] = 0
        await scheduler.tick()
        if not restarted and now >= msk(11, 2, 11, 30):
            # A restart in the middle: a new process ticks at the same moment, then carries on.
            scheduler = await world.restart()
            again = await scheduler.tick()
            assert again.sent == 0 and again.planned == 0
            restarted = True
        world.clock.advance(timedelta(minutes=15))

    async with world.app.sessions() as session:
        urgent = await session.get(Appeal, ids["U"])
        assert urgent is not None and urgent.urgent and urgent.sla_hours == 4.0

    sent = world.sandbox.sent_messages(PRESS_CHAT)
    timeline = [(local_time(m), sorted(appeal_ids(m))) for m in sent]
    a, b, u = ids["A"], ids["B"], ids["U"]
    assert timeline == [
        ("Sat 31.10 12:00", [u]),  # urgent: at once, even on a Saturday
        ("Mon 02.11 11:00", sorted([a, u])),  # two half-SLA reminders together: one message
        ("Mon 02.11 13:00", [u]),  # urgent deadline
        ("Mon 02.11 15:00", [a]),  # deadline
        ("Tue 03.11 09:00", sorted([a, u])),  # daily summary of overdue appeals
        # The urgent appeal's final answer (1 working day from Monday, the day it counts from).
        ("Tue 03.11 18:00", [u]),
        # Wednesday 4 November is a holiday: nothing at all.
        ("Thu 05.11 09:00", sorted([a, u])),
        ("Thu 05.11 10:00", [b]),  # half of B: Tue 15-18 + Thu 09-10
        ("Thu 05.11 14:00", [b]),
        ("Fri 06.11 09:00", sorted([a, b, u])),
    ]
    assert ids["C"] not in {i for _, group in timeline for i in group}
    texts = [re.sub(r"<[^>]+>", "", m.text or "").replace("\u00a0", " ") for m in sent]
    assert "Срочное обращение" in texts[0]
    assert "Истёк срок ответа по существу" in texts[5]
    assert "Напоминание: 2 обращения ждут ответа" in texts[1]
    # Each card and its buttons carry the appeal id (as the confirmation and /topic do), never
    # a position in the list.
    assert f"№{a} · Правительство области" in texts[1] and f"№{u} · Правительство" in texts[1]
    assert "\n1. " not in texts[1] and "\n2. " not in texts[1]
    labels = [b["text"] for row in sent[1].reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    assert labels == [
        f"№{i} · {action}"
        for i in sorted([a, u])
        for action in ("Взять в работу", "Не обращение", "Ответили вне соцсети")
    ]
    assert f"№{a} · Правительство области" in texts[4] and "\n1. " not in texts[4]
    assert "Прошла половина срока ответа" in texts[1]
    assert "Срок ответа истёк" in texts[3]
    assert "просрочены 2 обращения" in texts[4]
    assert "просрочено 3 обращения" not in texts[9] and "просрочены 3 обращения" in texts[9]
    # Every reminder links straight to the comment and has the three buttons.
    assert 'href="https://t.me/c/1000000002/101?thread=10"' in sent[3].params["text"]
    labels = [b["text"] for row in sent[3].reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    assert labels == ["Взять в работу", "Не обращение", "Ответили вне соцсети"]
    # The database agrees: every reminder sent exactly once, nothing left pending.
    rows = await world.rows()
    keys = [(r.kind, r.chat_id, r.due_key) for r in rows]
    assert len(keys) == len(set(keys))
    assert sorted((r.kind, r.status) for r in rows) == sorted(
        [("urgent", "sent"), ("final_deadline", "sent")]
        + [("half_sla", "sent"), ("deadline", "sent")] * 3
        # Half of U's final stage passed on Monday 18:00 (A's comes on Friday 12:30), but its
        # first reaction was overdue: it is in the morning summary, so that reminder is dropped.
        + [("final_half", "cancelled")]
        # Friday and Monday at 09:00 nothing was overdue yet: no summary went out.
        + [("overdue_daily", "skipped")] * 2
        + [("overdue_daily", "sent")] * 3
    )


async def test_failed_send_stays_pending_and_is_retried(world: World) -> None:
    world.clock.set(msk(11, 2, 9))
    appeal_id = await world.ingest(citizen_event(msk(11, 2, 9), ROADS, "601", 301))
    world.clock.set(msk(11, 2, 13))  # half of 8 h
    world.sandbox.fail_next("sendMessage", 1, status=403)
    first = await Scheduler(world.app).tick()
    # Planned: the half-SLA reminder and Monday's summary (nothing overdue: not sent).
    assert (first.planned, first.sent, first.failed) == (2, 0, 1)
    [row, daily] = await world.rows()
    assert (daily.kind, daily.status) == ("overdue_daily", "skipped")
    assert (row.status, row.attempts, row.appeal_id) == ("pending", 1, appeal_id)
    assert row.last_error is not None and "Forbidden" in row.last_error
    assert row.next_attempt_at == msk(11, 2, 13, 1)

    # Too early for the retry: nothing happens; a restart in between loses nothing.
    assert (await Scheduler(world.app).tick()).sent == 0
    world.clock.advance(timedelta(minutes=1))
    scheduler = await world.restart()
    second = await scheduler.tick()
    assert (second.sent, second.failed) == (1, 0)
    [row, _] = await world.rows()
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert len(world.sandbox.sent_messages(PRESS_CHAT)) == 1


async def test_429_is_retried_after_retry_after(world: World) -> None:
    world.clock.set(msk(11, 2, 9))
    await world.ingest(citizen_event(msk(11, 2, 9), ROADS, "701", 401))
    world.clock.set(msk(11, 2, 13))
    world.sandbox.fail_next("sendMessage", 2, retry_after=3)
    report = await Scheduler(world.app).tick()
    assert (report.sent, report.failed) == (1, 0)
    assert world.sleeps.count(3.0) == 2
    assert len(world.sandbox.sent_messages(PRESS_CHAT)) == 1


async def test_reminder_outside_working_hours_waits_for_the_morning(world: World) -> None:
    """The process was down on Monday afternoon: the deadline reminder goes out Tuesday 09:00."""
    world.clock.set(msk(11, 2, 9))
    await world.ingest(citizen_event(msk(11, 2, 9), ROADS, "801", 501))
    world.clock.set(msk(11, 2, 20))  # after hours; half (13:00) and deadline (17:00) both due
    report = await Scheduler(world.app).tick()
    # The deadline reminder (half-time skipped as superseded) and Monday's summary wait.
    assert (report.planned, report.skipped, report.waiting) == (2, 1, 2)
    assert world.sandbox.sent_messages(PRESS_CHAT) == []
    world.clock.set(msk(11, 3, 9))
    report = await Scheduler(world.app).tick()
    sent = world.sandbox.sent_messages(PRESS_CHAT)
    assert len(sent) == 2  # the deadline reminder and the daily summary
    assert "Срок ответа истёк" in (sent[0].text or "")
    assert "просрочено 1 обращение" in (sent[1].text or "").replace("\u00a0", " ")


async def test_deadline_at_end_of_day_is_sent_on_time(world: World) -> None:
    world.clock.set(msk(11, 2, 10))
    await world.ingest(citizen_event(msk(11, 2, 10), ROADS, "901", 601))  # due 18:00
    world.clock.set(
        msk(
            11,
            2,
            18,
            0,
        )
    )
    world.clock.advance(timedelta(seconds=20))  # the tick lands just after 18:00
    async with world.app.sessions() as session:
        service = ReminderService(session, world.app.settings, world.app.defaults)
        report = await service.plan(world.clock(), TickReport())
        await session.commit()
        await service.deliver(world.notifier, world.clock(), report)
    assert report.sent == 1
    assert "Срок ответа истёк" in (world.sandbox.sent_messages(PRESS_CHAT)[0].text or "")


async def test_summary_of_many_overdue_is_a_page_of_whole_cards_with_more(world: World) -> None:
    """17 overdue appeals: the first 8, oldest first, each with its buttons, then «Ещё»."""
    ids = []
    for number in range(17):
        sent_at = msk(11, 2, 9, number)
        text = ROADS.replace("Ленина", f"Ленина, {number + 1}")
        event = citizen_event(sent_at, text, f"90{number}", 700 + number, post=40 + number)
        world.clock.set(sent_at)
        appeal_id = await world.ingest(event)
        assert appeal_id is not None
        ids.append(appeal_id)
    world.clock.set(msk(11, 2, 17, 30))
    await Scheduler(world.app).tick()  # the deadline reminders
    before = len(world.sandbox.sent_messages(PRESS_CHAT))
    world.clock.set(msk(11, 3, 9))
    await Scheduler(world.app).tick()
    # One message: a page of whole cards, every one of them with its buttons.
    [summary] = world.sandbox.sent_messages(PRESS_CHAT)[before:]
    text = re.sub(r"<[^>]+>", "", summary.text or "").replace("\u00a0", " ")
    assert "просрочено 17 обращений" in text
    assert all(f"№{i} ·" in text for i in ids[:8])
    assert all(f"№{i} ·" not in text for i in ids[8:])
    assert text.endswith("…и ещё 9 обращений: кнопка «Ещё» покажет следующие.")
    assert "/overdue" not in text
    assert appeal_ids(summary) == ids[:8]
    labels = [b["text"] for row in summary.reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    assert labels[0] == f"№{ids[0]} · Взять в работу"
    more = summary.reply_markup["inline_keyboard"][-1]  # type: ignore[index]
    assert more == [{"text": "Ещё ›", "callback_data": f"ov:{ids[7]}"}]


def test_content_kinds_and_page_titles_are_russian() -> None:
    assert content_kind_ru("audio_message") == "голосовое сообщение"
    assert content_kind_ru("doc") == "документ"
    assert content_kind_ru("voice") == "голосовое сообщение"
    assert content_kind_ru("something_new") == "вложение"
    channel = Page(platform="telegram", external_id="-1001000000001", kind="tg_channel")
    assert page_title(channel) == "канал в Telegram -1001000000001"
    community = Page(platform="vk", external_id="123", kind="vk_group")
    assert page_title(community) == "сообщество ВКонтакте 123"
    assert page_title(Page(platform="vk", external_id="5", kind="vk_group", title="Минздрав")) == (
        "Минздрав"
    )


def test_format_duration() -> None:
    assert format_duration(40 * 60) == "40\u00a0мин"
    assert format_duration(2 * 3600 + 15 * 60) == "2\u00a0ч\u00a015\u00a0мин"
    assert format_duration(27 * 3600) == "1\u00a0день\u00a03\u00a0ч"
    assert format_duration(3 * 3600) == "3\u00a0ч"


async def test_card_links_to_the_appeal_in_the_dashboard(tmp_path: Path) -> None:
    """With WEB_PUBLIC_URL every card links to the appeal's timeline in the dashboard."""
    world = await make_world(tmp_path, msk(11, 2, 9), WEB_PUBLIC_URL="https://otklik.example.ru/")
    try:
        appeal = await world.ingest(citizen_event(msk(11, 2, 9), ROADS, "801", 501))
        world.clock.set(msk(11, 2, 17, 30))
        await Scheduler(world.app).tick()
        [card, *_] = world.sandbox.sent_messages(PRESS_CHAT)
        assert f'<a href="https://otklik.example.ru/appeals/{appeal}">В панели</a>' in (
            card.message.get("text_html") or card.params.get("text") or ""
        )
    finally:
        await close_world(world)
