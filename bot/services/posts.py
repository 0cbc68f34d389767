"""Page health on the one ingest path: a page's posts, their counters and its subscribers.

`IngestService` hands `PostEvent`, `PostCountersEvent` and `SubscribersEvent` here, in the
intake's transaction, whatever the source (Telegram channel posts and reaction counts, VK
`wall_post_new`, the scheduled counter refresh in bot/services/health_refresh.py). A counter
the platform did not give stays what it was — unknown (`None`) until someone gives it, never
zero; the counters at 24 h, 72 h and 7 days are the first reading at or after each mark.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.events import PostCountersEvent, PostEvent, PostKind, SubscribersEvent
from storage import post_rows
from storage import repositories as repo
from storage.repositories import Db

logger = logging.getLogger(__name__)

GONE_NOTE = "пост удалён"
VIDEO_KINDS = frozenset({PostKind.VIDEO, PostKind.CLIP, "video", "clip"})


def record_post(db: Db, event: PostEvent) -> tuple[int, bool]:
    """Store a new post or its edit; (page id, whether anything was written)."""
    page = repo.ensure_page_row(db, event.page)
    assert page.id is not None
    found = post_rows.post_row(db, page.id, event.post_id)
    values: dict[str, Any] = {
        "kind": event.kind.value,
        "text_length": max(event.text_length, 0),
        "link": event.link,
    }
    if event.comments_open is not None:
        values["comments_open"] = event.comments_open
    if found is None:
        values.update(
            page_id=page.id,
            external_id=event.post_id,
            published_at=event.published_at,
            edited_at=event.edited_at,
        )
        return page.id, post_rows.insert_post(db, values) is not None
    if event.edited_at is None:
        # The same post again (a redelivery, a refresh), or another part of an album: an
        # album with a video is a video post, and its caption may come with any part.
        grown: dict[str, Any] = {}
        if event.kind in VIDEO_KINDS and found["kind"] not in VIDEO_KINDS:
            grown["kind"] = event.kind.value
        if event.text_length > int(found["text_length"] or 0):
            grown["text_length"] = event.text_length
        if grown:
            post_rows.update_post(db, int(found["id"]), grown)
        return page.id, bool(grown)
    values["edited_at"] = event.edited_at
    post_rows.update_post(db, int(found["id"]), values)
    return page.id, True


def record_counters(db: Db, event: PostCountersEvent) -> tuple[int, bool]:
    """Merge what the platform said into the post; keep the marks it reached."""
    page = repo.ensure_page_row(db, event.page)
    assert page.id is not None
    found = post_rows.post_row(db, page.id, event.post_id)
    if found is None:
        # A count for a post published before Otklik watched the page: nothing to attach to.
        logger.debug("counters of unknown post %s of page %s skipped", event.post_id, page.id)
        return page.id, False
    post_id = int(found["id"])
    if event.gone:
        if found["deleted_at"] is None:
            post_rows.update_post(
                db,
                post_id,
                {"deleted_at": event.observed_at, "counters_note": event.note or GONE_NOTE},
            )
        return page.id, True
    given = {
        "views": event.views,
        "likes": event.likes,
        "reposts": event.reposts,
        "comments": event.comments,
    }
    merged = {name: value if value is not None else found[name] for name, value in given.items()}
    post_rows.update_post(
        db, post_id, {**merged, "counters_at": event.observed_at, "counters_note": event.note}
    )
    if any(value is not None for value in merged.values()):
        post_rows.take_marks(
            db, post_id, found["published_at"], event.observed_at, merged, event.note
        )
    return page.id, True


def record_subscribers(db: Db, event: SubscribersEvent) -> int:
    page = repo.ensure_page_row(db, event.page)
    assert page.id is not None
    post_rows.record_subscribers(db, page.id, event.observed_at, event.subscribers, event.note)
    return page.id
