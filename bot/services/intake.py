"""The intake use case: every source hands its updates here, and only here.

Live Telegram (discussion group, private messages, Business), VK Long Poll and Callback API, VK
gap fill, personal walls and backfill, and the Telegram Desktop export all translate what they
receive into `bot.events` and give it to the `Intake` as an `IntakeJob`: the update's raw copy
(if the source has one), its events, and the source's cursors to move in the same transaction.

One policy for every source (`store_job`):

* **Once.** The raw copy is stored once by its (source, key). A redelivery of an update that was
  processed changes nothing (`Stored.duplicate`); a redelivery of one kept as "failed" is
  processed again.
* **A failure is kept.** An event that cannot be decided (a bug, bad data) rolls back alone and
  its raw copy is kept with status "failed" and the reason; the update counts as stored.
* **Confirmed means committed.** A source tells its platform an update is done (Telegram's
  offset, VK's `ts` or `ok`) only once `Intake` says the update — or its raw copy marked failed —
  is committed. When neither can be written because the database itself is unavailable
  (`is_unavailable`), the intake does not move on: it waits, backing off, says so once in the
  log, and goes on when the database is back (`Intake.wait_out`).

Where it is written: on a SQLite file by the intake writer process (storage/writer.py, through
`intake_writer.WriterBridge`: grouped commits on the second core), else through an ORM session.
Handlers that must read the database or need a decision's result before they answer (relays,
commands) take the session path (`Intake.open`), with the writer flushed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, InterfaceError
from sqlalchemy.exc import OperationalError as SqlOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot import ru
from bot import text as text_analysis
from bot.events import Event, MessageEvent
from bot.memory import settle_after_start
from bot.services import quality
from bot.services.ingest import IngestResult, IngestService, reading
from bot.services.intake_jobs import Cursor as Cursor
from bot.services.intake_jobs import IntakeJob as IntakeJob
from bot.services.intake_jobs import RawCopy as RawCopy
from bot.services.intake_jobs import Stored as Stored
from bot.services.notices import tell_press
from bot.services.policy import PageDefaults
from storage import intake_rows
from storage import repositories as repo
from storage.db import Db, run_in_transaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.app import AppContext
    from bot.services.intake_writer import WriterBridge
    from storage.engine import SessionFactory

logger = logging.getLogger(__name__)

# Waiting out an outage: the first retry after this many seconds, doubling up to the cap.
RETRY_S = 0.25
RETRY_CAP_S = 10.0
# Said once per outage in the press chat (as in the log): when it starts, and when it ends.
OUTAGE_NOTICE = (
    "Отклик: база данных недоступна, приём сообщений приостановлен. Ничего не теряется: "
    "Telegram и ВКонтакте хранят новые сообщения, пока база не вернётся."
)
RECOVERY_NOTICE = (
    "Отклик: база данных снова доступна (перерыв {lasted}), приём сообщений продолжается."
)
# SQLite result codes that mean the database, not the update, is in trouble: busy, locked,
# read-only, I/O error, disk full, cannot open.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 8, 10, 13, 14})
_SQLITE_UNAVAILABLE_WORDS = ("locked", "busy", "readonly", "disk", "unable to open")


class DatabaseUnavailable(RuntimeError):
    """The database cannot be written now (down, unreachable, locked, full): wait, retry."""


class DecisionFailed(RuntimeError):
    """A job without a raw copy (read back, imported) could not be decided; nothing was kept."""


def is_unavailable(error: BaseException) -> bool:
    """Is `error` the database's trouble (wait and retry) rather than the update's (keep it)?"""
    if isinstance(error, DatabaseUnavailable):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        orig = error.orig
        if isinstance(orig, sqlite3.Error):
            return _sqlite_unavailable(orig)
        return isinstance(error, SqlOperationalError | InterfaceError)
    if isinstance(error, sqlite3.OperationalError):
        return _sqlite_unavailable(error)
    # Connecting: asyncpg raises the socket's own errors; a pool that cannot hand out a
    # connection in time.
    return isinstance(error, ConnectionError | TimeoutError | DisconnectionError | PoolTimeout)


def _sqlite_unavailable(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:  # raised by Python code, not by SQLite: judged by its message
        return any(word in str(error) for word in _SQLITE_UNAVAILABLE_WORDS)
    return (code & 0xFF) in _SQLITE_UNAVAILABLE


def note_of(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def warm_up_reading() -> None:
    """Load the model and the dictionaries (pymorphy3 too: «почините») now, not with an update."""
    text_analysis.classify("Почините, пожалуйста, дорогу: когда починят?")
    text_analysis.is_interim("Передали в управление.")


def read_ahead(job: IntakeJob) -> IntakeJob:
    """`job` with its new messages' texts read (deciding them then need not read them)."""
    if not any(isinstance(event, MessageEvent) for event in job.events):
        return job
    readings = tuple(
        reading.read_ahead(event) if isinstance(event, MessageEvent) else None
        for event in job.events
    )
    return dataclasses.replace(job, readings=readings)


