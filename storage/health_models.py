"""The tables of page health (docs/METRICS.md sec. 7): posts, their counters, subscribers.

A post keeps the newest counters the platform gave (`views`, `likes`, … with `counters_at`);
`PostCounter` keeps them as they were at 24 h, 72 h and 7 days after publication — the first
observation at or after each mark — so that a figure never moves once its mark is taken.
`None` everywhere means "the platform did not say", never zero; the reason is in a `*_note`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.clock import utc_now
from storage.types import UTCDateTime

# Hours after publication at which a post's counters are kept (24 h, 72 h, 7 days).
COUNTER_MARKS_H = (24, 72, 168)


def _utc() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


class Post(SQLModel, table=True):
    """A page's own publication: a Telegram channel post or a VK wall post."""

    __tablename__ = "post"
    __table_args__ = (UniqueConstraint("page_id", "external_id", name="uq_post_page_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id", index=True)
    external_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # video, clip, photo, text, poll, repost
    text_length: int = 0
    published_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    link: str | None = Field(default=None, max_length=512)
    comments_open: bool | None = None
    edited_at: datetime | None = _utc()
    deleted_at: datetime | None = _utc()  # first seen gone
    views: int | None = None
    likes: int | None = None
    reposts: int | None = None
    comments: int | None = None
    counters_at: datetime | None = _utc()
    counters_note: str | None = Field(default=None, max_length=512)
    recorded_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class PostCounter(SQLModel, table=True):
    """A post's counters as they were `mark_h` hours after publication (first seen after it)."""

    __tablename__ = "post_counter"
    __table_args__ = (UniqueConstraint("post_id", "mark_h", name="uq_post_counter_mark"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    mark_h: int
    taken_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    views: int | None = None
    likes: int | None = None
    reposts: int | None = None
    comments: int | None = None
    note: str | None = Field(default=None, max_length=512)


class PageSnapshot(SQLModel, table=True):
    """A page's subscribers on one UTC day (the day's last reading; None with a note)."""

    __tablename__ = "page_snapshot"
    __table_args__ = (UniqueConstraint("page_id", "day", name="uq_page_snapshot_day"),)

    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id", index=True)
    day: int  # UTC day number (storage/buckets.day_number)
    taken_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    subscribers: int | None = None
    note: str | None = Field(default=None, max_length=512)
