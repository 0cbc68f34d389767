"""The VK sandbox driven through the real vk_api client over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import vk_api
from vk_api.bot_longpoll import VkBotEvent, VkBotEventType, VkBotMessageEvent

from bot.sandbox.vk import SandboxError, VkSandbox
from handlers.vk.client import (
    RewritingSession,
    VkCallError,
    VkTransportError,
    call,
    make_bot_longpoll,
    make_vk_session,
)

GROUP_ID = 210_000_001
GROUP_TOKEN = "vk1.a.group-token-SECRET-0123456789"
SERVICE_TOKEN = "service-token-SECRET-abcdef"
CITIZEN = 501
OTHER_CITIZEN = 502
STAFF = 777
T0 = datetime(2025, 3, 3, 9, 15, tzinfo=UTC)
WALL = -GROUP_ID


@pytest.fixture
async def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VkSandbox]:
    monkeypatch.chdir(tmp_path)  # vk_api's default config would land in the CWD
    box = VkSandbox(clock=lambda: T0 + timedelta(hours=1))
    box.add_group(GROUP_ID, "Администрация области", GROUP_TOKEN, screen_name="region_gov")
    box.add_service_token(SERVICE_TOKEN)
    box.add_user(CITIZEN, "Иван", "Петров")
    box.add_user(OTHER_CITIZEN, "Мария", "Сидорова")
    box.add_user(STAFF, "Ольга", "Пресс-служба")
    async with box:
        yield box


def group_session(box: VkSandbox, token: str = GROUP_TOKEN) -> vk_api.VkApi:
    return make_vk_session(token, api_server=box.base_url, rps_delay=0)


def service_session(box: VkSandbox) -> vk_api.VkApi:
    return make_vk_session(SERVICE_TOKEN, api_server=box.base_url, rps_delay=0)


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_rewriting_session_maps_hardcoded_hosts_only() -> None:
    session = RewritingSession("http://127.0.0.1:8081/")
    assert session.rewrite("https://api.vk.ru/method/wall.get") == (
        "http://127.0.0.1:8081/method/wall.get"
    )
    assert session.rewrite("https://api.vk.com/method/users.get") == (
        "http://127.0.0.1:8081/method/users.get"
    )
    assert session.rewrite("https://lp.vk.ru/wh1?act=a_check") == "https://lp.vk.ru/wh1?act=a_check"
    assert RewritingSession(None).rewrite("https://api.vk.ru/method/x") == (
        "https://api.vk.ru/method/x"
    )


async def test_groups_get_by_id_through_vk_api(sandbox: VkSandbox, tmp_path: Path) -> None:
    vk = group_session(sandbox)
    response = await asyncio.to_thread(vk.method, "groups.getById", {"group_id": GROUP_ID})
    assert response["profiles"] == []
    (group,) = response["groups"]
    assert group["id"] == GROUP_ID
    assert group["name"] == "Администрация области"
    assert group["screen_name"] == "region_gov"
    by_name = await asyncio.to_thread(call, vk, "groups.getById", group_ids=["region_gov"])
    assert by_name["groups"][0]["id"] == GROUP_ID
    (logged,) = [c for c in sandbox.calls if c.method == "groups.getById"][:1]
    assert logged.params == {"group_id": str(GROUP_ID), "v": "5.199"}
    assert logged.token_kind == "group"
    assert await asyncio.to_thread(files_in, tmp_path) == []  # no vk_config.v2.json


async def test_unknown_token_is_error_5_without_the_token(sandbox: VkSandbox) -> None:
    vk = group_session(sandbox, token="vk1.a.revoked-SECRET-token")
    with pytest.raises(vk_api.exceptions.ApiError) as raised:
        await asyncio.to_thread(vk.method, "groups.getById", {"group_id": GROUP_ID})
    assert raised.value.code == 5
    assert "revoked-SECRET" not in str(raised.value)
    params = {p["key"]: p["value"] for p in raised.value.error["request_params"]}
    assert params["method"] == "groups.getById"
    assert "access_token" not in params
    with pytest.raises(VkCallError) as wrapped:
        await asyncio.to_thread(call, vk, "groups.getById", group_id=GROUP_ID)
    assert wrapped.value.code == 5
    assert wrapped.value.method == "groups.getById"
    assert "SECRET" not in str(wrapped.value)
    assert wrapped.value.__cause__ is None and wrapped.value.__suppress_context__
    assert all("access_token" not in c.params for c in sandbox.calls)


async def test_forced_errors_and_vk_api_retry_on_error_6(sandbox: VkSandbox) -> None:
    vk = group_session(sandbox)
    sandbox.fail_next("groups.getById", 15)
    with pytest.raises(VkCallError) as raised:
        await asyncio.to_thread(call, vk, "groups.getById")
    assert (raised.value.code, raised.value.message) == (15, "Access denied")
    # vk_api itself sleeps and retries on "too many requests per second".
    sandbox.fail_next("groups.getById", 6)
    response = await asyncio.to_thread(call, vk, "groups.getById")
    assert response["groups"][0]["id"] == GROUP_ID
    codes = [c.error_code for c in sandbox.calls if c.method == "groups.getById"]
    assert codes == [15, 6, None]


async def test_rate_limit_answers_error_6(sandbox: VkSandbox) -> None:
    sandbox.rate_limit_per_s = 2
    answers = [sandbox.dispatch("utils.getServerTime", {"v": "5.199"}, GROUP_TOKEN) for _ in "abc"]
    assert answers[0] == {"response": int((T0 + timedelta(hours=1)).timestamp())}
    assert answers[2]["error"]["error_code"] == 6


async def test_token_types_are_enforced(sandbox: VkSandbox) -> None:
    post_id = sandbox.add_post(WALL, "Новости", T0)
    with pytest.raises(VkCallError) as raised:
        await asyncio.to_thread(call, group_session(sandbox), "wall.get", owner_id=WALL)
    assert raised.value.code == 27
    with pytest.raises(VkCallError) as raised:
        await asyncio.to_thread(
            call, service_session(sandbox), "wall.createComment", owner_id=WALL,
            post_id=post_id, message="x",
        )  # fmt: skip
    assert raised.value.code == 28


async def test_long_poll_delivers_wall_reply_new(sandbox: VkSandbox) -> None:
    post_id = sandbox.add_post(WALL, "Пост о ремонте дорог", T0)
    vk = group_session(sandbox)
    longpoll = await asyncio.to_thread(make_bot_longpoll, vk, GROUP_ID, 5)
    assert longpoll.server == f"{sandbox.base_url}/lp/{GROUP_ID}"

    poll = asyncio.create_task(asyncio.to_thread(longpoll.check))
    await asyncio.sleep(0.2)  # the poll is now waiting on the server
    assert not poll.done()
    comment_id = sandbox.add_comment(WALL, post_id, CITIZEN, "Когда починят яму?", T0)
    started = time.monotonic()
    events = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 2  # woken by the comment, not by the timeout

    events = [e for e in events if e.type is not VkBotEventType.WALL_POST_NEW]
    (event,) = events
    assert isinstance(event, VkBotEvent)
    assert event.type is VkBotEventType.WALL_REPLY_NEW
    assert event.group_id == GROUP_ID
    assert event.raw["v"] == "5.199"
    assert len(event.raw["event_id"]) == 40
    assert event.obj == {
        "id": comment_id,
        "from_id": CITIZEN,
        "date": int(T0.timestamp()),
        "text": "Когда починят яму?",
        "post_id": post_id,
        "owner_id": WALL,
        "parents_stack": [],
        "thread": {"count": 0},
        "post_owner_id": WALL,
    }

    reply_id = sandbox.add_comment(
        WALL, post_id, -GROUP_ID, "Передали в дорожную службу", T0 + timedelta(hours=2),
        reply_to_comment=comment_id,
    )  # fmt: skip
    (reply,) = await asyncio.to_thread(longpoll.check)
    assert reply.obj.id == reply_id
    assert reply.obj.from_id == -GROUP_ID
    assert reply.obj.parents_stack == [comment_id]
    assert reply.obj.reply_to_comment == comment_id
    assert reply.obj.reply_to_user == CITIZEN
    assert "thread" not in reply.obj


async def test_long_poll_times_out_with_same_ts(sandbox: VkSandbox) -> None:
    longpoll = await asyncio.to_thread(make_bot_longpoll, group_session(sandbox), GROUP_ID, 1)
    ts_before = longpoll.ts
    started = time.monotonic()
    assert await asyncio.to_thread(longpoll.check) == []
    assert 0.9 < time.monotonic() - started < 3
    assert longpoll.ts == ts_before


async def test_failed_2_refreshes_key_and_keeps_ts(sandbox: VkSandbox) -> None:
    post_id = sandbox.add_post(WALL, "Пост", T0, emit=False)
    longpoll = await asyncio.to_thread(make_bot_longpoll, group_session(sandbox), GROUP_ID, 1)
    old_key, old_ts = longpoll.key, longpoll.ts
    sandbox.fail_next_poll(GROUP_ID, 2)
    comment_id = sandbox.add_comment(WALL, post_id, CITIZEN, "Вопрос", T0)
    assert await asyncio.to_thread(longpoll.check) == []  # vk_api got failed 2 and re-keyed
    assert longpoll.key != old_key
    assert longpoll.ts == old_ts
    (event,) = await asyncio.to_thread(longpoll.check)
    assert event.obj.id == comment_id  # nothing lost: ts was kept

    # A key expiring on its own behaves the same way.
    refreshed_key = longpoll.key
    sandbox.expire_key(GROUP_ID)
    assert await asyncio.to_thread(longpoll.check) == []
    assert longpoll.key not in (old_key, refreshed_key)


async def test_failed_3_and_failed_1(sandbox: VkSandbox) -> None:
    post_id = sandbox.add_post(WALL, "Пост", T0, emit=False)
    longpoll = await asyncio.to_thread(make_bot_longpoll, group_session(sandbox), GROUP_ID, 1)
    sandbox.add_comment(WALL, post_id, CITIZEN, "Потерянный", T0)
    sandbox.fail_next_poll(GROUP_ID, 3)
    assert await asyncio.to_thread(longpoll.check) == []
    assert longpoll.ts == "2"  # a fresh ts: the missed event is gone

    sandbox.add_comment(WALL, post_id, CITIZEN, "Тоже потерян", T0)
    sandbox.fail_next_poll(GROUP_ID, 1)
    assert await asyncio.to_thread(longpoll.check) == []
    assert longpoll.ts == "3"


async def test_history_limit_gives_failed_1_then_recovers() -> None:
    async with VkSandbox(history_limit=3) as box:
        box.add_group(GROUP_ID, "Группа", GROUP_TOKEN)
        post_id = box.add_post(WALL, "Пост", T0, emit=False)
        longpoll = await asyncio.to_thread(make_bot_longpoll, group_session(box), GROUP_ID, 1)
        assert longpoll.ts == "1"
        for n in range(5):
            box.add_comment(WALL, post_id, CITIZEN, f"Комментарий {n}", T0)
        assert await asyncio.to_thread(longpoll.check) == []  # ts 1 fell out of history
        assert longpoll.ts == "6"
        box.add_comment(WALL, post_id, CITIZEN, "Новый", T0)
        (event,) = await asyncio.to_thread(longpoll.check)
        assert event.obj.text == "Новый"
        assert longpoll.ts == "7"


async def test_raw_long_poll_answers(sandbox: VkSandbox) -> None:
    server = await asyncio.to_thread(
        call, group_session(sandbox), "groups.getLongPollServer", group_id=GROUP_ID
    )
    assert set(server) == {"key", "server", "ts"}
    assert server["ts"] == "1"

    def get(query: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{server['server']}?{query}", timeout=5) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
            return answer

    key = server["key"]
    sandbox.emit_raw(GROUP_ID, "like_add", {"liker_id": CITIZEN})
    answer = await asyncio.to_thread(get, f"act=a_check&key={key}&ts=1&wait=0")
    assert answer["ts"] == "2"
    (update,) = answer["updates"]
    assert update["type"] == "like_add"
    assert await asyncio.to_thread(get, "act=a_check&key=wrong&ts=1&wait=0") == {"failed": 2}
    assert await asyncio.to_thread(get, f"act=a_check&key={key}&ts=9&wait=0") == {
        "failed": 1,
        "ts": "2",
    }


async def test_wall_get_comments_paging_and_threads(sandbox: VkSandbox) -> None:
    first_post = sandbox.add_post(WALL, "Первый", T0 - timedelta(days=1))
    post_id = sandbox.add_post(WALL, "Второй", T0)
    roots = [
        sandbox.add_comment(WALL, post_id, CITIZEN, f"Вопрос {n}", T0 + timedelta(minutes=n))
        for n in range(5)
    ]
    reply = sandbox.add_comment(
        WALL, post_id, -GROUP_ID, "Ответ", T0 + timedelta(hours=1), reply_to_comment=roots[1]
    )
    nested = sandbox.add_comment(
        WALL, post_id, OTHER_CITIZEN, "А мне?", T0 + timedelta(hours=2), reply_to_comment=reply
    )
    vk = service_session(sandbox)

    posts = await asyncio.to_thread(call, vk, "wall.get", owner_id=WALL, count=1)
    assert posts["count"] == 2
    assert [p["id"] for p in posts["items"]] == [post_id]
    assert posts["items"][0]["comments"]["count"] == 7
    older = await asyncio.to_thread(call, vk, "wall.get", domain="region_gov", offset=1)
    assert [p["id"] for p in older["items"]] == [first_post]

    seen: list[int] = []
    offset = 0
    while True:
        page = await asyncio.to_thread(
            call, vk, "wall.getComments", owner_id=WALL, post_id=post_id, offset=offset,
            count=2, thread_items_count=10, extended=True,
        )  # fmt: skip
        assert page["count"] == 7
        assert page["current_level_count"] == 5
        if not page["items"]:
            break
        seen += [c["id"] for c in page["items"]]
        offset += len(page["items"])
        if roots[1] in [c["id"] for c in page["items"]]:
            (with_thread,) = [c for c in page["items"] if c["id"] == roots[1]]
            assert with_thread["thread"]["count"] == 2
            assert [c["id"] for c in with_thread["thread"]["items"]] == [reply, nested]
            assert with_thread["thread"]["items"][1]["reply_to_comment"] == reply
            assert with_thread["thread"]["items"][1]["parents_stack"] == [roots[1]]
            assert {p["id"] for p in page["profiles"]} >= {CITIZEN, OTHER_CITIZEN}
            assert [g["id"] for g in page["groups"]] == [GROUP_ID]
    assert seen == roots

    thread = await asyncio.to_thread(
        call, vk, "wall.getComments", owner_id=WALL, post_id=post_id, comment_id=roots[1]
    )
    assert [c["id"] for c in thread["items"]] == [reply, nested]
    newest = await asyncio.to_thread(
        call, vk, "wall.getComments", owner_id=WALL, post_id=post_id, sort="desc", count=1
    )
    assert [c["id"] for c in newest["items"]] == [roots[-1]]
    assert "items" not in newest["items"][0]["thread"]
    single = await asyncio.to_thread(call, vk, "wall.getComment", owner_id=WALL, comment_id=reply)
    assert single["items"][0]["text"] == "Ответ"


async def test_delete_edit_restore_events(sandbox: VkSandbox) -> None:
    post_id = sandbox.add_post(WALL, "Пост", T0, emit=False)
    comment_id = sandbox.add_comment(WALL, post_id, CITIZEN, "Грубость", T0)
    sandbox.edit_comment(WALL, comment_id, "Вежливо")
    sandbox.delete_comment(WALL, comment_id, deleter_id=STAFF)
    sandbox.restore_comment(WALL, comment_id)
    types = [e["type"] for e in sandbox.pending_events(GROUP_ID)]
    assert types == ["wall_reply_new", "wall_reply_edit", "wall_reply_delete", "wall_reply_restore"]
    delete = sandbox.pending_events(GROUP_ID)[2]["object"]
    assert delete == {
        "owner_id": WALL,
        "id": comment_id,
        "deleter_id": STAFF,
        "user_id": STAFF,
        "post_id": post_id,
    }
    assert sandbox.pending_events(GROUP_ID)[1]["object"]["text"] == "Вежливо"

    sandbox.delete_comment(WALL, comment_id, deleter_id=CITIZEN, emit=False)
    comments = await asyncio.to_thread(
        call, service_session(sandbox), "wall.getComments", owner_id=WALL, post_id=post_id
    )
    assert comments["count"] == 0 and comments["items"] == []


async def test_board_and_photo_comments(sandbox: VkSandbox) -> None:
    board_id = sandbox.add_board_comment(GROUP_ID, 42, CITIZEN, "Вопрос в обсуждении", T0)
    photo_id = sandbox.add_photo_comment(WALL, 9, CITIZEN, "Под фото", T0)
    sandbox.delete_comment(WALL, board_id, deleter_id=STAFF)
    events = sandbox.pending_events(GROUP_ID)
    assert [e["type"] for e in events] == [
        "board_post_new",
        "photo_comment_new",
        "board_post_delete",
    ]
    assert events[0]["object"] == {
        "id": board_id,
        "from_id": CITIZEN,
        "date": int(T0.timestamp()),
        "text": "Вопрос в обсуждении",
        "topic_id": 42,
        "topic_owner_id": WALL,
    }
    assert events[1]["object"]["photo_id"] == 9
    assert events[1]["object"]["photo_owner_id"] == WALL
    assert events[1]["object"]["id"] == photo_id
    assert events[2]["object"] == {"topic_owner_id": WALL, "topic_id": 42, "id": board_id}

    sandbox.add_board_comment(GROUP_ID, 42, OTHER_CITIZEN, "Ещё вопрос", T0)
    board = await asyncio.to_thread(
        call, service_session(sandbox), "board.getComments", group_id=GROUP_ID, topic_id=42
    )
    assert [c["text"] for c in board["items"]] == ["Ещё вопрос"]


async def test_community_messages(sandbox: VkSandbox) -> None:
    vk = group_session(sandbox)
    longpoll = await asyncio.to_thread(make_bot_longpoll, vk, GROUP_ID, 1)
    with pytest.raises(VkCallError) as raised:  # the citizen has not written yet
        await asyncio.to_thread(
            call, vk, "messages.send", peer_id=CITIZEN, random_id=1, message="Hi"
        )
    assert raised.value.code == 901

    incoming = sandbox.send_community_message(GROUP_ID, CITIZEN, CITIZEN, "Нет воды", T0)
    (event,) = await asyncio.to_thread(longpoll.check)
    assert isinstance(event, VkBotMessageEvent)
    assert event.type is VkBotEventType.MESSAGE_NEW
    assert event.from_user
    assert event.message.id == incoming
    assert event.message.text == "Нет воды"
    assert event.message.out == 0
    assert event.message.peer_id == CITIZEN
    assert event.client_info.keyboard is True

    with pytest.raises(VkCallError) as raised:
        await asyncio.to_thread(call, vk, "messages.send", peer_id=CITIZEN, message="Без random_id")
    assert raised.value.code == 100
    sent_id = await asyncio.to_thread(
        call, vk, "messages.send", peer_id=CITIZEN, random_id=7, message="Бригада выехала"
    )
    again = await asyncio.to_thread(
        call, vk, "messages.send", peer_id=CITIZEN, random_id=7, message="Бригада выехала"
    )
    assert again == sent_id  # the same random_id is not delivered twice
    assert [(r.method, r.text, r.result) for r in sandbox.sent] == [
        ("messages.send", "Бригада выехала", sent_id)
    ]

    sandbox.send_community_message(GROUP_ID, CITIZEN, STAFF, "Уточните адрес", T0, out=True)
    replies = await asyncio.to_thread(longpoll.check)
    assert [e.type for e in replies] == [VkBotEventType.MESSAGE_REPLY] * 2
    assert replies[0].obj.id == sent_id and replies[0].obj.out == 1
    assert replies[1].obj.from_id == -GROUP_ID
    assert replies[1].obj.admin_author_id == STAFF

    sandbox.edit_message(GROUP_ID, incoming, "Нет горячей воды")
    (edit,) = await asyncio.to_thread(longpoll.check)
    assert edit.type is VkBotEventType.MESSAGE_EDIT
    assert edit.obj.text == "Нет горячей воды"

    history = await asyncio.to_thread(call, vk, "messages.getHistory", peer_id=CITIZEN, count=2)
    assert history["count"] == 3
    assert [m["text"] for m in history["items"]] == ["Уточните адрес", "Бригада выехала"]
    conversations = await asyncio.to_thread(call, vk, "messages.getConversations")
    (item,) = conversations["items"]
    assert item["conversation"]["peer"] == {"id": CITIZEN, "type": "user", "local_id": CITIZEN}
    assert item["last_message"]["text"] == "Уточните адрес"


async def test_create_comment_as_community(sandbox: VkSandbox) -> None:
    post_id = sandbox.add_post(WALL, "Пост", T0, emit=False)
    question = sandbox.add_comment(WALL, post_id, CITIZEN, "Когда?", T0)
    vk = group_session(sandbox)
    result = await asyncio.to_thread(
        call, vk, "wall.createComment", owner_id=WALL, post_id=post_id,
        message="Завтра", reply_to_comment=question,
    )  # fmt: skip
    assert result == {"comment_id": question + 1, "parents_stack": [question]}
    (record,) = sandbox.sent
    assert record.method == "wall.createComment"
    assert record.params["reply_to_comment"] == str(question)
    event = sandbox.pending_events(GROUP_ID)[-1]
    assert event["type"] == "wall_reply_new"
    assert event["object"]["from_id"] == -GROUP_ID
    assert event["object"]["reply_to_user"] == CITIZEN


async def test_long_poll_settings_filter_events(sandbox: VkSandbox) -> None:
    vk = group_session(sandbox)
    settings = await asyncio.to_thread(call, vk, "groups.getLongPollSettings", group_id=GROUP_ID)
    assert settings["is_enabled"] is True
    assert settings["events"]["wall_reply_new"] == 1
    assert (
        await asyncio.to_thread(
            call, vk, "groups.setLongPollSettings", group_id=GROUP_ID, wall_post_new=0
        )
        == 1
    )
    sandbox.add_post(WALL, "Без события", T0)
    assert sandbox.pending_events(GROUP_ID) == []


async def test_users_get_and_control_over_http(sandbox: VkSandbox) -> None:
    vk = service_session(sandbox)
    users = await asyncio.to_thread(call, vk, "users.get", user_ids=[CITIZEN, 999])
    assert users[0]["first_name"] == "Иван"
    assert users[1]["deactivated"] == "deleted"

    def post(action: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{sandbox.base_url}/_sandbox/{action}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
            return answer

    post_answer = await asyncio.to_thread(
        post, "add_post", {"owner_id": WALL, "text": "Пост", "date": "2025-03-03T12:00:00+03:00"}
    )
    assert post_answer["ok"] is True
    comment = await asyncio.to_thread(
        post,
        "add_comment",
        {"owner_id": WALL, "post_id": post_answer["result"], "from_id": CITIZEN, "text": "Вопрос",
         "date": "2025-03-03T12:30:00+03:00"},
    )  # fmt: skip
    event = sandbox.pending_events(GROUP_ID)[-1]
    assert event["object"]["id"] == comment["result"]
    assert event["object"]["date"] == int(datetime(2025, 3, 3, 9, 30, tzinfo=UTC).timestamp())


async def test_naive_dates_are_refused(sandbox: VkSandbox) -> None:
    with pytest.raises(SandboxError, match="naive"):
        sandbox.add_post(WALL, "Пост", datetime(2025, 3, 3, 12, 0))  # noqa: DTZ001


async def test_unreachable_server_is_a_transport_error_without_token() -> None:
    async with VkSandbox() as box:
        dead_url = box.base_url  # nothing listens there once the sandbox stops
    vk = make_vk_session(GROUP_TOKEN, api_server=dead_url, rps_delay=0)
    with pytest.raises(VkTransportError) as raised:
        await asyncio.to_thread(call, vk, "utils.getServerTime")
    assert raised.value.code == -1
    assert raised.value.method == "utils.getServerTime"
    assert "SECRET" not in str(raised.value)
    assert "ConnectionError" in str(raised.value)
