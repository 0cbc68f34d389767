"""VK wall posts → page health events (pure: no network, no database).

`wall_post_new` (Long Poll and Callback API), `wall.get` and `wall.getById` items all go
through here, so a post gets the same id and kind whichever way it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.events import PostCountersEvent, PostEvent, PostKind
from handlers.vk.page import TranslationError, VkPage, from_unix

# Posts that are not (yet) the page's publications: suggested by readers, or scheduled.
NOT_PUBLISHED = frozenset({"suggest", "postpone"})


def post_kind(obj: Mapping[str, Any]) -> PostKind:
    """The kind of a wall post: a repost, else its strongest attachment (docs/METRICS.md)."""
    if obj.get("copy_history"):
        return PostKind.REPOST
    kinds: set[str] = set()
    for attachment in obj.get("attachments") or []:
        if not isinstance(attachment, Mapping):
            continue
        kind = attachment.get("type")
        if kind == "video":
            video = attachment.get("video")
            video_type = video.get("type") if isinstance(video, Mapping) else None
            kinds.add("clip" if video_type in ("short_video", "clip") else "video")
        elif isinstance(kind, str):
            kinds.add(kind)
    for name, post_kind_ in (
        ("clip", PostKind.CLIP),
        ("video", PostKind.VIDEO),
        ("poll", PostKind.POLL),
        ("photo", PostKind.PHOTO),
    ):
        if name in kinds:
            return post_kind_
    return PostKind.TEXT


def post_key(obj: Mapping[str, Any]) -> str:
    post_id = obj.get("id")
    if isinstance(post_id, bool) or not isinstance(post_id, int):
        raise TranslationError("wall post without an id")
    return str(post_id)


def post_event(obj: Mapping[str, Any], page: VkPage) -> PostEvent | None:
    """The post as a page-health event; None if it is not a publication of the page."""
    if obj.get("post_type") in NOT_PUBLISHED:
        return None
    post_id = post_key(obj)
    owner_id = obj.get("owner_id", page.owner_id)
    comments = obj.get("comments")
    comments_open = None
    if isinstance(comments, Mapping) and "can_post" in comments:
        comments_open = bool(comments.get("can_post"))
    edited = obj.get("edited")
    return PostEvent(
        page=page.ref,
        post_id=post_id,
        published_at=from_unix(obj.get("date")),
        kind=post_kind(obj),
        text_length=len(str(obj.get("text") or "")),
        link=f"https://vk.com/wall{owner_id}_{post_id}",
        comments_open=comments_open,
        edited_at=from_unix(edited) if isinstance(edited, int) and edited else None,
    )


def _count(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if isinstance(value, Mapping):
        value = value.get("count")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def counters_event(
    obj: Mapping[str, Any], page: VkPage, observed_at: datetime, note: str | None = None
) -> PostCountersEvent:
    """A wall.getById item's counters; a counter VK left out stays unknown."""
    views = _count(obj, "views")
    missing = [] if views is not None else ["VK не сообщил просмотры поста"]
    if note:
        missing.insert(0, note)
    return PostCountersEvent(
        page=page.ref,
        post_id=post_key(obj),
        observed_at=observed_at,
        views=views,
        likes=_count(obj, "likes"),
        reposts=_count(obj, "reposts"),
        comments=_count(obj, "comments"),
        note="; ".join(missing) or None,
    )
