"""The intake writer: a child process that owns the SQLite writes of the intake.

Why a process: Python runs one thread at a time. Through the async engine every update took
three trips to aiosqlite's thread plus SQLAlchemy's bookkeeping (~1.4 ms); a writer *thread*
removed the trips but still shared one core with aiogram's routing. A child process writes on
the second core while the bot routes the next updates (docs/BENCHMARKS.md).

How: the parent sends jobs (plain data, pickled) down the child's stdin; the child runs each job
through the handler that a factory given at start returns (for the intake
`bot.services.intake.job_runner`, pickled by reference: the child imports it by its qualified
name, so a rename fails the type check, not the child) inside its own SAVEPOINT (a job that
raises is rolled back alone and reported as failed), commits every job that was waiting in one
transaction, and only then answers with the results on its stdout, in order. A job's future
resolves in the parent after that answer: nobody hears "stored" before it is durable.

Failures: a batch whose transaction cannot be committed (locked longer than the busy timeout,
disk full, read-only) is retried by the child, which says so once until it succeeds. If the
child dies, the parent starts a new one and sends again every job it has no answer for; jobs
are idempotent (the raw update's unique key), so one committed just before the crash is only
seen as a redelivery. If the parent dies, the child sees its stdin close and exits; whatever
the parent had not heard back about was never confirmed to Telegram, which delivers it again.

Only a file-based SQLite database gets a writer (`IntakeWriter.for_engine`); PostgreSQL keeps
the session path, where several workers write in parallel anyway.

Run as `python -m storage.writer DATABASE` by the parent only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pickle
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import Db, SqliteDb, run_marking

logger = logging.getLogger(__name__)

# At most this many jobs share one commit.
MAX_BATCH = 500
# Jobs are sent to the child when the event loop comes round, or at once when this many wait.
SEND_BATCH = 32
# How long a BEGIN waits for another connection's write lock before the batch is tried again.
BUSY_TIMEOUT_MS = 5000
# A child that dies this many times in a row without answering anything is not started again.
MAX_RESTARTS = 3
_HEADER = struct.Struct(">I")

# handler(context) -> run(db, job); `run.prepare(jobs) -> jobs`, if any, sees each batch first.
Handler = Callable[[Any], Callable[[Db, Any], Any]]


class WriterError(RuntimeError):
    """A job could not be stored; the message says why (the child's exception, as text)."""


@dataclass(slots=True)
class _Pending:
    job: Any
    future: asyncio.Future[Any]
    then: Callable[[Any, BaseException | None], None] | None


class IntakeWriter:
    """The parent's side: submit jobs, get futures that resolve once the child committed them."""

    def __init__(self, path: str, handler: Handler, context: Any = None) -> None:
        self.path = path
        # A module-level function, called in the child as handler(context) -> run(db, job).
        self.handler = handler
        self.context = context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._child: _Child | None = None
        self._inflight: deque[_Pending] = deque()  # sent or queued, not yet answered, in order
        self._outbox: list[Any] = []  # jobs not yet handed to the sending thread
        self._send_scheduled = False
        self._closed = False
        self._restarts = 0
        self.batches = 0  # answers received (each covers one commit or more)

    @classmethod
    def for_engine(
        cls, engine: AsyncEngine, handler: Handler, context: Any = None
    ) -> IntakeWriter | None:
        """A writer for a file-based SQLite engine; None for anything else."""
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.get_driver_name() != "aiosqlite":
            return None
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return cls(os.path.abspath(database), handler, context)

    @property
    def closed(self) -> bool:
        """Closed or abandoned: `submit` raises."""
        return self._closed

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet committed (and answered)."""
        return len(self._inflight)

    def submit(
        self, job: Any, then: Callable[[Any, BaseException | None], None] | None = None
    ) -> asyncio.Future[Any]:
        """Queue `job`; the future resolves with its result once it is committed.

        `then(result, error)` runs on the event loop right after the commit is known, before
        the future resolves, whether or not anybody awaits the future.
        """
        if self._closed:
            raise WriterError("the intake writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._inflight.append(_Pending(job, future, then))
        self._outbox.append(job)
        if self._child is None:
            self._loop = loop
            self._start()
        elif len(self._outbox) >= SEND_BATCH:
            self._send()  # a burst that never yields to the loop still keeps the child busy
        elif not self._send_scheduled:
            self._send_scheduled = True
            loop.call_soon(self._send)
        return future

    async def flush(self) -> None:
        """Wait until every job submitted so far is committed (or has failed)."""
        while self._inflight:
            # Answers come in order; waiting on the newest is enough unless it was cancelled.
            await asyncio.wait({self._inflight[-1].future})
            if self._inflight and self._inflight[-1].future.cancelled():
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Commit what is queued, then let the child exit."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        child, self._child = self._child, None
        if child is not None:
            await child.stop()

    async def abandon(self) -> None:
        """Stop as a crash would: the child is killed; jobs not answered fail (not committed)."""
        self._closed = True
        child, self._child = self._child, None
        if child is not None:
            child.kill()
        self._fail_all(WriterError("the intake writer was stopped before storing this"))

    def _start(self) -> None:
        assert self._loop is not None
        level = logging.getLogger().getEffectiveLevel()
        try:
            self._child = _Child(self, self.path, (self.handler, self.context, level))
        except OSError as error:
            self._fail_all(WriterError(f"cannot start the intake writer: {error}"))
            return
        # Everything not answered goes (again) to the new child, in order.
        self._outbox = [pending.job for pending in self._inflight]
        self._send()

    def _send(self) -> None:
        self._send_scheduled = False
        if not self._outbox or self._child is None:
            return
        jobs, self._outbox = self._outbox, []
        self._child.send(jobs)

    def _deliver(self, results: list[tuple[bool, Any]]) -> None:
        """On the loop: the child committed the next `len(results)` jobs."""
        self.batches += 1
        self._restarts = 0
        for ok, value in results:
            pending = self._inflight.popleft()
            result, error = (value, None) if ok else (None, WriterError(value))
            if pending.then is not None:
                try:
                    pending.then(result, error)
                except Exception:  # one callback's bug must not strand the other futures
                    logger.exception("процесс записи: ошибка в обработчике завершения")
            if pending.future.cancelled():
                continue
            if error is None:
                pending.future.set_result(result)
            else:
                pending.future.set_exception(error)
                pending.future.exception()  # reported through `then`; awaiting is optional

    def _exited(self, child: _Child, code: int | None) -> None:
        """On the loop: a child's stdout closed. Start another unless we are closing."""
        if self._closed or child is not self._child:
            return
        self._child = None
        self._restarts += 1
        if self._restarts > MAX_RESTARTS:
            logger.error(
                "процесс записи завершился с кодом %s %d раз подряд; перезапусков больше не будет",
                code,
                self._restarts,
            )
            self._fail_all(WriterError(f"the intake writer keeps exiting (status {code})"))
            return
        logger.error(
            "процесс записи завершился с кодом %s; запускаем снова (ждут обновлений: %d)",
            code,
            len(self._inflight),
        )
        self._start()

    def _fail_all(self, error: WriterError) -> None:
        while self._inflight:
            pending = self._inflight.popleft()
            if pending.then is not None:
                with contextlib.suppress(Exception):
                    pending.then(None, error)
            if not pending.future.done():
                pending.future.set_exception(error)
                pending.future.exception()
        self._outbox = []


class _Child:
    """One child process, talked to through non-blocking pipes on the event loop.

    No threads: a thread in the parent would take the interpreter lock from the routing code
    every time it woke up. The pipes are enlarged (up to 1 MiB on Linux), so a burst of jobs
    fits without waiting; what does not is written when the loop finds the pipe writable.
    """

    def __init__(self, writer: IntakeWriter, path: str, start: Any) -> None:
        self.writer = writer
        assert writer._loop is not None
        self.loop = writer._loop
        self.process = subprocess.Popen(
            [sys.executable, "-m", "storage.writer", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            # Ctrl-C and a terminal's signals go to the parent, which closes the child.
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin = self.process.stdin.fileno()
        self.stdout = self.process.stdout.fileno()
        for fd in (self.stdin, self.stdout):
            _enlarge_pipe(fd)
            os.set_blocking(fd, False)
        self.unsent = bytearray()
        self.received = bytearray()
        self.closing = False
        self.gone = False
        self.exited: asyncio.Future[int | None] = self.loop.create_future()
        self.loop.add_reader(self.stdout, self._readable)
        self.send(start)

    def send(self, value: Any) -> None:
        body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self.unsent += _HEADER.pack(len(body)) + body
        self._flush_unsent()

    async def stop(self) -> None:
        """Close the child's stdin after what is queued; wait for it to exit."""
        self.closing = True
        self._flush_unsent()
        try:
            async with asyncio.timeout(10):
                await asyncio.shield(self.exited)
        except TimeoutError:
            logger.warning("процесс записи не завершился; останавливаем принудительно")
            self.kill()

    def kill(self) -> None:
        self.closing = True
        with contextlib.suppress(OSError):
            self.process.kill()
        self._gone()

    def _flush_unsent(self) -> None:
        if self.gone:
            return
        try:
            while self.unsent:
                written = os.write(self.stdin, self.unsent)
                del self.unsent[:written]
        except BlockingIOError:
            self.loop.add_writer(self.stdin, self._writable)
            return
        except OSError as error:  # the child is gone; reading sees it and we start again
            logger.warning("процесс записи: не удаётся передать данные: %s", error)
            self.unsent.clear()
        if self.closing:
            self._close_stdin()

    def _writable(self) -> None:
        self.loop.remove_writer(self.stdin)
        self._flush_unsent()

    def _close_stdin(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()

    def _readable(self) -> None:
        ended = False
        try:
            while True:
                chunk = os.read(self.stdout, 1 << 20)
                if not chunk:
                    ended = True
                    break
                self.received += chunk
        except BlockingIOError:
            pass
        except OSError as error:
            logger.warning("процесс записи: не удаётся прочитать ответ: %s", error)
            ended = True
        # Answers that arrived together with the end still count: deliver them first.
        while len(self.received) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self.received)
            end = _HEADER.size + length
            if len(self.received) < end:
                break
            results = pickle.loads(bytes(self.received[_HEADER.size : end]))
            del self.received[:end]
            self.writer._deliver(results)
        if ended:
            self._gone()

    def _gone(self) -> None:
        """The child closed its stdout: it exited (or is about to)."""
        if self.gone:
            return
        self.gone = True
        self.loop.remove_reader(self.stdout)
        self.loop.remove_writer(self.stdin)
        self._close_stdin()
        assert self.process.stdout is not None
        with contextlib.suppress(OSError):
            self.process.stdout.close()
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if not self.exited.done():
            self.exited.set_result(code)
        self.writer._exited(self, code)


def _enlarge_pipe(fd: int) -> None:
    """Give the pipe 1 MiB of buffer where the system allows it (Linux F_SETPIPE_SZ)."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", 1031)
    for size in (1 << 20, 1 << 18):
        try:
            fcntl.fcntl(fd, setpipe, size)
            return
        except OSError:
            continue


# -- the child process ---------------------------------------------------------------------------


def serve(path: str, stdin: int = 0, stdout: int = 1) -> int:
    """The child's loop: read jobs, write them in batches, answer after each commit."""
    # The parent decides when the child stops (it closes stdin); signals are for the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    frames = _Frames(stdin)
    start = frames.read()
    if start is None:
        return 0
    handler, context, level = start
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # As in the parent (bot/cli.py): pymorphy3 announces its dictionaries at INFO, in English.
    logging.getLogger("pymorphy3").setLevel(logging.WARNING)
    run = handler(context)
    prepare: Callable[[list[Any]], list[Any]] | None = getattr(run, "prepare", None)
    connection = _connect(path)
    memo = _Memo()

    def one(job: Any) -> tuple[bool, Any]:
        return _run_job(connection, lambda db: run(db, job), memo)

    try:
        while True:
            batch = frames.read()
            if batch is None:
                return 0
            requests = [batch]
            size = len(batch)
            while size < MAX_BATCH and frames.ready():
                more = frames.read()
                if more is None:
                    break
                requests.append(more)
                size += len(more)
            jobs = [job for request in requests for job in request]
            if prepare is not None:
                jobs = prepare(jobs)
            results = _write_batch(connection, jobs, one, memo)
            body = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                _write_all(stdout, _HEADER.pack(len(body)) + body)
            except BrokenPipeError:
                return 0  # the parent is gone; what it never heard about it never confirmed
    finally:
        connection.close()


class _Frames:
    """Length-prefixed pickles from a file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def ready(self) -> bool:
        if len(self.buffer) >= _HEADER.size:
            return True
        readable, _, _ = select.select([self.fd], [], [], 0)
        return bool(readable)

    def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            chunk = os.read(self.fd, max(65536, size - len(self.buffer)))
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read(self) -> Any:
        if not self._fill(_HEADER.size):
            return None
        (length,) = _HEADER.unpack_from(self.buffer)
        if not self._fill(_HEADER.size + length):
            return None
        body = bytes(self.buffer[_HEADER.size : _HEADER.size + length])
        del self.buffer[: _HEADER.size + length]
        return pickle.loads(body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _Memo(dict[Any, Any]):
    """What jobs may remember (`Db.memo`) while only the writer writes (BEGIN IMMEDIATE on).

    Another connection's commit between batches changes `PRAGMA data_version`: then it is
    dropped, as after any rollback."""

    version: int | None = None

    def begin(self, connection: sqlite3.Connection) -> None:
        """In the batch's transaction, before its first job: drop the memo if others wrote."""
        version = connection.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.clear()
            self.version = version

    def drop(self) -> None:
        self.clear()
        self.version = None


def _write_batch(
    connection: sqlite3.Connection,
    jobs: list[Any],
    one: Callable[[Any], tuple[bool, Any]],
    memo: _Memo | None = None,
) -> list[tuple[bool, Any]]:
    """Run `jobs` in one transaction; retried while the database is busy or full."""
    attempt = 0
    while True:
        attempt += 1
        try:
            # IMMEDIATE takes the write lock up front, waiting up to the busy timeout.
            connection.execute("BEGIN IMMEDIATE")
            if memo is not None:
                memo.begin(connection)
            results = [one(job) for job in jobs]
            connection.execute("COMMIT")
            if attempt > 1:
                logger.warning("процесс записи: сохранено с попытки %d", attempt)
            return results
        except sqlite3.Error as error:
            if memo is not None:
                memo.drop()
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if not _retryable(error):
                logger.error("процесс записи: не сохранены обновления (%d): %s", len(jobs), error)
                return [(False, f"{type(error).__name__}: {error}")] * len(jobs)
            delay = min(0.05 * 2**attempt, 5.0)
            if attempt == 1:  # said once; the parent confirms nothing meanwhile
                logger.warning(
                    "процесс записи: не удаётся сохранить обновления (%d): %s; "
                    "повторяем, пока не получится",
                    len(jobs),
                    error,
                )
            time.sleep(delay)


def _run_job(
    connection: sqlite3.Connection, work: Callable[[Db], Any], memo: _Memo | None = None
) -> tuple[bool, Any]:
    connection.execute("SAVEPOINT intake_job")
    try:
        try:
            # The page-days the job wrote are marked stale for the reports in the same trip.
            result = run_marking(work, SqliteDb(connection, memo))
        except BaseException:
            if memo is not None:
                memo.drop()  # rows it remembered may be rolled back below
            raise
    except sqlite3.OperationalError as error:
        connection.execute("ROLLBACK TO intake_job")
        if _retryable(error):
            raise  # the database itself is in trouble: the whole batch is retried
        connection.execute("RELEASE intake_job")
        return False, f"{type(error).__name__}: {error}"
    except Exception as error:
        connection.execute("ROLLBACK TO intake_job")
        connection.execute("RELEASE intake_job")
        logger.exception("процесс записи: задание не выполнено")
        return False, f"{type(error).__name__}: {error}"
    connection.execute("RELEASE intake_job")
    return True, result


# Busy, locked, read-only, I/O error, disk full, cannot open: the database's trouble, not the
# job's (bot/services/intake.py counts the same codes as "unavailable").
_RETRYABLE_CODES = frozenset({5, 6, 8, 10, 13, 14})


def _retryable(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(error) or "busy" in str(error)
    return (code & 0xFF) in _RETRYABLE_CODES


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit mode: BEGIN, SAVEPOINT and COMMIT are ours. Same pragmas as storage/engine.py.
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1]))
