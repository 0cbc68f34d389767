"""Queries the services use. Plain functions over one session; the caller commits."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic_core import PydanticUndefined
from sqlalchemy import or_, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.elements import TextClause
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import utc_now
from bot.events import PageRef, ThreadRef
from storage.models import (
    Appeal,
    CitizenMessage,
    IntakeCursor,
    OfficialReply,
    Page,
    RawUpdate,
    Relay,
    Staff,
    Thread,
)
from storage.redaction import stored_text

try:  # report rollups (storage/rollup.py) keep derived appeal columns; absent in older trees
    from storage import buckets as _buckets
    from storage import rollup as _rollup
except ImportError:  # pragma: no cover
    _buckets = None  # type: ignore[assignment]
    _rollup = None  # type: ignore[assignment]


# Staff roles whose messages on a page are official (a supervisor's comment is not a citizen's).
OFFICIAL_ROLES = ("staff", "operator", "supervisor", "admin")


async def get_page(session: AsyncSession, platform: str, external_id: str) -> Page | None:
    result = await session.exec(
        select(Page).where(Page.platform == platform, Page.external_id == external_id)
    )
    return result.first()


async def ensure_page(session: AsyncSession, ref: PageRef) -> Page:
    """The page for `ref`, created on first sight; a newer title or username is kept."""
    page = await get_page(session, ref.platform.value, ref.external_id)
    if page is None:
        page = Page(
            platform=ref.platform.value,
            external_id=ref.external_id,
            kind=ref.kind.value,
            title=ref.title,
            username=ref.username,
            linked_chat_id=ref.linked_chat_id,
        )
        session.add(page)
        await session.flush()
        return page
    if ref.title and page.title != ref.title:
        page.title = ref.title
    if ref.username and page.username != ref.username:
        page.username = ref.username
    if ref.linked_chat_id and page.linked_chat_id != ref.linked_chat_id:
        page.linked_chat_id = ref.linked_chat_id
    return page


async def ensure_thread(session: AsyncSession, page_id: int, ref: ThreadRef) -> Thread:
    result = await session.exec(
        select(Thread).where(Thread.page_id == page_id, Thread.external_id == ref.external_id)
    )
    thread = result.first()
    if thread is None:
        thread = Thread(
            page_id=page_id, external_id=ref.external_id, kind=ref.kind.value, title=ref.title
        )
        session.add(thread)
        await session.flush()
    elif ref.title and not thread.title:
        thread.title = ref.title
    return thread


async def find_citizen_message(
    session: AsyncSession, page_id: int, external_id: str
) -> CitizenMessage | None:
    result = await session.exec(
        select(CitizenMessage).where(
            CitizenMessage.page_id == page_id, CitizenMessage.external_id == external_id
        )
    )
    return result.first()


async def find_official_reply(
    session: AsyncSession, page_id: int, external_id: str
) -> OfficialReply | None:
    result = await session.exec(
        select(OfficialReply).where(
            OfficialReply.page_id == page_id, OfficialReply.external_id == external_id
        )
    )
    return result.first()


async def find_message(
    session: AsyncSession, page_id: int, external_id: str
) -> CitizenMessage | OfficialReply | None:
    """A stored message of either side by its platform id."""
    return await find_citizen_message(session, page_id, external_id) or await find_official_reply(
        session, page_id, external_id
    )


async def open_appeal_of(
    session: AsyncSession, thread_id: int, citizen_id: str, before: datetime
) -> Appeal | None:
    """The citizen's latest appeal in the thread still unanswered at `before` (offline too)."""
    result = await session.exec(
        select(Appeal)
        .where(
            Appeal.thread_id == thread_id,
            Appeal.citizen_id == citizen_id,
            col(Appeal.excluded).is_(False),
            Appeal.received_at <= before,
            # Answered offline («Ответили вне соцсети») counts as answered from that moment.
            or_(col(Appeal.answered_at).is_(None), col(Appeal.answered_at) > before),
        )
        .order_by(col(Appeal.received_at).desc())
        .limit(1)
    )
    return result.first()


async def last_answered_appeal_of(
    session: AsyncSession, thread_id: int, citizen_id: str, before: datetime
) -> Appeal | None:
    """The citizen's latest appeal in the thread answered (online or offline) by `before`."""
    result = await session.exec(
        select(Appeal)
        .where(
            Appeal.thread_id == thread_id,
            Appeal.citizen_id == citizen_id,
            col(Appeal.answered_at) <= before,
        )
        .order_by(col(Appeal.received_at).desc())
        .limit(1)
    )
    return result.first()


