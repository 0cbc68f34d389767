"""Dashboard access: Mini App initData signed the way Telegram signs it, login links, sessions,
and who sees which pages (bot/services/web_access.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from conftest import make_settings
from sqlalchemy import func
from sqlmodel import select

from bot.services import roles, web_access
from bot.services.roles import Role
from bot.services.web_access import AccessDenied
from storage.engine import SessionFactory
from storage.models import Page, WebLogin

TOKEN = "123456:TEST-token-never-logged"
NOW = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)


def telegram_init_data(
    user_id: int = 7001,
    *,
    token: str = TOKEN,
    auth_date: datetime = NOW,
    extra: dict[str, str] | None = None,
) -> str:
    """initData as Telegram builds it (core.telegram.org/bots/webapps, "Validating data"):
    the fields sorted into a data-check-string, signed with HMAC-SHA256 under the key
    HMAC-SHA256(key="WebAppData", message=bot token), the hex digest added as `hash`."""
    fields = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps(
            {"id": user_id, "first_name": "Елена", "last_name": "Смирнова", "language_code": "ru"},
            ensure_ascii=False,
            separators=(",", ":"),
        ),
        "auth_date": str(int(auth_date.timestamp())),
        "signature": "c2lnbmF0dXJlLWZvci10aGlyZC1wYXJ0aWVz",
        **(extra or {}),
    }
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


def test_genuine_init_data_names_the_user() -> None:
    user = web_access.verify_init_data(telegram_init_data(), TOKEN, NOW + timedelta(minutes=5))
    assert (user.user_id, user.name) == (7001, "Елена Смирнова")


@pytest.mark.parametrize(
    ("init_data", "reason"),
    [
        (telegram_init_data(token="654321:OTHER-bot-token"), "подпись"),
        (telegram_init_data().replace("7001", "7002"), "подпись"),  # another user swapped in
        (telegram_init_data() + "&start_param=x", "подпись"),  # a field added after signing
        (telegram_init_data().replace("hash=", "hash=0"), "подпись"),
        (telegram_init_data().split("&hash=")[0], "подпись"),  # no hash at all
        (telegram_init_data(auth_date=NOW - timedelta(hours=2)), "устарел"),
        (telegram_init_data(auth_date=NOW + timedelta(minutes=10)), "из будущего"),
        ("", "нет или"),
        ("%%%", "строка запроса"),
    ],
)
def test_forged_or_expired_init_data_is_refused(init_data: str, reason: str) -> None:
    with pytest.raises(AccessDenied, match=reason) as refused:
        web_access.verify_init_data(init_data, TOKEN, NOW)
    assert TOKEN not in str(refused.value)


async def test_init_data_is_accepted_once(sessions: SessionFactory) -> None:
    init_data = telegram_init_data()
    async with sessions() as session:
        user = await web_access.use_init_data(session, init_data, TOKEN, NOW)
        await session.commit()
    assert user.user_id == 7001
    async with sessions() as session:
        with pytest.raises(AccessDenied, match="повтор"):
            await web_access.use_init_data(session, init_data, TOKEN, NOW + timedelta(seconds=5))
    # Opening the Mini App again gives new signed data, accepted as well.
    fresh = telegram_init_data(auth_date=NOW + timedelta(minutes=1))
    async with sessions() as session:
        assert (await web_access.use_init_data(session, fresh, TOKEN, NOW)).user_id == 7001


async def test_login_link_works_once_within_ten_minutes(sessions: SessionFactory) -> None:
    async with sessions() as session:
        token = await web_access.issue_login_token(session, 7001, NOW)
        late = await web_access.issue_login_token(session, 7001, NOW)
        await session.commit()
    async with sessions() as session:
        stored = (await session.exec(select(WebLogin.secret_hash))).all()
        # Only hashes are kept: the table gives nobody a way in.
        assert token not in stored and hashlib.sha256(token.encode()).hexdigest() in stored
        used = await web_access.use_login_token(session, token, NOW + timedelta(minutes=9))
        assert used == "7001"
        await session.commit()
    async with sessions() as session:
        with pytest.raises(AccessDenied, match="уже использована"):
            await web_access.use_login_token(session, token, NOW + timedelta(minutes=9))
        with pytest.raises(AccessDenied, match="устарел"):
            await web_access.use_login_token(session, late, NOW + timedelta(minutes=10))
        with pytest.raises(AccessDenied, match="неизвестна"):
            await web_access.use_login_token(session, "made-up-token", NOW)
        count = (await session.exec(select(func.count()).select_from(WebLogin))).one()
    assert count == 2
    async with sessions() as session:  # a day later the old ones are cleared away
        await web_access.issue_login_token(session, 7001, NOW + timedelta(days=1, minutes=11))
        await session.commit()
        count = (await session.exec(select(func.count()).select_from(WebLogin))).one()
    assert count == 1


def test_session_cookie_is_signed_and_expires() -> None:
    value = web_access.session_value(7001, TOKEN, NOW)
    assert web_access.session_user(value, TOKEN, NOW + timedelta(hours=11)) == "7001"
    assert web_access.session_user(value, TOKEN, NOW + timedelta(hours=12)) is None
    assert web_access.session_user(value, "654321:OTHER-bot-token", NOW) is None
    forged = value.replace("7001.", "7002.", 1)
    assert web_access.session_user(forged, TOKEN, NOW) is None
    assert web_access.session_user("garbage", TOKEN, NOW) is None
    assert web_access.session_user(None, TOKEN, NOW) is None


async def test_operators_see_their_press_chats_pages(sessions: SessionFactory) -> None:
    settings = make_settings(SUPERVISOR_IDS="9001", PRESS_CHAT_ID=-100500)
    async with sessions() as session:
        pages = [
            Page(platform="telegram", external_id="-1", kind="tg_channel", title="Минздрав"),
            Page(platform="vk", external_id="2", kind="vk_group", title="Минздрав ВК"),
            Page(
                platform="telegram",
                external_id="-3",
                kind="tg_channel",
                title="Минтранс",
                press_chat_id=-100777,
            ),
        ]
        session.add_all(pages)
        await session.flush()
        health, health_vk, transport = (p.id for p in pages)
        assert health and health_vk and transport
        await roles.register_operator(session, 5001, "Ольга", health)
        await roles.register_operator(session, 5002, "Иван", transport)
        await roles.register_operator(session, 5003, "Пётр", None)
        await session.commit()
        supervisor = await web_access.access_of(session, settings, "9001")
        olga = await web_access.access_of(session, settings, "5001")
        ivan = await web_access.access_of(session, settings, "5002")
        petr = await web_access.access_of(session, settings, "5003")
        stranger = await web_access.access_of(session, settings, "5004")
    assert supervisor is not None and supervisor.sees_everything
    assert supervisor.role == Role.SUPERVISOR
    # Both pages of the default press chat, not the one with its own chat.
    assert olga is not None and olga.page_ids == frozenset({health, health_vk})
    assert ivan is not None and ivan.page_ids == frozenset({transport})
    assert not ivan.may_see(health)
    assert petr is not None and petr.sees_everything  # an operator of every page
    assert stranger is None
