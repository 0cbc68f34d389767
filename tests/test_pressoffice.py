"""The press office in Telegram end to end: reminder buttons, roles, /export, /page, /bind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.sandbox import TelegramSandbox
from bot.sandbox.telegram import SentMessage
from bot.services.ingest import IngestService
from bot.services.reports import build_report
from bot.services.scheduler import Scheduler
from handlers.telegram.notifier import TelegramNotifier
from handlers.telegram.pressoffice import (
    BUTTON_REFUSAL,
    STAFF_REFUSAL,
    SUPERVISOR_REFUSAL,
    TOPIC_REFUSAL,
)
from handlers.telegram.private import RECEIVED
from storage.db import run_in_transaction
from storage.models import Appeal, Decision, Page, RawUpdate, Staff
from storage.repositories import writes_officially
from tests.conftest import make_settings
from tests.telegram_harness import (
    GROUP_ID,
    PRESS_CHAT_ID,
    RunningIntake,
    eventually,
    setup_sandbox,
)
from tests.test_reminders import HEATING, ROADS, WASTE, appeal_ids, citizen_event, msk

ADMIN = {"id": 9001, "is_bot": False, "first_name": "Олег", "last_name": "Админов"}
SUPERVISOR = {"id": 9002, "is_bot": False, "first_name": "Ольга", "last_name": "Руководова"}
OPERATOR = {"id": 7001, "is_bot": False, "first_name": "Анна", "last_name": "Иванова"}
STRANGER = {"id": 6666, "is_bot": False, "first_name": "Случайный"}
NEW_PRESS = {"id": -1001000000055, "type": "supergroup", "title": "Пресс-служба Минздрава"}


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        box.add_chat(NEW_PRESS)
        yield box


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(msk(11, 2, 9))


@pytest.fixture
def app(sqlite_engine: AsyncEngine, clock: SimulatedClock) -> AppContext:
    settings = make_settings(
        PRESS_CHAT_ID=PRESS_CHAT_ID, ADMIN_IDS="9001", SUPERVISOR_IDS="9002", PRESS_CHAT_OPEN=True
    )
    return AppContext.create(settings, sqlite_engine, clock)


@pytest.fixture
async def intake(
    app: AppContext, sandbox: TelegramSandbox, clock: SimulatedClock
) -> AsyncIterator[RunningIntake]:
    sandbox.now = clock
    running = RunningIntake(app, sandbox)
    await running.start()
    assert running.bot is not None
    app.notifier = TelegramNotifier(running.bot)
    yield running
    await running.stop()


async def _ingest(app: AppContext, *events: Any) -> list[int]:
    ids = []
    async with app.sessions() as session:
        service = IngestService(session, app.defaults)
        for event in events:
            result = await service.handle(event)
            ids.append(result.appeal_ids[0])
        await session.commit()
    return ids


async def _report(app: AppContext) -> dict[str, Any]:
    async with app.sessions() as session:
        report = await build_report(
            session,
            since=msk(11, 2, 0),
            until=msk(11, 3, 0),
            at=app.clock(),
            defaults=app.defaults,
        )
    return report.to_json()["total"]


async def _press(
    intake: RunningIntake, sandbox: TelegramSandbox, user: dict, message: SentMessage, data: str
) -> dict[str, Any]:
    """Press a button and wait until the update is handled and committed; the answer given."""
    before = await intake.processed()
    answers = len(sandbox.callback_answers)
    sandbox.inject_callback_query(user, message, data)
    await intake.wait_processed(before + 1)
    assert len(sandbox.callback_answers) == answers + 1
    return sandbox.callback_answers[-1]


async def _command(
    intake: RunningIntake, sandbox: TelegramSandbox, chat: int, user: dict, text: str
) -> None:
    before = await intake.processed()
    sandbox.inject_message(chat, user, text)
    await intake.wait_processed(before + 1)


async def test_buttons_change_the_metrics_and_keep_who_decided(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    taken, not_appeal, offline = await _ingest(
        app,
        citizen_event(msk(11, 2, 9), ROADS, "501", 101),
        citizen_event(msk(11, 2, 9, 5), WASTE, "502", 102),
        citizen_event(msk(11, 2, 9, 10), ROADS.replace("Ленина", "Мира"), "503", 103),
    )
    clock.set(msk(11, 2, 13, 10))  # half of the SLA of all three
    await Scheduler(app).tick()
    [reminder] = sandbox.sent_messages(PRESS_CHAT_ID)
    assert appeal_ids(reminder) == [taken, not_appeal, offline]
    before = await _report(app)
    assert (before["appeals"], before["answered"], before["pending"]) == (3, 0, 3)

    answer = await _press(intake, sandbox, OPERATOR, reminder, f"ap:take:{taken}")
    assert "взято в работу: Анна Иванова" in answer["text"]
    clock.advance(timedelta(minutes=5))
    await _press(intake, sandbox, OPERATOR, reminder, f"ap:no:{not_appeal}")
    clock.advance(timedelta(minutes=5))
    decided_offline = clock()
    await _press(intake, sandbox, OPERATOR, reminder, f"ap:off:{offline}")

    after = await _report(app)
    assert after["appeals"] == 2  # «Не обращение» leaves the metrics
    assert (after["answered"], after["answered_in_time"], after["answered_offline"]) == (1, 1, 1)
    assert after["pending"] == 1
    async with app.sessions() as session:
        appeals = {a.id: a for a in (await session.exec(select(Appeal))).all()}
        decisions = (await session.exec(select(Decision).order_by(Decision.id))).all()  # type: ignore[arg-type]
        staff = (await session.exec(select(Staff))).all()
    assert appeals[taken].taken_by == "Анна Иванова"
    assert appeals[not_appeal].excluded
    assert appeals[offline].answered_offline_at == decided_offline
    assert [(d.appeal_id, d.action, d.actor_id) for d in decisions] == [
        (taken, "taken", "7001"),
        (not_appeal, "not_appeal", "7001"),
        (offline, "answered_offline", "7001"),
    ]
    assert decisions[1].value == "waste"  # the classifier's topic, kept as the correction
    # The operator pressed in the page's press chat: registered as its operator.
    assert [(s.user_id, s.role, s.page_id) for s in staff] == [
        ("7001", "operator", appeals[taken].page_id)
    ]
    # No message per press: the card itself says what was decided (edited in place).
    assert sandbox.sent_messages(PRESS_CHAT_ID)[1:] == []
    card = sandbox.message(PRESS_CHAT_ID, reminder.message_id)
    assert card is not None
    text = card["text"].replace("\u00a0", " ")
    assert "В работе: Анна Иванова с сегодня в 13:10" in text
    assert "Отмечено как «не обращение» сегодня в 13:15; «Вернуть» — до вт 03.11 в 13:15" in text
    assert "Ответили вне соцсети сегодня в 13:20" in text
    buttons = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [
        f"№{taken} · Взять в работу",
        f"№{taken} · Не обращение",
        f"№{taken} · Ответили вне соцсети",
        f"№{not_appeal} · Вернуть",
    ]

    # The deadline reminder is only about the appeal still open, and shows who has it.
    clock.set(msk(11, 2, 17, 5))
    await Scheduler(app).tick()
    deadline = sandbox.sent_messages(PRESS_CHAT_ID)[-1]
    assert appeal_ids(deadline) == [taken]
    assert "В работе: Анна Иванова" in (deadline.text or "")


async def test_strangers_are_refused(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    [appeal_id] = await _ingest(app, citizen_event(msk(11, 2, 9), HEATING, "501", 101))
    assert intake.bot is not None
    # A reminder that ended up outside the press chat (the discussion group).
    notifier = TelegramNotifier(intake.bot)
    from bot.services.cards import appeal_buttons

    await notifier.send_text(GROUP_ID, "Напоминание", appeal_buttons(appeal_id))
    [stray] = sandbox.sent_messages(GROUP_ID)
    answer = await _press(intake, sandbox, STRANGER, stray, f"ap:no:{appeal_id}")
    assert answer["text"] == BUTTON_REFUSAL and answer["show_alert"] is True
    async with app.sessions() as session:
        appeal = await session.get(Appeal, appeal_id)
        assert appeal is not None and not appeal.excluded
        assert (await session.exec(select(Decision))).all() == []
    # A supervisor may decide from anywhere.
    answer = await _press(intake, sandbox, SUPERVISOR, stray, f"ap:take:{appeal_id}")
    assert "Ольга Руководова" in answer["text"]

    await _command(intake, sandbox, PRESS_CHAT_ID, STRANGER, "/export")
    assert sandbox.sent_messages(PRESS_CHAT_ID)[-1].text == SUPERVISOR_REFUSAL
    await _command(intake, sandbox, PRESS_CHAT_ID, OPERATOR, "/page")
    assert "только администраторы" in (sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or "")


async def test_export_and_overdue_for_supervisors(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    await _ingest(
        app,
        citizen_event(msk(11, 2, 9), ROADS, "501", 101),
        citizen_event(msk(11, 2, 10), HEATING, "502", 102),
    )
    clock.set(msk(11, 3, 12))  # Tuesday
    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, "/export неделя")
    document = sandbox.sent_messages(PRESS_CHAT_ID)[-1]
    assert document.method == "sendDocument"
    # «неделя» is the current Monday–Sunday week, as in /stats.
    assert document.files[0].filename == "otklik_2026-11-02_2026-11-08.xlsx"
    assert (
        document.message["caption"].replace("\u00a0", " ")
        == "Выгрузка за 02.11.2026 – 08.11.2026: 2 обращения."
    )
    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, "/export 01.11 – 02.11")
    document = sandbox.sent_messages(PRESS_CHAT_ID)[-1]
    assert document.files[0].filename == "otklik_2026-11-01_2026-11-02.xlsx"

    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, "/export позавчера")
    assert "Не понимаю период" in (sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or "")

    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, "/overdue")
    overdue = sandbox.sent_messages(PRESS_CHAT_ID)[-1]
    assert "просрочены 2 обращения" in (overdue.text or "").replace("\u00a0", " ")
    assert len(appeal_ids(overdue)) == 2


async def test_admin_manages_pages_and_binds_a_press_chat(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    [appeal_id] = await _ingest(app, citizen_event(msk(11, 2, 9), ROADS, "501", 101))
    async with app.sessions() as session:
        page_id = (await session.exec(select(Page.id))).one()
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id} tz Asia/Vladivostok")
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id} sla 6 2")
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id} title Минздрав края")
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id} tz Марс/Олимп")
    assert "Не знаю часовой пояс" in (sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or "")
    await _command(intake, sandbox, NEW_PRESS["id"], SUPERVISOR, f"/bind {page_id}")
    assert "только администраторы" in (sandbox.sent_messages(NEW_PRESS["id"])[-1].text or "")
    await _command(intake, sandbox, NEW_PRESS["id"], ADMIN, f"/bind {page_id}")
    assert sandbox.sent_messages(NEW_PRESS["id"])[-1].text == (
        "Готово: напоминания по странице «Минздрав края» будут приходить в этот чат."
    )
    async with app.sessions() as session:
        page = await session.get(Page, page_id)
    assert page is not None
    assert (page.timezone, page.sla_hours, page.sla_urgent_hours, page.title) == (
        "Asia/Vladivostok",
        6.0,
        2.0,
        "Минздрав края",
    )
    assert page.press_chat_id == NEW_PRESS["id"]
    assert NEW_PRESS["id"] in app.press_chats
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, "/page")
    listing = sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or ""
    assert "Минздрав края" in listing and "Asia/Vladivostok" in listing
    assert f"<b>{page_id}</b> · Минздрав края (Telegram)" in listing and "(telegram)" not in listing

    # Reminders of the page now go to the bound chat, in the page's working hours: 13:30 in
    # Moscow is 20:30 in Vladivostok, so nothing goes out until the next morning there.
    clock.set(msk(11, 2, 13, 30))
    await Scheduler(app).tick()
    assert [m.method for m in sandbox.sent_messages(NEW_PRESS["id"])] == ["sendMessage"] * 2
    clock.set(msk(11, 3, 3, 30))  # Tuesday 10:30 in Vladivostok
    await Scheduler(app).tick()
    reminder, summary = sandbox.sent_messages(NEW_PRESS["id"])[-2:]
    assert appeal_ids(reminder) == appeal_ids(summary) == [appeal_id]
    assert "Срок ответа истёк" in (reminder.text or "")
    assert "На 10:30 03.11 просрочено 1 обращение" in (summary.text or "").replace("\u00a0", " ")

    async def bound_chat_loaded() -> bool:
        return NEW_PRESS["id"] in app.press_chats

    assert await eventually(bound_chat_loaded)


async def test_admin_registers_staff_and_operator_corrects_a_topic(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    [appeal_id] = await _ingest(app, citizen_event(msk(11, 2, 9), ROADS, "501", 101))
    await _command(intake, sandbox, PRESS_CHAT_ID, STRANGER, "/staff add 4242")
    assert sandbox.sent_messages(PRESS_CHAT_ID)[-1].text == STAFF_REFUSAL
    assert "сотрудников и роли" in STAFF_REFUSAL and "страниц" not in STAFF_REFUSAL
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, "/staff add 4242")
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, "/staff operator vk777")
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, "/staff")
    listing = sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or ""
    assert "• Telegram 4242 — официальный аккаунт, все страницы" in listing
    assert "• ВКонтакте 777 — оператор, все страницы" in listing
    assert "telegram:" not in listing and "vk:" not in listing
    async with app.sessions() as session:
        page_id = (await session.exec(select(Page.id))).one()
        assert await _writes_officially(session, "4242", page_id)
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, "/staff remove 4242")
    async with app.sessions() as session:
        assert not await _writes_officially(session, "4242", page_id)

    # Outside the press chat someone without a role is refused about the command, not buttons.
    await _command(intake, sandbox, NEW_PRESS["id"], STRANGER, f"/topic {appeal_id} ЖКХ")
    assert sandbox.sent_messages(NEW_PRESS["id"])[-1].text == TOPIC_REFUSAL
    assert "кнопки" not in TOPIC_REFUSAL and "тему" in TOPIC_REFUSAL

    # In the press chat an operator fixes the classifier's topic; metrics follow the correction.
    await _command(intake, sandbox, PRESS_CHAT_ID, OPERATOR, f"/topic {appeal_id} ЖКХ")
    assert "«Дороги» → «ЖКХ»" in (sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or "")
    async with app.sessions() as session:
        appeal = await session.get(Appeal, appeal_id)
    assert appeal is not None and appeal.topic == "housing" and appeal.topic_corrected


CITIZEN = {"id": 5501, "is_bot": False, "first_name": "Иван", "last_name": "Петров"}
NO_WATER = "Здравствуйте, в доме 5 по улице Мира нет горячей воды третий день."


@pytest.mark.parametrize("press_chat", [None, PRESS_CHAT_ID])
async def test_citizen_is_thanked_even_when_the_relay_fails(
    sqlite_engine: AsyncEngine,
    sandbox: TelegramSandbox,
    clock: SimulatedClock,
    press_chat: int | None,
) -> None:
    """No press chat at all, or the press chat refuses the bot: the appeal is still confirmed."""
    settings = make_settings(PRESS_CHAT_ID=press_chat) if press_chat else make_settings()
    assert press_chat == settings.PRESS_CHAT_ID
    app = AppContext.create(settings, sqlite_engine, clock)
    sandbox.now = clock
    sandbox.add_user(CITIZEN)
    if press_chat is not None:
        sandbox.fail_next("sendMessage", 1, status=403, description="Forbidden: bot was kicked")
    running = RunningIntake(app, sandbox)
    await running.start()
    try:
        before = await running.processed()
        sandbox.inject_message(CITIZEN["id"], CITIZEN, NO_WATER, date=clock())
        await running.wait_processed(before + 1)
    finally:
        await running.stop()
    answers = [m.text for m in sandbox.sent_messages(CITIZEN["id"])]
    assert answers == [RECEIVED]
    assert sandbox.sent_messages(PRESS_CHAT_ID) == []
    async with app.sessions() as session:
        assert len((await session.exec(select(Appeal))).all()) == 1


async def test_huge_ids_in_commands_and_buttons_are_answered_politely(
    intake: RunningIntake, sandbox: TelegramSandbox
) -> None:
    """No row has id 10**20: «not found», not an OverflowError and no answer (issue 16 item 11)."""
    huge = "99999999999999999999"
    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, f"/topic {huge} дороги")
    reply = sandbox.sent_messages(PRESS_CHAT_ID)[-1]
    assert reply.text == f"Обращение №{huge} не найдено."
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {huge} sla 4")
    assert sandbox.sent_messages(PRESS_CHAT_ID)[-1].text == f"Страницы {huge} нет. Список: /page"
    answer = await _press(intake, sandbox, OPERATOR, reply, f"ap:take:{huge}")
    assert answer.get("text") in (None, "", "Обращение не найдено.")
    async with intake.app.sessions() as session:
        statuses = (await session.exec(select(RawUpdate.status))).all()
    assert "failed" not in statuses


async def _writes_officially(session: AsyncSession, user_id: str, page_id: int) -> bool:
    return await run_in_transaction(
        session, lambda db: writes_officially(db, "telegram", user_id, page_id)
    )
