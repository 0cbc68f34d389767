"""The Telegram sandbox against the real aiogram client over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    ChatMemberAdministrator,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageReactionUpdated,
    ReplyParameters,
)
from aiohttp import web

from bot.sandbox import TelegramSandbox

TOKEN = "123456:TEST-token"
BOT_ID = 123456
CHANNEL: dict[str, Any] = {
    "id": -1001000000001,
    "type": "channel",
    "title": "Минздрав края",
    "username": "mz",
}
GROUP: dict[str, Any] = {
    "id": -1001000000002,
    "type": "supergroup",
    "title": "Минздрав края: обсуждение",
    "linked_chat_id": CHANNEL["id"],
}
CITIZEN: dict[str, Any] = {"id": 5001, "is_bot": False, "first_name": "Ирина", "username": "irina"}
FIXED = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    """A running sandbox with one bot and a channel/discussion-group pair."""
    async with TelegramSandbox() as running:
        running.add_bot(TOKEN, BOT_ID, "otklik_bot", "Отклик")
        running.add_chat({**CHANNEL, "linked_chat_id": GROUP["id"]})
        running.add_chat(GROUP)
        running.add_user(CITIZEN)
        yield running


@pytest.fixture
async def bot(sandbox: TelegramSandbox) -> AsyncIterator[Bot]:
    """A real aiogram Bot talking to the sandbox."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(sandbox.base_url))
    client = Bot(TOKEN, session=session)
    yield client
    await client.session.close()


async def test_get_me_through_aiogram(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == BOT_ID
    assert me.username == "otklik_bot"
    assert me.is_bot


async def test_unknown_token_is_unauthorized(sandbox: TelegramSandbox) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(sandbox.base_url))
    stranger = Bot("999:nope", session=session)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()


async def test_send_message_is_recorded(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.now = lambda: FIXED
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Взять в работу", callback_data="take:1")]]
    )
    first = await bot.send_message(GROUP["id"], "Напоминание", reply_markup=keyboard)
    second = await bot.send_message(GROUP["id"], "Ещё одно")
    assert second.message_id == first.message_id + 1
    assert first.from_user is not None and first.from_user.id == BOT_ID
    assert first.date == FIXED
    assert first.reply_markup is not None
    assert first.reply_markup.inline_keyboard[0][0].callback_data == "take:1"
    sent = sandbox.sent_messages(GROUP["id"])
    assert [item.text for item in sent] == ["Напоминание", "Ещё одно"]
    assert sent[0].reply_markup == keyboard.model_dump(exclude_none=True)
    assert sent[0].message_id == first.message_id
    assert sent[0].date == FIXED
    assert sandbox.calls[-1][0] == "sendMessage"


async def test_html_is_validated_and_stripped(sandbox: TelegramSandbox, bot: Bot) -> None:
    message = await bot.send_message(GROUP["id"], "<b>Срочно</b> &lt;1 ч", parse_mode="HTML")
    assert message.text == "Срочно <1 ч"
    assert sandbox.sent[-1].text == "<b>Срочно</b> &lt;1 ч"
    with pytest.raises(TelegramBadRequest, match="Unsupported start tag"):
        await bot.send_message(GROUP["id"], "строка<br>строка", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="end tag"):
        await bot.send_message(GROUP["id"], "<b>не закрыт", parse_mode="HTML")