async def is_staff(session: AsyncSession, platform: str, user_id: str, page_id: int) -> bool:
    """Whether `user_id` writes officially on this page (or on every page)."""
    result = await session.exec(
        select(Staff.id).where(
            Staff.platform == platform,
            Staff.user_id == user_id,
            or_(col(Staff.page_id).is_(None), col(Staff.page_id) == page_id),
            col(Staff.role).in_(OFFICIAL_ROLES),
        )
    )
    return result.first() is not None


async def add_staff(
    session: AsyncSession,
    platform: str,
    user_id: str,
    *,
    page_id: int | None = None,
    name: str | None = None,
    role: str = "staff",
) -> Staff:
    result = await session.exec(
        select(Staff).where(
            Staff.platform == platform,
            Staff.user_id == user_id,
            col(Staff.page_id).is_(None) if page_id is None else Staff.page_id == page_id,
        )
    )
    staff = result.first()
    if staff is None:
        staff = Staff(platform=platform, user_id=user_id, page_id=page_id, name=name, role=role)
        session.add(staff)
        await session.flush()
    else:
        staff.role = role
        staff.name = name or staff.name
    return staff


async def record_raw_update(
    session: AsyncSession,
    source: str,
    update_key: str,
    update_type: str | None,
    payload: dict[str, Any],
) -> RawUpdate | None:
    """Store an incoming update once; None if it was stored before (a redelivery)."""
    result = await session.exec(
        select(RawUpdate.id).where(RawUpdate.source == source, RawUpdate.update_key == update_key)
    )
    if result.first() is not None:
        return None
    raw = RawUpdate(source=source, update_key=update_key, update_type=update_type, payload=payload)
    session.add(raw)
    await session.flush()
    return raw


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


# -- the intake hot path ------------------------------------------------------------------------
#
# Ingest runs as plain SQL on the session's own connection and transaction. On SQLite the whole
# unit runs in one trip to aiosqlite's worker thread on the driver's sqlite3 connection (a
# statement costs microseconds there, against ~150 µs per statement through the async ORM);
# on PostgreSQL the same code runs through `AsyncSession.run_sync`, one network round trip per
# statement. The SQL is written once, with `:name` parameters that both sqlite3 and SQLAlchemy's
# `text()` accept. See docs/BENCHMARKS.md.

T = TypeVar("T")
Params = Mapping[str, Any]


