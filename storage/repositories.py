"""Queries the services use. Plain functions over one session; the caller commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import utc_now
from bot.events import PageRef, ThreadRef
from storage.buckets import derived_appeal_columns
from storage.db import Db, as_utc, insert_row, run_in_transaction
from storage.models import (
    OFFICIAL_ROLES,
    Appeal,
    IntakeCursor,
    Page,
    RawUpdate,
    Relay,
    Thread,
)
from storage.redaction import stored_text


async def ensure_page(session: AsyncSession, ref: PageRef) -> Page:
    """The page for `ref` (`ensure_page_row`), as an object of the session."""
    page_id = await run_in_transaction(session, lambda db: _page_id(ensure_page_row(db, ref)))
    page = await session.get(Page, page_id)
    assert page is not None
    return page


async def ensure_thread(session: AsyncSession, page_id: int, ref: ThreadRef) -> Thread:
    """The thread for `ref` (`ensure_thread_row`), as an object of the session."""
    thread_id = await run_in_transaction(session, lambda db: ensure_thread_row(db, page_id, ref))
    thread = await session.get(Thread, thread_id)
    assert thread is not None
    return thread


def _page_id(page: Page) -> int:
    assert page.id is not None
    return page.id


async def get_cursor(session: AsyncSession, source: str) -> str | None:
    cursor = await session.get(IntakeCursor, source)
    return cursor.value if cursor else None


async def set_cursor(session: AsyncSession, source: str, value: str) -> None:
    cursor = await session.get(IntakeCursor, source)
    if cursor is None:
        session.add(IntakeCursor(source=source, value=value))
    else:
        cursor.value = value
        cursor.updated_at = utc_now()


async def save_relay(
    session: AsyncSession,
    page_id: int,
    press_chat_id: int,
    press_message_id: int,
    citizen_chat_id: int,
    citizen_message_id: int,
) -> None:
    session.add(
        Relay(
            page_id=page_id,
            press_chat_id=press_chat_id,
            press_message_id=press_message_id,
            citizen_chat_id=citizen_chat_id,
            citizen_message_id=citizen_message_id,
        )
    )
    await session.flush()


async def find_relay(
    session: AsyncSession, press_chat_id: int, press_message_id: int
) -> Relay | None:
    result = await session.exec(
        select(Relay).where(
            Relay.press_chat_id == press_chat_id, Relay.press_message_id == press_message_id
        )
    )
    return result.first()


def store_raw_update(
    db: Db,
    source: str,
    update_key: str,
    update_type: str | None,
    payload: dict[str, Any] | str,
    *,
    status: str = "done",
    note: str | None = None,
) -> int | None:
    """Store an incoming update once (one statement); its id, or None if stored before.

    `payload` is the update as a dict or already as JSON text.
    """
    row = db.row(
        "INSERT INTO raw_update "
        "(source, update_key, update_type, payload, status, note, recorded_at) "
        f"VALUES (:source, :key, :type, {db.json_param('payload')}, :status, :note, :now) "
        "ON CONFLICT (source, update_key) DO NOTHING RETURNING id",
        {
            "source": source,
            "key": update_key,
            "type": update_type,
            "payload": payload,
            "status": status,
            "note": stored_text(note),
            "now": utc_now(),
        },
    )
    return None if row is None else int(row[0])


def set_raw_update_status(db: Db, raw_id: int, status: str, note: str | None = None) -> None:
    db.update(RawUpdate, raw_id, {"status": status, "note": stored_text(note)})


# Plain-SQL reads and writes of the ingest path (sync, over `Db`).

PAGE_COLUMNS = (
    "id, platform, external_id, kind, title, username, linked_chat_id, timezone, work_hours, "
    "sla_hours, sla_urgent_hours, final_answer_days, final_answer_urgent_days"
)
APPEAL_COLUMNS = (
    "id, page_id, thread_id, citizen_id, received_at, topic, urgent, sla_hours, sla_deadline, "
    "messages_count, first_message_id, first_response_at, first_reply_id, frt_s, frt_work_s, "
    "final_response_at, final_reply_id, excluded, answered_offline_at, rating, rated_at, "
    "reopened_at, answered_at, quality_score, answer_templated, first_quality_score, "
    "first_answer_templated, final_deadline, reopen_deadline, reanswered_at, reanswer_reply_id"
)
_APPEAL_TIMES = frozenset(
    {
        "received_at",
        "sla_deadline",
        "first_response_at",
        "final_response_at",
        "answered_offline_at",
        "rated_at",
        "reopened_at",
        "answered_at",
        "final_deadline",
        "reopen_deadline",
        "reanswered_at",
    }
)
_APPEAL_FIELDS = tuple(name.strip() for name in APPEAL_COLUMNS.split(","))


@dataclass(slots=True)
class AppealRow:
    """An appeal as the ingest path reads and changes it; `save` writes what changed."""

    values: dict[str, Any]
    changes: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.values["id"])

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def set(self, name: str, value: Any) -> None:
        if self.values.get(name) != value:
            self.values[name] = value
            self.changes[name] = value


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A stored message of either side, as the ingest path needs it."""

    side: str  # "citizen" or "official"
    id: int
    page_id: int
    appeal_id: int | None
    reply_to_external_id: str | None
    author_id: str | None
    edited_at: datetime | None
    deleted_at: datetime | None