# -- the one transaction body ------------------------------------------------------------------


def store_job(service: IngestService, db: Db, job: IntakeJob) -> Stored:
    """Store the raw copy once, decide the events, move the cursors (the caller commits)."""
    raw = job.raw
    raw_id: int | None = None
    if raw is not None:
        raw_id = intake_rows.claim_raw_update(
            db, raw.source, raw.key, raw.update_type, raw.payload, status=job.status, note=job.note
        )
        if raw_id is None:
            _move_cursors(db, job)
            return Stored(duplicate=True)
    stored = _decide(service, db, job, raw_id)
    _move_cursors(db, job)
    return stored


def _decide(service: IngestService, db: Db, job: IntakeJob, raw_id: int | None) -> Stored:
    if not job.events:
        return Stored()
    for attempt in (1, 2):
        db.run("SAVEPOINT intake_events", {})
        try:
            readings = job.readings or (None,) * len(job.events)
            decided = [
                service.decide(db, event, reading)
                for event, reading in zip(job.events, readings, strict=True)
            ]
        except IntegrityError:
            # Another connection stored one of the rows first: the second pass sees it.
            db.run("ROLLBACK TO intake_events", {})
            db.run("RELEASE intake_events", {})
            if attempt == 1:
                continue
            raise
        except Exception as error:
            if is_unavailable(error):
                raise  # the database's trouble: the whole job is tried again
            db.run("ROLLBACK TO intake_events", {})
            db.run("RELEASE intake_events", {})
            key = job.raw.key if job.raw is not None else "(read back)"
            logger.exception("обновление %s не обработано", key)
            note = note_of(error)
            if raw_id is None:
                raise DecisionFailed(note) from error
            # Kept, with the reason, for the record and for reprocessing; never lost.
            repo.set_raw_update_status(db, raw_id, "failed", note)
            return Stored(failure=note)
        db.run("RELEASE intake_events", {})
        rescore = tuple(dict.fromkeys(a for _, appeals in decided for a in appeals))
        # In the job's own transaction (issue 16 item 7): stored together, or not at all.
        for appeal_id in rescore:
            quality.rescore_appeal(db, appeal_id)
        return Stored(rescore=rescore, outcomes=tuple(result.outcome for result, _ in decided))
    raise AssertionError("unreachable")  # pragma: no cover


def _move_cursors(db: Db, job: IntakeJob) -> None:
    for cursor in job.cursors:
        if cursor.rising:
            intake_rows.raise_cursor_row(db, cursor.name, int(cursor.value))
        else:
            intake_rows.set_cursor_row(db, cursor.name, cursor.value)


class JobRunner:
    """What the intake writer process runs: each job, after reading its batch's texts."""

    def __init__(self, defaults: PageDefaults | None) -> None:
        self.service = IngestService(None, defaults)

    def __call__(self, db: Db, job: IntakeJob) -> Stored:
        return store_job(self.service, db, job)

    def prepare(self, jobs: list[IntakeJob]) -> list[IntakeJob]:
        """Read the new messages' texts of a batch together, before its transaction.

        One after another, the classifier finds its model still in the processor's caches:
        ~55 µs a text, against ~120 µs between SQLite's work (docs/BENCHMARKS.md). A text that
        cannot be read here is read again, and fails, where its job is decided.
        """
        return [job if job.readings else _read_or_leave(job) for job in jobs]


def _read_or_leave(job: IntakeJob) -> IntakeJob:
    try:
        return read_ahead(job)
    except Exception:  # deciding the job reads it again and keeps the update as failed
        return job


def job_runner(defaults: PageDefaults | None) -> JobRunner:
    """What the intake writer process runs for each job (given to storage.writer at start)."""
    runner = JobRunner(defaults)
    warm_up_reading()
    settle_after_start()  # this runs in the writer process: its own garbage collector
    return runner


# -- the use case ------------------------------------------------------------------------------


