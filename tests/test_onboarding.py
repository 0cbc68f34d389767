"""Help and onboarding in chat through the real aiogram client: menus, /start and /help by role,
who may press the buttons, /team."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.sandbox import TelegramSandbox
from bot.services import roles
from bot.services.decisions import TAKE, apply_decision
from bot.services.ingest import IngestService
from bot.services.scheduler import Scheduler
from handlers.telegram.notifier import TelegramNotifier
from handlers.telegram.onboarding import (
    ADMIN_HELP,
    CITIZEN_HELP,
    OPERATOR_HELP,
    PRESS_CHAT_GUEST,
    SUPERVISOR_HELP,
)
from handlers.telegram.pressoffice import BUTTON_REFUSAL
from handlers.telegram.private import GREETING
from storage.models import Appeal, Decision, Staff
from tests.conftest import make_settings
from tests.telegram_harness import PRESS_CHAT_ID, RunningIntake, eventually, setup_sandbox
from tests.test_reminders import HEATING, ROADS, WASTE, citizen_event, msk, page_reply

ADMIN = {"id": 9001, "is_bot": False, "first_name": "Олег", "last_name": "Админов"}
SUPERVISOR = {"id": 9002, "is_bot": False, "first_name": "Ольга", "last_name": "Руководова"}
OPERATOR = {"id": 7001, "is_bot": False, "first_name": "Анна", "last_name": "Иванова"}
COLLEAGUE = {"id": 7002, "is_bot": False, "first_name": "Борис", "last_name": "Смирнов"}
CITIZEN = {"id": 5001, "is_bot": False, "first_name": "Иван"}
NEVER_STARTED = 9999  # a supervisor who has not opened the bot yet


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        for user in (ADMIN, SUPERVISOR, OPERATOR, COLLEAGUE, CITIZEN):
            box.add_user(user)
        yield box


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(msk(11, 2, 9))


@pytest.fixture
def app(sqlite_engine: AsyncEngine, clock: SimulatedClock) -> AppContext:
    settings = make_settings(
        PRESS_CHAT_ID=PRESS_CHAT_ID, ADMIN_IDS="9001", SUPERVISOR_IDS=f"9002,{NEVER_STARTED}"
    )
    return AppContext.create(settings, sqlite_engine, clock)


@pytest.fixture
async def intake(
    app: AppContext, sandbox: TelegramSandbox, clock: SimulatedClock
) -> AsyncIterator[RunningIntake]:
    async with app.sessions() as session:
        await roles.set_role(session, OPERATOR["id"], "operator", name="Анна Иванова")
        await session.commit()
    sandbox.now = clock
    running = RunningIntake(app, sandbox)
    await running.start()
    assert running.bot is not None
    app.notifier = TelegramNotifier(running.bot)
    yield running
    await running.stop()


async def _say(
    intake: RunningIntake, sandbox: TelegramSandbox, chat: int, user: dict[str, Any], text: str
) -> str:
    """Send `text` as `user` in `chat`; the bot's answer there."""
    before = len(sandbox.sent_messages(chat))
    sandbox.inject_message(chat, user, text)

    async def answered() -> bool:
        return len(sandbox.sent_messages(chat)) > before

    await eventually(answered)
    return sandbox.sent_messages(chat)[before].text or ""


def _names(commands: list[dict[str, Any]]) -> list[str]:
    return [c["command"] for c in commands]