async def test_unknown_chat_is_bad_request(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(-100999, "кому?")


async def test_long_poll_returns_injected_update_and_offset_confirms(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    async def inject_later() -> int:
        await asyncio.sleep(0.2)
        return sandbox.inject_message(GROUP, CITIZEN, "Когда уберут снег?", date=FIXED)["update_id"]

    injector = asyncio.create_task(inject_later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    elapsed = time.monotonic() - started
    update_id = await injector
    assert 0.1 < elapsed < 2.0
    assert [u.update_id for u in updates] == [update_id]
    assert updates[0].message is not None
    assert updates[0].message.text == "Когда уберут снег?"
    assert updates[0].message.date == FIXED
    assert sandbox.pending_updates() == 1
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == []
    assert sandbox.pending_updates() == 0
    assert sandbox.confirmed_offset == update_id + 1


async def test_get_updates_limit_and_timeout(sandbox: TelegramSandbox, bot: Bot) -> None:
    ids = [sandbox.inject_message(GROUP, CITIZEN, f"№{n}")["update_id"] for n in range(3)]
    assert ids == sorted(ids)
    batch = await bot.get_updates(limit=2)
    assert [u.update_id for u in batch] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=ids[1] + 1)] == ids[2:]
    started = time.monotonic()
    assert await bot.get_updates(offset=ids[2] + 1, timeout=1) == []
    assert time.monotonic() - started >= 0.9


async def test_allowed_updates_are_recorded_and_filter(sandbox: TelegramSandbox, bot: Bot) -> None:
    message = sandbox.inject_message(GROUP, CITIZEN, "Спасибо!")
    sandbox.inject_message_reaction(GROUP, message["message_id"], CITIZEN, new_reaction=["❤"])
    only_messages = await bot.get_updates(allowed_updates=["message"])
    assert sandbox.last_allowed_updates == ["message"]
    assert [u.event_type for u in only_messages] == ["message"]
    # The reaction was not subscribed to, so it is gone, as on Telegram.
    assert sandbox.pending_updates() == 1

    sandbox.inject_message_reaction(GROUP, message["message_id"], CITIZEN, new_reaction=["👍"])
    updates = await bot.get_updates(
        offset=only_messages[-1].update_id + 1, allowed_updates=["message", "message_reaction"]
    )
    assert sandbox.last_allowed_updates == ["message", "message_reaction"]
    assert "message_reaction" in (sandbox.last_allowed_updates or [])
    reaction = updates[0].message_reaction
    assert isinstance(reaction, MessageReactionUpdated)
    assert reaction.message_id == message["message_id"]
    assert reaction.user is not None and reaction.user.id == CITIZEN["id"]


async def test_dispatcher_polling_answers_injected_message(
    sandbox: TelegramSandbox, bot: Bot
) -> None:
    router = Router()

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.reply(f"Получили: {message.text}")

    @router.message_reaction()
    async def on_reaction(event: MessageReactionUpdated) -> None:
        """Subscribes the dispatcher to message_reaction."""

    dp = Dispatcher()
    dp.include_router(router)
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=1, close_bot_session=False)
    )
    comment = sandbox.inject_message(GROUP, CITIZEN, "Нет воды на ул. Ленина")
    reply = await sandbox.wait_for_sent(lambda item: item.chat_id == GROUP["id"])
    # The next getUpdates confirms the handled update.
    await sandbox.wait_for_confirmed(comment["update_id"])
    await dp.stop_polling()
    await polling
    assert reply.text == "Получили: Нет воды на ул. Ленина"
    assert reply.reply_to_message_id == comment["message_id"]
    assert reply.message["reply_to_message"]["text"] == "Нет воды на ул. Ленина"
    assert "message_reaction" in (sandbox.last_allowed_updates or [])
    assert sandbox.confirmed_offset > comment["update_id"]