def _appeal_row(row: tuple[Any, ...]) -> AppealRow:
    values = dict(zip(_APPEAL_FIELDS, row, strict=True))
    for name in _APPEAL_TIMES:
        values[name] = as_utc(values[name])
    for name in ("urgent", "excluded"):
        values[name] = bool(values[name])
    return AppealRow(values)


_PAGE_FIELDS = tuple(name.strip() for name in PAGE_COLUMNS.split(","))
# Building a Page costs ~50 µs; the same row gives the same (never modified) object back.
_PAGES: dict[tuple[Any, ...], Page] = {}


def _page_from_row(row: tuple[Any, ...]) -> Page:
    page = _PAGES.get(row)
    if page is None:
        if len(_PAGES) > 1024:
            _PAGES.clear()
        page = _PAGES[row] = Page(**dict(zip(_PAGE_FIELDS, row, strict=True)))
    return page


def page_row(db: Db, platform: str, external_id: str) -> Page | None:
    """The page (a detached object, never added to a session) or None."""
    row = db.row(
        f"SELECT {PAGE_COLUMNS} FROM page WHERE platform = :platform AND external_id = :ext",
        {"platform": platform, "ext": external_id},
    )
    return None if row is None else _page_from_row(row)


def ensure_page_row(db: Db, ref: PageRef) -> Page:
    """The page for `ref` (detached), created on first sight; a newer title or username is kept."""
    memo = db.memo
    if memo is None:
        return _ensure_page_row(db, ref)
    key = ("page", ref.platform.value, ref.external_id)
    page: Page | None = memo.get(key)
    if page is None or any(
        new and new != old
        for new, old in (
            (ref.title, page.title),
            (ref.username, page.username),
            (ref.linked_chat_id, page.linked_chat_id),
        )
    ):
        page = _ensure_page_row(db, ref)  # an UPDATE of the page drops the memo first
        memo[key] = page
    return page


def _ensure_page_row(db: Db, ref: PageRef) -> Page:
    page = page_row(db, ref.platform.value, ref.external_id)
    if page is None:
        insert_row(
            db,
            Page,
            {
                "platform": ref.platform.value,
                "external_id": ref.external_id,
                "kind": ref.kind.value,
                "title": ref.title,
                "username": ref.username,
                "linked_chat_id": ref.linked_chat_id,
            },
            conflict="(platform, external_id)",
        )
        page = page_row(db, ref.platform.value, ref.external_id)
        assert page is not None
        return page
    changes = {
        name: new
        for name, new, old in (
            ("title", ref.title, page.title),
            ("username", ref.username, page.username),
            ("linked_chat_id", ref.linked_chat_id, page.linked_chat_id),
        )
        if new and new != old
    }
    if changes:
        assert page.id is not None
        db.update(Page, page.id, changes)
        page = page_row(db, ref.platform.value, ref.external_id)
        assert page is not None
    return page


