"""The intake writer: one thread, one SQLite connection, commits grouped (docs/BENCHMARKS.md).

A job is a synchronous function over `storage.repositories.Db`. The writer thread runs the jobs
in the order they were submitted, each inside its own SAVEPOINT (a job that raises is rolled
back alone and its exception handed to its submitter), and commits every job it found waiting
in one transaction. A job's future is resolved on the event loop only after that commit, so
nobody hears "stored" before it is durable.

Why: through the async engine each update took three trips to aiosqlite's thread (raw update,
decision, commit) plus SQLAlchemy's session bookkeeping, ~1.4 ms per update. Here an update is
one job, the event loop does not wait for it unless told to, and one COMMIT covers everything
that arrived while the previous batch was written.

Only file-based SQLite has a writer (`IntakeWriter.for_engine`); PostgreSQL keeps the session
path, where many workers already write in parallel.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.repositories import Db, SqliteDb, run_marking

logger = logging.getLogger(__name__)

T = TypeVar("T")

# At most this many jobs share one commit; the loop waits for the writer beyond MAX_PENDING.
MAX_BATCH = 500
MAX_PENDING = 2000
# How long a BEGIN waits for another connection's write lock before it is tried again.
BUSY_TIMEOUT_MS = 5000


class WriterClosed(RuntimeError):
    """A job was submitted after `close()`."""


@dataclass(slots=True)
class _Job(Generic[T]):
    work: Callable[[Db], T]
    future: asyncio.Future[T]
    # Runs on the event loop right after the commit, before the future resolves.
    then: Callable[[T | None, BaseException | None], None] | None = None
    outcome: tuple[Any, BaseException | None] = field(default=(None, None))


_STOP = object()


class IntakeWriter:
    """A dedicated writer thread for one SQLite database file."""

    def __init__(self, path: str, *, max_batch: int = MAX_BATCH) -> None:
        self.path = path
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tail: asyncio.Future[Any] | None = None
        self._pending = 0
        self._closed = False
        self._abandoned = False
        # Counters for tests and the benchmark: how many commits covered how many jobs.
        self.commits = 0
        self.jobs_done = 0

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> IntakeWriter | None:
        """A writer for a file-based SQLite engine; None for anything else."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.get_driver_name() != "aiosqlite":
            return None
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return cls(database)

    # -- event-loop side ---------------------------------------------------------------------

    def submit(
        self,
        work: Callable[[Db], T],
        then: Callable[[T | None, BaseException | None], None] | None = None,
    ) -> asyncio.Future[T]:
        """Queue `work`; the future resolves with its result once it is committed."""
        if self._closed:
            raise WriterClosed("the intake writer is closed")
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._start(loop)
        future: asyncio.Future[T] = loop.create_future()
        self._pending += 1
        self._tail = future
        self._queue.put(_Job(work, future, then))
        return future

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet committed (and reported back)."""
        return self._pending

    async def flush(self) -> None:
        """Wait until every job submitted so far is committed and reported back."""
        tail = self._tail
        if tail is not None and not tail.done():
            await asyncio.wait({tail})

    async def close(self) -> None:
        """Commit what is queued, then stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        await self.flush()
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join)

    def abandon(self) -> None:
        """Stop as a crash would: nothing not yet committed will be (for crash tests)."""
        self._closed = self._abandoned = True
        self._queue.put(_STOP)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Open the connection here, so that a bad path fails the first submit, not the thread.
        connection = _connect(self.path)
        self._thread = threading.Thread(
            target=self._run, args=(connection,), name="otklik-intake-writer", daemon=True
        )
        self._thread.start()

    def _deliver(self, batch: list[_Job[Any]]) -> None:
        for job in batch:
            self._pending -= 1
            result, error = job.outcome
            if job.then is not None:
                try:
                    job.then(result, error)
                except Exception:  # a callback's bug must not strand the other futures
                    logger.exception("intake writer: a completion callback failed")
            if job.future.cancelled():
                continue
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)
                # Submitters that do not await their job see the error logged here instead.
                job.future.exception()

    # -- writer thread -----------------------------------------------------------------------

    def _run(self, connection: sqlite3.Connection) -> None:
        assert self._loop is not None
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Job[Any]] = [first]
                stop = False
                while len(batch) < self.max_batch:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stop = True
                        break
                    batch.append(job)
                if self._abandoned:
                    return
                self._write(connection, batch)
                if self._abandoned:
                    return
                self.commits += 1
                self.jobs_done += len(batch)
                try:
                    self._loop.call_soon_threadsafe(self._deliver, batch)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    return
                if stop:
                    return
        finally:
            connection.close()

    def _write(self, connection: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
        """Run the batch in one transaction, a SAVEPOINT per job; retried if the commit fails."""
        attempt = 0
        while True:
            attempt += 1
            try:
                _begin(connection)
                for job in batch:
                    job.outcome = _run_job(connection, job.work)
                if self._abandoned:
                    connection.execute("ROLLBACK")
                    return
                connection.execute("COMMIT")
                return
            except sqlite3.Error as error:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if not _retryable(error):
                    logger.error("intake writer: %d updates not stored: %s", len(batch), error)
                    for job in batch:
                        job.outcome = (None, error)
                    return
                # Locked for longer than the busy timeout, disk full, I/O error: nothing of the
                # batch is committed; try it again (its futures are still unresolved).
                delay = min(0.05 * 2**attempt, 5.0)
                logger.warning(
                    "intake writer: could not commit %d updates (%s); retrying in %.2f s",
                    len(batch),
                    error,
                    delay,
                )
                time.sleep(delay)


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit mode: BEGIN, SAVEPOINT and COMMIT are ours. Same pragmas as storage/engine.py.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


# Busy, locked, I/O error, disk full, cannot open: the database's trouble, not the job's.
_RETRYABLE_CODES = frozenset({5, 6, 10, 13, 14})


def _retryable(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(error) or "busy" in str(error)
    return (code & 0xFF) in _RETRYABLE_CODES


def _begin(connection: sqlite3.Connection) -> None:
    # IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so no statement
    # inside the batch can fail to upgrade a read lock.
    connection.execute("BEGIN IMMEDIATE")


def _run_job(
    connection: sqlite3.Connection, work: Callable[[Db], Any]
) -> tuple[Any, BaseException | None]:
    connection.execute("SAVEPOINT intake_job")
    try:
        result = run_marking(work, SqliteDb(connection))
    except sqlite3.OperationalError as error:
        connection.execute("ROLLBACK TO intake_job")
        if _retryable(error):
            raise  # the database itself is in trouble: the whole batch is retried
        connection.execute("RELEASE intake_job")
        return None, error
    except Exception as error:
        connection.execute("ROLLBACK TO intake_job")
        connection.execute("RELEASE intake_job")
        return None, error
    connection.execute("RELEASE intake_job")
    return result, None
