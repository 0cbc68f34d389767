"""End to end: the real aiogram Dispatcher.start_polling over HTTP against the Bot API sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.app import AppContext
from bot.sandbox import TelegramSandbox
from storage.models import Appeal, CitizenMessage, OfficialReply, Page, RawUpdate
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.telegram_harness import (
    CHANNEL,
    GROUP,
    PRESS_CHAT_ID,
    RunningIntake,
    eventually,
    setup_sandbox,
)

APPEAL = "Когда отремонтируют дорогу на улице Ленина? Сплошные ямы, невозможно проехать."
ANSWER = (
    "Здравствуйте! Ремонт дороги на улице Ленина запланирован на июнь 2027 года, "
    "работы выполнит управление дорожного хозяйства."
)
CITIZEN = {"id": 501, "is_bot": False, "first_name": "Иван", "last_name": "Петров"}
OPERATOR = {"id": 9001, "is_bot": False, "first_name": "Мария", "username": "press_maria"}


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        box.now = lambda: MONDAY_10_MSK
        yield box


@pytest.fixture
def tg_app(sqlite_engine: object) -> AppContext:
    settings = make_settings(PRESS_CHAT_ID=PRESS_CHAT_ID)
    return AppContext.create(settings, sqlite_engine)  # type: ignore[arg-type]


@pytest.fixture
async def intake(tg_app: AppContext, sandbox: TelegramSandbox) -> AsyncIterator[RunningIntake]:
    running = RunningIntake(tg_app, sandbox)
    await running.start()
    yield running
    await running.stop()


async def _count(app: AppContext, model: type) -> int:
    async with app.sessions() as session:
        return (await session.exec(select(func.count()).select_from(model))).one()


def _post(sandbox: TelegramSandbox, text: str = "Новость о ремонте дорог") -> dict:
    _, forward = sandbox.inject_channel_post(
        CHANNEL["id"], text, date=MONDAY_10_MSK - timedelta(hours=1)
    )
    assert forward is not None
    return forward


async def test_comment_becomes_appeal_and_channel_reply_sets_frt(
    intake: RunningIntake, sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    forward = _post(sandbox)
    comment = sandbox.inject_message(
        GROUP["id"], CITIZEN, APPEAL, reply_to=forward["message_id"], date=MONDAY_10_MSK
    )
    sandbox.inject_message(
        GROUP["id"],
        None,
        ANSWER,
        sender_chat=CHANNEL["id"],
        reply_to=comment["message_id"],
        date=MONDAY_10_MSK + timedelta(hours=2),
    )
    await intake.wait_processed(3)

    async with tg_app.sessions() as session:
        appeal = (await session.exec(select(Appeal))).one()
        page = await session.get(Page, appeal.page_id)
    assert page is not None
    assert (page.external_id, page.kind, page.linked_chat_id) == (
        str(CHANNEL["id"]),
        "tg_channel",
        str(GROUP["id"]),
    )
    assert page.title == CHANNEL["title"]
    assert appeal.received_at == MONDAY_10_MSK
    assert appeal.first_response_at == MONDAY_10_MSK + timedelta(hours=2)
    assert appeal.frt_s == 7200
    assert appeal.link is not None and "thread=" in appeal.link
    allowed = sandbox.last_allowed_updates
    assert allowed is not None and "message_reaction" in allowed
    assert "business_message" in allowed


async def test_anonymous_admin_and_staff_replies_are_official(
    intake: RunningIntake, sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    forward = _post(sandbox)
    first = sandbox.inject_message(
        GROUP["id"], CITIZEN, APPEAL, reply_to=forward["message_id"], date=MONDAY_10_MSK
    )
    sandbox.inject_message(
        GROUP["id"],
        None,
        ANSWER,
        sender_chat=GROUP["id"],
        reply_to=first["message_id"],
        date=MONDAY_10_MSK + timedelta(minutes=30),
    )
    await intake.wait_processed(3)
    async with tg_app.sessions() as session:
        appeal = (await session.exec(select(Appeal))).one()
        reply = (await session.exec(select(OfficialReply))).one()
    assert appeal.frt_s == 1800
    assert reply.author_role == "page"


async def test_same_message_delivered_twice_is_stored_once(
    intake: RunningIntake, sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    forward = _post(sandbox)
    comment = sandbox.make_message(
        GROUP["id"], CITIZEN, APPEAL, reply_to=forward["message_id"], date=MONDAY_10_MSK
    )
    sandbox.inject_update({"message": comment})
    sandbox.inject_update({"message": comment})
    await intake.wait_processed(3)
    assert await _count(tg_app, CitizenMessage) == 1
    assert await _count(tg_app, Appeal) == 1


async def test_stop_mid_stream_and_restart_loses_nothing(
    sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    forward = _post(sandbox)
    total = 40
    last_id = 0
    for i in range(total):
        last_id = sandbox.inject_message(
            GROUP["id"],
            {**CITIZEN, "id": 1000 + i},
            f"{APPEAL} Дом {i}",
            reply_to=forward["message_id"],
            date=MONDAY_10_MSK,
        )["update_id"]
    first = RunningIntake(tg_app, sandbox)
    await first.start()
    await eventually(lambda: _count(tg_app, CitizenMessage))  # some, not necessarily all
    await first.stop(graceful=False)  # killed: nothing confirmed beyond what polling did
    done_before = await _count(tg_app, CitizenMessage)
    left = sandbox.pending_updates()

    second = RunningIntake(tg_app, sandbox)
    await second.start()
    # The restarted writer process loads the classifier (navec) first: give it time.
    await eventually(lambda: _count_is(tg_app, CitizenMessage, total), timeout=60)
    # What the killed run had not confirmed comes again: the restarted one must handle it (as a
    # redelivery, if the killed run had committed it) before it can confirm it.
    if left:
        await eventually(lambda: _handled_through(second, last_id), timeout=60)
    await second.stop()
    assert done_before >= 1
    assert await _count(tg_app, CitizenMessage) == total
    assert await _count(tg_app, Appeal) == total
    # + the channel post (page health) and its automatic forward
    assert await _count(tg_app, RawUpdate) == total + 2
    assert sandbox.pending_updates() == 0  # the graceful stop confirmed the last offset


async def _handled_through(intake: RunningIntake, update_id: int) -> bool:
    assert intake.store is not None
    done = intake.store.last_update_id
    return done is not None and done >= update_id


async def _count_is(app: AppContext, model: type, expected: int) -> bool:
    return await _count(app, model) == expected


async def test_private_message_relayed_and_operator_reply_delivered(
    intake: RunningIntake, sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    sandbox.add_user(CITIZEN)
    text = "Здравствуйте, в доме 5 по улице Мира нет горячей воды третий день."
    sandbox.inject_message(CITIZEN["id"], CITIZEN, text, date=MONDAY_10_MSK)
    relayed = await sandbox.wait_for_sent(lambda m: m.chat_id == PRESS_CHAT_ID)
    assert text in (relayed.text or "")
    assert "Иван Петров" in (relayed.text or "")
    sandbox.inject_message(
        PRESS_CHAT_ID,
        OPERATOR,
        "Здравствуйте! Аварийная бригада управляющей компании приедет сегодня до 15:00.",
        reply_to=relayed.message_id,
        date=MONDAY_10_MSK + timedelta(minutes=45),
    )
    delivered = await sandbox.wait_for_sent(
        lambda m: m.chat_id == CITIZEN["id"] and m.method == "copyMessage"
    )
    assert delivered is not None

    async def answered() -> Appeal | None:
        async with tg_app.sessions() as session:
            appeal = (await session.exec(select(Appeal))).first()
            return appeal if appeal and appeal.first_response_at else None

    appeal = await eventually(answered)
    assert appeal.frt_s == 45 * 60
    assert appeal.urgent is True  # no hot water: the urgent SLA applies

    # The citizen is asked to rate the answer and presses 👍.
    question = await sandbox.wait_for_sent(
        lambda m: m.chat_id == CITIZEN["id"] and bool(m.reply_markup)
    )
    good = question.reply_markup["inline_keyboard"][0][0]
    assert good["text"].startswith("👍")
    sandbox.inject_callback_query(CITIZEN, question, good["callback_data"])

    async def rated() -> Appeal | None:
        async with tg_app.sessions() as session:
            found = (await session.exec(select(Appeal))).first()
            return found if found and found.rating is not None else None

    assert (await eventually(rated)).rating == 1
    assert any("Спасибо" in (a.get("text") or "") for a in sandbox.callback_answers)


async def test_business_account_owner_replies(
    intake: RunningIntake, sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    owner = {"id": 700, "is_bot": False, "first_name": "Глава", "last_name": "Района"}
    sandbox.inject_business_connection("bc-1", owner)
    chat = {"id": CITIZEN["id"], "type": "private", "first_name": "Иван"}
    ask = sandbox.inject_business_message(
        chat, CITIZEN, APPEAL, business_connection_id="bc-1", date=MONDAY_10_MSK
    )
    sandbox.inject_business_message(
        chat, owner, ANSWER, business_connection_id="bc-1", date=MONDAY_10_MSK + timedelta(hours=1)
    )
    sandbox.inject_deleted_business_messages("bc-1", chat, [ask["message_id"]])
    await intake.wait_processed(4)
    async with tg_app.sessions() as session:
        appeal = (await session.exec(select(Appeal))).one()
        page = await session.get(Page, appeal.page_id)
        message = (await session.exec(select(CitizenMessage))).one()
    assert page is not None and page.kind == "tg_business" and page.external_id == "700"
    assert appeal.frt_s == 3600
    assert message.deleted_at is not None  # recorded, not erased
    assert message.text == APPEAL


async def test_page_discovered_when_bot_made_admin(
    intake: RunningIntake, sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    sandbox.inject_my_chat_member(GROUP["id"], "administrator")
    await intake.wait_processed(1)
    async with tg_app.sessions() as session:
        page = (await session.exec(select(Page))).one()
    assert page.external_id == str(CHANNEL["id"])
    assert page.username == "gov_region"
    assert page.linked_chat_id == str(GROUP["id"])


async def test_bad_input_is_stored_or_skipped_never_lost(
    intake: RunningIntake, sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    forward = _post(sandbox)
    # An update of a shape this aiogram does not know (Telegram adds kinds over time).
    assert intake.dp is not None and intake.bot is not None
    with pytest.warns(RuntimeWarning, match="unknown update type"):
        await intake.dp.feed_raw_update(intake.bot, {"update_id": 10**6, "brand_new": {"x": 1}})
    sandbox.inject_message(
        GROUP["id"],
        CITIZEN,
        None,
        kind="sticker",
        reply_to=forward["message_id"],
        date=MONDAY_10_MSK,
    )
    sandbox.inject_message(
        GROUP["id"],
        {**CITIZEN, "id": 502},
        None,
        kind="voice",
        reply_to=forward["message_id"],
        date=MONDAY_10_MSK,
    )
    sandbox.inject_message(
        GROUP["id"],
        {**CITIZEN, "id": 503},
        "😡😡😡",
        reply_to=forward["message_id"],
        date=MONDAY_10_MSK,
    )
    sandbox.inject_message(
        GROUP["id"],
        {**CITIZEN, "id": 504},
        "Прошу починить свет. " * 250,
        reply_to=forward["message_id"],
        date=MONDAY_10_MSK,
    )
    never_seen = {
        "message_id": 99999,
        "date": 1,
        "chat": {"id": GROUP["id"], "type": "supergroup"},
        "text": "сообщение до подключения бота",
    }
    sandbox.inject_message(
        GROUP["id"],
        None,
        ANSWER,
        sender_chat=CHANNEL["id"],
        reply_to=never_seen,
        date=MONDAY_10_MSK,
    )
    await intake.wait_processed(8)
    assert await _count(tg_app, RawUpdate) == 8  # with the channel post itself (page health)
    async with tg_app.sessions() as session:
        kinds = sorted(m.content_kind for m in (await session.exec(select(CitizenMessage))).all())
        unknown = (await session.exec(select(RawUpdate).where(RawUpdate.status == "skipped"))).all()
    assert kinds == ["sticker", "text", "text", "voice"]
    assert [u.payload.get("brand_new") for u in unknown] == [{"x": 1}]
    assert await _count(tg_app, Appeal) == 2  # the voice message and the lighting request


async def test_chatid_command_answers_and_is_not_an_appeal(
    intake: RunningIntake, sandbox: TelegramSandbox, tg_app: AppContext
) -> None:
    sandbox.inject_message(GROUP["id"], CITIZEN, "/chatid", date=MONDAY_10_MSK)
    answer = await sandbox.wait_for_sent(lambda m: m.chat_id == GROUP["id"])
    assert f"ID этого чата: {GROUP['id']}" in (answer.text or "")
    assert await _count(tg_app, CitizenMessage) == 0