def ensure_thread_row(db: Db, page_id: int, ref: ThreadRef) -> int:
    """The thread's id, created on first sight; a title is filled in once."""
    memo = db.memo
    if memo is None:
        return _ensure_thread_row(db, page_id, ref)
    key = ("thread", page_id, ref.external_id)
    known: tuple[int, bool] | None = memo.get(key)
    if known is None or (ref.title and not known[1]):
        thread_id = _ensure_thread_row(db, page_id, ref)  # filling the title drops the memo
        known = memo[key] = (thread_id, bool(ref.title) or bool(known and known[1]))
    return known[0]


def _ensure_thread_row(db: Db, page_id: int, ref: ThreadRef) -> int:
    query = "SELECT id, title FROM thread WHERE page_id = :page AND external_id = :ext"
    params = {"page": page_id, "ext": ref.external_id}
    row = db.row(query, params)
    if row is None:
        values = {
            "page_id": page_id,
            "external_id": ref.external_id,
            "kind": ref.kind.value,
            "title": ref.title,
        }
        new_id = insert_row(db, Thread, values, conflict="(page_id, external_id)")
        if new_id is not None:
            return new_id
        row = db.row(query, params)  # another worker created it first
        assert row is not None
    if ref.title and not row[1]:
        db.update(Thread, int(row[0]), {"title": ref.title})
    return int(row[0])


def message_by_key(
    db: Db, page_id: int, external_id: str, *, official_only: bool = False
) -> StoredMessage | None:
    """A stored message of either side by its platform id, in one query (citizen's first)."""
    columns = "id, page_id, appeal_id, reply_to_external_id, author_id, edited_at, deleted_at"
    official = (
        f"SELECT 'official', {columns} FROM official_reply "
        "WHERE page_id = :page AND external_id = :ext"
    )
    sql = (
        official
        if official_only
        else f"SELECT 'citizen', {columns} FROM citizen_message "
        f"WHERE page_id = :page AND external_id = :ext UNION ALL {official} ORDER BY 1"
    )
    row = db.row(sql, {"page": page_id, "ext": external_id})
    if row is None:
        return None
    side, row_id, page, appeal_id, reply_to, author_id, edited_at, deleted_at = row
    return StoredMessage(
        side,
        int(row_id),
        int(page),
        appeal_id,
        reply_to,
        author_id,
        as_utc(edited_at),
        as_utc(deleted_at),
    )


_OFFICIAL = ", ".join(f"'{role}'" for role in OFFICIAL_ROLES)


def writes_officially(db: Db, platform: str, user_id: str, page_id: int) -> bool:
    """Whether `user_id` writes officially on this page (a staff row here or on every page)."""
    row = db.row(
        "SELECT 1 FROM staff WHERE platform = :platform AND user_id = :user "
        f"AND (page_id IS NULL OR page_id = :page) AND role IN ({_OFFICIAL}) LIMIT 1",
        {"platform": platform, "user": user_id, "page": page_id},
    )
    return row is not None


def page_by_id_row(db: Db, page_id: int) -> Page | None:
    row = db.row(f"SELECT {PAGE_COLUMNS} FROM page WHERE id = :id", {"id": page_id})
    return None if row is None else _page_from_row(row)


@dataclass(frozen=True, slots=True)
class CitizenMessageRow:
    """The fields of a stored citizen message that making it an appeal needs."""

    id: int
    page_id: int
    thread_id: int
    external_id: str
    author_id: str | None
    author_name: str | None
    sent_at: datetime
    link: str | None
    appeal_id: int | None