class Intake:
    """Stores jobs for every source; waits out database outages instead of moving on."""

    def __init__(
        self,
        sessions: SessionFactory,
        defaults: PageDefaults,
        writer: WriterBridge | None = None,
        *,
        retry_s: float = RETRY_S,
        retry_cap_s: float = RETRY_CAP_S,
    ) -> None:
        self.sessions = sessions
        self.defaults = defaults
        self.writer = writer
        self.retry_s = retry_s
        self.retry_cap_s = retry_cap_s
        self._outage_since: float | None = None
        self.app: AppContext | None = None  # whose press chat hears of outages
        self._notices: set[asyncio.Task[bool]] = set()

    @classmethod
    def for_app(cls, app: AppContext) -> Intake:
        """The app's intake; on a SQLite file with its writer process (started when used).

        Outages are told to the app's press chat as well as logged.
        """
        intake = cls.for_database(app.engine, app.sessions, app.defaults)
        intake.app = app
        return intake

    @classmethod
    def for_database(
        cls, engine: AsyncEngine, sessions: SessionFactory, defaults: PageDefaults
    ) -> Intake:
        """An intake on `engine`; on a SQLite file with its writer process (`close` it)."""
        from bot.services.intake_writer import WriterBridge

        intake = cls(sessions, defaults)
        intake.writer = WriterBridge.for_engine(engine, intake, job_runner)
        return intake

    # -- outages -------------------------------------------------------------------------------

    async def wait_out(self, error: BaseException, attempt: int) -> None:
        """The database is unavailable: say so once, then wait before the next try."""
        logger.debug("database unavailable (try %d): %s", attempt + 1, note_of(error))
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.error(
                "база данных недоступна (%s); приём ждёт и ничего не подтверждает, "
                "пока она не вернётся",
                note_of(error),
            )
            self._tell_press(OUTAGE_NOTICE)
        await asyncio.sleep(min(self.retry_s * 2 ** min(attempt, 16), self.retry_cap_s))

    def available(self) -> None:
        """A write went through: if the database was unavailable, it is back."""
        if self._outage_since is not None:
            lasted = time.monotonic() - self._outage_since
            logger.warning(
                "база данных снова доступна (перерыв %.0f с); приём продолжается", lasted
            )
            self._outage_since = None
            self._tell_press(RECOVERY_NOTICE.format(lasted=ru.duration(lasted)))

    def _tell_press(self, text: str) -> None:
        """The press chat hears it too; in the background: the intake must not wait on it."""
        if self.app is None:
            return
        task = asyncio.get_running_loop().create_task(tell_press(self.app, text))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    @property
    def waiting(self) -> bool:
        """Is the intake waiting for the database now?"""
        return self._outage_since is not None

    # -- one job, now --------------------------------------------------------------------------

    async def store(self, job: IntakeJob) -> Stored:
        """Commit `job` once; DatabaseUnavailable if the database cannot take it now."""
        stored: Stored | None = None
        if self.writer is not None:
            stored = await self.writer.store(job)
        if stored is None:
            stored = await self.store_in_session(job)
        self.available()
        return stored

    async def deliver(
        self, job: IntakeJob, *, within: float | None = None, session_only: bool = False
    ) -> Stored:
        """`store`, waiting while the database is unavailable (at most `within` s, if given).

        `session_only`: not through the writer (what the writer gave up on).
        """
        if within is None:
            return await self._deliver(job, session_only=session_only)
        try:
            async with asyncio.timeout(within):
                return await self._deliver(job, session_only=session_only)
        except TimeoutError as error:
            raise DatabaseUnavailable(f"not stored within {within} s") from error

    async def _deliver(self, job: IntakeJob, *, session_only: bool = False) -> Stored:
        attempt = 0
        while True:
            try:
                if session_only:
                    stored = await self.store_in_session(job)
                    self.available()
                    return stored
                return await self.store(job)
            except DatabaseUnavailable as error:
                await self.wait_out(error.__cause__ or error, attempt)
                attempt += 1

    async def store_in_session(self, job: IntakeJob) -> Stored:
        """The job through an ORM session (PostgreSQL, or what the writer could not store).

        If that fails for any reason but the database's own, the raw copy alone is kept as
        "failed", so that one bad update cannot hold the intake.
        """
        service = IngestService(None, self.defaults)
        try:
            for attempt in (1, 2):
                try:
                    return await self._in_session(lambda db: store_job(service, db, job))
                except IntegrityError:
                    if attempt == 2:
                        raise
                    # Another worker stored the same row first (PostgreSQL): the second pass
                    # sees it.
            raise AssertionError("unreachable")  # pragma: no cover
        except DecisionFailed:
            raise
        except Exception as error:
            if is_unavailable(error):
                raise DatabaseUnavailable(note_of(error)) from error
            if job.raw is None:
                raise DecisionFailed(note_of(error)) from error
            logger.exception(
                "обновление %s не удалось сохранить; оставлено с пометкой об ошибке", job.raw.key
            )
            await self.keep_failed(job.raw, error, wait=False)
            return Stored(failure=note_of(error))

    async def _in_session(self, work: Callable[[Db], Stored]) -> Stored:
        async with self.sessions() as session:
            try:
                stored = await run_in_transaction(session, work)
                await session.commit()
            except BaseException:
                # Nothing of it may stay on the pooled connection (see IntakeSession.commit).
                with contextlib.suppress(Exception):
                    await session.rollback()
                raise
        return stored

    async def keep_failed(self, raw: RawCopy, error: BaseException, *, wait: bool = True) -> None:
        """Keep the raw copy of an update that could not be processed, status "failed".

        `wait`: while the database is unavailable, wait for it (the update is not confirmed
        until this returns); without it, DatabaseUnavailable.
        """
        note = note_of(error)

        def failed(db: Db) -> Stored:
            raw_id = intake_rows.claim_raw_update(
                db, raw.source, raw.key, raw.update_type, raw.payload, status="failed", note=note
            )
            if raw_id is not None:
                repo.set_raw_update_status(db, raw_id, "failed", note)
            return Stored(failure=note)

        attempt = 0
        while True:
            try:
                await self._in_session(failed)
                self.available()
                return
            except Exception as store_error:
                if not is_unavailable(store_error):
                    raise
                if not wait:
                    raise DatabaseUnavailable(note_of(store_error)) from store_error
                await self.wait_out(store_error, attempt)
                attempt += 1

    # -- in the background (the writer) ---------------------------------------------------------

    @property
    def background(self) -> bool:
        """Can jobs be handed over without waiting (`submit`)? Only with the writer."""
        return self.writer is not None and self.writer.open

    def submit(self, job: IntakeJob, then: Callable[[Stored], None]) -> None:
        """Hand `job` to the writer; `then(stored)` runs once it is committed (see `flush`)."""
        assert self.writer is not None
        self.writer.submit(job, then)

    @property
    def pending(self) -> int:
        """Jobs handed over and not yet committed."""
        return self.writer.pending if self.writer is not None else 0

    async def flush(self) -> None:
        """Wait until every job handed over so far is committed (and rescored).

        What the writer could not store is stored through a session here, waiting while the
        database is unavailable: nothing handed over is ever dropped.
        """
        if self.writer is not None:
            await self.writer.flush()

    # -- in a session (handlers that read the database) -----------------------------------------

    async def open(self, raw: RawCopy) -> IntakeSession | None:
        """A session with `raw` claimed in it; None if it was processed before.

        DatabaseUnavailable if the database cannot be reached: the caller waits (`wait_out`)
        and starts the update again.
        """
        if self.writer is not None:
            await self.writer.flush()  # the handler reads what every earlier update wrote
        session = self.sessions()
        try:
            raw_id = await run_in_transaction(
                session,
                lambda db: intake_rows.claim_raw_update(
                    db, raw.source, raw.key, raw.update_type, raw.payload
                ),
            )
        except BaseException as error:
            await session.close()
            if isinstance(error, Exception) and is_unavailable(error):
                raise DatabaseUnavailable(note_of(error)) from error
            raise
        if raw_id is None:
            await session.close()
            return None
        return IntakeSession(self, session, raw_id)

    async def close(self) -> None:
        """Commit what was handed over, then stop the writer process."""
        if self.writer is not None:
            await self.writer.close()

    async def abandon(self) -> None:
        """Stop the writer as a crash would (what it has not committed is not stored)."""
        if self.writer is not None:
            await self.writer.abandon()


