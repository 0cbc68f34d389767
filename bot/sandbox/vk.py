"""A VK API sandbox: an aiohttp server answering like VK API 5.199 and its Bots Long Poll.

The real vk_api client talks to it over HTTP (``VK_API_SERVER=sandbox.base_url``). Tests and
the demo drive it through the control API (Python methods, or JSON under ``/_sandbox/``):
citizens comment and write, the sandbox stores what real VK would store and queues the Bots
Long Poll events real VK would deliver; whatever the client sends is recorded in ``sent``.
A community may also have a Callback API server (``set_callback``): the sandbox confirms it
like VK does and then POSTs each new event to it, retrying until it answers ``ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

API_VERSION = "5.199"
DEFAULT_HISTORY_LIMIT = 1000
MAX_LONG_POLL_WAIT_S = 90
CHAT_PEER_START = 2_000_000_000
CALLBACK_RETRIES = 5  # VK sends an event again up to 5 times until the server answers "ok"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

JsonDict = dict[str, Any]
TokenKind = Literal["group", "service", "user"]
CommentKind = Literal["wall", "photo", "video", "market", "board"]

# Canonical error texts of the real API.
ERROR_MESSAGES: dict[int, str] = {
    1: "Unknown error occurred",
    3: "Unknown method passed",
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    8: "Invalid request: v is required",
    10: "Internal server error",
    15: "Access denied",
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
    longpoll_api_version: str = API_VERSION
    longpoll_events: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(LONG_POLL_EVENT_TYPES, 1)
    )
    key: str = field(default_factory=lambda: secrets.token_hex(20))
    events: deque[tuple[int, JsonDict]] = field(default_factory=deque)
    next_ts: int = 1
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    forced_poll_failures: deque[int] = field(default_factory=deque)
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


class VkSandbox:
    """An in-memory VK with the API server and Bots Long Poll on one aiohttp app."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        rate_limit_per_s: float | None = None,
        strict_token_types: bool = True,
        callback_retries: int = CALLBACK_RETRIES,
        callback_retry_delay_s: float = 0.05,
        callback_timeout_s: float = 10.0,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self.history_limit = history_limit
        self.rate_limit_per_s = rate_limit_per_s
        # Real VK refuses wall.get & co. with a community token (error 27), messages with a
        # service token (28); keeping that catches code that would only fail in production.
        self.strict_token_types = strict_token_types
        self.sent: list[SentRecord] = []
        self.deliveries: list[CallbackDelivery] = []  # every Callback API POST, in order
        self.callback_retries = max(0, callback_retries)
        self.callback_retry_delay_s = callback_retry_delay_s
        self.callback_timeout_s = callback_timeout_s
        self._http: aiohttp.ClientSession | None = None
        self.calls: list[SandboxCall] = []
        self._tokens: dict[str, _Auth] = {}
        self._groups: dict[int, _Group] = {}
        self._users: dict[int, JsonDict] = {}
        self._walls: dict[int, _Wall] = {}
        self._comments: dict[tuple[int, int], _Comment] = {}
        self._next_object_id: dict[int, int] = {}
        self._forced_errors: dict[str, deque[int]] = {}
        # [method, required params, code, remaining times]
        self._conditional_errors: list[list[Any]] = []
        self._recent_calls: dict[str, deque[float]] = {}
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); returns base_url."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False
        app = web.Application()
        app.router.add_route("*", "/method/{method}", self._handle_method)
        app.router.add_get("/lp/{group_id}", self._handle_long_poll)
        app.router.add_get("/_sandbox/{action}", self._handle_control)
        app.router.add_post("/_sandbox/{action}", self._handle_control)
        # No access log: long-poll URLs carry the poll key.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        self.base_url = f"http://{bound_host}:{bound_port}"
        logger.info("VK sandbox serving at %r", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Release pending long polls and stop serving."""
        self._closing = True
        with self._lock:
            for group in self._groups.values():
                self._wake(group)
            tasks = [
                g.callback.task for g in self._groups.values() if g.callback and g.callback.task
            ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> VkSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def now(self) -> datetime:
        """The sandbox's clock."""
        return self._clock()

    # ------------------------------------------------------------------ control: setup

    def add_group(
        self,
        group_id: int,
        name: str,
        token: str | None = None,
        *,
        screen_name: str | None = None,
        group_type: str = "page",
        longpoll: bool = True,
    ) -> None:
        """Register a community (with its wall) and, if given, its community token."""
        if group_id <= 0:
            raise SandboxError("group_id is positive; owner_id of its wall is -group_id")
        with self._lock:
            self._groups[group_id] = _Group(
                id=group_id,
                name=name,
                screen_name=screen_name or f"club{group_id}",
                type=group_type,
                token=token,
                longpoll_enabled=longpoll,
            )
            self._walls.setdefault(-group_id, _Wall(-group_id))
            if token:
                self._tokens[token] = _Auth("group", group_id=group_id)

    def add_service_token(self, token: str) -> None:
        """Register an application service token."""
        with self._lock:
            self._tokens[token] = _Auth("service")

    def add_user_token(self, token: str, user_id: int) -> None:
        """Register a user access token (a staff account or the governor's own)."""
        with self._lock:
            self._tokens[token] = _Auth("user", user_id=user_id)

    def revoke_token(self, token: str) -> None:
        """Forget a token: the next call with it fails with error 5."""
        with self._lock:
            self._tokens.pop(token, None)

    def add_user(self, user_id: int, first_name: str, last_name: str) -> None:
        """Register a person (citizen or staff)."""
        with self._lock:
            self._users[user_id] = {
                "id": user_id,
                "first_name": first_name,
                "last_name": last_name,
                "can_access_closed": True,
                "is_closed": False,
            }

    def add_wall(self, owner_id: int) -> None:
        """Create a wall (a person's page: positive owner_id)."""
        with self._lock:
            self._walls.setdefault(owner_id, _Wall(owner_id))

    def add_post(
        self,
        owner_id: int,
        text: str,
        date: datetime | None = None,
        from_id: int | None = None,
        *,
        emit: bool = True,
    ) -> int:
        """Publish a post on a wall; returns post_id (emits wall_post_new for communities)."""
        with self._lock:
            wall = self._walls.setdefault(owner_id, _Wall(owner_id))
            post = _Post(
                owner_id=owner_id,
                id=self._new_object_id(owner_id),
                from_id=owner_id if from_id is None else from_id,
                date=self._unix(date),
                text=text,
            )
            wall.posts[post.id] = post
            if emit:
                self._emit_for_owner(owner_id, "wall_post_new", self._post_object(post))
            return post.id

    # ------------------------------------------------------------------ control: comments

    def add_comment(
        self,
        owner_id: int,
        post_id: int,
        from_id: int,
        text: str,
        date: datetime | None = None,
        reply_to_comment: int | None = None,
        reply_to_user: int | None = None,
        emit: bool = True,
        *,
        attachments: list[JsonDict] | None = None,
    ) -> int:
        """Comment under a wall post; returns comment_id (emits wall_reply_new)."""
        with self._lock:
            post = self._post(owner_id, post_id)
            comment = self._new_comment(
                "wall",
                owner_id,
                post_id,
                from_id,
                text,
                date,
                reply_to_comment,
                reply_to_user,
                attachments,
            )
            if not comment.parents_stack:
                post.comment_ids.append(comment.id)
            if emit:
                self._emit_comment_event(comment, "new")
            return comment.id

    def add_photo_comment(
        self,
        owner_id: int,
        photo_id: int,
        from_id: int,
        text: str,
        date: datetime | None = None,
        reply_to_comment: int | None = None,
        emit: bool = True,
    ) -> int:
        """Comment under a photo; returns comment_id (emits photo_comment_new)."""
        return self._add_other_comment(
            "photo", owner_id, photo_id, from_id, text, date, reply_to_comment, emit
        )

    def add_video_comment(
        self,
        owner_id: int,
        video_id: int,
        from_id: int,
        text: str,
        date: datetime | None = None,
        reply_to_comment: int | None = None,
        emit: bool = True,
    ) -> int:
        """Comment under a video; returns comment_id (emits video_comment_new)."""
        return self._add_other_comment(
            "video", owner_id, video_id, from_id, text, date, reply_to_comment, emit
        )

    def add_market_comment(
        self,
        owner_id: int,
        item_id: int,
        from_id: int,
        text: str,
        date: datetime | None = None,
        reply_to_comment: int | None = None,
        emit: bool = True,
    ) -> int:
        """Comment under a market item; returns comment_id (emits market_comment_new)."""
        return self._add_other_comment(
            "market", owner_id, item_id, from_id, text, date, reply_to_comment, emit
        )

    def add_board_comment(
        self,
        group_id: int,
        topic_id: int,
        from_id: int,
        text: str,
        date: datetime | None = None,
        emit: bool = True,
    ) -> int:
        """Comment in a board topic of a community; returns its id (emits board_post_new)."""
        with self._lock:
            group = self._group(group_id)
            comment = self._new_comment(
                "board", -group_id, topic_id, from_id, text, date, None, None, None
            )
            group.topics.setdefault(topic_id, []).append(comment.id)
            if emit:
                self._emit_comment_event(comment, "new")
            return comment.id

    def edit_comment(self, owner_id: int, comment_id: int, text: str, *, emit: bool = True) -> None:
        """Change a comment's text (emits wall_reply_edit, photo_comment_edit, ...)."""
        with self._lock:
            comment = self._comment(owner_id, comment_id)
            comment.text = text
            if emit and not comment.deleted:
                self._emit_comment_event(comment, "edit")

    def delete_comment(
        self, owner_id: int, comment_id: int, deleter_id: int, *, emit: bool = True
    ) -> None:
        """Delete a comment (emits wall_reply_delete etc. with deleter_id)."""
        with self._lock:
            comment = self._comment(owner_id, comment_id)
            comment.deleted = True
            comment.deleter_id = deleter_id
            if emit:
                self._emit_comment_event(comment, "delete")

    def restore_comment(self, owner_id: int, comment_id: int, *, emit: bool = True) -> None:
        """Restore a deleted comment (emits wall_reply_restore etc.)."""
        with self._lock:
            comment = self._comment(owner_id, comment_id)
            comment.deleted = False
            comment.deleter_id = None
            if emit:
                self._emit_comment_event(comment, "restore")

    def comment_object(self, owner_id: int, comment_id: int) -> JsonDict:
        """The comment as the API and long poll show it."""
        with self._lock:
            return self._comment_object(self._comment(owner_id, comment_id))

    # ------------------------------------------------------------------ control: messages

    def send_community_message(
        self,
        group_id: int,
        peer_id: int,
        from_id: int,
        text: str,
        date: datetime | None = None,
        out: bool = False,
        *,
        reply_to: int | None = None,
        emit: bool = True,
    ) -> int:
        """A message in the community's dialogue with `peer_id`; returns the message id.

        Incoming (out=False, from a citizen) emits message_new; outgoing (out=True, the
        community answering, e.g. an admin from the web) emits message_reply with
        from_id = -group_id and admin_author_id = from_id when from_id is a person.
        """
        with self._lock:
            group = self._group(group_id)
            if not out:
                group.messages_allowed.add(peer_id)
            message = self._store_message(
                group,
                peer_id=peer_id,
                from_id=-group_id if out else from_id,
                text=text,
                date=self._unix(date),
                out=out,
                admin_author_id=from_id if out and from_id > 0 else None,
                reply_to=reply_to,
            )
            if emit:
                self._emit_message_event(group, message)
            return message.id

    def edit_message(
        self,
        group_id: int,
        message_id: int,
        text: str,
        date: datetime | None = None,
        *,
        emit: bool = True,
    ) -> None:
        """Edit a community dialogue message (emits message_edit)."""
        with self._lock:
            group = self._group(group_id)
            message = self._message(group, message_id)
            message.text = text
            message.update_time = self._unix(date)
            if emit:
                self._emit(group, "message_edit", self._message_object(group, message))

    def allow_messages(self, group_id: int, user_id: int) -> None:
        """The user allowed the community to message them (emits message_allow)."""
        with self._lock:
            group = self._group(group_id)
            group.messages_allowed.add(user_id)
            self._emit(group, "message_allow", {"user_id": user_id, "key": ""})

    def emit_raw(self, group_id: int, event_type: str, obj: Mapping[str, Any]) -> None:
        """Queue an arbitrary long poll event (for types the sandbox does not model)."""
        with self._lock:
            self._emit(self._group(group_id), event_type, dict(obj))

    # ------------------------------------------------------------------ control: Callback API

    async def set_callback(
        self,
        group_id: int,
        url: str,
        secret: str | None = None,
        confirmation_code: str | None = None,
    ) -> str:
        """Add the community's Callback API server, confirmed as VK does; returns the code.

        The server must answer `{"type": "confirmation", "group_id": G}` with the community's
        confirmation code (SandboxError otherwise); from then on every new event is POSTed to
        it with `secret`, again up to `callback_retries` times until it answers `ok`.
        Loopback addresses only: the sandbox never posts anywhere else.
        """
        if urlsplit(url).hostname not in _LOOPBACK_HOSTS:
            raise SandboxError(f"callback server {url!r} is not on 127.0.0.1")
        with self._lock:
            group = self._group(group_id)
            if confirmation_code is not None:
                group.confirmation_code = confirmation_code
            code = group.confirmation_code
        status, body = await self._post_json(url, {"type": "confirmation", "group_id": group_id})
        if status != 200 or body != code:
            raise SandboxError(
                f"callback server {url!r} answered {status!r} {body[:100]!r}, "
                f"not the confirmation code {code!r}"
            )
        callback = _Callback(url, secret)
        callback.idle.set()
        callback.task = asyncio.create_task(
            self._deliver_events(group_id, callback), name=f"vk-sandbox-callback-{group_id}"
        )
        with self._lock:
            previous, group.callback = group.callback, callback
        if previous is not None and previous.task is not None:
            previous.task.cancel()
        return code

    def redeliver(self, group_id: int, event_id: str) -> None:
        """Send an already delivered event again (as VK does when an `ok` got lost)."""
        with self._lock:
            callback = self._group(group_id).callback
            if callback is None or event_id not in callback.events:
                raise SandboxError(f"event {event_id!r} was never sent to a callback server")
            self._enqueue(callback, callback.events[event_id])

    async def callback_idle(self, group_id: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until every queued event of the community was delivered or given up on."""
        callback = self._group(group_id).callback
        if callback is None:
            raise SandboxError(f"group {group_id} has no callback server")
        async with asyncio.timeout(timeout):
            while True:
                await callback.idle.wait()
                await asyncio.sleep(0)  # an _emit scheduled from another thread lands first
                if callback.idle.is_set():
                    return

    async def _post_json(
        self, url: str, body: JsonDict, headers: Mapping[str, str] | None = None
    ) -> tuple[int | None, str]:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.callback_timeout_s)
            )
        try:
            async with self._http.post(url, json=body, headers=dict(headers or {})) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, type(exc).__name__

    async def _deliver_events(self, group_id: int, callback: _Callback) -> None:
        """Deliver the community's events one by one, in order, each with its retries."""
        while True:
            event = await callback.queue.get()
            try:
                await self._deliver(group_id, callback, event)
            finally:
                callback.pending -= 1
                if callback.pending <= 0:
                    callback.idle.set()

    async def _deliver(self, group_id: int, callback: _Callback, event: JsonDict) -> None:
        body = dict(event)
        if callback.secret is not None:
            body["secret"] = callback.secret
        for attempt in range(1, self.callback_retries + 2):
            # VK numbers its retries in this header; the first delivery goes without it.
            headers = {"X-Retry-Counter": str(attempt - 1)} if attempt > 1 else {}
            status, text = await self._post_json(callback.url, body, headers)
            delivery = CallbackDelivery(
                group_id,
                str(event["event_id"]),
                str(event["type"]),
                attempt,
                status,
                text,
                self.now(),
            )
            self.deliveries.append(delivery)
            if delivery.ok:
                return
            await asyncio.sleep(self.callback_retry_delay_s)
        logger.warning(
            "VK sandbox: event %r of group %r given up after %r attempts",
            event["event_id"],
            group_id,
            self.callback_retries + 1,
        )

    def _enqueue(self, callback: _Callback, event: JsonDict) -> None:
        callback.events[str(event["event_id"])] = event
        callback.pending += 1
        callback.idle.clear()
        if self._loop is None or threading.get_ident() == self._loop_thread:
            callback.queue.put_nowait(event)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback.queue.put_nowait, event)

    # ------------------------------------------------------------------ control: failures

    def fail_next(
        self,
        method: str,
        code: int,
        times: int = 1,
        *,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        """The next `times` calls of `method` ("*" for any) answer with error `code`.

        With `when`, only calls whose parameters include those values fail (e.g. the comments
        of one post: ``when={"post_id": 7}``); other calls go through.
        """
        with self._lock:
            if when is None:
                self._forced_errors.setdefault(method, deque()).extend([code] * times)
                return
            condition = {str(k): str(v) for k, v in when.items()}
            self._conditional_errors.append([method, condition, code, times])

    def fail_next_poll(self, group_id: int, code: int) -> None:
        """The next a_check of the group answers {"failed": code} (1, 2 or 3)."""
        if code not in (1, 2, 3):
            raise SandboxError(f"long poll failure code is 1, 2 or 3, not {code!r}")
        with self._lock:
            self._group(group_id).forced_poll_failures.append(code)

    def expire_key(self, group_id: int) -> None:
        """Rotate the group's long poll key: polls with the old one get failed 2."""
        with self._lock:
            self._group(group_id).key = secrets.token_hex(20)

    def set_longpoll(self, group_id: int, enabled: bool) -> None:
        """Switch the community's Bots Long Poll on or off."""
        with self._lock:
            self._group(group_id).longpoll_enabled = enabled

    def pending_events(self, group_id: int) -> list[JsonDict]:
        """The retained long poll history of the group, oldest first."""
        with self._lock:
            return [event for _, event in self._group(group_id).events]

    def messages(self, group_id: int, peer_id: int) -> list[JsonDict]:
        """A community dialogue, oldest first, as message objects."""
        with self._lock:
            group = self._group(group_id)
            return [self._message_object(group, m) for m in group.conversations.get(peer_id, [])]

    # ------------------------------------------------------------------ internals: state

    def _unix(self, moment: datetime | None) -> int:
        return to_unix(moment if moment is not None else self._clock())

    def _new_object_id(self, owner_id: int) -> int:
        # VK numbers posts and comments of one wall from a single counter.
        value = self._next_object_id.get(owner_id, 1)
        self._next_object_id[owner_id] = value + 1
        return value

    def _group(self, group_id: int) -> _Group:
        group = self._groups.get(group_id)
        if group is None:
            raise SandboxError(f"unknown group {group_id!r}: call add_group first")
        return group

    def _post(self, owner_id: int, post_id: int) -> _Post:
        wall = self._walls.get(owner_id)
        post = wall.posts.get(post_id) if wall else None
        if post is None:
            raise SandboxError(f"no post {owner_id}_{post_id}")
        return post

    def _comment(self, owner_id: int, comment_id: int) -> _Comment:
        comment = self._comments.get((owner_id, comment_id))
        if comment is None:
            raise SandboxError(f"no comment {comment_id!r} on {owner_id!r}")
        return comment

    def _message(self, group: _Group, message_id: int) -> _Message:
        for messages in group.conversations.values():
            for message in messages:
                if message.id == message_id:
                    return message
        raise SandboxError(f"no message {message_id!r} in group {group.id!r}")

    def _add_other_comment(
        self,
        kind: str,
        owner_id: int,
        container_id: int,
        from_id: int,
        text: str,
        date: datetime | None,
        reply_to_comment: int | None,
        emit: bool,
    ) -> int:
        with self._lock:
            comment = self._new_comment(
                kind, owner_id, container_id, from_id, text, date, reply_to_comment, None, None
            )
            if emit:
                self._emit_comment_event(comment, "new")
            return comment.id

    def _new_comment(
        self,
        kind: str,
        owner_id: int,
        container_id: int,
        from_id: int,
        text: str,
        date: datetime | None,
        reply_to_comment: int | None,
        reply_to_user: int | None,
        attachments: list[JsonDict] | None,
    ) -> _Comment:
        parents_stack: list[int] = []
        parent: _Comment | None = None
        if reply_to_comment is not None:
            parent = self._comment(owner_id, reply_to_comment)
            if reply_to_user is None:
                reply_to_user = parent.from_id
            if kind == "wall":
                # VK threads are one level deep: a reply to a reply joins the root's thread.
                root_id = parent.parents_stack[0] if parent.parents_stack else parent.id
                parents_stack = [root_id]
        comment = _Comment(
            kind=kind,
            owner_id=owner_id,
            id=self._new_object_id(owner_id),
            container_id=container_id,
            from_id=from_id,
            date=self._unix(date),
            text=text,
            reply_to_comment=reply_to_comment,
            reply_to_user=reply_to_user,
            parents_stack=parents_stack,
            attachments=list(attachments or []),
        )
        self._comments[(owner_id, comment.id)] = comment
        if parents_stack:
            self._comments[(owner_id, parents_stack[0])].replies.append(comment.id)
        return comment

    def _store_message(
        self,
        group: _Group,
        *,
        peer_id: int,
        from_id: int,
        text: str,
        date: int,
        out: bool,
        admin_author_id: int | None = None,
        reply_to: int | None = None,
        random_id: int = 0,
    ) -> _Message:
        dialogue = group.conversations.setdefault(peer_id, [])
        message = _Message(
            id=group.next_message_id,
            peer_id=peer_id,
            from_id=from_id,
            date=date,
            text=text,
            out=int(out),
            conversation_message_id=len(dialogue) + 1,
            random_id=random_id,
            admin_author_id=admin_author_id,
            reply_to=reply_to,
        )
        group.next_message_id += 1
        dialogue.append(message)
        return message

    # ------------------------------------------------------------------ internals: objects

    def _post_object(self, post: _Post) -> JsonDict:
        comments_count = self._visible_comment_count(post)
        return {
            "id": post.id,
            "owner_id": post.owner_id,
            "from_id": post.from_id,
            "date": post.date,
            "text": post.text,
            "post_type": "post",
            "marked_as_ads": 0,
            "attachments": [],
            "post_source": {"type": "api"},
            "comments": {"count": comments_count, "can_post": 1, "groups_can_post": True},
            "likes": {"count": 0, "user_likes": 0, "can_like": 1, "can_publish": 1},
            "reposts": {"count": 0, "user_reposted": 0},
            "views": {"count": 0},
            "is_favorite": False,
        }

    def _comment_object(self, comment: _Comment, thread_items_count: int | None = None) -> JsonDict:
        """The comment as wall.getComments and the *_new events show it."""
        _, container_field, owner_field = _COMMENT_KINDS[comment.kind]
        obj: JsonDict = {
            "id": comment.id,
            "from_id": comment.from_id,
            "date": comment.date,
            "text": comment.text,
        }
        if comment.kind == "wall":
            obj["post_id"] = comment.container_id
            obj["owner_id"] = comment.owner_id
            obj["parents_stack"] = list(comment.parents_stack)
            if not comment.parents_stack:
                replies = self._visible_replies(comment)
                thread: JsonDict = {"count": len(replies)}
                if thread_items_count:
                    thread["items"] = [
                        self._comment_object(r) for r in replies[:thread_items_count]
                    ]
                if thread_items_count is not None:
                    thread.update(can_post=True, show_reply_button=True, groups_can_post=True)
                obj["thread"] = thread
        if comment.reply_to_user is not None:
            obj["reply_to_user"] = comment.reply_to_user
        if comment.reply_to_comment is not None:
            obj["reply_to_comment"] = comment.reply_to_comment
        if comment.attachments:
            obj["attachments"] = list(comment.attachments)
        if comment.deleted:
            obj["deleted"] = True
            obj["text"] = ""
        obj[container_field] = comment.container_id
        obj[owner_field] = comment.owner_id
        return obj

    def _visible_comment_count(self, post: _Post) -> int:
        roots = [self._comments[(post.owner_id, cid)] for cid in post.comment_ids]
        return sum(int(not root.deleted) + len(self._visible_replies(root)) for root in roots)

    def _visible_replies(self, root: _Comment) -> list[_Comment]:
        replies = (self._comments[(root.owner_id, rid)] for rid in root.replies)
        return [reply for reply in replies if not reply.deleted]

    def _message_object(self, group: _Group, message: _Message) -> JsonDict:
        obj: JsonDict = {
            "date": message.date,
            "from_id": message.from_id,
            "id": message.id,
            "out": message.out,
            "version": message.id,
            "attachments": [],
            "conversation_message_id": message.conversation_message_id,
            "fwd_messages": [],
            "important": False,
            "is_hidden": False,
            "peer_id": message.peer_id,
            "random_id": message.random_id,
            "text": message.text,
        }
        if message.admin_author_id is not None:
            obj["admin_author_id"] = message.admin_author_id
        if message.update_time is not None:
            obj["update_time"] = message.update_time
        if message.reply_to is not None:
            try:
                replied = self._message(group, message.reply_to)
            except SandboxError:
                pass
            else:
                obj["reply_message"] = {
                    key: value
                    for key, value in self._message_object(group, replied).items()
                    if key not in ("out", "important", "is_hidden", "random_id", "version")
                }
        return obj

    def _group_object(self, group: _Group) -> JsonDict:
        photo = f"https://sun.userapi.com/sandbox/{group.id}.jpg"
        return {
            "id": group.id,
            "name": group.name,
            "screen_name": group.screen_name,
            "is_closed": 0,
            "type": group.type,
            "photo_50": photo,
            "photo_100": photo,
            "photo_200": photo,
        }

    def _user_object(self, user_id: int) -> JsonDict:
        user = self._users.get(user_id)
        if user is None:
            return {
                "id": user_id,
                "first_name": "DELETED",
                "last_name": "",
                "deactivated": "deleted",
            }
        return dict(user)

    def _extended(self, author_ids: Iterable[int]) -> JsonDict:
        ids = sorted(set(author_ids))
        return {
            "profiles": [self._user_object(i) for i in ids if i > 0],
            "groups": [self._group_object(self._groups[-i]) for i in ids if -i in self._groups],
        }

    # ------------------------------------------------------------------ internals: events

    def _emit_for_owner(self, owner_id: int, event_type: str, obj: JsonDict) -> None:
        group = self._groups.get(-owner_id)
        if group is not None:
            self._emit(group, event_type, obj)

    def _emit_comment_event(self, comment: _Comment, action: str) -> None:
        event_prefix, container_field, _ = _COMMENT_KINDS[comment.kind]
        if action == "delete":
            obj: JsonDict
            if comment.kind == "board":
                obj = {
                    "topic_owner_id": comment.owner_id,
                    "topic_id": comment.container_id,
                    "id": comment.id,
                }
            else:
                # dev.vk.com names the deleter `deleter_id`; the JSON schema `user_id`: send both.
                obj = {
                    "owner_id": comment.owner_id,
                    "id": comment.id,
                    "deleter_id": comment.deleter_id,
                    "user_id": comment.deleter_id,
                    container_field: comment.container_id,
                }
        else:
            obj = self._comment_object(comment)
        self._emit_for_owner(comment.owner_id, f"{event_prefix}_{action}", obj)

    def _emit_message_event(self, group: _Group, message: _Message) -> None:
        obj = self._message_object(group, message)
        if message.out:
            self._emit(group, "message_reply", obj)
        else:
            self._emit(group, "message_new", {"message": obj, "client_info": dict(CLIENT_INFO)})

    def _emit(self, group: _Group, event_type: str, obj: JsonDict) -> None:
        if not group.longpoll_enabled and group.callback is None:
            return
        if not group.longpoll_events.get(event_type, 1):
            return
        event: JsonDict = {
            "group_id": group.id,
            "type": event_type,
            "event_id": secrets.token_hex(20),
            "v": group.longpoll_api_version,
            "object": obj,
        }
        if group.callback is not None:
            self._enqueue(group.callback, event)
        if not group.longpoll_enabled:
            return
        group.events.append((group.next_ts, event))
        group.next_ts += 1
        while len(group.events) > self.history_limit:
            group.events.popleft()
        self._wake(group)

    def _wake(self, group: _Group) -> None:
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._swap_wakeup(group)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._swap_wakeup, group)

    @staticmethod
    def _swap_wakeup(group: _Group) -> None:
        event, group.wakeup = group.wakeup, asyncio.Event()
        event.set()

    # ------------------------------------------------------------------ HTTP: API methods

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, str] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        token = params.pop("access_token", None)
        authorization = request.headers.get("Authorization", "")
        if token is None and authorization.startswith("Bearer "):
            token = authorization.removeprefix("Bearer ")
        body = self.dispatch(method, params, token)
        return web.json_response(body)

    def dispatch(self, method: str, params: Mapping[str, str], token: str | None) -> JsonDict:
        """Answer one API call as VK would: {"response": ...} or {"error": {...}}."""
        params = dict(params)
        params.pop("access_token", None)
        with self._lock:
            auth = self._tokens.get(token) if token else None
            try:
                result = self._call(method, params, token, auth)
            except ApiCallError as exc:
                self._log_call(method, params, auth, exc.code)
                return {"error": self._error_body(exc, method, params)}
            except Exception:
                logger.exception("VK sandbox failed in %r", method)
                self._log_call(method, params, auth, 10)
                return {"error": self._error_body(ApiCallError(10), method, params)}
            self._log_call(method, params, auth, None)
            return {"response": result}

    def _log_call(
        self, method: str, params: dict[str, str], auth: _Auth | None, error_code: int | None
    ) -> None:
        self.calls.append(
            SandboxCall(method, dict(params), auth.kind if auth else None, self.now(), error_code)
        )

    @staticmethod
    def _error_body(exc: ApiCallError, method: str, params: Mapping[str, str]) -> JsonDict:
        request_params = [{"key": "method", "value": method}, {"key": "oauth", "value": "1"}]
        request_params += [{"key": k, "value": v} for k, v in params.items()]
        return {"error_code": exc.code, "error_msg": exc.message, "request_params": request_params}

    def _call(
        self, method: str, params: dict[str, str], token: str | None, auth: _Auth | None
    ) -> Any:
        if auth is None:
            raise _auth_error("invalid access_token (4)." if token else "no access_token passed.")
        for key in (method, "*"):
            forced = self._forced_errors.get(key)
            if forced:
                raise ApiCallError(forced.popleft())
        for rule in self._conditional_errors:
            rule_method, condition, code, remaining = rule
            if remaining <= 0 or rule_method not in (method, "*"):
                continue
            if all(params.get(name) == value for name, value in condition.items()):
                rule[3] = remaining - 1
                raise ApiCallError(code)
        self._check_rate(token or "")
        if "v" not in params:
            raise ApiCallError(8)
        handler = self._methods().get(method)
        if handler is None:
            raise ApiCallError(3, method)
        return handler(auth, params)

    def _check_rate(self, token: str) -> None:
        if not self.rate_limit_per_s:
            return
        now = time.monotonic()
        recent = self._recent_calls.setdefault(token, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= self.rate_limit_per_s:
            raise ApiCallError(6)
        recent.append(now)

    def _methods(self) -> dict[str, Callable[[_Auth, dict[str, str]], Any]]:
        return {
            "groups.getById": self._groups_get_by_id,
            "groups.getCallbackConfirmationCode": self._groups_get_callback_confirmation_code,
            "groups.getLongPollServer": self._groups_get_long_poll_server,
            "groups.getLongPollSettings": self._groups_get_long_poll_settings,
            "groups.setLongPollSettings": self._groups_set_long_poll_settings,
            "wall.get": self._wall_get,
            "wall.getComments": self._wall_get_comments,
            "wall.getComment": self._wall_get_comment,
            "wall.createComment": self._wall_create_comment,
            "messages.send": self._messages_send,
            "messages.getConversations": self._messages_get_conversations,
            "messages.getHistory": self._messages_get_history,
            "board.getComments": self._board_get_comments,
            "users.get": self._users_get,
            "utils.getServerTime": self._utils_get_server_time,
        }

    def _require(self, auth: _Auth, *kinds: TokenKind) -> None:
        if not self.strict_token_types or auth.kind in kinds:
            return
        raise ApiCallError(27 if auth.kind == "group" else 28 if auth.kind == "service" else 15)

    def _auth_group(self, auth: _Auth, params: Mapping[str, str]) -> _Group:
        """The community a community token acts for (group_id must match if given)."""
        if auth.kind != "group" or auth.group_id is None:
            raise ApiCallError(27 if auth.kind == "group" else 28 if auth.kind == "service" else 15)
        requested = _int(params, "group_id", default=auth.group_id)
        if abs(requested) != auth.group_id:
            raise ApiCallError(15, "no access to this group")
        return self._groups[auth.group_id]

    # --- groups

    def _groups_get_by_id(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        raw = params.get("group_ids") or params.get("group_id") or ""
        names = [part.strip() for part in raw.split(",") if part.strip()]
        if not names:
            if auth.kind != "group" or auth.group_id is None:
                raise ApiCallError(100, "group_ids is undefined")
            names = [str(auth.group_id)]
        groups = []
        for name in names:
            group = self._find_group(name)
            if group is None:
                raise ApiCallError(100, "group_ids is undefined")
            groups.append(self._group_object(group))
        return {"groups": groups, "profiles": []}

    def _find_group(self, name: str) -> _Group | None:
        for prefix in ("club", "public", "event"):
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                name = name[len(prefix) :]
        if name.lstrip("-").isdigit():
            return self._groups.get(abs(int(name)))
        return next((g for g in self._groups.values() if g.screen_name == name), None)

    def _groups_get_callback_confirmation_code(
        self, auth: _Auth, params: dict[str, str]
    ) -> JsonDict:
        if "group_id" not in params:
            raise ApiCallError(100, "group_id is undefined")
        return {"code": self._auth_group(auth, params).confirmation_code}

    def _groups_get_long_poll_server(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        if "group_id" not in params:
            raise ApiCallError(100, "group_id is undefined")
        group = self._auth_group(auth, params)
        if not group.longpoll_enabled:
            raise ApiCallError(100, "Long Poll API is disabled for this community")
        return {
            "key": group.key,
            "server": f"{self.base_url}/lp/{group.id}",
            "ts": str(group.next_ts),
        }

    def _groups_get_long_poll_settings(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        group = self._auth_group(auth, params)
        return {
            "is_enabled": group.longpoll_enabled,
            "api_version": group.longpoll_api_version,
            "events": dict(group.longpoll_events),
        }

    def _groups_set_long_poll_settings(self, auth: _Auth, params: dict[str, str]) -> int:
        group = self._auth_group(auth, params)
        if "enabled" in params:
            group.longpoll_enabled = _int(params, "enabled") == 1
        if "api_version" in params:
            group.longpoll_api_version = params["api_version"]
        for event_type in LONG_POLL_EVENT_TYPES:
            if event_type in params:
                group.longpoll_events[event_type] = 1 if _int(params, event_type) else 0
        return 1

    # --- wall

    def _wall_of(self, params: Mapping[str, str]) -> _Wall:
        owner_id: int | None
        if "owner_id" in params:
            owner_id = _int(params, "owner_id")
        elif "domain" in params:
            owner_id = self._resolve_domain(params["domain"])
        else:
            raise ApiCallError(100, "owner_id is undefined")
        wall = self._walls.get(owner_id) if owner_id is not None else None
        if wall is None:
            raise ApiCallError(100, "owner_id is invalid")
        return wall

    def _resolve_domain(self, domain: str) -> int | None:
        group = self._find_group(domain)
        if group is not None:
            return -group.id
        if domain.startswith("id") and domain[2:].isdigit():
            return int(domain[2:])
        return None

    def _wall_get(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._require(auth, "service", "user")
        wall = self._wall_of(params)
        offset = max(0, _int(params, "offset", default=0))
        count = min(100, max(0, _int(params, "count", default=20)))
        posts = sorted(wall.posts.values(), key=lambda p: p.id, reverse=True)
        page = posts[offset : offset + count]
        result: JsonDict = {"count": len(posts), "items": [self._post_object(p) for p in page]}
        if _int(params, "extended", default=0):
            result.update(self._extended(p.from_id for p in page))
        return result

    def _wall_get_comments(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._require(auth, "service", "user")
        wall = self._wall_of(params)
        post_id = _int(params, "post_id")
        post = wall.posts.get(post_id)
        if post is None:
            raise ApiCallError(100, "post_id is invalid")
        offset = max(0, _int(params, "offset", default=0))
        count = min(100, max(0, _int(params, "count", default=10)))
        thread_items_count = min(10, max(0, _int(params, "thread_items_count", default=0)))
        descending = params.get("sort", "asc") == "desc"
        total = self._visible_comment_count(post)
        if "comment_id" in params:
            root = self._comments.get((wall.owner_id, _int(params, "comment_id")))
            if root is None or root.kind != "wall" or root.container_id != post_id:
                raise ApiCallError(100, "comment_id is invalid")
            level = self._visible_replies(root)
            thread_items_count = 0
        else:
            roots = [self._comments[(wall.owner_id, cid)] for cid in post.comment_ids]
            # A deleted comment with live replies stays as a placeholder, as on vk.com.
            level = [r for r in roots if not r.deleted or self._visible_replies(r)]
        if "start_comment_id" in params:
            start = _int(params, "start_comment_id")
            level = [c for c in level if c.id >= start]
        if descending:
            level = list(reversed(level))
        page = level[offset : offset + count]
        items = [self._comment_object(c, thread_items_count) for c in page]
        result: JsonDict = {
            "count": total,
            "items": items,
            "current_level_count": len(level),
            "can_post": True,
            "show_reply_button": True,
            "groups_can_post": True,
        }
        if _int(params, "extended", default=0):
            authors = [c.from_id for c in page]
            authors += [i["from_id"] for c in items for i in c.get("thread", {}).get("items", [])]
            result.update(self._extended(authors))
        return result

    def _wall_get_comment(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._require(auth, "service", "user")
        wall = self._wall_of(params)
        comment = self._comments.get((wall.owner_id, _int(params, "comment_id")))
        if comment is None or comment.kind != "wall" or comment.deleted:
            raise ApiCallError(100, "comment_id is invalid")
        result: JsonDict = {
            "items": [self._comment_object(comment)],
            "can_post": True,
            "show_reply_button": True,
            "groups_can_post": True,
        }
        if _int(params, "extended", default=0):
            result.update(self._extended([comment.from_id]))
        return result

    def _wall_create_comment(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._require(auth, "group", "user")
        wall = self._wall_of(params)
        post_id = _int(params, "post_id")
        if post_id not in wall.posts:
            raise ApiCallError(100, "post_id is invalid")
        text = params.get("message", "")
        if not text and not params.get("attachments") and not params.get("sticker_id"):
            raise ApiCallError(100, "message is undefined")
        if auth.kind == "group":
            if wall.owner_id != -(auth.group_id or 0):
                raise ApiCallError(15, "community token may comment only on its own wall")
            from_id = wall.owner_id
        elif params.get("from_group"):
            # A staff user posting as the community they manage.
            from_id = -abs(_int(params, "from_group"))
        else:
            from_id = auth.user_id or 0
        reply_to = _int(params, "reply_to_comment") if "reply_to_comment" in params else None
        if reply_to is not None:
            parent = self._comments.get((wall.owner_id, reply_to))
            if parent is None or parent.kind != "wall" or parent.container_id != post_id:
                raise ApiCallError(100, "reply_to_comment is invalid")
        comment = self._new_comment(
            "wall", wall.owner_id, post_id, from_id, text, None, reply_to, None, None
        )
        if not comment.parents_stack:
            wall.posts[post_id].comment_ids.append(comment.id)
        self._emit_comment_event(comment, "new")
        result = {"comment_id": comment.id, "parents_stack": list(comment.parents_stack)}
        self.sent.append(SentRecord("wall.createComment", dict(params), result, self.now()))
        return result

    # --- messages

    def _messages_send(self, auth: _Auth, params: dict[str, str]) -> Any:
        self._require(auth, "group")
        group = self._auth_group(auth, {})
        if "random_id" not in params:
            raise ApiCallError(100, "random_id is a required parameter")
        random_id = _int(params, "random_id")
        if "peer_id" in params:
            peer_id = _int(params, "peer_id")
        elif "user_id" in params:
            peer_id = _int(params, "user_id")
        else:
            raise ApiCallError(100, "peer_id is undefined")
        if peer_id not in group.messages_allowed:
            raise ApiCallError(901)
        if random_id:
            # VK drops a repeat of the same random_id to the same peer and returns the first id.
            for message in group.conversations.get(peer_id, []):
                if message.out and message.random_id == random_id:
                    return message.id
        text = params.get("message", "")
        if not text and not params.get("attachment") and not params.get("sticker_id"):
            raise ApiCallError(100, "message is empty or invalid")
        reply_to = _int(params, "reply_to") if "reply_to" in params else None
        message = self._store_message(
            group,
            peer_id=peer_id,
            from_id=-group.id,
            text=text,
            date=self._unix(None),
            out=True,
            reply_to=reply_to,
            random_id=random_id,
        )
        self._emit_message_event(group, message)
        self.sent.append(SentRecord("messages.send", dict(params), message.id, self.now()))
        return message.id

    def _messages_get_conversations(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._require(auth, "group")
        group = self._auth_group(auth, {})
        offset = max(0, _int(params, "offset", default=0))
        count = min(200, max(0, _int(params, "count", default=20)))
        dialogues = sorted(
            (msgs for msgs in group.conversations.values() if msgs),
            key=lambda msgs: msgs[-1].id,
            reverse=True,
        )
        items = []
        for msgs in dialogues[offset : offset + count]:
            last = msgs[-1]
            last_in = max((m.id for m in msgs if not m.out), default=0)
            last_out = max((m.id for m in msgs if m.out), default=0)
            peer_type = "chat" if last.peer_id >= CHAT_PEER_START else "user"
            items.append(
                {
                    "conversation": {
                        "peer": {"id": last.peer_id, "type": peer_type, "local_id": last.peer_id},
                        "last_message_id": last.id,
                        "last_conversation_message_id": last.conversation_message_id,
                        "in_read": last_in,
                        "out_read": last_out,
                        "is_marked_unread": False,
                        "important": False,
                        "can_write": {"allowed": last.peer_id in group.messages_allowed},
                    },
                    "last_message": self._message_object(group, last),
                }
            )
        result: JsonDict = {"count": len(dialogues), "items": items}
        if _int(params, "extended", default=0):
            result.update(self._extended(i["conversation"]["peer"]["id"] for i in items))
        return result

    def _messages_get_history(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._require(auth, "group")
        group = self._auth_group(auth, {})
        if "peer_id" in params:
            peer_id = _int(params, "peer_id")
        elif "user_id" in params:
            peer_id = _int(params, "user_id")
        else:
            raise ApiCallError(100, "peer_id is undefined")
        offset = max(0, _int(params, "offset", default=0))
        count = min(200, max(0, _int(params, "count", default=20)))
        messages = list(group.conversations.get(peer_id, []))
        if not _int(params, "rev", default=0):
            messages.reverse()
        page = messages[offset : offset + count]
        result: JsonDict = {
            "count": len(messages),
            "items": [self._message_object(group, m) for m in page],
        }
        if _int(params, "extended", default=0):
            result.update(self._extended(m.from_id for m in page))
        return result

    # --- board, users, utils

    def _board_get_comments(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._require(auth, "service", "user")
        group = self._groups.get(abs(_int(params, "group_id")))
        if group is None:
            raise ApiCallError(100, "group_id is invalid")
        topic_id = _int(params, "topic_id")
        if topic_id not in group.topics:
            raise ApiCallError(100, "topic_id is invalid")
        offset = max(0, _int(params, "offset", default=0))
        count = min(100, max(0, _int(params, "count", default=20)))
        comments = [self._comments[(-group.id, cid)] for cid in group.topics[topic_id]]
        comments = [c for c in comments if not c.deleted]
        if "start_comment_id" in params:
            start = _int(params, "start_comment_id")
            comments = [c for c in comments if c.id >= start]
        if params.get("sort") == "desc":
            comments.reverse()
        page = comments[offset : offset + count]
        items = [
            {
                "id": c.id,
                "from_id": c.from_id,
                "date": c.date,
                "text": c.text,
                "likes": {"count": 0, "user_likes": 0, "can_like": 1},
            }
            for c in page
        ]
        result: JsonDict = {"count": len(comments), "items": items}
        if _int(params, "extended", default=0):
            result.update(self._extended(c.from_id for c in page))
        return result

    def _users_get(self, auth: _Auth, params: dict[str, str]) -> list[JsonDict]:
        raw = params.get("user_ids") or params.get("user_id") or ""
        names = [part.strip() for part in raw.split(",") if part.strip()]
        if not names and auth.kind == "user" and auth.user_id is not None:
            names = [str(auth.user_id)]
        users = []
        for name in names:
            if name.startswith("id") and name[2:].isdigit():
                name = name[2:]
            if not name.isdigit():
                raise ApiCallError(113)
            users.append(self._user_object(int(name)))
        return users

    def _utils_get_server_time(self, auth: _Auth, params: dict[str, str]) -> int:
        return self._unix(None)

    # ------------------------------------------------------------------ HTTP: long poll

    async def _handle_long_poll(self, request: web.Request) -> web.Response:
        return web.json_response(await self._long_poll(request))

    async def _long_poll(self, request: web.Request) -> JsonDict:
        query = request.query
        try:
            group_id = int(request.match_info["group_id"])
        except ValueError:
            return {"failed": 3}
        with self._lock:
            group = self._groups.get(group_id)
            if group is None or not group.longpoll_enabled:
                return {"failed": 3}
            if query.get("act") != "a_check":
                return {"failed": 3}
            if group.forced_poll_failures:
                code = group.forced_poll_failures.popleft()
                if code == 1:
                    return {"failed": 1, "ts": str(group.next_ts)}
                # The key really is gone: a retry with it must fail too.
                group.key = secrets.token_hex(20)
                return {"failed": code}
        try:
            wait = min(MAX_LONG_POLL_WAIT_S, max(0, int(query.get("wait", "25"))))
        except ValueError:
            wait = 25
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            with self._lock:
                if query.get("key") != group.key:
                    return {"failed": 2}
                try:
                    ts = int(query.get("ts", ""))
                except ValueError:
                    return {"failed": 1, "ts": str(group.next_ts)}
                oldest = group.events[0][0] if group.events else group.next_ts
                if ts < oldest or ts > group.next_ts:
                    return {"failed": 1, "ts": str(group.next_ts)}
                updates = [event for number, event in group.events if number >= ts]
                wakeup = group.wakeup
                next_ts = group.next_ts
            remaining = deadline - loop.time()
            if updates or self._closing or remaining <= 0:
                return {"ts": str(next_ts), "updates": updates}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), remaining)

    # ------------------------------------------------------------------ HTTP: control

    _CONTROL_ACTIONS = frozenset(
        {
            "add_group",
            "add_service_token",
            "add_user_token",
            "revoke_token",
            "add_user",
            "add_wall",
            "add_post",
            "add_comment",
            "add_photo_comment",
            "add_video_comment",
            "add_market_comment",
            "add_board_comment",
            "edit_comment",
            "delete_comment",
            "restore_comment",
            "comment_object",
            "send_community_message",
            "edit_message",
            "allow_messages",
            "emit_raw",
            "fail_next",
            "fail_next_poll",
            "expire_key",
            "set_longpoll",
            "pending_events",
            "messages",
            "set_callback",
            "redeliver",
        }
    )

    async def _handle_control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action == "sent":
            return web.json_response([_record_json(r) for r in self.sent])
        if action == "calls":
            return web.json_response([_record_json(c) for c in self.calls])
        if action == "deliveries":
            return web.json_response([_record_json(d) for d in self.deliveries])
        if action not in self._CONTROL_ACTIONS:
            return web.json_response(
                {"ok": False, "error": f"unknown action {action!r}"}, status=404
            )
        kwargs: JsonDict = {}
        if request.method == "POST" and request.can_read_body:
            kwargs = await request.json()
        else:
            kwargs = {k: _json_scalar(v) for k, v in request.query.items()}
        if "object" in kwargs and action == "emit_raw":
            kwargs["obj"] = kwargs.pop("object")
        if "date" in kwargs and kwargs["date"] is not None:
            kwargs["date"] = _parse_date(kwargs["date"])
        try:
            result = getattr(self, action)(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except (SandboxError, TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, "result": result})


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