async def test_command_menus_per_scope(intake: RunningIntake, sandbox: TelegramSandbox) -> None:
    supervisor_in_press_chat = {
        "type": "chat_member",
        "chat_id": PRESS_CHAT_ID,
        "user_id": SUPERVISOR["id"],
    }

    async def menus_set() -> bool:
        return bool(sandbox.commands(supervisor_in_press_chat))

    await eventually(menus_set)
    citizens = sandbox.commands({"type": "all_private_chats"})
    assert _names(citizens) == ["start", "help"]
    press = sandbox.commands({"type": "chat", "chat_id": PRESS_CHAT_ID})
    assert _names(press) == ["help", "topic", "chatid"]
    supervisor = sandbox.commands({"type": "chat", "chat_id": SUPERVISOR["id"]})
    assert {"stats", "overdue", "team", "digest", "export", "web", "help"} == set(
        _names(supervisor)
    )
    admin = sandbox.commands({"type": "chat", "chat_id": ADMIN["id"]})
    assert {"stats", "team", "page", "staff", "bind", "help"} <= set(_names(admin))
    in_press_chat = sandbox.commands(supervisor_in_press_chat)
    assert _names(in_press_chat) == _names(supervisor)
    # Descriptions are Russian; nobody without a role gets the supervisors' menu.
    assert all(any("а" <= ch <= "я" for ch in c["description"].lower()) for c in admin)
    assert sandbox.commands({"type": "chat", "chat_id": CITIZEN["id"]}) == []
    assert sandbox.commands({"type": "chat", "chat_id": NEVER_STARTED}) == []  # chat not found


async def test_start_and_help_answer_by_role(
    intake: RunningIntake, sandbox: TelegramSandbox
) -> None:
    assert await _say(intake, sandbox, CITIZEN["id"], CITIZEN, "/start") == GREETING
    assert await _say(intake, sandbox, CITIZEN["id"], CITIZEN, "/help") == CITIZEN_HELP
    assert await _say(intake, sandbox, SUPERVISOR["id"], SUPERVISOR, "/start") == SUPERVISOR_HELP
    assert await _say(intake, sandbox, SUPERVISOR["id"], SUPERVISOR, "/help") == SUPERVISOR_HELP
    assert await _say(intake, sandbox, ADMIN["id"], ADMIN, "/help") == ADMIN_HELP
    assert await _say(intake, sandbox, OPERATOR["id"], OPERATOR, "/help") == OPERATOR_HELP
    # In the press chat: an operator's help, and how to become one for those without a role.
    assert await _say(intake, sandbox, PRESS_CHAT_ID, OPERATOR, "/help") == OPERATOR_HELP
    guest = await _say(intake, sandbox, PRESS_CHAT_ID, COLLEAGUE, "/help")
    assert guest == OPERATOR_HELP + PRESS_CHAT_GUEST
    assert "/staff operator" in guest
    unknown = await _say(intake, sandbox, SUPERVISOR["id"], SUPERVISOR, "/statz")
    assert unknown == "Такой команды нет. Список команд — /help."
    assert "/stats" in SUPERVISOR_HELP and "/team" in SUPERVISOR_HELP
    assert "/page add" in ADMIN_HELP and "/staff" in ADMIN_HELP
    # Nothing of this became an appeal.
    async with intake.app.sessions() as session:
        assert (await session.exec(select(Appeal))).all() == []


