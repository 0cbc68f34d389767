"""VK sandbox world: communities, walls, comments, dialogues and their API objects."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from bot.sandbox.failures import FailureSchedule
from bot.sandbox.vk.model import (
    _COMMENT_KINDS,
    CALLBACK_RETRIES,
    DEFAULT_HISTORY_LIMIT,
    CallbackDelivery,
    JsonDict,
    SandboxCall,
    SandboxError,
    SentRecord,
    _Auth,
    _Comment,
    _Group,
    _Message,
    _Post,
    _Wall,
    to_unix,
)

logger = logging.getLogger(__name__)


class VkWorld:
    """The sandbox's state; the layers above add events, the API methods and control."""

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
        self._failures: FailureSchedule[int] = FailureSchedule(exact_first=True)
        self._recent_calls: dict[str, deque[float]] = {}
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.base_url = ""

    def now(self) -> datetime:
        """The sandbox's clock."""
        return self._clock()

    # ------------------------------------------------------------------ state

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

    # ------------------------------------------------------------------ API objects

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
            "attachments": [dict(item) for item in post.attachments],
            "post_source": {"type": "api"},
            "comments": {
                "count": comments_count,
                "can_post": int(post.comments_open),
                "groups_can_post": True,
            },
            "likes": {"count": post.likes, "user_likes": 0, "can_like": 1, "can_publish": 1},
            "reposts": {"count": post.reposts, "user_reposted": 0},
            "views": {"count": post.views},
            "is_favorite": False,
            **({"is_pinned": 1} if post.pinned else {}),
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
            "members_count": group.members_count,
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
