"""«Возможно, обращение» end to end: the card in the press chat, its buttons, who may press.

The real aiogram client polls the Telegram sandbox; the scheduler sends the cards through the
real notifier; every answer is checked in the database, in the metrics and in the corpus lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.sandbox import TelegramSandbox
from bot.sandbox.telegram import SentMessage
from bot.services import doubtful
from bot.services.corrections import corpus_lines
from bot.services.doubtful import DOUBTFUL, doubt_buttons
from bot.services.ingest import IngestService
from bot.services.reports import build_report
from bot.services.scheduler import Scheduler
from bot.text import MODEL_ENV, classify, is_doubtful, model_version
from handlers.telegram.notifier import TelegramNotifier
from handlers.telegram.pressoffice import BUTTON_REFUSAL
from storage.models import Appeal, CitizenMessage, Decision, ReminderLog, Staff
from tests.conftest import make_settings
from tests.telegram_harness import GROUP_ID, PRESS_CHAT_ID, RunningIntake, setup_sandbox
from tests.test_reminders import citizen_event, msk

ROOT = Path(__file__).parents[1]
OPERATOR = {"id": 7001, "is_bot": False, "first_name": "Анна", "last_name": "Иванова"}
STRANGER = {"id": 6666, "is_bot": False, "first_name": "Случайный"}
# Short remarks the classifier takes for no appeal without being sure of it. The tests take the
# ones the model in use doubts; it must doubt at least two (else the list needs new lines).
CANDIDATES = (
    "Интересно, а что с нашей улицей?",
    "А про нашу школу забыли",
    "Снова обещания",
    "Вот бы и к нам",
    "Надеюсь до нас тоже дойдут руки",
    "У нас то же самое",
    "Подскажите",
    "Автобус",
    "Отопление",
    "Хорошо бы и у нас так",
    "А нам?",
    "И что дальше?",
    "Дождёмся ли",
    "А у нас когда?",
    "Когда уже",
    "И когда",
    "А что с водой",
)


def doubtful_texts() -> list[str]:
    found = [text for text in CANDIDATES if is_doubtful(classify(text))]
    assert len(found) >= 2, f"the model {model_version()} doubts none of the candidates"
    return found


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        yield box


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(msk(11, 2, 20))  # Monday evening, after working hours


@pytest.fixture
def app(sqlite_engine: AsyncEngine, clock: SimulatedClock) -> AppContext:
    # An open press chat: its members become operators by pressing (handlers/telegram/doubtful.py).
    settings = make_settings(
        PRESS_CHAT_ID=PRESS_CHAT_ID, SUPERVISOR_IDS="9002", PRESS_CHAT_OPEN=True
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
    """Message row ids of the ingested citizen messages."""
    ids = []
    async with app.sessions() as session:
        service = IngestService(session, app.defaults)
        for event in events:
            result = await service.handle(event)
            assert result.message_row_id is not None
            ids.append(result.message_row_id)
        await session.commit()
    return ids


async def _press(
    intake: RunningIntake, sandbox: TelegramSandbox, user: dict, message: SentMessage, data: str
) -> dict[str, Any]:
    before = await intake.processed()
    answers = len(sandbox.callback_answers)
    sandbox.inject_callback_query(user, message, data)
    await intake.wait_processed(before + 1)
    assert len(sandbox.callback_answers) == answers + 1
    return sandbox.callback_answers[-1]


def _buttons(message: SentMessage) -> list[tuple[str, str]]:
    markup = message.reply_markup or {}
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


async def test_ingest_keeps_confidence_model_and_doubt(app: AppContext) -> None:
    texts = [*doubtful_texts()[:1], "Продам гараж, недорого, звоните", "Когда починят дорогу?"]
    ids = await _ingest(
        app,
        *(
            citizen_event(msk(11, 2, 10), text, str(500 + n), 300 + n)
            for n, text in enumerate(texts)
        ),
    )
    async with app.sessions() as session:
        rows = [await session.get(CitizenMessage, row_id) for row_id in ids]
    for text, row in zip(texts, rows, strict=True):
        assert row is not None
        verdict = classify(text)
        assert row.confidence == pytest.approx(verdict.confidence)
        assert row.model_version == model_version()
        assert row.doubtful is is_doubtful(verdict)
        assert row.is_appeal is verdict.is_appeal
    assert [row.doubtful for row in rows if row is not None] == [True, False, False]


async def test_doubtful_card_buttons_and_corrections(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    first_text, second_text = doubtful_texts()[:2]
    sent_at = msk(11, 2, 19, 40)  # Monday after hours
    yes_id, no_id = await _ingest(
        app,
        citizen_event(sent_at, first_text, "501", 401),
        citizen_event(sent_at + timedelta(minutes=1), second_text, "502", 402),
    )

    # Out of working hours: planned, not sent.
    report = await Scheduler(app).tick()
    assert report.sent == 0 and sandbox.sent_messages(PRESS_CHAT_ID) == []
    async with app.sessions() as session:
        planned = (
            await session.exec(select(ReminderLog.status).where(ReminderLog.kind == DOUBTFUL))
        ).all()
    assert planned == ["pending", "pending"]

    # Tuesday 09:00: both cards go out, once, also after a restart (a new scheduler).
    clock.set(msk(11, 3, 9))
    await Scheduler(app).tick()
    await Scheduler(app).tick()
    cards = sandbox.sent_messages(PRESS_CHAT_ID)
    assert len(cards) == 2
    yes_card, no_card = cards
    text = yes_card.text or ""
    assert "Возможно, обращение" in text and f"«{first_text}» — Житель 501" in text
    assert "Правительство области" in text and "Открыть комментарий" in text
    assert 'href="https://t.me/c/1000000002/401?thread=10"' in yes_card.params["text"]
    assert _buttons(yes_card) == [
        ("Это обращение", f"db:yes:{yes_id}"),
        ("Не обращение", f"db:no:{yes_id}"),
    ]
    async with app.sessions() as session:
        rows = (await session.exec(select(ReminderLog).where(ReminderLog.kind == DOUBTFUL))).all()
    assert sorted((row.due_key, row.status) for row in rows) == [
        (str(yes_id), "sent"),
        (str(no_id), "sent"),
    ]

    # «Это обращение»: an appeal received at the message's own date.
    clock.set(msk(11, 3, 9, 30))
    answer = await _press(intake, sandbox, OPERATOR, yes_card, f"db:yes:{yes_id}")
    assert answer["show_alert"] is False and "стало обращением №" in answer["text"]
    async with app.sessions() as session:
        [appeal] = (await session.exec(select(Appeal))).all()
        message = await session.get(CitizenMessage, yes_id)
        staff = (await session.exec(select(Staff))).all()
    assert message is not None and message.appeal_id == appeal.id and message.is_appeal
    assert appeal.received_at == sent_at and appeal.first_message_id == yes_id
    assert appeal.sla_deadline == msk(11, 3, 17)  # 8 working hours from Tuesday 09:00
    assert appeal.citizen_name == "Житель 501"
    assert [(s.user_id, s.role) for s in staff] == [("7001", "operator")]
    edited = sandbox.message(PRESS_CHAT_ID, yes_card.message_id)
    assert edited is not None and "reply_markup" not in edited
    assert (
        f"✅ Решение: это обращение №{appeal.id} — Анна Иванова, сегодня в 09:30"
        in (edited["text"])
    )
    assert f"«{first_text}»" in edited["text"]  # the question stays readable

    # «Не обращение»: no appeal, a decision on the message itself.
    answer = await _press(intake, sandbox, OPERATOR, no_card, f"db:no:{no_id}")
    assert answer["text"] == "Отмечено: не обращение. В показатели не войдёт."
    edited = sandbox.message(PRESS_CHAT_ID, no_card.message_id)
    assert edited is not None and "reply_markup" not in edited
    assert "🚫 Решение: не обращение — Анна Иванова, сегодня в 09:30" in edited["text"]

    # A second press on a decided card changes nothing.
    answer = await _press(intake, sandbox, OPERATOR, yes_card, f"db:no:{yes_id}")
    assert answer["show_alert"] is True and "уже обращение" in answer["text"]

    async with app.sessions() as session:
        decisions = (await session.exec(select(Decision).order_by(col(Decision.id)))).all()
        lines = [json.loads(line) for line in await corpus_lines(session)]
        report = await build_report(
            session, since=msk(11, 2, 0), until=msk(11, 4, 0), at=clock(), defaults=app.defaults
        )
        appeals = len((await session.exec(select(Appeal))).all())
    assert [(d.action, d.appeal_id, d.citizen_message_id, d.actor_id) for d in decisions] == [
        ("is_appeal", appeal.id, yes_id, "7001"),
        ("not_appeal", None, no_id, "7001"),
    ]
    assert {(line["text"], line["is_appeal"]) for line in lines} == {
        (first_text, True),
        (second_text, False),
    }
    assert appeals == 1 and report.to_json()["total"]["appeals"] == 1
    # No new card about decided messages, whatever the ticks.
    clock.advance(timedelta(hours=1))
    await Scheduler(app).tick()
    assert len(sandbox.sent_messages(PRESS_CHAT_ID)) == 2


async def test_a_late_yes_counts_the_sla_from_the_message(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    text = doubtful_texts()[0]
    [message_id] = await _ingest(app, citizen_event(msk(11, 2, 9), text, "501", 501))
    clock.set(msk(11, 3, 12))  # the card waited; 11 working hours passed
    await Scheduler(app).tick()
    [card] = sandbox.sent_messages(PRESS_CHAT_ID)
    await _press(intake, sandbox, OPERATOR, card, f"db:yes:{message_id}")
    async with app.sessions() as session:
        [appeal] = (await session.exec(select(Appeal))).all()
        report = await build_report(
            session, since=msk(11, 2, 0), until=msk(11, 4, 0), at=clock(), defaults=app.defaults
        )
    assert appeal.received_at == msk(11, 2, 9) and appeal.sla_deadline == msk(11, 2, 17)
    assert report.to_json()["total"]["overdue"] == 1  # the deadline was used up while unknown
    edited = sandbox.message(PRESS_CHAT_ID, card.message_id)
    assert edited is not None and "срок ответа истёк" in edited["text"]


async def test_strangers_are_refused_and_nothing_changes(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    text = doubtful_texts()[0]
    [message_id] = await _ingest(app, citizen_event(msk(11, 2, 20), text, "501", 601))
    assert intake.bot is not None
    # A card that ended up outside the press chat (the discussion group).
    await TelegramNotifier(intake.bot).send_text(GROUP_ID, "Возможно", doubt_buttons(message_id))
    [stray] = sandbox.sent_messages(GROUP_ID)
    for data in (f"db:yes:{message_id}", f"db:no:{message_id}"):
        answer = await _press(intake, sandbox, STRANGER, stray, data)
        assert answer["text"] == BUTTON_REFUSAL and answer["show_alert"] is True
    async with app.sessions() as session:
        assert (await session.exec(select(Decision))).all() == []
        assert (await session.exec(select(Appeal))).all() == []
        assert (await session.exec(select(Staff))).all() == []
    # A supervisor may decide from anywhere; an unknown id is «not found», a forged one ignored.
    supervisor = {"id": 9002, "is_bot": False, "first_name": "Ольга"}
    answer = await _press(intake, sandbox, supervisor, stray, "db:no:987654")
    assert answer["text"] == "Сообщение не найдено."
    answer = await _press(intake, sandbox, supervisor, stray, "db:no:99999999999999999999")
    assert "text" not in answer
    answer = await _press(intake, sandbox, supervisor, stray, f"db:no:{message_id}")
    assert answer["show_alert"] is False
    async with app.sessions() as session:
        [decision] = (await session.exec(select(Decision))).all()
    assert (decision.action, decision.actor_id) == ("not_appeal", "9002")


async def test_failed_send_is_retried_and_deleted_messages_are_not_asked_about(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    first, second = doubtful_texts()[:2]
    kept, deleted = await _ingest(
        app,
        citizen_event(msk(11, 2, 19), first, "501", 701),
        citizen_event(msk(11, 2, 19), second, "502", 702),
    )
    await Scheduler(app).tick()  # planned after hours
    async with app.sessions() as session:
        row = await session.get(CitizenMessage, deleted)
        assert row is not None
        row.deleted_at = msk(11, 2, 19, 1)  # the citizen deleted it before anyone saw it
        await session.commit()
    clock.set(msk(11, 3, 9))
    sandbox.fail_next("sendMessage", 1, status=403)
    report = await Scheduler(app).tick()
    assert (report.failed, report.sent, report.cancelled) == (1, 0, 1)
    assert sandbox.sent_messages(PRESS_CHAT_ID) == []
    clock.advance(timedelta(minutes=2))
    report = await Scheduler(app).tick()
    assert report.sent == 1
    [card] = sandbox.sent_messages(PRESS_CHAT_ID)
    assert f"«{first}»" in (card.text or "") and f"db:yes:{kept}" in str(card.reply_markup)


def test_train_learns_a_correction_made_with_the_buttons(tmp_path: Path) -> None:
    """`otklik train` after «Это обращение»: the local model takes the text as an appeal."""
    text = doubtful_texts()[0]
    # The decision the button makes (`decide`, as in the test above), in a database file that
    # the commands then read.
    script = f"""