def as_utc(value: Any) -> datetime | None:
    """A UTC column read back by plain SQL: naive text on SQLite, aware on PostgreSQL."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def _sqlite_value(value: Any) -> Any:
    # The exact text storage/types.UTCDateTime gives SQLite through SQLAlchemy, so that rows
    # written here and by the ORM compare and sort alike.
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, dict):
        return json.dumps(value)
    return value


# Parameter types sqlite3 takes as they are; anything else goes through `_sqlite_value`.
_SQLITE_NATIVE = frozenset({str, int, float, type(None), bytes})


class Db:
    """A synchronous connection inside the caller's transaction, for the intake hot path."""

    sqlite: bool
    # (model, id, values) of rows updated here, to bring objects the ORM session holds in line.
    changed: list[tuple[type[Any], int, dict[str, Any]]]
    # (page_id, UTC day of receipt) of appeals written here: their report rollups are stale.
    appeal_days: set[tuple[int, int]]

    def touch_appeal(self, page_id: int, received_at: datetime) -> None:
        if _buckets is not None:
            self.appeal_days.add((page_id, _buckets.day_number(received_at)))

    def rows(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def run(self, sql: str, params: Params) -> None:
        self.rows(sql, params)

    def row(self, sql: str, params: Params) -> tuple[Any, ...] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def json_param(self, name: str) -> str:
        """A JSON-typed parameter (PostgreSQL needs the cast; SQLite stores the text)."""
        return f":{name}" if self.sqlite else f"CAST(:{name} AS JSON)"

    def update(self, model: type[Any], row_id: int, values: dict[str, Any]) -> None:
        """UPDATE one row by id with `values` (column names are ours, never user input)."""
        if not values:
            return
        table = model.__tablename__
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        self.run(
            f"UPDATE {table} SET {assignments} WHERE id = :row_id", {**values, "row_id": row_id}
        )
        self.changed.append((model, row_id, values))


class SqliteDb(Db):
    """The driver's sqlite3 connection, used from aiosqlite's own worker thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.sqlite = True
        self.changed = []
        self.appeal_days = set()

    def rows(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        values = {
            name: value if type(value) in _SQLITE_NATIVE else _sqlite_value(value)
            for name, value in params.items()
        }
        try:
            return self.connection.execute(sql, values).fetchall()
        except sqlite3.IntegrityError as error:
            # The same exception type the ORM path raises, so callers retry either way.
            raise IntegrityError(sql, dict(params), error) from error


_TEXT_CACHE: dict[str, TextClause] = {}


class SqlAlchemyDb(Db):
    """A sync SQLAlchemy connection (PostgreSQL, or any driver without the SQLite shortcut)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.sqlite = connection.dialect.name == "sqlite"
        self.changed = []
        self.appeal_days = set()

    def rows(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        clause = _TEXT_CACHE.get(sql)
        if clause is None:
            clause = _TEXT_CACHE[sql] = text(sql)
        values: Params = params
        if self.sqlite:
            values = {name: _sqlite_value(value) for name, value in params.items()}
        else:
            values = {
                name: json.dumps(value) if isinstance(value, dict) else value
                for name, value in params.items()
            }
        result = self.connection.execute(clause, values)
        return [tuple(row) for row in result.all()] if result.returns_rows else []


async def run_in_transaction(session: AsyncSession, work: Callable[[Db], T]) -> T:
    """Run `work` on the session's connection, inside its transaction (the caller commits)."""
    if session.new or session.dirty or session.deleted:
        # Rows the ORM holds back must be in the database before plain SQL looks for them.
        await session.flush()
    connection = await session.connection()
    db: Db | None = None
    if connection.dialect.driver == "aiosqlite":
        fairy = await connection.get_raw_connection()
        driver = fairy.driver_connection
        # aiosqlite has no public "run this function in the connection's thread"; `_execute` is
        # what its own methods use (aiosqlite 0.22). Without it, fall back to the ORM path.
        execute = getattr(driver, "_execute", None)
        if execute is not None:
            assert driver is not None
            db = SqliteDb(driver._conn)
            result: T = await execute(run_marking, work, db)
    if db is None:

        def call(sync_session: Any) -> T:
            nonlocal db
            db = SqlAlchemyDb(sync_session.connection())
            return run_marking(work, db)

        result = await session.run_sync(call)
    assert db is not None
    _sync_identity_map(session, db.changed)
    return result


def run_marking(work: Callable[[Db], T], db: Db) -> T:
    """Run `work`, then mark the page-days it wrote stale (storage/rollup.py), in one trip."""
    result = work(db)
    if db.appeal_days and _rollup is not None:
        # storage/rollup.py follows SQLAlchemy statements only; plain SQL marks its page-days.
        sql = _rollup.mark_sql(db.sqlite)
        for page_id, day in sorted(db.appeal_days):
            db.run(sql, {"page_id": page_id, "day": day})
    return result


def _sync_identity_map(
    session: AsyncSession, changed: list[tuple[type[Any], int, dict[str, Any]]]
) -> None:
    """Objects the ORM session already holds get the values plain SQL just wrote."""
    identity_map = session.sync_session.identity_map
    if not changed or not len(identity_map):
        return
    for model, row_id, values in changed:
        instance = identity_map.get(identity_key(model, row_id))
        if instance is not None:
            for name, value in values.items():
                set_committed_value(instance, name, value)


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
    """`ensure_page` for the hot path: created on first sight, newer title or username kept."""
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


def writes_officially(db: Db, platform: str, user_id: str, page_id: int) -> bool:
    """`is_staff` for the hot path."""
    row = db.row(
        "SELECT 1 FROM staff WHERE platform = :platform AND user_id = :user "
        "AND (page_id IS NULL OR page_id = :page) "
        "AND role IN ('staff', 'operator', 'supervisor', 'admin') LIMIT 1",
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
    """`open_appeal_of` for the hot path."""
    row = db.row(
        f"SELECT {APPEAL_COLUMNS} FROM appeal WHERE thread_id = :thread AND citizen_id = :citizen "
        "AND excluded = :no AND received_at <= :before "
        "AND (answered_at IS NULL OR answered_at > :before) "
        "ORDER BY received_at DESC LIMIT 1",
        {"thread": thread_id, "citizen": citizen_id, "before": before, "no": False},
    )
    return None if row is None else _appeal_row(row)


def last_answered_row(
    db: Db, thread_id: int, citizen_id: str, before: datetime
) -> AppealRow | None:
    """`last_answered_appeal_of` for the hot path."""
    row = db.row(
        f"SELECT {APPEAL_COLUMNS} FROM appeal WHERE thread_id = :thread AND citizen_id = :citizen "
        "AND answered_at <= :before ORDER BY received_at DESC LIMIT 1",
        {"thread": thread_id, "citizen": citizen_id, "before": before},
    )
    return None if row is None else _appeal_row(row)


def unfinished_rows(db: Db, thread_id: int, until: datetime) -> list[AppealRow]:
    """Appeals in a conversation received by `until` and without a final answer then."""
    rows = db.rows(
        f"SELECT {APPEAL_COLUMNS} FROM appeal WHERE thread_id = :thread AND excluded = :no "
        "AND received_at <= :until "
        "AND (final_response_at IS NULL OR final_response_at > :until "
        # Re-opened and waiting for a new final answer (bot/services/final_stage.py).
        " OR (reopen_deadline IS NOT NULL AND reopened_at <= :until "
        "     AND (reanswered_at IS NULL OR reanswered_at > :until))) ORDER BY received_at",
        {"thread": thread_id, "until": until, "no": False},
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
    # every reply of the page instead of the few replying to `external_id`.
    rows = db.rows(
        "SELECT id, sent_at, is_interim FROM official_reply WHERE page_id = :page "
        "AND reply_to_external_id = :ext AND appeal_id IS NULL",
        {"page": page_id, "ext": external_id},
    )
    found = [(int(rid), as_utc(sent) or utc_now(), bool(interim)) for rid, sent, interim in rows]
    return sorted(found, key=lambda row: (row[1], row[0]))


def save_appeal(db: Db, appeal: AppealRow) -> None:
    """Write what changed, with the columns storage/models.py derives on ORM flushes."""
    if not appeal.changes:
        return
    appeal.set(
        "answered_at",
        min(
            (m for m in (appeal["first_response_at"], appeal["answered_offline_at"]) if m),
            default=None,
        ),
    )
    changes = {**appeal.changes, **derived_appeal_columns(appeal.values)}
    db.update(Appeal, appeal.id, changes)
    db.touch_appeal(appeal["page_id"], appeal["received_at"])
    appeal.changes.clear()


def derived_appeal_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """The report keys of storage/buckets.py for an appeal written by plain SQL (if present)."""
    if _buckets is None or "settle_day" not in Appeal.model_fields:
        return {}
    settle = None
    if values.get("sla_deadline") is not None:
        settle = _buckets.day_number(
            _buckets.settle_moment(
                answered_at=values.get("answered_at"),
                first_response_at=values.get("first_response_at"),
                final_response_at=values.get("final_response_at"),
                reopened_at=values.get("reopened_at"),
                rating=values.get("rating"),
                rated_at=values.get("rated_at"),
                sla_deadline=values["sla_deadline"],
            )
        )
    return {
        "settle_day": settle,
        "frt_bucket": _buckets.frt_bucket(values.get("frt_s")),
        "frt_work_bucket": _buckets.frt_bucket(values.get("frt_work_s")),
    }


def _defaults_of(model: type[Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    cached = _DEFAULTS.get(model)
    if cached is None:
        plain = {
            name: info.default
            for name, info in model.model_fields.items()
            if info.default is not None and info.default is not PydanticUndefined
        }
        factories = tuple(
            name for name, info in model.model_fields.items() if info.default_factory is not None
        )
        cached = _DEFAULTS[model] = (plain, factories)
    return cached


_DEFAULTS: dict[type[Any], tuple[dict[str, Any], tuple[str, ...]]] = {}
_INSERTS: dict[tuple[str, tuple[str, ...], str | None], str] = {}


def insert_row(
    db: Db, model: type[Any], values: Mapping[str, Any], *, conflict: str | None = None
) -> int | None:
    """INSERT one row with the model's Python defaults; its id (None: the conflict hit)."""
    plain, factories = _defaults_of(model)
    row = {**plain, **values}
    for name in factories:
        if name not in row:
            row[name] = model.model_fields[name].default_factory()
    key = (model.__tablename__, tuple(row), conflict)
    sql = _INSERTS.get(key)
    if sql is None:
        sql = _INSERTS[key] = (
            f"INSERT INTO {model.__tablename__} ({', '.join(row)}) "
            f"VALUES ({', '.join(':' + name for name in row)}) "
            + (f"ON CONFLICT {conflict} DO NOTHING " if conflict else "")
            + "RETURNING id"
        )
    found = db.row(sql, row)
    return None if found is None else int(found[0])


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
