"""Telegram Bot API sandbox: an in-process HTTP server the real aiogram client talks to."""

from __future__ import annotations

import asyncio
import copy
import html
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

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

# Methods whose result is a new message the bot sent.
MESSAGE_KINDS = ("text", "photo", "voice", "sticker", "video", "document")
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
_NEW_MESSAGE_METHODS = frozenset(
    {"sendmessage", "sendphoto", "senddocument", "copymessage", "forwardmessage"}
)


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
        return data


@dataclass
class _Failure:
    """A scheduled error answer for the next calls of one method."""

    method: str  # lower-case API method or "*"
    remaining: int
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


class TelegramSandbox:
    """A fake Telegram Bot API server: real aiogram clients poll and send through it."""

    def __init__(self) -> None:
        """Create an empty sandbox; call start() to serve it."""
        self.now: Callable[[], datetime] = _utc_now
        self.sent: list[SentMessage] = []
        self.edits: list[SentMessage] = []
        self.deleted: list[tuple[int, int]] = []
        self.calls: list[tuple[str, JsonDict]] = []
        self.callback_answers: list[JsonDict] = []
        self._bots: dict[str, _BotAccount] = {}
        self._default_token: str | None = None
        self._chats: dict[int, JsonDict] = {}
        self._chat_state: dict[int, _ChatState] = {}
        self._users: dict[int, JsonDict] = {}
        self._messages: dict[MessageKey, JsonDict] = {}
        self._bot_authored: dict[MessageKey, int] = {}
        self._last_message_id: dict[tuple[str, int], int] = {}
        self._business_connections: dict[str, JsonDict] = {}
        self._business_chats: dict[tuple[str, int], JsonDict] = {}
        self._callback_ids: set[str] = set()
        self._failures: list[_Failure] = []
        self._update_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._callback_seq = itertools.count(1)
        self._sent_changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._base_url = ""
        self._methods: dict[
            str, Callable[[_BotAccount, JsonDict, dict[str, UploadedFile]], Awaitable[Any]]
        ] = {
            "getme": self._api_get_me,
            "getupdates": self._api_get_updates,
            "deletewebhook": self._api_delete_webhook,
            "setwebhook": self._api_set_webhook,
            "getwebhookinfo": self._api_get_webhook_info,
            "logout": self._api_true,
            "close": self._api_true,
            "sendmessage": self._api_send_message,
            "copymessage": self._api_copy_message,
            "forwardmessage": self._api_forward_message,
            "sendphoto": self._api_send_photo,
            "senddocument": self._api_send_document,
            "editmessagetext": self._api_edit_message_text,
            "editmessagereplymarkup": self._api_edit_message_reply_markup,
            "deletemessage": self._api_delete_message,
            "answercallbackquery": self._api_answer_callback_query,
            "getchat": self._api_get_chat,
            "getchatadministrators": self._api_get_chat_administrators,
            "getchatmember": self._api_get_chat_member,
            "getchatmembercount": self._api_get_chat_member_count,
            "setmycommands": self._api_set_my_commands,
            "deletemycommands": self._api_delete_my_commands,
            "getmycommands": self._api_get_my_commands,
            "sendchataction": self._api_send_chat_action,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve the sandbox over HTTP; port 0 picks a free port."""
        if self._runner is not None:
            raise RuntimeError("sandbox already started")
        self._closing = False
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        self._add_control_routes(app)
        # access_log=None: request paths contain bot tokens, which must never reach logs.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._base_url = f"http://{host}:{bound_port}"
        logger.info("Telegram sandbox listening on %s", self._base_url)

    @property
    def base_url(self) -> str:
        """Return the base URL for TelegramAPIServer.from_base()."""
        if not self._base_url:
            raise RuntimeError("sandbox is not started")
        return self._base_url

    async def stop(self) -> None:
        """Wake long pollers (they answer []), stop webhook delivery and the server."""
        self._closing = True
        tasks = []
        for account in self._bots.values():
            self._wake(account)
            if account.webhook_task is not None:
                account.webhook_task.cancel()
                tasks.append(account.webhook_task)
                account.webhook_task = None
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._base_url = ""

    async def __aenter__(self) -> Self:
        """Start on a free local port."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()

    # ------------------------------------------------------------------ world setup

    def add_bot(self, token: str, user_id: int, username: str, first_name: str = "Otklik") -> None:
        """Register a bot token; the first one becomes the default for inject_*()."""
        user = {
            "id": user_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": True,
            "has_main_web_app": False,
        }
        self._bots[token] = _BotAccount(token=token, user=user)
        self._users[user_id] = {k: user[k] for k in ("id", "is_bot", "first_name", "username")}
        if self._default_token is None:
            self._default_token = token

    def add_chat(self, chat: JsonDict) -> JsonDict:
        """Register (or replace) a chat: channel, supergroup, group or private user."""
        if "id" not in chat or "type" not in chat:
            raise ValueError("a chat needs 'id' and 'type'")
        stored = copy.deepcopy(chat)
        self._chats[int(stored["id"])] = stored
        self._chat_state.setdefault(int(stored["id"]), _ChatState())
        if stored["type"] == "private":
            user = {"id": stored["id"], "is_bot": False, "first_name": stored.get("first_name", "")}
            for key in ("last_name", "username", "language_code"):
                if key in stored:
                    user[key] = stored[key]
            self._users.setdefault(int(stored["id"]), user)
        return stored

    def add_user(self, user: JsonDict) -> JsonDict:
        """Register a user and their private chat with the bot (as if they pressed Start)."""
        self._users[int(user["id"])] = copy.deepcopy(user)
        if int(user["id"]) not in self._chats:
            self.add_chat(self.private_chat(user))
        return self._users[int(user["id"])]

    def set_admins(
        self, chat_id: int, admins: Iterable[JsonDict], bot_is_admin: bool = True
    ) -> None:
        """Set a chat's administrators (user dicts or ChatMember dicts)."""
        chat = self._require_chat(chat_id)
        state = self._chat_state[int(chat["id"])]
        state.admins = []
        for admin in admins:
            if "status" in admin and "user" in admin:
                member = copy.deepcopy(admin)
            else:
                member = self._admin_member(admin, chat)
            self._users.setdefault(int(member["user"]["id"]), member["user"])
            state.admins.append(member)
        state.bot_is_admin = bot_is_admin

    def block_chat(self, chat_id: int, blocked: bool = True) -> None:
        """Make sends to a private chat fail with 403 as if the user blocked the bot."""
        self._chat_state[int(self._require_chat(chat_id)["id"])].blocked = blocked

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next `count` calls of `method` ("*" for any) fail with `status`."""
        if status not in {400, 403, 429, 500, 502}:
            raise ValueError(f"unsupported status {status}")
        self._failures.append(_Failure(method.lower(), count, status, retry_after, description))

    @staticmethod
    def make_user(
        user_id: int,
        first_name: str,
        username: str | None = None,
        last_name: str | None = None,
        *,
        is_bot: bool = False,
    ) -> JsonDict:
        """Build a User dict."""
        user: JsonDict = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        return user

    @staticmethod
    def private_chat(user: JsonDict) -> JsonDict:
        """Build the private Chat dict of a user."""
        chat: JsonDict = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        return chat

    # ------------------------------------------------------------------ inspection

    def sent_messages(self, chat_id: int | None = None) -> list[SentMessage]:
        """Return what the bot sent (new messages, not edits), optionally in one chat."""
        return [item for item in self.sent if chat_id is None or item.chat_id == chat_id]

    def message(
        self, chat_id: int, message_id: int, business_connection_id: str | None = None
    ) -> JsonDict | None:
        """Return the current state of a stored message (after edits), or None."""
        found = self._messages.get((business_connection_id or "", chat_id, message_id))
        return copy.deepcopy(found) if found is not None else None

    def chat(self, chat_id: int) -> JsonDict | None:
        """Return a registered chat dict, or None."""
        found = self._chats.get(int(chat_id))
        return copy.deepcopy(found) if found is not None else None

    # The timeout parameters below are part of the sandbox's documented test interface.
    async def wait_for_sent(
        self,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentMessage:
        """Wait until a sent message matching predicate exists; raise TimeoutError otherwise."""
        checked = 0
        async with asyncio.timeout(timeout):
            while True:
                for item in self.sent[checked:]:
                    if predicate is None or predicate(item):
                        return item
                checked = len(self.sent)
                event = self._sent_changed
                await event.wait()

    async def wait_for_call(
        self,
        method: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JsonDict:
        """Wait until the bot called `method`; return the params of the first such call."""
        checked = 0
        async with asyncio.timeout(timeout):
            while True:
                for name, params in self.calls[checked:]:
                    if name.lower() == method.lower():
                        return params
                checked = len(self.calls)
                event = self._sent_changed
                await event.wait()

    async def wait_for_confirmed(
        self,
        update_id: int,
        *,
        bot_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until the bot confirmed update_id (its offset moved past it)."""
        account = self._account(bot_id)
        async with asyncio.timeout(timeout):
            while account.confirmed_offset <= update_id:
                await account.wakeup.wait()

    def pending_updates(self, bot_id: int | None = None) -> int:
        """Return how many updates are queued and not yet confirmed."""
        return len(self._account(bot_id).updates)

    @property
    def confirmed_offset(self) -> int:
        """Return the highest getUpdates offset the default bot confirmed."""
        return self._account(None).confirmed_offset

    @property
    def last_allowed_updates(self) -> list[str] | None:
        """Return the last allowed_updates list the default bot sent (None if never)."""
        found = self._account(None).last_allowed_updates
        return list(found) if found is not None else None

    @property
    def webhook_url(self) -> str:
        """Return the default bot's webhook URL ('' when polling)."""
        return self._account(None).webhook_url

    def commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        """Return the default bot's commands for a scope."""
        return copy.deepcopy(
            self._account(None).commands.get(self._commands_key(scope, language_code), [])
        )

    @property
    def bot_user(self) -> JsonDict:
        """Return the default bot's User dict."""
        return dict(self._account(None).user)

    # ------------------------------------------------------------------ building updates

    def make_message(
        self,
        chat: JsonDict | int,
        from_user: JsonDict | None = None,
        text: str | None = None,
        *,
        sender_chat: JsonDict | int | None = None,
        reply_to: JsonDict | int | None = None,
        message_thread_id: int | None = None,
        is_automatic_forward: bool = False,
        date: datetime | int | None = None,
        business_connection_id: str | None = None,
        kind: str = "text",
        message_id: int | None = None,
        forward_origin: JsonDict | None = None,
    ) -> JsonDict:
        """Build and store a realistic incoming Message dict (not queued)."""
        if kind not in MESSAGE_KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
        chat_dict = self._chat_for_message(chat)
        chat_id = int(chat_dict["id"])
        bc_id = business_connection_id or ""
        if message_id is None:
            message_id = self._next_message_id(bc_id, chat_id)
        else:
            key = (bc_id, chat_id)
            self._last_message_id[key] = max(self._last_message_id.get(key, 0), message_id)
        sender = self._chat_for_message(sender_chat) if sender_chat is not None else None
        if sender is None and chat_dict["type"] == "channel":
            sender = chat_dict  # channel posts are signed by the channel itself
        message: JsonDict = {
            "message_id": message_id,
            "date": _unix(date, self.now),
            "chat": _public_chat(chat_dict),
        }
        author = self._default_author(chat_dict, from_user, sender, is_automatic_forward)
        if author is not None:
            message["from"] = copy.deepcopy(author)
            if not author.get("is_bot") and author["id"] not in (TELEGRAM_SERVICE_USER["id"],):
                self._users.setdefault(int(author["id"]), copy.deepcopy(author))
        if sender is not None:
            message["sender_chat"] = _public_chat(sender)
        if business_connection_id:
            message["business_connection_id"] = business_connection_id
        if is_automatic_forward:
            message["is_automatic_forward"] = True
        if forward_origin is not None:
            message["forward_origin"] = copy.deepcopy(forward_origin)
        replied = self._lookup_reply(bc_id, chat_id, reply_to)
        thread_id = message_thread_id
        if replied is not None:
            message["reply_to_message"] = _without_reply(replied)
            if thread_id is None:
                thread_id = self._inherited_thread(chat_dict, replied)
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat_dict.get("is_forum"):
                message["is_topic_message"] = True
        message.update(self._content(kind, text))
        if chat_dict["type"] == "private" and author is not None and not business_connection_id:
            # A user writing to the bot has a private chat it can answer in.
            self._chats.setdefault(chat_id, chat_dict)
            self._chat_state.setdefault(chat_id, _ChatState())
        if business_connection_id:
            self._business_chats[(bc_id, chat_id)] = _public_chat(chat_dict)
        self._messages[(bc_id, chat_id, message_id)] = message
        return copy.deepcopy(message)

    def inject_update(self, update: JsonDict, *, bot_id: int | None = None) -> int:
        """Queue an update for the bot (assigning a monotonic update_id) and wake pollers."""
        account = self._account(bot_id)
        queued = copy.deepcopy(update)
        queued["update_id"] = next(self._update_ids)
        account.updates.append(queued)
        self._wake(account)
        logger.debug("Queued %r update %r", _update_type(queued), queued["update_id"])
        return int(queued["update_id"])

    def inject_message(
        self,
        chat: JsonDict | int,
        from_user: JsonDict | None = None,
        text: str | None = None,
        *,
        bot_id: int | None = None,
        **kwargs: Any,
    ) -> JsonDict:
        """Build a message (see make_message), queue it, return it with its update_id."""
        message = self.make_message(chat, from_user, text, **kwargs)
        if message.get("business_connection_id"):
            update_type = "business_message"
        elif message["chat"]["type"] == "channel":
            update_type = "channel_post"
        else:
            update_type = "message"
        update_id = self.inject_update({update_type: message}, bot_id=bot_id)
        return {**message, "update_id": update_id}

    def inject_channel_post(
        self,
        channel: JsonDict | int,
        text: str | None = None,
        *,
        date: datetime | int | None = None,
        kind: str = "text",
        bot_id: int | None = None,
    ) -> tuple[JsonDict, JsonDict | None]:
        """Publish a channel post; also queue its automatic forward into the linked group."""
        channel_dict = self._require_chat(channel if isinstance(channel, int) else channel["id"])
        post = self.inject_message(channel_dict, None, text, date=date, kind=kind, bot_id=bot_id)
        post.pop("update_id", None)
        forward = self._auto_forward(channel_dict, post)
        if forward is None:
            return post, None
        update_id = self.inject_update({"message": forward}, bot_id=bot_id)
        return post, {**forward, "update_id": update_id}

    def inject_edited_message(
        self,
        message: JsonDict,
        text: str,
        *,
        edit_date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Edit a stored message's text (or caption) and queue the matching edited_* update."""
        bc_id = message.get("business_connection_id") or ""
        key = (bc_id, int(message["chat"]["id"]), int(message["message_id"]))
        current = copy.deepcopy(self._messages.get(key, message))
        current.pop("update_id", None)
        if "text" in current or not any(k in current for k in ("photo", "video", "document")):
            current["text"] = text
        else:
            current["caption"] = text
        current["edit_date"] = _unix(edit_date, self.now)
        self._messages[key] = current
        if bc_id:
            update_type = "edited_business_message"
        elif current["chat"]["type"] == "channel":
            update_type = "edited_channel_post"
        else:
            update_type = "edited_message"
        update_id = self.inject_update({update_type: current}, bot_id=bot_id)
        return {**copy.deepcopy(current), "update_id": update_id}

    def inject_business_connection(
        self,
        connection_id: str,
        user: JsonDict,
        *,
        user_chat_id: int | None = None,
        is_enabled: bool = True,
        can_reply: bool = True,
        date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Connect (or disconnect) a business account to the bot and queue the update."""
        connection: JsonDict = {
            "id": connection_id,
            "user": copy.deepcopy(user),
            "user_chat_id": user_chat_id if user_chat_id is not None else user["id"],
            "date": _unix(date, self.now),
            "is_enabled": is_enabled,
            "rights": {"can_reply": can_reply, "can_read_messages": True},
        }
        self._business_connections[connection_id] = connection
        self._users.setdefault(int(user["id"]), copy.deepcopy(user))
        update_id = self.inject_update({"business_connection": connection}, bot_id=bot_id)
        return {**copy.deepcopy(connection), "update_id": update_id}

    def inject_business_message(
        self,
        chat: JsonDict | int,
        from_user: JsonDict,
        text: str | None = None,
        *,
        business_connection_id: str,
        bot_id: int | None = None,
        **kwargs: Any,
    ) -> JsonDict:
        """Queue a business_message in a connected account's private chat."""
        if business_connection_id not in self._business_connections:
            raise ValueError(f"unknown business connection {business_connection_id!r}")
        return self.inject_message(
            chat,
            from_user,
            text,
            business_connection_id=business_connection_id,
            bot_id=bot_id,
            **kwargs,
        )

    def inject_deleted_business_messages(
        self,
        business_connection_id: str,
        chat: JsonDict | int,
        message_ids: Iterable[int],
        *,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue deleted_business_messages; the messages leave the store."""
        chat_dict = self._chat_for_message(chat)
        ids = [int(item) for item in message_ids]
        for message_id in ids:
            self._messages.pop((business_connection_id, int(chat_dict["id"]), message_id), None)
        payload = {
            "business_connection_id": business_connection_id,
            "chat": _public_chat(chat_dict),
            "message_ids": ids,
        }
        update_id = self.inject_update({"deleted_business_messages": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    def inject_message_reaction(
        self,
        chat: JsonDict | int,
        message_id: int,
        user: JsonDict | None = None,
        *,
        actor_chat: JsonDict | int | None = None,
        new_reaction: Iterable[str | JsonDict] = ("👍",),
        old_reaction: Iterable[str | JsonDict] = (),
        date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue a message_reaction update (a user's or an anonymous chat's reaction)."""
        chat_dict = self._chat_for_message(chat)
        payload: JsonDict = {
            "chat": _public_chat(chat_dict),
            "message_id": message_id,
            "date": _unix(date, self.now),
            "old_reaction": [_reaction(item) for item in old_reaction],
            "new_reaction": [_reaction(item) for item in new_reaction],
        }
        if user is not None:
            payload["user"] = copy.deepcopy(user)
        if actor_chat is not None:
            payload["actor_chat"] = _public_chat(self._chat_for_message(actor_chat))
        update_id = self.inject_update({"message_reaction": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    def inject_callback_query(
        self,
        from_user: JsonDict,
        message: JsonDict | SentMessage,
        data: str,
        *,
        callback_id: str | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue a button press on a bot message (its current, edited state)."""
        source = message.message if isinstance(message, SentMessage) else message
        bc_id = source.get("business_connection_id") or ""
        key = (bc_id, int(source["chat"]["id"]), int(source["message_id"]))
        current = copy.deepcopy(self._messages.get(key, source))
        current.pop("update_id", None)
        query_id = callback_id or f"cbq-{next(self._callback_seq)}"
        self._callback_ids.add(query_id)
        payload = {
            "id": query_id,
            "from": copy.deepcopy(from_user),
            "message": current,
            "chat_instance": f"ci{abs(int(current['chat']['id']))}",
            "data": data,
        }
        self._users.setdefault(int(from_user["id"]), copy.deepcopy(from_user))
        update_id = self.inject_update({"callback_query": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    def inject_my_chat_member(
        self,
        chat: JsonDict | int,
        new_status: str = "administrator",
        *,
        old_status: str = "left",
        from_user: JsonDict | None = None,
        date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue my_chat_member: the bot was added, promoted or removed in a chat."""
        chat_dict = self._chat_for_message(chat)
        account = self._account(bot_id)
        state = self._chat_state.setdefault(int(chat_dict["id"]), _ChatState())
        actor = from_user
        if actor is None:
            actor = state.admins[0]["user"] if state.admins else self.make_user(1, "Admin")
        payload = {
            "chat": _public_chat(chat_dict),
            "from": copy.deepcopy(actor),
            "date": _unix(date, self.now),
            "old_chat_member": self._member(account.user, old_status, chat_dict),
            "new_chat_member": self._member(account.user, new_status, chat_dict),
        }
        state.bot_is_admin = new_status == "administrator"
        update_id = self.inject_update({"my_chat_member": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    # ------------------------------------------------------------------ HTTP: Bot API

    async def _handle_api(self, request: web.Request) -> web.Response:
        """Serve one Bot API call."""
        account = self._bots.get(request.match_info["token"])
        if account is None:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        try:
            params, uploads = await self._read_params(request)
            self.calls.append((method, params))
            self._notify_sent()
            self._raise_scheduled_failure(method)
            handler = self._methods.get(method.lower())
            if handler is None:
                logger.warning("Bot API method %r is not implemented by the sandbox", method)
                raise _bad_request("method not found")
            result = await handler(account, params, uploads)
        except SandboxApiError as exc:
            if exc.error_code >= 500:
                logger.info("Sandbox answers %r with %r", method, exc.error_code)
            return web.json_response(exc.payload(), status=exc.error_code)
        except Exception:
            # A sandbox bug (or a naive clock) must surface as a JSON error, not a bare 500.
            logger.exception("Sandbox failed to serve %r", method)
            failure = SandboxApiError(500, "Internal Server Error: sandbox failure")
            return web.json_response(failure.payload(), status=500)
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> tuple[JsonDict, dict[str, UploadedFile]]:
        """Collect query, JSON, urlencoded and multipart parameters; keep file sizes."""
        raw: JsonDict = dict(request.query)
        uploads: dict[str, UploadedFile] = {}
        if request.method == "POST" and request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise _bad_request("can't parse JSON body") from exc
                if not isinstance(body, dict):
                    raise _bad_request("JSON body must be an object")
                raw.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        data = value.file.read()
                        uploads[key] = UploadedFile(
                            field=key,
                            filename=value.filename,
                            size=len(data),
                            content_type=value.content_type,
                        )
                    else:
                        raw[key] = value
        params = {key: _decode_param(key, value) for key, value in raw.items()}
        # aiogram references uploads as "attach://<random key>"; name them by the parameter.
        resolved: dict[str, UploadedFile] = {}
        for key, value in params.items():
            if isinstance(value, str) and value.startswith("attach://"):
                upload = uploads.pop(value.removeprefix("attach://"), None)
                if upload is not None:
                    upload.field = key
                    resolved[key] = upload
        resolved.update(uploads)
        return params, resolved

    def _raise_scheduled_failure(self, method: str) -> None:
        """Raise the error scheduled by fail_next() for this method, if any."""
        for failure in self._failures:
            if failure.method not in {method.lower(), "*"} or failure.remaining <= 0:
                continue
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failures.remove(failure)
            if failure.status == 429:
                raise SandboxApiError(
                    429,
                    failure.description or f"Too Many Requests: retry after {failure.retry_after}",
                    {"retry_after": failure.retry_after},
                )
            defaults = {
                400: "Bad Request: sandbox failure",
                403: "Forbidden: bot was kicked from the chat",
                500: "Internal Server Error",
                502: "Bad Gateway",
            }
            raise SandboxApiError(failure.status, failure.description or defaults[failure.status])

    # ------------------------------------------------------------------ Bot API methods

    async def _api_true(self, account: _BotAccount, params: JsonDict, uploads: Any) -> bool:
        """Answer True (logOut, close)."""
        return True

    async def _api_get_me(self, account: _BotAccount, params: JsonDict, uploads: Any) -> JsonDict:
        """Return the bot's User."""
        return dict(account.user)

    async def _api_get_updates(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> list[JsonDict]:
        """Long-poll for updates with Telegram's offset/limit/timeout/allowed_updates rules."""
        if account.webhook_url:
            raise SandboxApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _as_int(params.get("offset"), 0)
        limit = min(max(_as_int(params.get("limit"), 100), 1), 100)
        timeout = max(_as_int(params.get("timeout"), 0), 0)
        self._remember_allowed_updates(account, params.get("allowed_updates"))
        self._confirm(account, offset)
        # A newer getUpdates terminates an older one, as on Telegram.
        account.poll_generation += 1
        generation = account.poll_generation
        self._wake(account)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._closing:
                return []
            if generation != account.poll_generation:
                raise SandboxApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            batch = self._deliverable(account, limit)
            if batch:
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = account.wakeup
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                pass

    async def _api_set_webhook(self, account: _BotAccount, params: JsonDict, uploads: Any) -> bool:
        """Set a webhook; the sandbox then POSTs updates to it."""
        url = str(params.get("url") or "")
        if url and not url.startswith(("http://", "https://")):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self._remember_allowed_updates(account, params.get("allowed_updates"))
        if _as_bool(params.get("drop_pending_updates", False)):
            account.updates.clear()
        account.webhook_url = url
        account.webhook_secret = params.get("secret_token") or None
        self._wake(account)
        if url and account.webhook_task is None and not self._closing:
            account.webhook_task = asyncio.create_task(self._deliver_webhook(account))
        return True

    async def _api_delete_webhook(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Remove the webhook (optionally dropping pending updates)."""
        if _as_bool(params.get("drop_pending_updates", False)):
            account.updates.clear()
        account.webhook_url = ""
        account.webhook_secret = None
        task, account.webhook_task = account.webhook_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return True

    async def _api_get_webhook_info(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Return WebhookInfo."""
        info: JsonDict = {
            "url": account.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(account.updates),
        }
        if account.allowed_updates is not None:
            info["allowed_updates"] = list(account.allowed_updates)
        return info

    async def _api_send_message(
        self, account: _BotAccount, params: JsonDict, uploads: dict[str, UploadedFile]
    ) -> JsonDict:
        """Send a text message."""
        text = params.get("text")
        if text is None or str(text).strip() == "":
            raise _bad_request("message text is empty")
        text = str(text)
        visible = self._visible_text(text, params.get("parse_mode"))
        if len(visible) > _MAX_TEXT:
            raise _bad_request("message is too long")
        chat = self._chat_for_send(params)
        message = self._create_bot_message(
            account, chat, params, {"text": visible}, "sendMessage", raw_text=text
        )
        return message

    async def _api_send_photo(
        self, account: _BotAccount, params: JsonDict, uploads: dict[str, UploadedFile]
    ) -> JsonDict:
        """Send a photo (upload, file_id or URL)."""
        return self._send_media(account, params, uploads, "photo", "sendPhoto")

    async def _api_send_document(
        self, account: _BotAccount, params: JsonDict, uploads: dict[str, UploadedFile]
    ) -> JsonDict:
        """Send a document (upload, file_id or URL)."""
        return self._send_media(account, params, uploads, "document", "sendDocument")

    async def _api_copy_message(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Copy a stored message without a link to the original; return its MessageId."""
        chat = self._chat_for_send(params)
        source = self._source_message(params, "message to copy not found")
        content = self._copyable_content(source)
        raw_caption = params.get("caption")
        if raw_caption is not None and "text" not in content:
            content["caption"] = self._visible_text(str(raw_caption), params.get("parse_mode"))
        message = self._create_bot_message(
            account,
            chat,
            params,
            content,
            "copyMessage",
            raw_text=raw_caption if raw_caption is not None else None,
        )
        return {"message_id": message["message_id"]}

    async def _api_forward_message(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Forward a stored message with its forward_origin."""
        chat = self._chat_for_send(params)
        source = self._source_message(params, "message to forward not found")
        content = self._copyable_content(source)
        content["forward_origin"] = self._origin_of(source)
        return self._create_bot_message(
            account, chat, params, content, "forwardMessage", allow_reply=False
        )

    async def _api_edit_message_text(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Edit the text of a bot message; the inline keyboard goes unless given again."""
        text = params.get("text")
        if text is None or str(text).strip() == "":
            raise _bad_request("message text is empty")
        key, current = self._editable(account, params)
        visible = self._visible_text(str(text), params.get("parse_mode"))
        if "text" not in current:
            raise _bad_request("there is no text in the message to edit")
        markup = params.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if current.get("text") == visible and current.get("reply_markup") == new_markup:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        current["text"] = visible
        self._set_markup(current, new_markup)
        return self._record_edit(account, key, current, params, "editMessageText", str(text))

    async def _api_edit_message_reply_markup(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Replace or remove the inline keyboard of a bot message."""
        key, current = self._editable(account, params)
        markup = params.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if current.get("reply_markup") == new_markup:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        self._set_markup(current, new_markup)
        return self._record_edit(
            account, key, current, params, "editMessageReplyMarkup", current.get("text")
        )

    async def _api_delete_message(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Delete a message (own ones always, others' where the bot is an admin)."""
        chat = self._require_chat(params.get("chat_id"))
        chat_id = int(chat["id"])
        message_id = _as_int(params.get("message_id"), 0)
        key = ("", chat_id, message_id)
        if key not in self._messages:
            raise _bad_request("message to delete not found")
        own = self._bot_authored.get(key) == account.bot_id
        if not own and chat["type"] != "private" and not self._chat_state[chat_id].bot_is_admin:
            raise _bad_request("message can't be deleted")
        del self._messages[key]
        self._bot_authored.pop(key, None)
        self.deleted.append((chat_id, message_id))
        return True

    async def _api_answer_callback_query(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Answer a button press once."""
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._callback_ids:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._callback_ids.discard(query_id)
        self.callback_answers.append(dict(params))
        return True

    async def _api_get_chat(self, account: _BotAccount, params: JsonDict, uploads: Any) -> JsonDict:
        """Return ChatFullInfo: the stored dict plus the fields Telegram always sends."""
        chat = copy.deepcopy(self._require_chat(params.get("chat_id")))
        chat.setdefault("accent_color_id", 0)
        chat.setdefault("max_reaction_count", 11)
        chat.setdefault(
            "accepted_gift_types",
            {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return chat

    async def _api_get_chat_administrators(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> list[JsonDict]:
        """Return the configured admins (and the bot if it is one)."""
        chat = self._require_chat(params.get("chat_id"))
        if chat["type"] == "private":
            raise _bad_request("there are no administrators in the private chat")
        state = self._chat_state[int(chat["id"])]
        admins = copy.deepcopy(state.admins)
        listed = {int(member["user"]["id"]) for member in admins}
        if state.bot_is_admin and account.bot_id not in listed:
            admins.append(self._admin_member(self._bot_public(account), chat))
        return admins

    async def _api_get_chat_member(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Return a member's status in a chat."""
        chat = self._require_chat(params.get("chat_id"))
        user_id = _as_int(params.get("user_id"), 0)
        state = self._chat_state[int(chat["id"])]
        for member in state.admins:
            if int(member["user"]["id"]) == user_id:
                return copy.deepcopy(member)
        if user_id == account.bot_id:
            status = "administrator" if state.bot_is_admin else "member"
            return self._member(self._bot_public(account), status, chat)
        user = self._users.get(user_id)
        if user is None:
            raise _bad_request("user not found")
        return self._member(user, "member", chat)

    async def _api_get_chat_member_count(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> int:
        """Return the chat's member_count if configured, else admins plus the bot."""
        chat = self._require_chat(params.get("chat_id"))
        if "member_count" in chat:
            return int(chat["member_count"])
        if chat["type"] == "private":
            return 2
        return len(self._chat_state[int(chat["id"])].admins) + 1

    async def _api_set_my_commands(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Store the command list for a scope and language."""
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request('parameter "commands" is required')
        key = self._commands_key(params.get("scope"), params.get("language_code") or "")
        account.commands[key] = copy.deepcopy(commands)
        return True

    async def _api_delete_my_commands(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Delete the command list for a scope and language."""
        key = self._commands_key(params.get("scope"), params.get("language_code") or "")
        account.commands.pop(key, None)
        return True

    async def _api_get_my_commands(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> list[JsonDict]:
        """Return the command list for a scope and language."""
        key = self._commands_key(params.get("scope"), params.get("language_code") or "")
        return copy.deepcopy(account.commands.get(key, []))

    async def _api_send_chat_action(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Accept a chat action ("typing") for a known chat."""
        self._chat_for_send(params)
        return True

    # ------------------------------------------------------------------ helpers: messages

    def _send_media(
        self,
        account: _BotAccount,
        params: JsonDict,
        uploads: dict[str, UploadedFile],
        kind: str,
        method: str,
    ) -> JsonDict:
        """Create a photo or document message from an upload, file_id or URL."""
        chat = self._chat_for_send(params)
        upload = uploads.get(kind)
        reference = params.get(kind)
        if upload is None and not reference:
            raise _bad_request(f"there is no {kind} in the request")
        if upload is not None and upload.size == 0:
            raise _bad_request("file must be non-empty")
        raw_caption = params.get("caption")
        caption = None
        if raw_caption is not None:
            caption = self._visible_text(str(raw_caption), params.get("parse_mode"))
            if len(caption) > _MAX_CAPTION:
                raise _bad_request("message caption is too long")
        file_number = next(self._file_ids)
        file_id = f"sandbox-{kind}-{file_number}"
        size = upload.size if upload is not None else 0
        content: JsonDict
        if kind == "photo":
            content = {
                "photo": [
                    {
                        "file_id": f"{file_id}-s",
                        "file_unique_id": f"u{file_number}s",
                        "width": 90,
                        "height": 60,
                        "file_size": max(size // 20, 1),
                    },
                    {
                        "file_id": file_id,
                        "file_unique_id": f"u{file_number}",
                        "width": 1280,
                        "height": 853,
                        "file_size": size,
                    },
                ]
            }
        else:
            filename = upload.filename if upload is not None else "document"
            content = {
                "document": {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_number}",
                    "file_name": filename,
                    "mime_type": (upload.content_type if upload else None)
                    or "application/octet-stream",
                    "file_size": size,
                }
            }
        if caption is not None:
            content["caption"] = caption
        files = [upload] if upload is not None else []
        return self._create_bot_message(
            account, chat, params, content, method, raw_text=raw_caption, files=files
        )

    def _create_bot_message(
        self,
        account: _BotAccount,
        chat: JsonDict,
        params: JsonDict,
        content: JsonDict,
        method: str,
        *,
        raw_text: str | None = None,
        files: list[UploadedFile] | None = None,
        allow_reply: bool = True,
    ) -> JsonDict:
        """Store a message the bot sent, record it in `sent`, and return it."""
        chat_id = int(chat["id"])
        bc_id = str(params.get("business_connection_id") or "")
        message: JsonDict = {"message_id": 0, "date": _unix(None, self.now)}
        message["chat"] = _public_chat(chat)
        if bc_id:
            connection = self._business_connections.get(bc_id)
            if connection is None or not connection["is_enabled"]:
                raise _bad_request("BUSINESS_CONNECTION_INVALID")
            message["from"] = copy.deepcopy(connection["user"])
            message["sender_business_bot"] = self._bot_public(account)
            message["business_connection_id"] = bc_id
        elif chat["type"] == "channel":
            message["sender_chat"] = _public_chat(chat)
        else:
            message["from"] = self._bot_public(account)
        thread_id = params.get("message_thread_id")
        reply_to_id: int | None = None
        if allow_reply:
            replied = self._reply_target(bc_id, chat_id, params)
            if replied is not None:
                reply_to_id = int(replied["message_id"])
                message["reply_to_message"] = _without_reply(replied)
                if thread_id is None:
                    thread_id = self._inherited_thread(chat, replied)
        if thread_id is not None:
            message["message_thread_id"] = int(thread_id)
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        message.update(content)
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            # Message objects only carry inline keyboards; reply keyboards stay client-side.
            message["reply_markup"] = copy.deepcopy(markup)
        message["message_id"] = self._next_message_id(bc_id, chat_id)
        key = (bc_id, chat_id, int(message["message_id"]))
        self._messages[key] = message
        self._bot_authored[key] = account.bot_id
        text = message.get("text") if raw_text is None else raw_text
        if text is None:
            text = message.get("caption")
        self.sent.append(
            SentMessage(
                method=method,
                chat_id=chat_id,
                text=text,
                message_id=int(message["message_id"]),
                date=datetime.fromtimestamp(message["date"], UTC),
                reply_markup=copy.deepcopy(markup) if isinstance(markup, dict) else None,
                reply_to_message_id=reply_to_id,
                message_thread_id=message.get("message_thread_id"),
                business_connection_id=bc_id or None,
                parse_mode=params.get("parse_mode"),
                caption=message.get("caption"),
                files=list(files or []),
                bot_id=account.bot_id,
                message=copy.deepcopy(message),
                params=copy.deepcopy(params),
            )
        )
        self._notify_sent()
        if chat["type"] == "channel":
            forward = self._auto_forward(chat, message)
            if forward is not None:
                self.inject_update({"message": forward}, bot_id=account.bot_id)
        return copy.deepcopy(message)

    def _record_edit(
        self,
        account: _BotAccount,
        key: MessageKey,
        current: JsonDict,
        params: JsonDict,
        method: str,
        raw_text: str | None,
    ) -> JsonDict:
        """Apply an edit to the store and record it in `edits`."""
        current["edit_date"] = _unix(None, self.now)
        self._messages[key] = current
        self.edits.append(
            SentMessage(
                method=method,
                chat_id=key[1],
                text=raw_text,
                message_id=key[2],
                date=datetime.fromtimestamp(current["edit_date"], UTC),
                reply_markup=copy.deepcopy(current.get("reply_markup")),
                message_thread_id=current.get("message_thread_id"),
                business_connection_id=key[0] or None,
                parse_mode=params.get("parse_mode"),
                bot_id=account.bot_id,
                message=copy.deepcopy(current),
                params=copy.deepcopy(params),
            )
        )
        self._notify_sent()
        return copy.deepcopy(current)

    def _editable(self, account: _BotAccount, params: JsonDict) -> tuple[MessageKey, JsonDict]:
        """Find a message the bot may edit."""
        if params.get("inline_message_id"):
            raise _bad_request("inline messages are not supported by the sandbox")
        chat = self._chat_for_send(params, check_block=False)
        bc_id = str(params.get("business_connection_id") or "")
        key = (bc_id, int(chat["id"]), _as_int(params.get("message_id"), 0))
        current = self._messages.get(key)
        if current is None:
            raise _bad_request("message to edit not found")
        if self._bot_authored.get(key) != account.bot_id:
            raise _bad_request("message can't be edited")
        return key, copy.deepcopy(current)

    @staticmethod
    def _set_markup(message: JsonDict, markup: JsonDict | None) -> None:
        """Set or remove a message's inline keyboard."""
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = copy.deepcopy(markup)

    def _source_message(self, params: JsonDict, missing: str) -> JsonDict:
        """Find the message copyMessage/forwardMessage refers to."""
        source_chat = self._require_chat(params.get("from_chat_id"))
        key = ("", int(source_chat["id"]), _as_int(params.get("message_id"), 0))
        found = self._messages.get(key)
        if found is None:
            raise _bad_request(missing)
        return found

    @staticmethod
    def _copyable_content(source: JsonDict) -> JsonDict:
        """Return the content fields of a message (text or media with caption)."""
        keys = ("text", "entities", "photo", "document", "voice", "video", "sticker", "caption")
        return {key: copy.deepcopy(source[key]) for key in keys if key in source}

    @staticmethod
    def _origin_of(source: JsonDict) -> JsonDict:
        """Build MessageOrigin for a forward of `source`."""
        origin = source.get("forward_origin")
        if origin is not None:
            return copy.deepcopy(origin)
        sender_chat = source.get("sender_chat")
        if sender_chat is not None and sender_chat.get("type") == "channel":
            return {
                "type": "channel",
                "date": source["date"],
                "chat": copy.deepcopy(sender_chat),
                "message_id": source["message_id"],
            }
        if sender_chat is not None:
            return {"type": "chat", "date": source["date"], "sender_chat": sender_chat}
        return {"type": "user", "date": source["date"], "sender_user": source.get("from", {})}

    def _auto_forward(self, channel: JsonDict, post: JsonDict) -> JsonDict | None:
        """Store the automatic forward of a channel post in its linked discussion group."""
        linked = channel.get("linked_chat_id")
        if linked is None or int(linked) not in self._chats:
            return None
        content = self._copyable_content(post)
        forward = self.make_message(
            int(linked),
            None,
            None,
            sender_chat=channel,
            is_automatic_forward=True,
            date=post["date"],
            forward_origin={
                "type": "channel",
                "date": post["date"],
                "chat": _public_chat(channel),
                "message_id": post["message_id"],
            },
        )
        forward.pop("text", None)
        forward.update(content)
        self._messages[("", int(linked), int(forward["message_id"]))] = forward
        return copy.deepcopy(forward)

    def _reply_target(self, bc_id: str, chat_id: int, params: JsonDict) -> JsonDict | None:
        """Resolve reply_parameters / reply_to_message_id to the stored message."""
        reply = params.get("reply_parameters")
        message_id: int | None = None
        allow_missing = _as_bool(params.get("allow_sending_without_reply", False))
        if isinstance(reply, dict) and reply.get("message_id") is not None:
            message_id = int(reply["message_id"])
            allow_missing = allow_missing or _as_bool(
                reply.get("allow_sending_without_reply", False)
            )
            reply_chat = reply.get("chat_id")
            target = self._find_chat(reply_chat) if reply_chat is not None else None
            if reply_chat is not None and (target is None or int(target["id"]) != chat_id):
                # Replies into another chat are external replies; the sandbox ignores them.
                return None
        elif params.get("reply_to_message_id") is not None:
            message_id = _as_int(params.get("reply_to_message_id"), 0)
        if message_id is None:
            return None
        found = self._messages.get((bc_id, chat_id, message_id))
        if found is None and not allow_missing:
            raise _bad_request("message to be replied not found")
        return found

    def _lookup_reply(
        self, bc_id: str, chat_id: int, reply_to: JsonDict | int | None
    ) -> JsonDict | None:
        """Resolve make_message(reply_to=...) given as a message dict or a message_id."""
        if reply_to is None:
            return None
        if isinstance(reply_to, dict):
            key = (bc_id, chat_id, int(reply_to["message_id"]))
            stored = self._messages.get(key, reply_to)
            return {k: v for k, v in stored.items() if k != "update_id"}
        found = self._messages.get((bc_id, chat_id, int(reply_to)))
        if found is None:
            raise ValueError(f"message {reply_to} not found in chat {chat_id}")
        return found

    @staticmethod
    def _inherited_thread(chat: JsonDict, replied: JsonDict) -> int | None:
        """Return the thread a reply lands in (comment threads of discussion groups)."""
        if chat.get("type") != "supergroup":
            return None
        if replied.get("message_thread_id") is not None:
            return int(replied["message_thread_id"])
        if replied.get("is_automatic_forward"):
            return int(replied["message_id"])
        return None

    def _default_author(
        self,
        chat: JsonDict,
        from_user: JsonDict | None,
        sender_chat: JsonDict | None,
        is_automatic_forward: bool,
    ) -> JsonDict | None:
        """Pick `from` for an incoming message the way Telegram fills it."""
        if from_user is not None:
            return from_user
        if is_automatic_forward:
            return TELEGRAM_SERVICE_USER
        if sender_chat is not None and chat["type"] != "channel":
            if int(sender_chat["id"]) == int(chat["id"]):
                return GROUP_ANONYMOUS_BOT_USER
            return CHANNEL_BOT_USER
        if chat["type"] == "channel":
            return None
        if chat["type"] == "private":
            return self._users.get(int(chat["id"])) or self.make_user(
                int(chat["id"]), str(chat.get("first_name", "User"))
            )
        raise ValueError("from_user or sender_chat is required for group messages")

    def _content(self, kind: str, text: str | None) -> JsonDict:
        """Build the content fields of an incoming message of a given kind."""
        if kind == "text":
            return {"text": text if text is not None else ""}
        number = next(self._file_ids)
        file_id, unique = f"sandbox-in-{kind}-{number}", f"ui{number}"
        content: JsonDict
        if kind == "photo":
            content = {
                "photo": [
                    {"file_id": file_id, "file_unique_id": unique, "width": 1280, "height": 960}
                ]
            }
        elif kind == "voice":
            content = {
                "voice": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "duration": 7,
                    "mime_type": "audio/ogg",
                }
            }
        elif kind == "video":
            content = {
                "video": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "width": 1280,
                    "height": 720,
                    "duration": 12,
                }
            }
        elif kind == "document":
            content = {
                "document": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "file_name": "document.pdf",
                    "mime_type": "application/pdf",
                }
            }
        else:
            return {
                "sticker": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "emoji": text or "👍",
                }
            }
        if text:
            content["caption"] = text
        return content

    @staticmethod
    def _visible_text(text: str, parse_mode: Any) -> str:
        """Return the text Telegram shows (HTML markup validated and stripped)."""
        if isinstance(parse_mode, str) and parse_mode.upper() == "HTML":
            return _html_plain_text(text)
        return text

    def _next_message_id(self, bc_id: str, chat_id: int) -> int:
        """Return the next message_id in a chat (ids grow per chat)."""
        key = (bc_id, chat_id)
        self._last_message_id[key] = self._last_message_id.get(key, 0) + 1
        return self._last_message_id[key]

    # ------------------------------------------------------------------ helpers: chats

    def _account(self, bot_id: int | None) -> _BotAccount:
        """Return a bot account by id (the first registered one by default)."""
        if bot_id is None:
            if self._default_token is None:
                raise RuntimeError("no bot registered; call add_bot() first")
            return self._bots[self._default_token]
        for account in self._bots.values():
            if account.bot_id == bot_id:
                return account
        raise KeyError(f"no bot with id {bot_id}")

    @staticmethod
    def _bot_public(account: _BotAccount) -> JsonDict:
        """Return the bot as it appears in `from`."""
        return {key: account.user[key] for key in ("id", "is_bot", "first_name", "username")}

    def _find_chat(self, chat_id: Any) -> JsonDict | None:
        """Look a chat up by numeric id or @username."""
        if isinstance(chat_id, str):
            if chat_id.startswith("@"):
                name = chat_id[1:].lower()
                for chat in self._chats.values():
                    if str(chat.get("username", "")).lower() == name:
                        return chat
                return None
            try:
                chat_id = int(chat_id)
            except ValueError:
                return None
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            return None
        return self._chats.get(chat_id)

    def _require_chat(self, chat_id: Any) -> JsonDict:
        """Return a registered chat or raise Telegram's 'chat not found'."""
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        chat = self._find_chat(chat_id)
        if chat is None:
            raise _bad_request("chat not found")
        self._chat_state.setdefault(int(chat["id"]), _ChatState())
        return chat

    def _chat_for_send(self, params: JsonDict, *, check_block: bool = True) -> JsonDict:
        """Return the target chat of a send (or a business chat), honouring blocks."""
        bc_id = params.get("business_connection_id")
        if bc_id:
            try:
                business_chat = self._business_chats.get((str(bc_id), int(params["chat_id"])))
            except (KeyError, TypeError, ValueError):
                business_chat = None
            if business_chat is None:
                raise _bad_request("chat not found")
            return business_chat
        chat = self._require_chat(params.get("chat_id"))
        if check_block and self._chat_state[int(chat["id"])].blocked:
            raise SandboxApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _chat_for_message(self, chat: JsonDict | int) -> JsonDict:
        """Accept a chat dict (registering it if new) or a registered chat id."""
        if isinstance(chat, dict):
            known = self._chats.get(int(chat["id"]))
            if known is not None:
                return known
            if chat.get("type") == "private":
                # A business chat or a first contact: do not grant the bot a private chat yet.
                return copy.deepcopy(chat)
            return self.add_chat(chat)
        found = self._chats.get(int(chat))
        if found is None:
            raise ValueError(f"chat {chat} is not registered")
        return found

    def _admin_member(self, user: JsonDict, chat: JsonDict) -> JsonDict:
        """Build ChatMemberAdministrator with typical press-office rights."""
        is_channel = chat.get("type") == "channel"
        return {
            "status": "administrator",
            "user": copy.deepcopy(user),
            "can_be_edited": False,
            "is_anonymous": False,
            "can_manage_chat": True,
            "can_delete_messages": True,
            "can_manage_video_chats": True,
            "can_restrict_members": not is_channel,
            "can_promote_members": False,
            "can_change_info": True,
            "can_invite_users": True,
            "can_post_stories": False,
            "can_edit_stories": False,
            "can_delete_stories": False,
            "can_send_welcome_messages": False,
            **(
                {"can_post_messages": True, "can_edit_messages": True}
                if is_channel
                else {"can_pin_messages": True}
            ),
        }

    def _member(self, user: JsonDict, status: str, chat: JsonDict) -> JsonDict:
        """Build a ChatMember of a simple status."""
        if status == "administrator":
            return self._admin_member(user, chat)
        if status == "creator":
            return {"status": "creator", "user": copy.deepcopy(user), "is_anonymous": False}
        if status == "kicked":
            return {"status": "kicked", "user": copy.deepcopy(user), "until_date": 0}
        if status in {"member", "left"}:
            return {"status": status, "user": copy.deepcopy(user)}
        raise ValueError(f"unsupported member status {status!r}")

    @staticmethod
    def _commands_key(scope: Any, language_code: str) -> str:
        """Key the command lists by scope and language, as Telegram does."""
        scope_dict = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps(scope_dict, sort_keys=True) + "|" + language_code

    # ------------------------------------------------------------------ helpers: updates

    def _wake(self, account: _BotAccount) -> None:
        """Wake everyone waiting on this bot's queue."""
        account.wakeup.set()
        account.wakeup = asyncio.Event()

    def _notify_sent(self) -> None:
        """Wake wait_for_sent()/wait_for_call() waiters."""
        self._sent_changed.set()
        self._sent_changed = asyncio.Event()

    def _remember_allowed_updates(self, account: _BotAccount, allowed: Any) -> None:
        """Apply allowed_updates: absent keeps the previous setting, [] means the default."""
        if allowed is None:
            return
        if isinstance(allowed, str):
            allowed = [allowed]
        account.last_allowed_updates = [str(item) for item in allowed]
        account.allowed_updates = account.last_allowed_updates

    def _is_allowed(self, account: _BotAccount, update: JsonDict) -> bool:
        """Tell whether an update type is delivered under the bot's allowed_updates."""
        update_type = _update_type(update)
        if account.allowed_updates:
            return update_type in account.allowed_updates
        return update_type not in DEFAULT_EXCLUDED_UPDATES

    def _deliverable(self, account: _BotAccount, limit: int) -> list[JsonDict]:
        """Drop updates the bot did not subscribe to and return the next batch."""
        kept = []
        for update in account.updates:
            if self._is_allowed(account, update):
                kept.append(update)
            else:
                logger.debug(
                    "Dropping %r update %r: not in allowed_updates",
                    _update_type(update),
                    update["update_id"],
                )
        account.updates = kept
        return copy.deepcopy(kept[:limit])

    @staticmethod
    def _confirm(account: _BotAccount, offset: int) -> None:
        """Forget updates below offset (negative: keep only the last -offset ones)."""
        if offset > 0:
            account.updates = [u for u in account.updates if u["update_id"] >= offset]
            account.confirmed_offset = max(account.confirmed_offset, offset)
        elif offset < 0:
            account.updates = account.updates[offset:]

    async def _deliver_webhook(self, account: _BotAccount) -> None:
        """POST queued updates to the bot's webhook one by one, retrying on failure."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        client = self._client
        while account.webhook_url and not self._closing:
            batch = self._deliverable(account, 1)
            if not batch:
                await account.wakeup.wait()
                continue
            update = batch[0]
            headers = {}
            if account.webhook_secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = account.webhook_secret
            try:
                async with client.post(
                    account.webhook_url,
                    json=update,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as response:
                    delivered = 200 <= response.status < 300
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivered, status = False, 0
                logger.info("Webhook delivery failed: %r", type(exc).__name__)
            if delivered:
                self._confirm(account, int(update["update_id"]) + 1)
                self._wake(account)
                continue
            logger.info("Webhook answered %r; retrying update %r", status, update["update_id"])
            await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ HTTP: control API

    def _add_control_routes(self, app: web.Application) -> None:
        """Expose the control API under /_sandbox/ for the demo's --serve mode."""
        app.router.add_get("/_sandbox/state", self._ctl_state)
        app.router.add_get("/_sandbox/sent", self._ctl_sent)
        app.router.add_get("/_sandbox/calls", self._ctl_calls)
        app.router.add_get("/_sandbox/chats", self._ctl_chats)
        app.router.add_get("/_sandbox/messages", self._ctl_messages)
        app.router.add_post("/_sandbox/chats", self._ctl_add_chat)
        app.router.add_post("/_sandbox/admins", self._ctl_set_admins)
        app.router.add_post("/_sandbox/updates", self._ctl_inject_update)
        app.router.add_post("/_sandbox/messages", self._ctl_inject_message)
        app.router.add_post("/_sandbox/callback_queries", self._ctl_inject_callback)
        app.router.add_post("/_sandbox/failures", self._ctl_fail_next)

    @staticmethod
    async def _ctl_body(request: web.Request) -> JsonDict:
        """Read a control request's JSON object."""
        try:
            body = await request.json()
        except ValueError as exc:
            raise web.HTTPBadRequest(text="expected a JSON object") from exc
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return body

    @staticmethod
    def _ctl_ok(result: Any) -> web.Response:
        """Answer a control call."""
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _ctl_error(exc: Exception) -> web.Response:
        """Answer a failed control call."""
        return web.json_response({"ok": False, "description": str(exc)}, status=400)

    async def _ctl_state(self, request: web.Request) -> web.Response:
        """Summarise the sandbox (no tokens)."""
        return self._ctl_ok(
            {
                "bots": [
                    {
                        "id": account.bot_id,
                        "username": account.user.get("username"),
                        "pending_updates": len(account.updates),
                        "confirmed_offset": account.confirmed_offset,
                        "allowed_updates": account.last_allowed_updates,
                        "webhook_url": account.webhook_url,
                    }
                    for account in self._bots.values()
                ],
                "chats": len(self._chats),
                "sent": len(self.sent),
                "edits": len(self.edits),
                "calls": len(self.calls),
            }
        )

    async def _ctl_sent(self, request: web.Request) -> web.Response:
        """List sent messages, optionally of one chat."""
        chat_id = request.query.get("chat_id")
        items = self.sent_messages(int(chat_id) if chat_id else None)
        return self._ctl_ok([item.to_json() for item in items])

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        """List Bot API calls (method and params)."""
        return self._ctl_ok([{"method": name, "params": params} for name, params in self.calls])

    async def _ctl_chats(self, request: web.Request) -> web.Response:
        """List registered chats."""
        return self._ctl_ok(list(self._chats.values()))

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        """List stored messages of a chat."""
        chat_id = request.query.get("chat_id")
        items = [
            message
            for (_, cid, _), message in sorted(self._messages.items())
            if chat_id is None or cid == int(chat_id)
        ]
        return self._ctl_ok(items)

    async def _ctl_add_chat(self, request: web.Request) -> web.Response:
        """Register a chat."""
        body = await self._ctl_body(request)
        try:
            return self._ctl_ok(self.add_chat(body.get("chat", body)))
        except (ValueError, KeyError, TypeError) as exc:
            return self._ctl_error(exc)

    async def _ctl_set_admins(self, request: web.Request) -> web.Response:
        """Set a chat's admins."""
        body = await self._ctl_body(request)
        try:
            self.set_admins(
                int(body["chat_id"]),
                body.get("admins", []),
                bot_is_admin=bool(body.get("bot_is_admin", True)),
            )
        except (ValueError, KeyError, TypeError, SandboxApiError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok(True)

    async def _ctl_inject_update(self, request: web.Request) -> web.Response:
        """Queue a raw update."""
        body = await self._ctl_body(request)
        try:
            update_id = self.inject_update(body.get("update", body), bot_id=body.get("bot_id"))
        except (ValueError, KeyError, RuntimeError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok({"update_id": update_id})

    async def _ctl_inject_message(self, request: web.Request) -> web.Response:
        """Queue a citizen (or staff) message built from simple fields."""
        body = await self._ctl_body(request)
        try:
            date = body.get("date")
            if isinstance(date, str):
                date = datetime.fromisoformat(date)
            sender = body.get("sender_chat_id")
            message = self.inject_message(
                body["chat"] if "chat" in body else int(body["chat_id"]),
                body.get("from_user", body.get("from")),
                body.get("text"),
                sender_chat=int(sender) if sender is not None else None,
                reply_to=body.get("reply_to"),
                message_thread_id=body.get("message_thread_id"),
                date=date,
                kind=body.get("kind", "text"),
                business_connection_id=body.get("business_connection_id"),
                bot_id=body.get("bot_id"),
            )
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok(message)

    async def _ctl_inject_callback(self, request: web.Request) -> web.Response:
        """Queue a button press on a stored bot message."""
        body = await self._ctl_body(request)
        try:
            message = self.message(int(body["chat_id"]), int(body["message_id"]))
            if message is None:
                raise ValueError("message not found")
            from_user = body.get("from_user") or body["from"]
            payload = self.inject_callback_query(from_user, message, str(body["data"]))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok(payload)

    async def _ctl_fail_next(self, request: web.Request) -> web.Response:
        """Schedule error answers for a method."""
        body = await self._ctl_body(request)
        try:
            self.fail_next(
                str(body["method"]),
                int(body.get("count", 1)),
                status=int(body.get("status", 429)),
                retry_after=int(body.get("retry_after", 1)),
                description=body.get("description"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok(True)