import asyncio
from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.services.doubtful import decide
from bot.services.ingest import IngestService
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.models import CitizenMessage
from tests.conftest import make_settings
from tests.test_reminders import citizen_event, msk

async def main():
    engine = create_engine("sqlite+aiosqlite:///{tmp_path}/otklik.db")
    await upgrade(engine)
    app = AppContext.create(make_settings(), engine, SimulatedClock(msk(11, 3, 9)))
    async with app.sessions() as session:
        result = await IngestService(session, app.defaults).handle(
            citizen_event(msk(11, 2, 20), {text!r}, "501", 1))
        message = await session.get(CitizenMessage, result.message_row_id)
        assert message.doubtful, "the model in use is sure of the text"
        done = await decide(session, message, True, actor_id="7001", actor_name="Анна",
                            at=msk(11, 3, 9), defaults=app.defaults)
        assert done.changed
        await session.commit()
    await engine.dispose()

asyncio.run(main())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))}
    env.pop(MODEL_ENV, None)
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/otklik.db")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=tmp_path, env=env, input=stdin, capture_output=True, text=True, timeout=300
        )

    made = run(sys.executable, "-c", script)
    assert made.returncode == 0, made.stderr
    line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
    before = json.loads(run(sys.executable, "-m", "bot", "classify", stdin=line).stdout)
    assert before["is_appeal"] is False

    exported = run(sys.executable, "-m", "bot", "corrections")
    assert [json.loads(x)["is_appeal"] for x in exported.stdout.splitlines()] == [True]
    first = run(sys.executable, "-m", "bot", "train")
    assert first.returncode == 0, first.stderr
    assert "учтено: 1" in first.stdout and "Локальная модель записана" in first.stdout
    model = (tmp_path / "otklik.model.json").read_bytes()
    after = json.loads(run(sys.executable, "-m", "bot", "classify", stdin=line).stdout)
    assert after["is_appeal"] is True  # the region's correction is learnt

    second = run(sys.executable, "-m", "bot", "train")
    assert second.returncode == 0, second.stderr
    assert "без изменений" in second.stdout
    assert (tmp_path / "otklik.model.json").read_bytes() == model


