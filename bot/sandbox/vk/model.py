"""VK sandbox model: API constants, error texts, records, stored objects, parsing."""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

API_VERSION = "5.199"
DEFAULT_HISTORY_LIMIT = 1000
MAX_LONG_POLL_WAIT_S = 90
CHAT_PEER_START = 2_000_000_000
CALLBACK_RETRIES = 5  # VK sends an event again up to 5 times until the server answers "ok"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

JsonDict = dict[str, Any]
TokenKind = Literal["group", "service", "user"]
# Community token permission bits as VK numbers them (dev.vk.com: access rights for communities).
COMMUNITY_SCOPES = {
    "stories": 1,
    "photos": 4,
    "app_widget": 64,
    "messages": 4096,
    "docs": 131072,
    "manage": 262144,
}
CommentKind = Literal["wall", "photo", "video", "market", "board"]

# Canonical error texts of the real API.
ERROR_MESSAGES: dict[int, str] = {
    1: "Unknown error occurred",
    3: "Unknown method passed",
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    8: "Invalid request: v is required",
    10: "Internal server error",
    12: "Unable to compile code",
    15: "Access denied",
    29: "Rate limit reached",
    30: "This profile is private",
    9: "Flood control",
    13: "Runtime error occurred during code invocation",
    27: "Group authorization failed: method is unavailable with group auth.",
    28: "Application authorization failed: method is unavailable with service token.",
    100: "One of the parameters specified was missing or invalid",
    113: "Invalid user id",
    901: "Can't send messages for users without permission",
}

# Comment-like objects: event name prefix, the field naming the container, the owner field.
_COMMENT_KINDS: dict[str, tuple[str, str, str]] = {
    "wall": ("wall_reply", "post_id", "post_owner_id"),
    "photo": ("photo_comment", "photo_id", "photo_owner_id"),
    "video": ("video_comment", "video_id", "video_owner_id"),
    "market": ("market_comment", "item_id", "market_owner_id"),
    "board": ("board_post", "topic_id", "topic_owner_id"),
}

# Events a community can subscribe to in its long poll settings (all on by default here).
LONG_POLL_EVENT_TYPES: tuple[str, ...] = (
    "message_new",
    "message_reply",
    "message_edit",
    "message_allow",
    "message_deny",
    "message_typing_state",
    "message_event",
    "photo_new",
    "photo_comment_new",
    "photo_comment_edit",
    "photo_comment_restore",
    "photo_comment_delete",
    "audio_new",
    "video_new",
    "video_comment_new",
    "video_comment_edit",
    "video_comment_restore",
    "video_comment_delete",
    "wall_post_new",
    "wall_repost",
    "wall_reply_new",
    "wall_reply_edit",
    "wall_reply_restore",
    "wall_reply_delete",
    "board_post_new",
    "board_post_edit",
    "board_post_restore",
    "board_post_delete",
    "market_comment_new",
    "market_comment_edit",
    "market_comment_restore",
    "market_comment_delete",
    "group_leave",
    "group_join",
    "user_block",
    "user_unblock",
    "poll_vote_new",
    "group_officers_edit",
    "group_change_settings",
    "group_change_photo",
)

CLIENT_INFO: JsonDict = {
    "button_actions": [
        "text",
        "vkpay",
        "open_app",
        "location",
        "open_link",
        "callback",
        "intent_subscribe",
        "intent_unsubscribe",
    ],
    "keyboard": True,
    "inline_keyboard": True,
    "carousel": True,
    "lang_id": 0,
}


class SandboxError(Exception):
    """The control API was used wrongly (unknown group, comment, naive datetime...)."""


class ApiCallError(Exception):
    """A VK API error the sandbox answers with."""

    def __init__(self, code: int, detail: str | None = None) -> None:
        base = ERROR_MESSAGES.get(code, ERROR_MESSAGES[1])
        super().__init__(f"{base}: {detail}" if detail else base)
        self.code = code
        self.message = f"{base}: {detail}" if detail else base


@dataclass(frozen=True)
class SandboxCall:
    """One API call as the sandbox received it (the access token removed)."""

    method: str
    params: dict[str, str]
    token_kind: TokenKind | None
    at: datetime
    error_code: int | None = None


