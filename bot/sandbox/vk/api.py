"""VK sandbox API: the methods behind /method/<name>, answering as VK API 5.199 does."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from bot.sandbox.vk.model import (
    CHAT_PEER_START,
    COMMUNITY_SCOPES,
    LONG_POLL_EVENT_TYPES,
    ApiCallError,
    JsonDict,
    SandboxCall,
    SentRecord,
    TokenKind,
    _Auth,
    _auth_error,
    _Group,
    _int,
    _Wall,
)
from bot.sandbox.vk.updates import VkUpdates

logger = logging.getLogger(__name__)


class VkApi(VkUpdates):
    """Answer API calls: token kinds, planned failures, rate limit, one handler per method."""

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
        planned = self._failures.take(method, params)
        if planned is not None:
            raise ApiCallError(planned)
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
            "groups.getTokenPermissions": self._groups_get_token_permissions,
            "groups.getLongPollServer": self._groups_get_long_poll_server,
            "groups.getLongPollSettings": self._groups_get_long_poll_settings,
            "groups.setLongPollSettings": self._groups_set_long_poll_settings,
            "wall.get": self._wall_get,
            **self._health_methods(),
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

    def _health_methods(self) -> dict[str, Callable[[_Auth, dict[str, str]], Any]]:
        """Page-health methods (bot/sandbox/vk/health.py adds them)."""
        return {}

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

    def _groups_get_token_permissions(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        """The community token's rights: `mask` and `permissions` [{setting, name}], as VK."""
        group = self._auth_group(auth, params)
        permissions = [
            {"setting": COMMUNITY_SCOPES[name], "name": name} for name in group.token_scopes
        ]
        return {"mask": sum(p["setting"] for p in permissions), "permissions": permissions}

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
        # The pinned post first, then newest first (as VK lists a wall); deleted posts are gone.
        posts = sorted(
            (p for p in wall.posts.values() if not p.deleted),
            key=lambda p: (p.pinned, p.id),
            reverse=True,
        )
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
