"""The normalised events every source is translated into (docs/ARCHITECTURE.md).

Handlers build these from Telegram or VK updates; `bot.services.ingest` consumes them and never
learns which platform they came from beyond the `platform` label stored with the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from operator import attrgetter
from typing import Any, TypeVar

_Record = TypeVar("_Record")


class Platform(StrEnum):
    TELEGRAM = "telegram"
    VK = "vk"


class PageKind(StrEnum):
    """What kind of official page a conversation belongs to."""

    TG_CHANNEL = "tg_channel"  # a channel; its comments live in the linked discussion group
    TG_GROUP = "tg_group"  # a group with no linked channel, monitored on its own
    TG_BOT = "tg_bot"  # private messages to the page's feedback bot
    TG_BUSINESS = "tg_business"  # an official's personal account via Telegram Business
    VK_GROUP = "vk_group"  # a VK community (wall, boards, messages)
    VK_WALL = "vk_wall"  # a public wall polled with a service token (a governor's page)


class ThreadKind(StrEnum):
    COMMENTS = "comments"  # comments under one post
    CONVERSATION = "conversation"  # one private conversation (bot, business, community messages)
    BOARD = "board"  # one VK board topic


class AuthorRole(StrEnum):
    """Who wrote a message, as far as the platform tells; staff is decided by the service."""

    PERSON = "person"  # a user account: a citizen unless registered as staff
    PAGE = "page"  # the page itself (channel, anonymous group admin, community, wall owner)
    OPERATOR = "operator"  # a press officer answering through the bot's relay


class Deleter(StrEnum):
    CITIZEN = "citizen"
    PAGE = "page"
    UNKNOWN = "unknown"


def pickled_by_fields(cls: type[_Record]) -> type[_Record]:
    """Pickle a frozen slots dataclass as a call of its constructor with its fields.

    What dataclasses gives such a class (`__getstate__`/`__setstate__` that look the fields up
    on every call) costs ~4 µs an object each way; an intake job holds five of them and crosses
    to the writer process and back (storage/writer.py). Every field must be an init field.
    """
    names = tuple(item.name for item in fields(cls))  # type: ignore[arg-type]
    assert all(item.init for item in fields(cls)), cls  # type: ignore[arg-type]
    values: Callable[[Any], Any] = attrgetter(*names)
    single = len(names) == 1

    def __reduce__(self: Any) -> tuple[type[Any], tuple[Any, ...]]:
        found = values(self)
        return cls, (found,) if single else found

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls


def _check_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PageRef:
    """Identifies an official page; `external_id` is the platform's id as text."""

    platform: Platform
    external_id: str
    kind: PageKind
    title: str | None = None
    username: str | None = None  # for links: channel username or VK screen name
    linked_chat_id: str | None = None  # Telegram: the discussion group of a channel


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ThreadRef:
    external_id: str  # unique within the page: "post:123", "chat:456", "topic:7"
    kind: ThreadKind
    title: str | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A new message in a monitored conversation, citizen's or official."""

    page: PageRef
    thread: ThreadRef
    message_id: str  # unique within the page
    sent_at: datetime  # the platform's own date, aware
    author_role: AuthorRole
    author_id: str | None = None
    author_name: str | None = None
    text: str = ""
    content_kind: str = "text"  # text, photo, voice, video, sticker, document, ...
    reply_to_id: str | None = None  # message id (same page) this one replies to
    link: str | None = None  # a URL a press officer can open
    # Conversation threads: an official message answers every unanswered appeal before it.
    answers_conversation: bool = False

    def __post_init__(self) -> None:
        _check_aware(self.sent_at, "sent_at")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class EditEvent:
    page: PageRef
    message_id: str
    text: str
    edited_at: datetime

    def __post_init__(self) -> None:
        _check_aware(self.edited_at, "edited_at")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class DeleteEvent:
    page: PageRef
    message_id: str
    deleted_at: datetime
    deleted_by: Deleter = Deleter.UNKNOWN
    deleter_id: str | None = None

    def __post_init__(self) -> None:
        _check_aware(self.deleted_at, "deleted_at")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RestoreEvent:
    page: PageRef
    message_id: str


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ReactionEvent:
    """A user's reactions to a message changed (Telegram `message_reaction`)."""

    page: PageRef
    message_id: str
    user_id: str | None
    reacted_at: datetime
    added: tuple[str, ...] = field(default_factory=tuple)
    removed: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        _check_aware(self.reacted_at, "reacted_at")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RatingEvent:
    """A citizen rated the official answer to their appeal (👍 = 1, 👎 = 0)."""

    page: PageRef
    reply_message_id: str
    user_id: str | None
    positive: bool
    rated_at: datetime

    def __post_init__(self) -> None:
        _check_aware(self.rated_at, "rated_at")


class PostKind(StrEnum):
    """What a page's own publication carries (page health: the share of video)."""

    VIDEO = "video"
    CLIP = "clip"  # short vertical video: VK clips, Telegram video notes
    PHOTO = "photo"
    TEXT = "text"  # text only
    POLL = "poll"
    REPOST = "repost"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PostEvent:
    """A page's own publication, new or edited (Telegram channel post, VK wall post)."""

    page: PageRef
    post_id: str  # unique within the page
    published_at: datetime  # the platform's own date, aware
    kind: PostKind
    text_length: int = 0
    link: str | None = None
    comments_open: bool | None = None  # None: the platform did not say
    edited_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_aware(self.published_at, "published_at")
        if self.edited_at is not None:
            _check_aware(self.edited_at, "edited_at")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PostCountersEvent:
    """What a platform said about a post's counters at `observed_at`; None: it did not say.

    `gone`: the post is no longer there (deleted); `note`: why some counters are unknown.
    """

    page: PageRef
    post_id: str
    observed_at: datetime
    views: int | None = None
    likes: int | None = None  # likes, or the sum of Telegram's reactions
    reposts: int | None = None
    comments: int | None = None
    gone: bool = False
    note: str | None = None

    def __post_init__(self) -> None:
        _check_aware(self.observed_at, "observed_at")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class SubscribersEvent:
    """A page's subscriber count at `observed_at` (None with a `note`: it could not be read)."""

    page: PageRef
    observed_at: datetime
    subscribers: int | None
    note: str | None = None

    def __post_init__(self) -> None:
        _check_aware(self.observed_at, "observed_at")


Event = (
    MessageEvent
    | EditEvent
    | DeleteEvent
    | RestoreEvent
    | ReactionEvent
    | RatingEvent
    | PostEvent
    | PostCountersEvent
    | SubscribersEvent
)