async def test_retry_after_is_raised(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.fail_next("sendMessage", 2, retry_after=7)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as caught:
            await bot.send_message(GROUP["id"], "текст")
        assert caught.value.retry_after == 7
    assert (await bot.send_message(GROUP["id"], "текст")).text == "текст"
    assert len(sandbox.sent) == 1


async def test_server_errors(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.fail_next("getMe", status=502)
    sandbox.fail_next("*", status=500)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.get_me()
    with pytest.raises(TelegramServerError, match="Internal Server Error"):
        await bot.get_me()
    assert (await bot.get_me()).id == BOT_ID


async def test_unknown_method_is_bad_request(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="method not found"):
        await bot.get_user_profile_photos(CITIZEN["id"])


async def test_citizen_replies_to_bot_message(sandbox: TelegramSandbox, bot: Bot) -> None:
    question = await bot.send_message(CITIZEN["id"], "Уточните адрес, пожалуйста")
    answer = sandbox.inject_message(
        CITIZEN["id"], CITIZEN, "ул. Ленина, 5", reply_to=question.message_id
    )
    assert answer["chat"] == {
        "id": CITIZEN["id"],
        "type": "private",
        "first_name": "Ирина",
        "username": "irina",
    }
    original = answer["reply_to_message"]
    assert original["message_id"] == question.message_id
    assert original["from"]["id"] == BOT_ID
    assert original["text"] == "Уточните адрес, пожалуйста"
    updates = await bot.get_updates()
    parsed = updates[-1].message
    assert parsed is not None and parsed.reply_to_message is not None
    assert parsed.reply_to_message.message_id == question.message_id


async def test_comment_threads_follow_the_channel_post(sandbox: TelegramSandbox, bot: Bot) -> None:
    post, forward = sandbox.inject_channel_post(CHANNEL["id"], "Графики отключений", date=FIXED)
    assert post["sender_chat"]["id"] == CHANNEL["id"]
    assert forward is not None and forward["is_automatic_forward"]
    assert forward["forward_origin"]["message_id"] == post["message_id"]
    comment = sandbox.inject_message(GROUP, CITIZEN, "А у нас когда?", reply_to=forward)
    assert comment["message_thread_id"] == forward["message_id"]
    staff = sandbox.inject_message(
        GROUP, None, "Завтра с 10:00", sender_chat=CHANNEL["id"], reply_to=comment
    )
    assert staff["from"]["username"] == "Channel_Bot"
    assert staff["sender_chat"]["id"] == CHANNEL["id"]
    assert staff["message_thread_id"] == forward["message_id"]
    assert "reply_to_message" not in staff["reply_to_message"]

    reply = await bot.send_message(
        GROUP["id"], "Уточнение", reply_parameters=ReplyParameters(message_id=comment["message_id"])
    )
    assert reply.message_thread_id == forward["message_id"]
    updates = await bot.get_updates(allowed_updates=["message"])
    assert [u.message.message_id for u in updates if u.message] == [
        forward["message_id"],
        comment["message_id"],
        staff["message_id"],
    ]
    assert updates[0].message is not None and updates[0].message.is_automatic_forward


async def test_reply_to_missing_message_fails(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(
            GROUP["id"], "ответ", reply_parameters=ReplyParameters(message_id=404)
        )


async def test_edit_callback_and_delete(sandbox: TelegramSandbox, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Не обращение", callback_data="skip")]]
    )
    sent = await bot.send_message(GROUP["id"], "Напоминание", reply_markup=keyboard)
    press = sandbox.inject_callback_query(CITIZEN, sandbox.sent[-1], "skip")
    updates = await bot.get_updates()
    query = updates[-1].callback_query
    assert isinstance(query, CallbackQuery) and query.data == "skip"
    assert await bot.answer_callback_query(press["id"], text="Готово")
    assert sandbox.callback_answers[-1]["text"] == "Готово"
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query(press["id"])

    edited = await bot.edit_message_text(
        "Не обращение", chat_id=GROUP["id"], message_id=sent.message_id
    )
    assert isinstance(edited, Message) and edited.reply_markup is None
    assert edited.edit_date is not None
    stored = sandbox.message(GROUP["id"], sent.message_id)
    assert stored is not None and stored["text"] == "Не обращение"
    assert sandbox.edits[-1].method == "editMessageText"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Не обращение", chat_id=GROUP["id"], message_id=sent.message_id)
    assert await bot.delete_message(GROUP["id"], sent.message_id)
    assert sandbox.deleted == [(GROUP["id"], sent.message_id)]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(GROUP["id"], sent.message_id)


async def test_get_chat_and_admins(sandbox: TelegramSandbox, bot: Bot) -> None:
    press = {"id": 7001, "is_bot": False, "first_name": "Пресс-служба"}
    sandbox.set_admins(GROUP["id"], [press], bot_is_admin=True)
    chat = await bot.get_chat(CHANNEL["id"])
    assert chat.linked_chat_id == GROUP["id"]
    assert chat.title == "Минздрав края"
    admins = await bot.get_chat_administrators(GROUP["id"])
    assert {member.user.id for member in admins} == {7001, BOT_ID}
    assert all(isinstance(member, ChatMemberAdministrator) for member in admins)
    me = await bot.get_chat_member(GROUP["id"], BOT_ID)
    assert me.status == "administrator"
    assert (await bot.get_chat_member(GROUP["id"], CITIZEN["id"])).status == "member"
    assert await bot.get_chat_member_count(GROUP["id"]) == 2
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(-100404)


async def test_uploads_commands_and_misc(sandbox: TelegramSandbox, bot: Bot) -> None:
    photo = await bot.send_photo(
        GROUP["id"], BufferedInputFile(b"\x89PNG" + b"0" * 996, "chart.png"), caption="Неделя"
    )
    assert photo.photo is not None and photo.caption == "Неделя"
    document = await bot.send_document(CITIZEN["id"], BufferedInputFile(b"x" * 2048, "report.xlsx"))
    assert document.document is not None and document.document.file_name == "report.xlsx"
    files = [item.files[0] for item in sandbox.sent]
    assert [(f.field, f.filename, f.size) for f in files] == [
        ("photo", "chart.png", 1000),
        ("document", "report.xlsx", 2048),
    ]
    assert sandbox.sent[0].text == "Неделя"

    commands = [BotCommand(command="stats", description="Статистика")]
    assert await bot.set_my_commands(commands)
    assert [(c.command, c.description) for c in await bot.get_my_commands()] == [
        ("stats", "Статистика")
    ]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    assert await bot.send_chat_action(GROUP["id"], "typing")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert (await bot.get_webhook_info()).url == ""

    copied = await bot.copy_message(GROUP["id"], CITIZEN["id"], document.message_id)
    assert sandbox.sent[-1].message_id == copied.message_id
    assert sandbox.sent[-1].message["document"]["file_name"] == "report.xlsx"


async def test_blocked_user_is_forbidden(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.block_chat(CITIZEN["id"])
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(CITIZEN["id"], "Ответ на ваше обращение")


async def test_business_messages(sandbox: TelegramSandbox, bot: Bot) -> None:
    official: dict[str, Any] = {"id": 8001, "is_bot": False, "first_name": "Глава"}
    stranger: dict[str, Any] = {"id": 9001, "is_bot": False, "first_name": "Пётр"}
    sandbox.inject_business_connection("bc-1", official, date=FIXED)
    chat = TelegramSandbox.private_chat(stranger)
    asked = sandbox.inject_business_message(
        chat, stranger, "Когда починят дорогу?", business_connection_id="bc-1", date=FIXED
    )
    answered = sandbox.inject_business_message(
        chat, official, "Весной", business_connection_id="bc-1", reply_to=asked
    )
    sandbox.inject_deleted_business_messages("bc-1", chat, [asked["message_id"]])
    updates = await bot.get_updates()
    kinds = [u.event_type for u in updates]
    assert kinds == [
        "business_connection",
        "business_message",
        "business_message",
        "deleted_business_messages",
    ]
    assert updates[2].business_message is not None
    assert updates[2].business_message.reply_to_message is not None
    assert answered["from"]["id"] == official["id"]
    # The bot has no private chat with the stranger, only the business one.
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(stranger["id"], "Здравствуйте")
    via_business = await bot.send_message(
        stranger["id"], "Здравствуйте", business_connection_id="bc-1"
    )
    assert via_business.from_user is not None and via_business.from_user.id == official["id"]


async def test_my_chat_member_and_edited_message(sandbox: TelegramSandbox, bot: Bot) -> None:
    sandbox.inject_my_chat_member(GROUP, "administrator")
    comment = sandbox.inject_message(GROUP, CITIZEN, "Свет не горит")
    sandbox.inject_edited_message(comment, "Свет не горит во дворе")
    updates = await bot.get_updates()
    assert [u.event_type for u in updates] == ["my_chat_member", "message", "edited_message"]
    member_update = updates[0].my_chat_member
    assert member_update is not None
    assert member_update.new_chat_member.status == "administrator"
    assert updates[2].edited_message is not None
    assert updates[2].edited_message.text == "Свет не горит во дворе"


async def test_stop_wakes_long_poller(bot: Bot, sandbox: TelegramSandbox) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await sandbox.wait_for_call("getUpdates")
    started = time.monotonic()
    await sandbox.stop()
    assert await poll == []
    assert time.monotonic() - started < 2.0


async def test_second_poller_terminates_first(sandbox: TelegramSandbox, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await sandbox.wait_for_call("getUpdates")
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError):
        await first
    assert await second == []


async def test_webhook_delivery(sandbox: TelegramSandbox, bot: Bot) -> None:
    received: list[dict[str, object]] = []
    secrets: list[str | None] = []
    delivered = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        delivered.set()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        update_id = sandbox.inject_message(GROUP, CITIZEN, "Через вебхук")["update_id"]
        async with asyncio.timeout(5):
            await delivered.wait()
        assert received[0]["update_id"] == update_id
        assert secrets == ["s3cret"]
        assert (await bot.get_webhook_info()).pending_update_count == 0
        assert await bot.delete_webhook()
    finally:
        await runner.cleanup()


async def test_control_http_api(sandbox: TelegramSandbox, bot: Bot) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sandbox.base_url}/_sandbox/messages",
            json={"chat_id": GROUP["id"], "from": CITIZEN, "text": "Из браузера"},
        ) as response:
            body = await response.json()
        assert body["ok"], body
        updates = await bot.get_updates()
        assert updates[-1].message is not None and updates[-1].message.text == "Из браузера"
        await bot.send_message(GROUP["id"], "Ответ")
        async with http.get(
            f"{sandbox.base_url}/_sandbox/sent", params={"chat_id": str(GROUP["id"])}
        ) as response:
            sent = (await response.json())["result"]
        assert [item["text"] for item in sent] == ["Ответ"]
        async with http.get(f"{sandbox.base_url}/_sandbox/state") as response:
            state = (await response.json())["result"]
        assert TOKEN not in str(state)
        assert state["bots"][0]["id"] == BOT_ID


async def test_naive_dates_are_rejected(sandbox: TelegramSandbox) -> None:
    with pytest.raises(ValueError, match="naive"):
        sandbox.make_message(GROUP, CITIZEN, "x", date=datetime(2025, 1, 1))  # noqa: DTZ001


async def test_raw_http_get_json_and_errors(sandbox: TelegramSandbox) -> None:
    api = f"{sandbox.base_url}/bot{TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api}/getMe") as response:
            assert (await response.json())["result"]["id"] == BOT_ID
        async with http.post(
            f"{api}/sendMessage", json={"chat_id": str(GROUP["id"]), "text": "JSON"}
        ) as response:
            body = await response.json()
        assert body["ok"] and body["result"]["chat"]["id"] == GROUP["id"]
        async with http.get(f"{sandbox.base_url}/bot1:wrong/getMe") as response:
            assert response.status == 401
            assert await response.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.post(f"{api}/sendSticker", data={"chat_id": "1"}) as response:
            assert response.status == 400
            assert (await response.json())["description"] == "Bad Request: method not found"
        sandbox.now = lambda: datetime(2025, 1, 1)  # noqa: DTZ001 - a broken clock on purpose
        async with http.post(
            f"{api}/sendMessage", data={"chat_id": str(GROUP["id"]), "text": "x"}
        ) as response:
            assert response.status == 500
            assert (await response.json())["ok"] is False
    assert [name for name, _ in sandbox.calls] == [
        "getMe",
        "sendMessage",
        "sendSticker",
        "sendMessage",
    ]
