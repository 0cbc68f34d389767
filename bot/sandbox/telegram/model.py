"""Telegram sandbox model: Bot API objects, errors, constants and parameter parsing."""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

JsonDict = dict[str, Any]
MessageKey = tuple[str, int, int]  # (business_connection_id or "", chat_id, message_id)

# Service accounts Telegram puts into `from` of messages that have no real author.
TELEGRAM_SERVICE_USER: JsonDict = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
CHANNEL_BOT_USER: JsonDict = {
    "id": 136817688,
    "is_bot": True,
    "first_name": "Channel",
    "username": "Channel_Bot",
}
GROUP_ANONYMOUS_BOT_USER: JsonDict = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}

# Bot API: an empty or never-set allowed_updates means "all but these".
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Kinds of incoming messages make_message() builds.
MESSAGE_KINDS = ("text", "photo", "voice", "sticker", "video", "document", "video_note", "poll")
_CHAT_PUBLIC_FIELDS = ("id", "type", "title", "username", "first_name", "last_name", "is_forum")
# Form values that must stay strings even when they look like JSON ("123", "true").
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "callback_query_id",
        "url",
        "secret_token",
        "business_connection_id",
        "parse_mode",
        "description",
        "short_description",
        "name",
        "title",
        "language_code",
        "emoji",
        "photo",
        "document",
        "ip_address",
        "message_effect_id",
        "inline_message_id",
        "action",
    }
)
_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)([^>]*)>")
_MAX_TEXT = 4096
_MAX_CAPTION = 1024


def _utc_now() -> datetime:
    """Return the current aware UTC time (the default sandbox clock)."""
    return datetime.now(UTC)


class SandboxApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional parameters."""

    def __init__(
        self, error_code: int, description: str, parameters: JsonDict | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def payload(self) -> JsonDict:
        """Return the JSON body Telegram would answer with."""
        body: JsonDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(reason: str) -> SandboxApiError:
    """Build a 400 error with Telegram's "Bad Request: ..." description."""
    return SandboxApiError(400, f"Bad Request: {reason}")


@dataclass
class UploadedFile:
    """A file the bot uploaded in a multipart request."""

    field: str
    filename: str
    size: int
    content_type: str | None = None
    data: bytes = b""  # the file itself, e.g. to save a chart


@dataclass
class SentMessage:
    """A message the bot created (sendMessage, sendPhoto, copyMessage...) or edited."""

    method: str
    chat_id: int
    text: str | None
    message_id: int
    date: datetime
    reply_markup: JsonDict | None = None
    reply_to_message_id: int | None = None
    message_thread_id: int | None = None
    business_connection_id: str | None = None
    parse_mode: str | None = None
    caption: str | None = None
    files: list[UploadedFile] = field(default_factory=list)
    bot_id: int = 0
    message: JsonDict = field(default_factory=dict)
    params: JsonDict = field(default_factory=dict)

    def to_json(self) -> JsonDict:
        """Return a JSON-serialisable dict (date as ISO 8601)."""
        data = asdict(self)
        data["date"] = self.date.isoformat()
        for upload in data.get("files", []):
            upload.pop("data", None)  # bytes are not JSON; the size is there
        return data


@dataclass(frozen=True)
class FailureAnswer:
    """The error fail_next() plans for a Bot API method (see bot/sandbox/failures.py)."""

    status: int
    retry_after: int
    description: str | None


@dataclass
class _BotAccount:
    """Server-side state of one bot token."""

    token: str
    user: JsonDict
    updates: list[JsonDict] = field(default_factory=list)
    confirmed_offset: int = 0
    allowed_updates: list[str] | None = None
    last_allowed_updates: list[str] | None = None
    poll_generation: int = 0
    webhook_url: str = ""
    webhook_secret: str | None = None
    webhook_task: asyncio.Task[None] | None = None
    commands: dict[str, list[JsonDict]] = field(default_factory=dict)
    # setChatMenuButton: chat id (0: the default for every chat) -> the MenuButton object.
    menu_buttons: dict[int, JsonDict] = field(default_factory=dict)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def bot_id(self) -> int:
        """Return the bot's user id."""
        return int(self.user["id"])


@dataclass
class _ChatState:
    """Admins and flags of one chat."""

    admins: list[JsonDict] = field(default_factory=list)
    bot_is_admin: bool = False
    blocked: bool = False


def _unix(value: datetime | int | None, default: Callable[[], datetime]) -> int:
    """Convert an aware datetime (or unix int) to unix seconds."""
    if value is None:
        value = default()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return int(value.timestamp())
    return int(value)


def _public_chat(chat: JsonDict) -> JsonDict:
    """Return the Chat object as it appears inside messages (no full-info fields)."""
    return {key: chat[key] for key in _CHAT_PUBLIC_FIELDS if key in chat}


def _without_reply(message: JsonDict) -> JsonDict:
    """Copy a message for embedding as reply_to_message (Telegram nests only one level)."""
    embedded = copy.deepcopy(message)
    embedded.pop("reply_to_message", None)
    return embedded


def _reaction(item: str | JsonDict) -> JsonDict:
    """Turn an emoji into a ReactionTypeEmoji dict."""
    if isinstance(item, dict):
        return item
    return {"type": "emoji", "emoji": item}


def _update_type(update: JsonDict) -> str:
    """Return the update type: the one key besides update_id."""
    for key in update:
        if key != "update_id":
            return key
    return ""


def _as_int(value: Any, default: int) -> int:
    """Parse an int parameter, falling back to default when absent."""
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _bad_request("invalid integer parameter") from exc


def _as_bool(value: Any) -> bool:
    """Parse a boolean parameter sent as JSON or form text."""
    if isinstance(value, str):
        return value.lower() in {"true", "1"}
    return bool(value)


def _decode_param(key: str, value: Any) -> Any:
    """Decode one form value the way the Bot API does (JSON for objects and numbers)."""
    if not isinstance(value, str) or key in _STRING_PARAMS:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    # A bare string in JSON quotes stays as given; objects, lists, numbers and bools decode.
    return value if isinstance(decoded, str) else decoded


def _html_plain_text(text: str) -> str:
    """Validate Telegram HTML markup and return the visible text."""
    stack: list[str] = []
    for match in _TAG_RE.finditer(text):
        closing, tag = match.group(1) == "/", match.group(2).lower()
        offset = len(text[: match.start()].encode("utf-8"))
        if not closing:
            if tag not in _HTML_TAGS:
                raise _bad_request(
                    f'can\'t parse entities: Unsupported start tag "{tag}" at byte offset {offset}'
                )
            stack.append(tag)
            continue
        if not stack:
            raise _bad_request(f"can't parse entities: Unexpected end tag at byte offset {offset}")
        expected = stack.pop()
        if expected != tag:
            raise _bad_request(
                f"can't parse entities: Unmatched end tag at byte offset {offset}, "
                f'expected "</{expected}>", found "</{tag}>"'
            )
    if stack:
        raise _bad_request(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return html.unescape(_TAG_RE.sub("", text))
