"""Who may open the dashboard, and how they prove it (docs/SETUP.md sec. 6a).

Three ways in, each ending in a session cookie:

* a **login link** from `/web` in the bot: a random token valid for ten minutes and usable once;
  only its SHA-256 is stored (`web_login`), and it is used up by one conditional UPDATE, so two
  workers can never both accept it;
* the **Telegram Mini App**: its `initData` signed by Telegram with the bot token (HMAC-SHA256
  with the key HMAC-SHA256("WebAppData", bot token), over the sorted data-check-string), not
  older than `INIT_DATA_MAX_AGE`, and used once (its hash is recorded like a used link);
* the **session** itself: `user_id.expires.signature`, signed with a key derived from the bot
  token. It carries no role: the role and the visible pages are looked up on every request
  (`access_of`), so taking a role away takes effect at once.

Errors name what failed, never the secret (the caller logs them and answers 401).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.services.reminders import press_chat_of
from bot.services.roles import PLATFORM, Role, role_of
from storage.models import Page, Staff, WebLogin

logger = logging.getLogger(__name__)

LOGIN_LINK_TTL = timedelta(minutes=10)
INIT_DATA_MAX_AGE = timedelta(hours=1)
# Telegram's clock and ours may differ a little; more than this in the future is forged.
CLOCK_SKEW = timedelta(minutes=1)
SESSION_TTL = timedelta(hours=12)
SESSION_COOKIE = "otklik_session"

LINK = "link"
INIT_DATA = "initdata"


class AccessDenied(Exception):
    """A credential is forged, expired, replayed or of nobody with a role; no secret inside."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# -- login links --------------------------------------------------------------------------------


async def issue_login_token(session: AsyncSession, user_id: int | str, now: datetime) -> str:
    """A new one-time login token for `user_id`; only its hash is stored."""
    # Credentials expired a day ago are of no use, not even to tell "used" from "unknown".
    connection = await session.connection()
    await connection.execute(
        delete(WebLogin).where(col(WebLogin.expires_at) < now - timedelta(days=1))
    )
    token = secrets.token_urlsafe(32)
    session.add(
        WebLogin(
            kind=LINK,
            secret_hash=_digest(token),
            user_id=str(user_id),
            created_at=now,
            expires_at=now + LOGIN_LINK_TTL,
        )
    )
    await session.flush()
    return token


async def use_login_token(session: AsyncSession, token: str, now: datetime) -> str:
    """The user id of a valid unused token, which is used up now; AccessDenied otherwise."""
    if not token or len(token) > 256:
        raise AccessDenied("ссылка для входа искажена")
    digest = _digest(token)
    connection = await session.connection()
    result = await connection.execute(
        update(WebLogin)
        .where(
            col(WebLogin.secret_hash) == digest,
            col(WebLogin.kind) == LINK,
            col(WebLogin.used_at).is_(None),
            col(WebLogin.expires_at) > now,
        )
        .values(used_at=now)
    )
    if result.rowcount == 1:
        used = (await session.exec(select(WebLogin).where(WebLogin.secret_hash == digest))).one()
        return used.user_id
    found = (await session.exec(select(WebLogin).where(WebLogin.secret_hash == digest))).first()
    if found is None:
        raise AccessDenied("ссылка для входа неизвестна")
    if found.used_at is not None:
        raise AccessDenied("ссылка для входа уже использована")
    raise AccessDenied("ссылка для входа устарела")


def login_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/login/{token}"


# -- Telegram Mini App initData -------------------------------------------------------------------


@dataclass(frozen=True)
class MiniAppUser:
    user_id: int
    name: str
    auth_date: datetime
    signature_hash: str


def init_data_secret(bot_token: str) -> bytes:
    """The key Telegram signs a Mini App's `initData` with: HMAC-SHA256("WebAppData", token)."""
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def sign_init_data(fields: dict[str, str], bot_token: str) -> str:
    """The `hash` Telegram puts into `initData` for `fields` (tests and docs use it too)."""
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    return hmac.new(init_data_secret(bot_token), check.encode(), hashlib.sha256).hexdigest()


