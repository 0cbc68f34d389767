"""Plain SQL on the session's own connection and transaction: the intake hot path's `Db`.

Ingest runs as plain SQL on the session's own connection and transaction. On SQLite the whole
unit runs in one trip to aiosqlite's worker thread on the driver's sqlite3 connection (a
statement costs microseconds there, against ~150 µs per statement through the async ORM);
on PostgreSQL the same code runs through `AsyncSession.run_sync`, one network round trip per
statement. The SQL is written once, with `:name` parameters that both sqlite3 and SQLAlchemy's
`text()` accept. See docs/BENCHMARKS.md. The queries themselves are in storage/repositories.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic_core import PydanticUndefined
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.elements import TextClause
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import rollup
from storage.buckets import day_number

T = TypeVar("T")
Params = Mapping[str, Any]


def as_utc(value: Any) -> datetime | None:
    """A UTC column read back by plain SQL: naive text on SQLite, aware on PostgreSQL."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _sqlite_value(value: Any) -> Any:
    # The exact text storage/types.UTCDateTime gives SQLite through SQLAlchemy, so that rows
    # written here and by the ORM compare and sort alike.
    if isinstance(value, datetime):
        if value.tzinfo is UTC:  # the usual case: no conversion needed
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, dict):
        return json.dumps(value)
    return value


# Parameter types sqlite3 takes as they are; anything else goes through `_sqlite_value`.
_SQLITE_NATIVE = frozenset({str, int, float, type(None), bytes, bool})
# Tables whose rows `Db.memo` may hold: an UPDATE of one of them through `Db.update` drops it.
MEMO_TABLES = frozenset({"page", "thread"})


class Db:
    """A synchronous connection inside the caller's transaction, for the intake hot path."""

    sqlite: bool
    # (model, id, values) of rows updated here, to bring objects the ORM session holds in line.
    changed: list[tuple[type[Any], int, dict[str, Any]]]
    # (page_id, UTC day of receipt) of appeals written here: their report rollups are stale.
    appeal_days: set[tuple[int, int]]
    # Rows read or written here that nobody else can change until `forget` (None: no memo).
    # Only the intake writer process keeps one (storage/writer.py): it holds SQLite's write
    # lock for a whole batch and drops the memo when another connection has committed since
    # its last batch (`PRAGMA data_version`) or when anything is rolled back. Pages, thread ids
    # and the page-days already marked stale live here (storage/repositories.py, `run_marking`).
    memo: dict[Any, Any] | None = None

    def forget(self) -> None:
        """Drop the memo (something was rolled back, or another connection wrote)."""
        if self.memo:
            self.memo.clear()

    def touch_appeal(self, page_id: int, received_at: datetime) -> None:
        self.appeal_days.add((page_id, day_number(received_at)))

    def rows(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def run(self, sql: str, params: Params) -> None:
        if self.memo and sql.startswith("ROLLBACK"):
            self.memo.clear()  # what was memoised since the savepoint may be gone
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
        if self.memo and table in MEMO_TABLES:
            self.memo.clear()


class SqliteDb(Db):
    """The driver's sqlite3 connection, used from aiosqlite's own worker thread."""

    def __init__(self, connection: sqlite3.Connection, memo: dict[Any, Any] | None = None) -> None:
        self.connection = connection
        self.sqlite = True
        self.changed = []
        self.appeal_days = set()
        self.memo = memo

    def rows(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        try:
            return self.connection.execute(sql, _sqlite_params(params)).fetchall()
        except sqlite3.IntegrityError as error:
            # The same exception type the ORM path raises, so callers retry either way.
            raise IntegrityError(sql, dict(params), error) from error

    def insert(self, sql: str, params: Params) -> int:
        """Run an INSERT of one row (no RETURNING, no conflict clause); the new row's id.

        sqlite3's `lastrowid` spares the RETURNING clause, which SQLite runs through a
        temporary table of its own.
        """
        try:
            row_id = self.connection.execute(sql, _sqlite_params(params)).lastrowid
        except sqlite3.IntegrityError as error:
            raise IntegrityError(sql, dict(params), error) from error
        assert row_id is not None
        return row_id


def _sqlite_params(params: Params) -> Params:
    """`params` as sqlite3 takes them (the mapping itself when nothing needs converting)."""
    native = _SQLITE_NATIVE
    for value in params.values():
        if type(value) not in native:
            return {
                name: value if type(value) in native else _sqlite_value(value)
                for name, value in params.items()
            }
    return params


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
    days = db.appeal_days
    if days and db.memo is not None:
        # Marked earlier in this writer's transactions and not refreshed since (a refresh is
        # another connection's commit, which drops the memo): marking again changes nothing.
        marked: set[tuple[int, int]] = db.memo.setdefault("rollup_stale", set())
        days = days - marked
        marked |= days
    if days:
        # storage/rollup.py follows SQLAlchemy statements only; plain SQL marks its page-days.
        rollup.mark_rows(db.run, db.sqlite, days)
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
_INSERTS: dict[tuple[str, tuple[str, ...], str | None, bool], str] = {}


def insert_row(
    db: Db, model: type[Any], values: Mapping[str, Any], *, conflict: str | None = None
) -> int | None:
    """INSERT one row with the model's Python defaults; its id (None: the conflict hit)."""
    plain, factories = _defaults_of(model)
    row = {**plain, **values}
    for name in factories:
        if name not in row:
            row[name] = model.model_fields[name].default_factory()
    plain_insert = conflict is None and isinstance(db, SqliteDb)
    key = (model.__tablename__, tuple(row), conflict, plain_insert)
    sql = _INSERTS.get(key)
    if sql is None:
        sql = _INSERTS[key] = (
            f"INSERT INTO {model.__tablename__} ({', '.join(row)}) "
            f"VALUES ({', '.join(':' + name for name in row)})"
            + (f" ON CONFLICT {conflict} DO NOTHING" if conflict else "")
            + ("" if plain_insert else " RETURNING id")
        )
    if plain_insert:
        assert isinstance(db, SqliteDb)
        return db.insert(sql, row)
    found = db.row(sql, row)
    return None if found is None else int(found[0])