async def test_answers_on_both_databases_and_two_operators_at_once(
    engine: AsyncEngine, db_url: str
) -> None:
    app = AppContext.create(make_settings(), engine, SimulatedClock(msk(11, 3, 10)))
    first, second = doubtful_texts()[:2]
    yes_id, no_id = await _ingest(
        app,
        citizen_event(msk(11, 2, 20), first, "501", 801),
        citizen_event(msk(11, 2, 20, 5), second, "502", 802),
    )
    at = msk(11, 3, 10)

    async def answer(message_id: int, is_appeal: bool, who: str) -> doubtful.DoubtResult:
        async with app.sessions() as session:
            message = await session.get(CitizenMessage, message_id)
            assert message is not None
            result = await doubtful.decide(
                session,
                message,
                is_appeal,
                actor_id=who,
                actor_name=None,
                at=at,
                defaults=app.defaults,
            )
            await session.commit()
        return result

    if db_url.startswith("postgresql"):
        # Two operators press «Это обращение» in the same instant: one appeal, one decision.
        results = await asyncio.gather(answer(yes_id, True, "1"), answer(yes_id, True, "2"))
        assert sorted(r.changed for r in results) == [False, True]
    else:
        assert (await answer(yes_id, True, "1")).changed
        assert not (await answer(yes_id, True, "2")).changed
    assert (await answer(no_id, False, "3")).changed
    assert not (await answer(no_id, True, "3")).changed  # decided already: stays
    async with app.sessions() as session:
        appeals = (await session.exec(select(Appeal))).all()
        decisions = (await session.exec(select(Decision).order_by(col(Decision.id)))).all()
        lines = [json.loads(line) for line in await corpus_lines(session)]
    assert [(a.first_message_id, a.received_at) for a in appeals] == [(yes_id, msk(11, 2, 20))]
    assert [(d.action, d.appeal_id, d.citizen_message_id) for d in decisions] == [
        ("is_appeal", appeals[0].id, yes_id),
        ("not_appeal", None, no_id),
    ]
    assert [(line["text"], line["is_appeal"]) for line in lines] == [
        (first, True),
        (second, False),
    ]