def verify_init_data(init_data: str, bot_token: str, now: datetime) -> MiniAppUser:
    """The user of a genuine, fresh `initData` query string; AccessDenied otherwise."""
    if not init_data or len(init_data) > 8192:
        raise AccessDenied("initData нет или он слишком длинный")
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise AccessDenied("initData — не строка запроса") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise AccessDenied("в initData повторяется поле")
    received = fields.pop("hash", "")
    expected = sign_init_data(fields, bot_token)
    if not hmac.compare_digest(received.encode(), expected.encode()):
        raise AccessDenied("подпись initData не совпадает")
    try:
        auth_date = datetime.fromtimestamp(int(fields["auth_date"]), UTC)
        user = json.loads(fields["user"])
        user_id = int(user["id"])
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        raise AccessDenied("в initData нет верных user или auth_date") from None
    if auth_date > now + CLOCK_SKEW:
        raise AccessDenied("auth_date в initData — из будущего")
    if now - auth_date > INIT_DATA_MAX_AGE:
        raise AccessDenied("initData устарел")
    name = " ".join(str(user.get(k) or "") for k in ("first_name", "last_name")).strip()
    return MiniAppUser(user_id, name or str(user_id), auth_date, received)


async def use_init_data(
    session: AsyncSession, init_data: str, bot_token: str, now: datetime
) -> MiniAppUser:
    """Verify `initData` and record it as used: the same signed data is accepted once."""
    user = verify_init_data(init_data, bot_token, now)
    try:
        async with session.begin_nested():
            session.add(
                WebLogin(
                    kind=INIT_DATA,
                    secret_hash=_digest(user.signature_hash),
                    user_id=str(user.user_id),
                    created_at=now,
                    expires_at=user.auth_date + INIT_DATA_MAX_AGE,
                    used_at=now,
                )
            )
    except IntegrityError:
        raise AccessDenied("initData уже использован (повтор)") from None
    return user


# -- sessions -----------------------------------------------------------------------------------


def _session_key(bot_token: str) -> bytes:
    return hmac.new(b"OtklikWebSession", bot_token.encode(), hashlib.sha256).digest()


def session_value(user_id: int | str, bot_token: str, now: datetime) -> str:
    """A signed session cookie value for `user_id`, valid for SESSION_TTL."""
    expires = int((now + SESSION_TTL).timestamp())
    body = f"{user_id}.{expires}"
    signature = hmac.new(_session_key(bot_token), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}"


def session_user(value: str | None, bot_token: str, now: datetime) -> str | None:
    """The user id of a genuine unexpired session cookie, else None."""
    if not value or value.count(".") != 2 or len(value) > 200:
        return None
    user_id, expires, signature = value.split(".")
    body = f"{user_id}.{expires}"
    expected = hmac.new(_session_key(bot_token), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    if not expires.isdigit() or int(expires) <= now.timestamp():
        return None
    return user_id


# -- what a person may see ----------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """A signed-in person's rights: every page (`page_ids` None) or the listed ones."""

    user_id: str
    role: Role
    page_ids: frozenset[int] | None

    @property
    def sees_everything(self) -> bool:
        return self.page_ids is None

    def may_see(self, page_id: int) -> bool:
        return self.page_ids is None or page_id in self.page_ids


async def access_of(session: AsyncSession, settings: Settings, user_id: str) -> Access | None:
    """Supervisors and admins see every page, operators their press chat's pages; else None."""
    role = await role_of(session, settings, user_id)
    if role >= Role.SUPERVISOR:
        return Access(user_id, role, None)
    if role < Role.OPERATOR:
        return None
    rows = await session.exec(
        select(Staff.page_id).where(
            Staff.platform == PLATFORM, Staff.user_id == user_id, Staff.role == "operator"
        )
    )
    own = set(rows.all())
    if None in own:  # an operator of every page
        return Access(user_id, role, None)
    pages = (await session.exec(select(Page))).all()
    chats = {press_chat_of(p, settings) for p in pages if p.id in own}
    chats.discard(None)
    visible = frozenset(
        p.id
        for p in pages
        if p.id is not None and (p.id in own or press_chat_of(p, settings) in chats)
    )
    return Access(user_id, role, visible)
