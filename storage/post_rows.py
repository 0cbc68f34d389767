"""Plain-SQL writes of page health rows for the intake's hot path (storage.repositories.Db)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.buckets import day_number
from storage.health_models import COUNTER_MARKS_H, PageSnapshot, Post, PostCounter
from storage.repositories import Db, as_utc, insert_row

COUNTERS = ("views", "likes", "reposts", "comments")


def post_row(db: Db, page_id: int, external_id: str) -> dict[str, Any] | None:
    """The stored post as a dict of its columns, or None."""
    row = db.row(
        "SELECT id, published_at, views, likes, reposts, comments, deleted_at, kind, text_length "
        "FROM post "
        "WHERE page_id = :page AND external_id = :ext",
        {"page": page_id, "ext": external_id},
    )
    if row is None:
        return None
    keys = ("id", "published_at", *COUNTERS, "deleted_at", "kind", "text_length")
    found = dict(zip(keys, row, strict=True))
    found["published_at"] = as_utc(found["published_at"])
    found["deleted_at"] = as_utc(found["deleted_at"])
    return found


def insert_post(db: Db, values: dict[str, Any]) -> int | None:
    """A new post; None if another writer stored it first."""
    return insert_row(db, Post, values, conflict="(page_id, external_id)")


def update_post(db: Db, post_id: int, values: dict[str, Any]) -> None:
    db.update(Post, post_id, values)


def taken_marks(db: Db, post_id: int) -> set[int]:
    rows = db.rows("SELECT mark_h FROM post_counter WHERE post_id = :post", {"post": post_id})
    return {int(row[0]) for row in rows}


def take_marks(
    db: Db,
    post_id: int,
    published_at: datetime,
    observed_at: datetime,
    counters: dict[str, int | None],
    note: str | None,
) -> list[int]:
    """Keep `counters` for every mark reached by `observed_at` and not kept yet."""
    hours = (observed_at - published_at).total_seconds() / 3600
    due = [mark for mark in COUNTER_MARKS_H if hours >= mark]
    if not due:
        return []
    taken = taken_marks(db, post_id)
    kept = []
    for mark in due:
        if mark in taken:
            continue
        values = {"post_id": post_id, "mark_h": mark, "taken_at": observed_at, "note": note}
        values.update(counters)
        insert_row(db, PostCounter, values, conflict="(post_id, mark_h)")
        kept.append(mark)
    return kept


def record_subscribers(
    db: Db, page_id: int, observed_at: datetime, subscribers: int | None, note: str | None
) -> None:
    """The day's reading: a later one replaces it, but an unknown never replaces a known one."""
    day = day_number(observed_at)
    found = db.row(
        "SELECT id, subscribers, taken_at FROM page_snapshot WHERE page_id = :page AND day = :day",
        {"page": page_id, "day": day},
    )
    values: dict[str, Any] = {"taken_at": observed_at, "subscribers": subscribers, "note": note}
    if found is None:
        inserted = insert_row(
            db, PageSnapshot, {"page_id": page_id, "day": day, **values}, conflict="(page_id, day)"
        )
        if inserted is not None:
            return
        found = db.row(
            "SELECT id, subscribers, taken_at FROM page_snapshot "
            "WHERE page_id = :page AND day = :day",
            {"page": page_id, "day": day},
        )
        assert found is not None
    snapshot_id, known, taken_at = found
    taken = as_utc(taken_at)
    if subscribers is None and known is not None:
        return
    if taken is not None and observed_at < taken and known is not None:
        return
    db.update(PageSnapshot, int(snapshot_id), values)
