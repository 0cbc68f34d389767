"""VK objects (Bots Long Poll events, wall.getComments items) → normalised events.

Pure functions: no network, no database. The intake, gap fill, wall polling and backfill all go
through here, so a comment gets the same page, thread and message id whichever way it came.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.events import (
    AuthorRole,
    DeleteEvent,
    Deleter,
    EditEvent,
    Event,
    MessageEvent,
    RestoreEvent,
    ThreadKind,
    ThreadRef,
)
from handlers.vk.page import TranslationError, VkPage, from_unix
from handlers.vk.posts import post_event

JsonDict = dict[str, Any]

# Comment-like objects: the field naming the container and the field naming its owner.
_CONTAINERS: dict[str, tuple[str, str]] = {
    "wall_reply": ("post_id", "owner_id"),
    "photo_comment": ("photo_id", "photo_owner_id"),
    "video_comment": ("video_id", "video_owner_id"),
    "market_comment": ("item_id", "market_owner_id"),
    "board_post": ("topic_id", "topic_owner_id"),
}
# Message-id prefix and thread-id prefix of each comment kind.
_KIND_NAMES: dict[str, tuple[str, str]] = {
    "wall_reply": ("wall", "post"),
    "photo_comment": ("photo", "photo"),
    "video_comment": ("video", "video"),
    "market_comment": ("market", "market"),
    "board_post": ("board", "topic"),
}

# Every event type the intake interprets; the setup guide lists exactly these.
HANDLED_EVENT_TYPES: tuple[str, ...] = (
    *(
        f"{prefix}_{action}"
        for prefix in _CONTAINERS
        for action in ("new", "edit", "restore", "delete")
    ),
    "message_new",
    "message_reply",
    "message_edit",
    "wall_post_new",  # the page's own posts (page health)
)

CHAT_PEER_START = 2_000_000_000
# A board reply names the post it answers as "[post123|Name], ...".
_BOARD_MENTION = re.compile(r"\[post(\d+)\|")


def _int(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        raise TranslationError(f"missing field {name!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TranslationError(f"field {name!r} is not a number: {value!r}") from None


def _opt_int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def comment_message_id(prefix: str, owner_id: int, container_id: int, comment_id: int) -> str:
    """The message id of a comment, unique within its page."""
    if prefix == "board":
        return f"board{container_id}_{comment_id}"
    return f"{prefix}{owner_id}_{comment_id}"


def _content_kind(obj: Mapping[str, Any]) -> str:
    if obj.get("text"):
        return "text"
    attachments = obj.get("attachments") or []
    if attachments and isinstance(attachments[0], Mapping):
        return str(attachments[0].get("type") or "attachment")
    return "text"


def _comment_link(kind: str, owner_id: int, container_id: int, obj: Mapping[str, Any]) -> str:
    comment_id = obj.get("id")
    if kind == "wall_reply":
        link = f"https://vk.com/wall{owner_id}_{container_id}?reply={comment_id}"
        stack = obj.get("parents_stack") or []
        if stack:
            link += f"&thread={stack[0]}"
        return link
    if kind == "photo_comment":
        return f"https://vk.com/photo{owner_id}_{container_id}"
    if kind == "video_comment":
        return f"https://vk.com/video{owner_id}_{container_id}"
    if kind == "market_comment":
        return f"https://vk.com/market{owner_id}?w=product{owner_id}_{container_id}"
    return f"https://vk.com/topic{owner_id}_{container_id}?post={comment_id}"


def _author_role(page: VkPage, from_id: int) -> AuthorRole:
    # The page itself: the community (-group_id) or the wall owner; staff is the service's call.
    return AuthorRole.PAGE if from_id == page.owner_id else AuthorRole.PERSON


def comment_event(
    kind: str,
    obj: Mapping[str, Any],
    page: VkPage,
    names: Mapping[int, str] | None = None,
) -> MessageEvent:
    """A new comment (long poll object or wall.getComments item) as a MessageEvent."""
    container_field, owner_field = _CONTAINERS[kind]
    prefix, thread_prefix = _KIND_NAMES[kind]
    comment_id = _int(obj, "id")
    from_id = _int(obj, "from_id")
    container_id = _int(obj, container_field)
    owner_id = _opt_int(obj, owner_field)
    if owner_id is None:
        owner_id = page.owner_id
    sent_at = from_unix(obj.get("date"))
    text = str(obj.get("text") or "")
    reply_to_id: str | None = None
    answers_conversation = False
    role = _author_role(page, from_id)
    if kind == "board_post":
        mention = _BOARD_MENTION.search(text)
        if mention is not None:
            reply_to_id = comment_message_id(prefix, owner_id, container_id, int(mention.group(1)))
        elif role is AuthorRole.PAGE:
            # A topic is one linear conversation: the page's post answers what came before it.
            answers_conversation = True
    else:
        reply_to = _opt_int(obj, "reply_to_comment")
        if reply_to is None:
            stack = obj.get("parents_stack") or []
            if isinstance(stack, list) and stack:
                reply_to = _opt_int({"top": stack[-1]}, "top")
        if reply_to is not None:
            reply_to_id = comment_message_id(prefix, owner_id, container_id, reply_to)
    thread_kind = ThreadKind.BOARD if kind == "board_post" else ThreadKind.COMMENTS
    return MessageEvent(
        page=page.ref,
        thread=ThreadRef(f"{thread_prefix}:{container_id}", thread_kind),
        message_id=comment_message_id(prefix, owner_id, container_id, comment_id),
        sent_at=sent_at,
        author_role=role,
        author_id=str(from_id),
        author_name=(names or {}).get(from_id),
        text=text,
        content_kind=_content_kind(obj),
        reply_to_id=reply_to_id,
        link=_comment_link(kind, owner_id, container_id, obj),
        answers_conversation=answers_conversation,
    )


def _message_id(message: Mapping[str, Any]) -> str:
    peer_id = _int(message, "peer_id")
    # conversation_message_id is set in every dialogue (id is 0 in group chats).
    local_id = _opt_int(message, "conversation_message_id") or _int(message, "id")
    return f"msg{peer_id}_{local_id}"


def dialogue_event(message: Mapping[str, Any], page: VkPage) -> MessageEvent:
    """A community dialogue message (message_new, message_reply, messages.getHistory item)."""
    peer_id = _int(message, "peer_id")
    from_id = _int(message, "from_id")
    outgoing = bool(_opt_int(message, "out")) or from_id == page.owner_id
    reply_to_id = None
    replied = message.get("reply_message")
    if isinstance(replied, Mapping) and replied.get("peer_id") is not None:
        try:
            reply_to_id = _message_id(replied)
        except TranslationError:
            reply_to_id = None
    admin = _opt_int(message, "admin_author_id")
    return MessageEvent(
        page=page.ref,
        thread=ThreadRef(f"chat:{peer_id}", ThreadKind.CONVERSATION),
        message_id=_message_id(message),
        sent_at=from_unix(message.get("date")),
        author_role=AuthorRole.PAGE if outgoing else AuthorRole.PERSON,
        author_id=str(admin if outgoing and admin else from_id),
        text=str(message.get("text") or ""),
        content_kind=_content_kind(message),
        reply_to_id=reply_to_id,
        link=f"https://vk.com/gim{-page.owner_id}?sel={peer_id}",
        # The community's next outgoing message answers the citizen's messages before it.
        answers_conversation=outgoing,
    )


def translate(event: Mapping[str, Any], page: VkPage, now: datetime) -> list[Event] | None:
    """Normalised events for one Bots Long Poll event; None for a type we do not interpret.

    `now` stands in for times VK does not send (edits and deletions carry no date).
    """
    event_type = event.get("type")
    obj = event.get("object")
    if not isinstance(event_type, str):
        raise TranslationError("event without a type")
    if event_type not in HANDLED_EVENT_TYPES:
        return None
    if not isinstance(obj, Mapping):
        raise TranslationError(f"{event_type} without an object")
    if event_type == "wall_post_new":
        post = post_event(obj, page)
        return [post] if post is not None else []
    if event_type == "message_new":
        message = obj.get("message")
        if not isinstance(message, Mapping):
            # Long Poll API versions before 5.103 sent the message itself.
            message = obj
        return [dialogue_event(message, page)]
    if event_type == "message_reply":
        return [dialogue_event(obj, page)]
    if event_type == "message_edit":
        edited = obj.get("update_time")
        return [
            EditEvent(
                page.ref,
                _message_id(obj),
                str(obj.get("text") or ""),
                from_unix(edited) if edited else now,
            )
        ]
    kind, _, action = event_type.rpartition("_")
    if action == "new":
        return [comment_event(kind, obj, page)]
    container_field, owner_field = _CONTAINERS[kind]
    prefix = _KIND_NAMES[kind][0]
    owner_id = _opt_int(obj, owner_field)
    message_id = comment_message_id(
        prefix,
        owner_id if owner_id is not None else page.owner_id,
        _int(obj, container_field),
        _int(obj, "id"),
    )
    if action == "edit":
        return [EditEvent(page.ref, message_id, str(obj.get("text") or ""), now)]
    if action == "restore":
        return [RestoreEvent(page.ref, message_id)]
    # dev.vk.com calls the deleter `deleter_id`, the JSON schema `user_id`: read both.
    deleter = _opt_int(obj, "deleter_id")
    if deleter is None:
        deleter = _opt_int(obj, "user_id")
    deleted_by = (
        Deleter.PAGE if deleter is not None and deleter == page.owner_id else Deleter.UNKNOWN
    )
    return [
        DeleteEvent(
            page.ref,
            message_id,
            now,
            deleted_by=deleted_by,
            deleter_id=str(deleter) if deleter is not None else None,
        )
    ]


def author_names(response: Mapping[str, Any]) -> dict[int, str]:
    """`from_id → name` from an extended API response (profiles and groups)."""
    names: dict[int, str] = {}
    for profile in response.get("profiles") or []:
        if isinstance(profile, Mapping) and profile.get("id") is not None:
            first, last = profile.get("first_name") or "", profile.get("last_name") or ""
            names[int(profile["id"])] = f"{first} {last}".strip()
    for group in response.get("groups") or []:
        if isinstance(group, Mapping) and group.get("id") is not None:
            names[-int(group["id"])] = str(group.get("name") or "")
    return names