def citizen_message_row(
    db: Db, message_id: int, *, for_update: bool = False
) -> CitizenMessageRow | None:
    """A stored citizen message; `for_update` locks its row until the transaction ends.

    SQLite has one writer at a time anyway; on PostgreSQL the lock makes two concurrent
    deciders (two operators pressing «Это обращение») take turns.
    """
    lock = "" if db.sqlite or not for_update else " FOR UPDATE"
    row = db.row(
        "SELECT id, page_id, thread_id, external_id, author_id, author_name, sent_at, link, "
        f"appeal_id FROM citizen_message WHERE id = :id{lock}",
        {"id": message_id},
    )
    if row is None:
        return None
    sent_at = as_utc(row[6])
    assert sent_at is not None
    return CitizenMessageRow(
        int(row[0]),
        int(row[1]),
        int(row[2]),
        row[3],
        row[4],
        row[5],
        sent_at,
        row[7],
        None if row[8] is None else int(row[8]),
    )


def appeal_row(db: Db, appeal_id: int) -> AppealRow | None:
    row = db.row(f"SELECT {APPEAL_COLUMNS} FROM appeal WHERE id = :id", {"id": appeal_id})
    return None if row is None else _appeal_row(row)


def open_appeal_row(db: Db, thread_id: int, citizen_id: str, before: datetime) -> AppealRow | None:
    """The citizen's latest appeal in the thread still unanswered at `before` (offline too)."""
    row = db.row(
        f"SELECT {APPEAL_COLUMNS} FROM appeal WHERE thread_id = :thread AND citizen_id = :citizen "
        # «NOT excluded» (no parameter): SQLite seeks the thread's index, never the boolean
        # (its index, dropped by migration 0008, read every appeal kept; tests/test_query_plans.py).
        "AND NOT excluded AND received_at <= :before "
        "AND (answered_at IS NULL OR answered_at > :before) "
        "ORDER BY received_at DESC LIMIT 1",
        {"thread": thread_id, "citizen": citizen_id, "before": before},
    )
    return None if row is None else _appeal_row(row)


def last_answered_row(
    db: Db, thread_id: int, citizen_id: str, before: datetime
) -> AppealRow | None:
    """The citizen's latest appeal in the thread answered (online or offline) by `before`."""
    row = db.row(
        f"SELECT {APPEAL_COLUMNS} FROM appeal WHERE thread_id = :thread AND citizen_id = :citizen "
        "AND answered_at <= :before ORDER BY received_at DESC LIMIT 1",
        {"thread": thread_id, "citizen": citizen_id, "before": before},
    )
    return None if row is None else _appeal_row(row)


def unfinished_rows(db: Db, thread_id: int, until: datetime) -> list[AppealRow]:
    """Appeals in a conversation received by `until` and without a final answer then."""
    rows = db.rows(
        # «NOT excluded» keeps SQLite on the thread's index (see open_appeal_row).
        f"SELECT {APPEAL_COLUMNS} FROM appeal WHERE thread_id = :thread AND NOT excluded "
        "AND received_at <= :until "
        "AND (final_response_at IS NULL OR final_response_at > :until "
        # Re-opened and waiting for a new final answer (bot/services/final_stage.py).
        " OR (reopen_deadline IS NOT NULL AND reopened_at <= :until "
        "     AND (reanswered_at IS NULL OR reanswered_at > :until))) ORDER BY received_at",
        {"thread": thread_id, "until": until},
    )
    return [_appeal_row(row) for row in rows]


def reply_state(db: Db, reply_id: int) -> tuple[int, datetime, bool] | None:
    """(thread_id, sent_at, is_interim) of a stored official reply."""
    row = db.row(
        "SELECT thread_id, sent_at, is_interim FROM official_reply WHERE id = :id", {"id": reply_id}
    )
    if row is None:
        return None
    return int(row[0]), as_utc(row[1]) or utc_now(), bool(row[2])


