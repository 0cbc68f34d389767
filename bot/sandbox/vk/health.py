"""VK sandbox, page health: member counts, post counters, deleted posts, `execute`, rights.

The layer above `control`: what the counter refresh (handlers/vk/health.py) calls —
`groups.getById` with `members_count` (at most 500 ids), `wall.getById` (at most 100 posts)
and `execute` (at most 25 calls in a restricted VKScript: `return [API.m({...}), ...];`) — and
what tests and the demo do to those figures. A nested call that fails answers `false` in its
place and is listed in `execute_errors`, as VK does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.vk.control import VkControl
from bot.sandbox.vk.model import ERROR_MESSAGES, ApiCallError, JsonDict, _Auth

MAX_GROUP_IDS = 500
MAX_POSTS_BY_ID = 100
MAX_EXECUTE_CALLS = 25
_CALL = re.compile(r"API\.([A-Za-z]+\.[A-Za-z]+)\(")


def attachment(kind: str, number: int = 1) -> JsonDict:
    """A VK attachment object of `kind`: photo, video, clip (a short video), poll, link."""
    if kind == "photo":
        return {"type": "photo", "photo": {"id": number, "owner_id": -1, "sizes": []}}
    if kind in ("video", "clip"):
        video: JsonDict = {"id": number, "owner_id": -1, "duration": 30 if kind == "clip" else 300}
        video["type"] = "short_video" if kind == "clip" else "video"
        return {"type": "video", "video": video}
    if kind == "poll":
        return {"type": "poll", "poll": {"id": number, "question": "Опрос", "answers": []}}
    return {"type": "link", "link": {"url": "https://example.org", "title": "Ссылка"}}


@dataclass
class ExecuteResult:
    """`execute`'s answer: the list and the errors of the nested calls."""

    response: list[Any]
    errors: list[JsonDict] = field(default_factory=list)


class VkHealth(VkControl):
    """Counters that change, posts that go away, tokens without a right."""

    _denied: dict[tuple[int, str], int]

    # ------------------------------------------------------------------ control

    def set_members_count(self, group_id: int, count: int) -> None:
        with self._lock:
            self._groups[group_id].members_count = count

    def set_post_counters(
        self,
        owner_id: int,
        post_id: int,
        *,
        views: int | None = None,
        likes: int | None = None,
        reposts: int | None = None,
    ) -> None:
        """Set a post's counters (the ones given); views only ever grow on VK."""
        with self._lock:
            post = self._walls[owner_id].posts[post_id]
            if views is not None:
                post.views = views
            if likes is not None:
                post.likes = likes
            if reposts is not None:
                post.reposts = reposts

    def wall_posts(self, owner_id: int) -> list[tuple[int, int, bool]]:
        """(post id, date, has a video or clip) of the wall's posts that are not deleted."""
        with self._lock:
            wall = self._walls.get(owner_id)
            posts = [] if wall is None else list(wall.posts.values())
            return [
                (post.id, post.date, any(a.get("type") == "video" for a in post.attachments))
                for post in posts
                if not post.deleted
            ]

    def delete_post(self, owner_id: int, post_id: int) -> None:
        """The page deleted the post: wall.get and wall.getById no longer show it."""
        with self._lock:
            self._walls[owner_id].posts[post_id].deleted = True

    def deny_method(self, token: str, method: str, code: int = 15) -> None:
        """Calls of `method` with `token` fail with `code` (15: a token without the right)."""
        with self._lock:
            if not hasattr(self, "_denied"):
                self._denied = {}
            self._denied[(id(self._tokens[token]), method)] = code

    # ------------------------------------------------------------------ API

    def dispatch(self, method: str, params: Mapping[str, str], token: str | None) -> JsonDict:
        answer = super().dispatch(method, params, token)
        result = answer.get("response")
        if isinstance(result, ExecuteResult):
            answer = {"response": result.response}
            if result.errors:
                answer["execute_errors"] = result.errors
        return answer

    def _health_methods(self) -> dict[str, Callable[[_Auth, dict[str, str]], Any]]:
        return {
            "groups.getById": self._groups_get_by_id_counted,
            "wall.getById": self._wall_get_by_id,
            "execute": self._execute,
        }

    def _check_denied(self, auth: _Auth, method: str) -> None:
        code = getattr(self, "_denied", {}).get((id(auth), method))
        if code is not None:
            raise ApiCallError(code)

    def _groups_get_by_id_counted(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._check_denied(auth, "groups.getById")
        raw = params.get("group_ids") or params.get("group_id") or ""
        if len([part for part in raw.split(",") if part.strip()]) > MAX_GROUP_IDS:
            raise ApiCallError(100, f"group_ids: at most {MAX_GROUP_IDS}")
        result = self._groups_get_by_id(auth, params)
        fields = {name.strip() for name in params.get("fields", "").split(",")}
        if "members_count" not in fields:
            for group in result["groups"]:
                group.pop("members_count", None)
        return result

    def _wall_get_by_id(self, auth: _Auth, params: dict[str, str]) -> JsonDict:
        self._require(auth, "service", "user")
        self._check_denied(auth, "wall.getById")
        names = [part.strip() for part in params.get("posts", "").split(",") if part.strip()]
        if not names:
            raise ApiCallError(100, "posts is undefined")
        if len(names) > MAX_POSTS_BY_ID:
            raise ApiCallError(100, f"posts: at most {MAX_POSTS_BY_ID}")
        items = []
        for name in names:
            owner, _, post_id = name.rpartition("_")
            try:
                wall = self._walls.get(int(owner))
                post = wall.posts.get(int(post_id)) if wall else None
            except ValueError:
                raise ApiCallError(100, f"posts: {name!r} is invalid") from None
            if post is not None and not post.deleted:
                items.append(self._post_object(post))
        return {"items": items}

    def _execute(self, auth: _Auth, params: dict[str, str]) -> ExecuteResult:
        calls = parse_execute(params.get("code", ""))
        if len(calls) > MAX_EXECUTE_CALLS:
            raise ApiCallError(13, "Too many API calls")
        methods = self._methods()
        result = ExecuteResult([])
        for method, call_params in calls:
            try:
                planned = self._failures.take(method, call_params)
                if planned is not None:
                    raise ApiCallError(planned)
                handler = methods.get(method)
                if handler is None or method == "execute":
                    raise ApiCallError(3, method)
                result.response.append(handler(auth, {"v": params.get("v", ""), **call_params}))
            except ApiCallError as error:
                result.response.append(False)
                result.errors.append(
                    {"method": method, "error_code": error.code, "error_msg": str(error)}
                )
        return result


def parse_execute(code: str) -> list[tuple[str, dict[str, str]]]:
    """The calls of `return [API.m({json}), ...];` — the only VKScript the sandbox speaks."""
    text = code.strip()
    if not (text.startswith("return") and text.endswith(";")):
        raise ApiCallError(12, "expected return [...];")
    calls = []
    decoder = json.JSONDecoder()
    position = 0
    while True:
        found = _CALL.search(text, position)
        if found is None:
            break
        try:
            arguments, end = decoder.raw_decode(text, found.end())
        except ValueError:
            raise ApiCallError(12, "arguments must be an object literal") from None
        if not isinstance(arguments, dict) or text[end : end + 1] != ")":
            raise ApiCallError(12, "arguments must be an object literal")
        calls.append((found.group(1), {key: str(value) for key, value in arguments.items()}))
        position = end + 1
    return calls


__all__ = ["ERROR_MESSAGES", "ExecuteResult", "VkHealth", "attachment", "parse_execute"]