@dataclass(frozen=True)
class SentRecord:
    """Something the client published: a comment (wall.createComment) or a message."""

    method: str
    params: dict[str, str]
    result: Any
    at: datetime

    @property
    def text(self) -> str:
        """The published text."""
        return self.params.get("message", "")


@dataclass(frozen=True)
class CallbackDelivery:
    """One POST of an event to a community's Callback API server, and what it answered."""

    group_id: int
    event_id: str
    type: str
    attempt: int  # 1 for the first delivery, 2.. for VK's retries
    status: int | None  # HTTP status; None when the request itself failed
    body: str
    at: datetime

    @property
    def ok(self) -> bool:
        """The server took the event (HTTP 200 and the text `ok`)."""
        return self.status == 200 and self.body == "ok"


@dataclass
class _Callback:
    url: str
    secret: str | None
    queue: asyncio.Queue[JsonDict] = field(default_factory=asyncio.Queue)
    events: dict[str, JsonDict] = field(default_factory=dict)
    pending: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass
class _Auth:
    kind: TokenKind
    group_id: int | None = None
    user_id: int | None = None


@dataclass
class _Comment:
    kind: str
    owner_id: int
    id: int
    container_id: int
    from_id: int
    date: int
    text: str
    reply_to_comment: int | None = None
    reply_to_user: int | None = None
    parents_stack: list[int] = field(default_factory=list)
    attachments: list[JsonDict] = field(default_factory=list)
    deleted: bool = False
    deleter_id: int | None = None
    replies: list[int] = field(default_factory=list)


@dataclass
class _Post:
    owner_id: int
    id: int
    from_id: int
    date: int
    text: str
    comment_ids: list[int] = field(default_factory=list)
    pinned: bool = False  # wall.get shows it first, whatever its date
    # Page health: what the post carries and its counters (views grow as days pass).
    attachments: list[JsonDict] = field(default_factory=list)
    views: int = 0
    likes: int = 0
    reposts: int = 0
    comments_open: bool = True
    deleted: bool = False


@dataclass
class _Wall:
    owner_id: int
    posts: dict[int, _Post] = field(default_factory=dict)


@dataclass
class _Message:
    id: int
    peer_id: int
    from_id: int
    date: int
    text: str
    out: int
    conversation_message_id: int
    random_id: int = 0
    admin_author_id: int | None = None
    reply_to: int | None = None
    update_time: int | None = None


@dataclass
class _Group:
    id: int
    name: str
    screen_name: str
    type: str
    token: str | None
    longpoll_enabled: bool = True
    # Scopes of the community token (groups.getTokenPermissions); what Otklik asks for by default.
    token_scopes: tuple[str, ...] = ("manage", "messages", "photos", "docs")
    longpoll_api_version: str = API_VERSION
    longpoll_events: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(LONG_POLL_EVENT_TYPES, 1)
    )
    key: str = field(default_factory=lambda: secrets.token_hex(20))
    events: deque[tuple[int, JsonDict]] = field(default_factory=deque)
    next_ts: int = 1
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    forced_poll_failures: deque[int] = field(default_factory=deque)
    members_count: int = 0
    next_message_id: int = 1
    conversations: dict[int, list[_Message]] = field(default_factory=dict)
    messages_allowed: set[int] = field(default_factory=set)
    topics: dict[int, list[int]] = field(default_factory=dict)
    confirmation_code: str = field(default_factory=lambda: secrets.token_hex(4))
    callback: _Callback | None = None


def to_unix(moment: datetime) -> int:
    """Unix seconds of an aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SandboxError(f"naive datetime {moment!r}: pass an aware one")
    return int(moment.timestamp())


def _auth_error(detail: str) -> ApiCallError:
    error = ApiCallError(5)
    error.message = f"User authorization failed: {detail}"
    return error


def _int(params: Mapping[str, str], name: str, *, default: int | None = None) -> int:
    value = params.get(name)
    if value is None or value == "":
        if default is None:
            raise ApiCallError(100, f"{name} is undefined")
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiCallError(100, f"{name} not integer") from None


def _parse_date(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise SandboxError(f"date {value!r} has no time zone")
    return moment


def _json_scalar(value: str) -> Any:
    if value.lstrip("-").isdigit():
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    return value


def _record_json(record: SandboxCall | SentRecord | CallbackDelivery) -> JsonDict:
    data = dict(record.__dict__)
    data["at"] = record.at.isoformat()
    return data