def answered_by_rows(
    db: Db, thread_id: int, reply_id: int, appeal_id: int | None
) -> list[AppealRow]:
    """Appeals of the thread the reply is filed under or sets the first or final answer of."""
    rows = db.rows(
        f"SELECT {APPEAL_COLUMNS} FROM appeal WHERE thread_id = :thread "
        "AND (id = :appeal OR first_reply_id = :reply OR final_reply_id = :reply) ORDER BY id",
        {"thread": thread_id, "reply": reply_id, "appeal": appeal_id if appeal_id else -1},
    )
    return [_appeal_row(row) for row in rows]


def first_final_reply_row(db: Db, appeal_id: int, since: datetime) -> tuple[int, datetime] | None:
    """(id, sent_at) of the earliest final (not interim) reply filed under the appeal."""
    row = db.row(
        "SELECT id, sent_at FROM official_reply WHERE appeal_id = :appeal AND is_interim = :no "
        "AND sent_at >= :since ORDER BY sent_at, id LIMIT 1",
        {"appeal": appeal_id, "no": False, "since": since},
    )
    return None if row is None else (int(row[0]), as_utc(row[1]) or utc_now())


def waiting_reply_rows(db: Db, page_id: int, external_id: str) -> list[tuple[int, datetime, bool]]:
    """(id, sent_at, is_interim) of replies stored before the message they reply to."""
    # Sorted here: with ORDER BY in SQL, SQLite picks the (page_id, sent_at) index and reads
    # every reply of the page instead of the few replying to `external_id`. `appeal_id IS NULL`
    # is tested here too: with statistics of replies mostly without `reply_to_external_id`
    # (conversations) SQLite took it for a seek of `ix_official_reply_appeal_id` and read
    # every unlinked reply, 48 ms a call at a million (docs/BENCHMARKS.md, «Query plans»).
    rows = db.rows(
        "SELECT id, sent_at, is_interim, appeal_id FROM official_reply WHERE page_id = :page "
        "AND reply_to_external_id = :ext",
        {"page": page_id, "ext": external_id},
    )
    found = [
        (int(rid), as_utc(sent) or utc_now(), bool(interim))
        for rid, sent, interim, appeal_id in rows
        if appeal_id is None
    ]
    return sorted(found, key=lambda row: (row[1], row[0]))


def save_appeal(db: Db, appeal: AppealRow) -> None:
    """Write what changed, with the derived columns (storage/buckets.py) every writer keeps."""
    if not appeal.changes:
        return
    derived = derived_appeal_columns(appeal.values)
    appeal.set("answered_at", derived.pop("answered_at"))
    db.update(Appeal, appeal.id, {**appeal.changes, **derived})
    db.touch_appeal(appeal["page_id"], appeal["received_at"])
    appeal.changes.clear()


def upsert_reaction(
    db: Db, page_id: int, message_external_id: str, user_id: str, emoji: str, at: datetime
) -> None:
    db.run(
        "INSERT INTO reaction (page_id, message_external_id, user_id, emoji, reacted_at) "
        "VALUES (:page, :ext, :user, :emoji, :at) "
        "ON CONFLICT (page_id, message_external_id, user_id, emoji) "
        "DO UPDATE SET removed_at = NULL, reacted_at = excluded.reacted_at",
        {"page": page_id, "ext": message_external_id, "user": user_id, "emoji": emoji, "at": at},
    )


def remove_reaction(
    db: Db, page_id: int, message_external_id: str, user_id: str, emoji: str, at: datetime
) -> None:
    db.run(
        "UPDATE reaction SET removed_at = :at WHERE page_id = :page "
        "AND message_external_id = :ext AND user_id = :user AND emoji = :emoji",
        {"page": page_id, "ext": message_external_id, "user": user_id, "emoji": emoji, "at": at},
    )
