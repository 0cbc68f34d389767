"""Engine and session factory; SQLite gets WAL, a busy timeout and foreign keys."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import plan_stats, rollup

logger = logging.getLogger(__name__)

SessionFactory = async_sessionmaker[AsyncSession]


class DatabaseUnavailable(OSError):
    """The database cannot be opened or migrated; the message hides the password."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Reports read tens of megabytes of index pages (a month of a million appeals): through a
    # memory map instead of a read() and a copy per page, and a page cache larger than the 2 MB
    # default (docs/BENCHMARKS.md, «Dashboard»). The map is the OS page cache, shared by every
    # connection; the cache fills only as far as a connection reads.
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


SQLITE_MMAP_BYTES = 1 << 30
SQLITE_CACHE_KIB = 32 * 1024


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url` (sqlite+aiosqlite or postgresql+asyncpg).

    Every engine keeps the report rollups: writes of appeals mark their page-days stale.
    """
    rollup.install()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def open_database(url: str, *, migrate: bool = True) -> AsyncIterator[AsyncEngine]:
    """Create the engine, bring the schema up to date, and dispose of it at the end."""
    from storage.migrate import upgrade

    engine = create_engine(url)
    try:
        if migrate:
            try:
                await upgrade(engine)
            except (OSError, SQLAlchemyError) as error:
                shown = make_url(url).render_as_string(hide_password=True)
                raise DatabaseUnavailable(f"cannot open the database {shown}: {error}") from None
            await refresh_plan_statistics(engine)
        yield engine
    finally:
        await engine.dispose()


async def refresh_plan_statistics(engine: AsyncEngine, *, force: bool = False) -> bool:
    """SQLite: `ANALYZE` when its statistics are stale (storage/plan_stats.py); whether it did.

    Run after the migrations on every start and by the scheduler; a failure (the database
    locked for longer than the busy timeout) is logged and leaves the old statistics.
    """
    if engine.dialect.name != "sqlite":
        return False
    try:
        async with engine.begin() as connection:
            return bool(
                await connection.run_sync(lambda sync: plan_stats.refresh(sync, force=force))
            )
    except SQLAlchemyError:
        logger.exception("не удалось обновить статистику SQLite для планировщика запросов")
        return False


async def core(
    session: AsyncSession, statement: Executable, params: list[dict[str, Any]] | None = None
) -> Any:
    """Run a Core statement on the session's connection after flushing pending ORM changes.

    SQLModel deprecates `AsyncSession.execute`; Core rows (sums, tuples, executemany updates)
    are what reports and bulk updates need, so they go to the connection directly.
    """
    await session.flush()
    connection = await session.connection()
    if params is None:
        return await connection.execute(statement)
    return await connection.execute(statement, params)
