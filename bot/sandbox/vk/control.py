"""VK sandbox control: what tests and the demo do to the VK world, in Python or JSON."""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.sandbox.vk.api import VkApi
from bot.sandbox.vk.model import (
    COMMUNITY_SCOPES,
    JsonDict,
    SandboxError,
    _Auth,
    _Group,
    _json_scalar,
    _parse_date,
    _Post,
    _record_json,
    _Wall,
)

logger = logging.getLogger(__name__)


class VkControl(VkApi):
    """Citizens comment and write, staff answer, failures are planned (also under /_sandbox/)."""

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
        scopes: Iterable[str] | None = None,
    ) -> None:
        """Register a community (with its wall) and, if given, its community token.

        `scopes`: the token's rights (COMMUNITY_SCOPES names); default manage, messages, photos,
        docs.
        """
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
            if scopes is not None:
                unknown = set(scopes) - set(COMMUNITY_SCOPES)
                if unknown:
                    raise SandboxError(f"unknown community token scopes: {sorted(unknown)}")
                self._groups[group_id].token_scopes = tuple(scopes)
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
        attachments: list[JsonDict] | None = None,
        comments_open: bool = True,
        pinned: bool = False,
    ) -> int:
        """Publish a post on a wall; returns post_id (emits wall_post_new for communities).

        `attachments`: VK attachment objects, e.g. `[{"type": "video", "video": {...}}]`
        (`attachment("video")` and friends in bot/sandbox/vk/health.py build them).
        `pinned`: the wall's pinned post (wall.get lists it first, `is_pinned: 1`).
        """
        with self._lock:
            wall = self._walls.setdefault(owner_id, _Wall(owner_id))
            post = _Post(
                owner_id=owner_id,
                id=self._new_object_id(owner_id),
                from_id=owner_id if from_id is None else from_id,
                date=self._unix(date),
                text=text,
                attachments=list(attachments or []),
                comments_open=comments_open,
                pinned=pinned,
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
            self._failures.plan(method, code, times, when=when)

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