async def test_closed_press_chat_refuses_members_without_a_role(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    assert app.settings.PRESS_CHAT_OPEN is False  # the default
    async with app.sessions() as session:
        result = await IngestService(session, app.defaults).handle(
            citizen_event(msk(11, 2, 9), HEATING, "501", 101)
        )
        await session.commit()
    [appeal_id] = result.appeal_ids
    clock.set(msk(11, 2, 11, 5))
    await Scheduler(app).tick()
    [reminder] = [m for m in sandbox.sent_messages(PRESS_CHAT_ID) if m.reply_markup]
    before = len(sandbox.callback_answers)
    sandbox.inject_callback_query(COLLEAGUE, reminder, f"ap:take:{appeal_id}")

    async def answered() -> bool:
        return len(sandbox.callback_answers) > before

    await eventually(answered)
    answer = sandbox.callback_answers[before]
    assert answer["text"] == BUTTON_REFUSAL and answer["show_alert"] is True
    sandbox.inject_callback_query(OPERATOR, reminder, f"ap:take:{appeal_id}")

    async def taken() -> list[Decision]:
        async with app.sessions() as session:
            return list((await session.exec(select(Decision))).all())

    decisions = await eventually(taken)
    async with app.sessions() as session:
        staff = (await session.exec(select(Staff))).all()
    assert [s.user_id for s in staff] == [str(OPERATOR["id"])]  # the colleague was not enrolled
    assert [(d.action, d.actor_id) for d in decisions] == [(TAKE, str(OPERATOR["id"]))]


async def test_team_shows_each_operators_work(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    async with app.sessions() as session:
        service = IngestService(session, app.defaults)
        ids = []
        for number, (text, author) in enumerate(
            [(ROADS, "501"), (WASTE, "502"), (HEATING, "503"), (ROADS + " Мира", "504")], 101
        ):
            result = await service.handle(citizen_event(msk(11, 2, 9), text, author, number))
            ids.append(result.appeal_ids[0])
        appeals = [await session.get(Appeal, i) for i in ids]
        for appeal, (who, name) in zip(
            appeals[:3],
            [(OPERATOR, "Анна Иванова"), (OPERATOR, "Анна Иванова"), (COLLEAGUE, "Борис Смирнов")],
            strict=True,
        ):
            assert appeal is not None
            await apply_decision(
                session, appeal, TAKE, actor_id=str(who["id"]), actor_name=name, at=msk(11, 2, 10)
            )
        await session.commit()
        # Anna answers one in time; Boris's one gets its answer after the deadline.
        await service.handle(page_reply(msk(11, 2, 12), 101, 201))
        await service.handle(page_reply(msk(11, 3, 16), 103, 203))
        await session.commit()
    clock.set(msk(11, 5, 12))
    assert (await _say(intake, sandbox, CITIZEN["id"], CITIZEN, "/team")).startswith("Извините")
    text = await _say(intake, sandbox, SUPERVISOR["id"], SUPERVISOR, "/team 02.11-04.11")
    assert text.splitlines() == [
        "Работа операторов за 02.11.2026 – 04.11.2026",
        "• Анна Иванова: взято в работу 2, ответили 1 (в срок 1 из 1), открыто 1",
        "• Борис Смирнов: взято в работу 1, ответили 1 (в срок 0 из 1), открыто 0",
        "Никто не взял, без ответа: 1 (всего обращений за период: 4)",
    ]
    # A takeover moves the appeal to the colleague.
    async with app.sessions() as session:
        appeal = await session.get(Appeal, ids[1])
        assert appeal is not None
        await apply_decision(
            session,
            appeal,
            TAKE,
            actor_id=str(COLLEAGUE["id"]),
            actor_name="Борис Смирнов",
            at=msk(11, 4, 10),
        )
        await session.commit()
    text = await _say(intake, sandbox, ADMIN["id"], ADMIN, "/team 02.11-04.11")
    assert "• Анна Иванова: взято в работу 1, ответили 1 (в срок 1 из 1), открыто 0" in text
    assert "• Борис Смирнов: взято в работу 2, ответили 1 (в срок 0 из 1), открыто 1" in text
    reversed_period = await _say(intake, sandbox, ADMIN["id"], ADMIN, "/team 11.11-01.11")
    assert "Конец периода (01.11.2026) раньше начала (11.11.2026)" in reversed_period


async def test_relayed_private_message_names_its_author_without_declining(
    intake: RunningIntake, sandbox: TelegramSandbox
) -> None:
    sandbox.inject_message(CITIZEN["id"], CITIZEN, "Когда починят дорогу на улице Ленина?")
    relayed = await sandbox.wait_for_sent(lambda m: m.chat_id == PRESS_CHAT_ID, timeout=20)
    assert (relayed.text or "").startswith("✉️ Личное сообщение боту. Автор: Иван:")
    assert " от Иван" not in (relayed.text or "")