class IntakeSession:
    """One update's ORM session: its raw copy claimed, events decided in it, one commit."""

    __slots__ = ("intake", "raw_id", "service", "session")

    def __init__(self, intake: Intake, session: AsyncSession, raw_id: int) -> None:
        self.intake = intake
        self.session = session
        self.raw_id = raw_id
        self.service = IngestService(session, intake.defaults)

    async def handle(self, event: Event) -> IngestResult:
        """Decide and store `event` now, in this session."""
        return await self.service.handle(event)

    async def commit(self, *, handled: bool = True) -> None:
        """Commit the update (kept as "skipped" if nothing interpreted it); closes the session.

        DatabaseUnavailable if the commit cannot be made: nothing of the update is stored.
        """
        try:
            if not handled:
                raw_id = self.raw_id
                # Stored for the record and for reprocessing; nothing here interprets it.
                await run_in_transaction(
                    self.session, lambda db: repo.set_raw_update_status(db, raw_id, "skipped")
                )
            await self.session.commit()
        except Exception as error:
            # Nothing of a failed commit may stay behind on the pooled connection: the next
            # session would see it as stored.
            await self.discard()
            if is_unavailable(error):
                raise DatabaseUnavailable(note_of(error)) from error
            raise
        await self.session.close()
        self.intake.available()

    async def discard(self) -> None:
        """Roll back everything of the update (it failed, or the database went away)."""
        try:
            await self.session.rollback()
        except Exception as error:  # the connection is gone already: nothing to roll back
            logger.debug("rollback failed: %s", error)
        finally:
            await self.session.close()
