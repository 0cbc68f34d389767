"""Every update stored once before it is interpreted; handlers get the database lazily.

Two ways an update's database work is done:

* **In the background (intake writer).** The discussion group's handlers (comments, their
  edits and reactions: nearly all the traffic) only translate their update into events
  (`UpdateUnit.submit`). After the handler returns, the raw update and those events go to the
  intake writer process (storage/writer.py) as one job: one SAVEPOINT, commits grouped with the
  jobs around it. On SQLite files only.
* **In a session.** Any other handler (relays, commands, buttons, business messages: everything
  that reads the database, calls the Bot API with what it found or needs a result) gets an ORM
  session in which the raw update is stored first, and everything commits in one transaction
  after it returns. Before that session opens, the writer is flushed, so the handler sees every
  earlier update. PostgreSQL and in-memory SQLite always take this way.

Either way a redelivered update changes nothing (the raw update's unique key), an update whose
handler failed is kept with status `failed`, and an update with no handler is kept as `skipped`.
`last_update_id` is the newest update that is committed. In polling (`use_for_polling`) a
background job need not be waited for: the bot's next getUpdates, which confirms the offset to
Telegram, first waits for every job to be committed (`FlushBeforeGetUpdates`), and so does
`confirm_offset` at shutdown. A crash loses nothing: what was not committed was not confirmed,
and Telegram delivers it again. Without `use_for_polling` (webhooks, direct `feed_update`) every
update is committed before the middleware returns. What the writer cannot store (it keeps
crashing, SQLite refuses the batch) is stored through a session before anything is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiogram import BaseMiddleware, Bot, Router
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject, Update
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.events import Event
from bot.services import quality
from bot.services.ingest import IngestResult, IngestService, Stored, UpdateJob, store_update
from storage import repositories as repo
from storage.writer import IntakeWriter, WriterError

logger = logging.getLogger(__name__)

SOURCE = "telegram"

# Updates handed to the writer and not yet committed, beyond which intake waits for it.
MAX_PENDING = 5000
# Seconds a stop waits for the writer to commit what it has, at most twice (confirm_offset,
# then close): within systemd's TimeoutStopSec of 30 in docs/SETUP.md.
STOP_TIMEOUT = 10.0

T = TypeVar("T")
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class AlreadyStored(Exception):
    """The update was stored before (a redelivery); its handler stops here."""


class _NeedsTask(Exception):
    """On the eager pass: this update will wait for something; run it again in a task."""


class UpdateUnit:
    """One update's database work: events for the background, or a session when needed."""

    __slots__ = ("eager", "events", "raw_id", "service", "session", "store", "update")

    def __init__(self, store: UpdateStoreMiddleware, update: Update, *, eager: bool) -> None:
        self.store = store
        self.update = update
        self.eager = eager  # see UpdateStoreMiddleware.__call__
        self.events: list[Event] = []
        self.session: AsyncSession | None = None
        self.service: IngestService | None = None
        self.raw_id: int | None = None

    async def submit(self, event: Event) -> None:
        """Record `event`; decided in the background if the update allows it, else right now."""
        if self.session is None and self.store.writer is not None:
            self.events.append(event)
            return
        service = await self.open()
        await service.handle(event)

    async def handle(self, event: Event) -> IngestResult:
        """Decide `event` now and return the result (opens the update's session)."""
        service = await self.open()
        return await service.handle(event)

    def about_to_wait(self) -> None:
        """Call before awaiting anything but the writer (the database, the Bot API)."""
        if self.eager:
            raise _NeedsTask

    async def open(self) -> IngestService:
        """The update's session with the raw update stored in it; AlreadyStored if stored before."""
        if self.service is not None:
            return self.service
        self.about_to_wait()
        store = self.store
        if store.writer is not None:
            await store.flush()  # the handler reads what every earlier update wrote
        session = store.app.sessions()
        update = self.update
        try:
            raw_id = await repo.run_in_transaction(
                session,
                lambda db: repo.store_raw_update(
                    db, SOURCE, str(update.update_id), _update_type(update), _payload(update)
                ),
            )
        except BaseException:
            await session.close()
            raise
        if raw_id is None:
            await session.close()
            raise AlreadyStored
        self.session, self.raw_id = session, raw_id
        self.service = IngestService(session, store.app.defaults)
        events, self.events = self.events, []
        for event in events:
            await self.service.handle(event)
        return self.service


class UpdateStoreMiddleware(BaseMiddleware):
    """Outer middleware on `update`: store once, de-duplicate, commit (see the module's text).

    The update's work is shielded from cancellation: when polling is stopped (SIGTERM) the update
    in hand is finished and stored before the task ends.
    """

    def __init__(self, app: AppContext, writer: IntakeWriter | None = None) -> None:
        self.app = app
        self.writer = writer
        # Polling: background jobs are waited for before the next getUpdates, not per update.
        self.defer_commits = False
        self.last_update_id: int | None = None
        self._followups: set[asyncio.Task[None]] = set()
        # Jobs the writer could not store (it keeps exiting, or SQLite refused the batch): they
        # are stored through a session before anything is confirmed (`flush`).
        self._unstored: list[tuple[int, UpdateJob]] = []
        # One flush at a time drains `_unstored` (webhook requests flush concurrently).
        self._draining = asyncio.Lock()

    def use_for_polling(self, bot: Bot) -> None:
        """Let polling group commits: `bot`'s getUpdates first waits for the writer."""
        self.defer_commits = True
        bot.session.middleware(FlushBeforeGetUpdates(self))

    async def flush(self) -> None:
        """Wait until every update handed to the writer is committed (and rescored).

        Raises if an update the writer could not store cannot be stored through a session
        either: then nothing may be confirmed to Telegram (polling retries getUpdates later).
        """
        if self.writer is not None:
            await self.writer.flush()
        async with self._draining:
            while self._unstored:
                update_id, job = self._unstored[0]
                await self._store_in_session(job)
                self._unstored.pop(0)
                self._confirm(update_id)
        while self._followups:
            await asyncio.wait(set(self._followups))

    async def close(self, within: float = STOP_TIMEOUT) -> None:
        """Flush, then stop the writer process; give up after `within` seconds.

        A writer that cannot commit (the disk is full, another process holds the database's
        write lock) must not keep `otklik run` from stopping: after `within` s it is killed.
        Nothing is lost — what was not committed was not confirmed, and Telegram sends it again.
        """
        try:
            async with asyncio.timeout(within):
                await self.flush()
                if self.writer is not None:
                    await self.writer.close()
        except TimeoutError:
            logger.error(
                "the intake writer did not finish within %s s; stopping it (%d updates not "
                "stored will come again from Telegram)",
                within,
                self.writer.pending if self.writer is not None else 0,
            )
            await self.abandon()

    async def abandon(self) -> None:
        """Stop the writer as a crash would, dropping what it has not committed.

        Used when a stop has waited long enough (`close`), and by crash tests.
        """
        if self.writer is not None:
            await self.writer.abandon()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Process the update to its end even if polling is cancelled meanwhile (SIGTERM).

        Normally in a shielded task. In polling with the writer, first an eager pass without a
        task (a task and its trips round the event loop cost a group comment ~15 % of its
        time): routing and the handler's translation have no side effects, and anything that
        would wait on the eager pass — a session, the Bot API, a full writer, a failure —
        raises `_NeedsTask` before doing anything, and the update runs again in the task.
        """
        assert isinstance(event, Update)
        if self.writer is not None and self.defer_commits:
            eager = self._process(handler, event, dict(data), eager=True)
            try:
                waiting = eager.send(None)
            except StopIteration as stop:
                return stop.value
            except _NeedsTask:
                pass
            else:  # waited on something nobody foresaw: let it finish, shielded
                return await _finish_shielded(_resume(eager, waiting))
        return await _finish_shielded(self._process(handler, event, data, eager=False))

    async def _process(
        self, handler: Handler, update: Update, data: dict[str, Any], *, eager: bool
    ) -> Any:
        for attempt in (1, 2):
            try:
                return await self._once(handler, update, data, eager)
            except IntegrityError:
                # Another worker stored the same row first (PostgreSQL, many workers): retry once,
                # the second pass sees it and treats the update as a redelivery.
                if attempt == 2:
                    raise
                logger.info("update %r raced with another worker; retrying", update.update_id)
        return None  # pragma: no cover

    async def _once(
        self, handler: Handler, update: Update, data: dict[str, Any], eager: bool
    ) -> Any:
        unit = UpdateUnit(self, update, eager=eager)
        data["unit"] = data["ingest"] = unit
        data["app"] = self.app
        try:
            if self.writer is None:
                # No background writer: store the update before any handler runs.
                await self._open(unit, data)
            result = await handler(update, data)
        except AlreadyStored:
            logger.info("update %r was delivered before; skipped", update.update_id)
            self._confirm(update.update_id)
            return None
        except _NeedsTask:
            raise
        except Exception as error:
            unit.about_to_wait()
            await self._failed(unit, error)
            raise
        if unit.session is None and self.writer is not None:
            await self._in_background(unit, result)
            return result
        try:
            if unit.session is None:
                await self._open(unit, data)  # no handler touched the database
            assert unit.session is not None and unit.raw_id is not None
            if result is UNHANDLED:
                raw_id = unit.raw_id
                # Stored for the record and for reprocessing; nothing here interprets it.
                await repo.run_in_transaction(
                    unit.session, lambda db: repo.set_raw_update_status(db, raw_id, "skipped")
                )
                _log_unhandled(update)
            await unit.session.commit()
        except AlreadyStored:
            logger.info("update %r was delivered before; skipped", update.update_id)
        finally:
            if unit.session is not None:
                await unit.session.close()
        self._confirm(update.update_id)
        return result

    async def _open(self, unit: UpdateUnit, data: dict[str, Any]) -> None:
        await unit.open()
        data["session"] = unit.session

    async def _in_background(self, unit: UpdateUnit, result: Any) -> None:
        """Hand the raw update and its events to the writer as one job."""
        writer = self.writer
        assert writer is not None
        update, events = unit.update, tuple(unit.events)
        status = "skipped" if result is UNHANDLED and not events else "done"
        job = UpdateJob(
            SOURCE,
            str(update.update_id),
            _update_type(update),
            _payload(update),
            status,
            None,
            events,
        )

        def then(stored: Stored | None, error: BaseException | None) -> None:
            self._stored(update, job, stored, error)

        if writer.pending >= MAX_PENDING:
            unit.about_to_wait()
            await writer.flush()  # the writer is behind: wait for it rather than queue more
        done = writer.submit(job, then)
        if status == "skipped":
            _log_unhandled(update)
        if not self.defer_commits:
            with contextlib.suppress(WriterError):
                await done
            await self.flush()  # stores it through a session if the writer could not

    def _stored(
        self, update: Update, job: UpdateJob, stored: Stored | None, error: BaseException | None
    ) -> None:
        """On the event loop, once the writer committed the update's job (or gave up on it)."""
        if error is not None or stored is None:
            logger.error(
                "update %r not stored by the writer (%s); storing it directly",
                update.update_id,
                error,
            )
            self._unstored.append((update.update_id, job))
            return
        if stored.duplicate:
            logger.info("update %r was delivered before; skipped", update.update_id)
        elif stored.failure is not None:
            logger.error("update %r failed: %s (kept as failed)", update.update_id, stored.failure)
        if stored.rescore:
            task = asyncio.get_running_loop().create_task(self._rescore(stored.rescore))
            self._followups.add(task)
            task.add_done_callback(self._followups.discard)
        self._confirm(update.update_id)

    async def _rescore(self, appeal_ids: tuple[int, ...]) -> None:
        """Quality after a rating or a re-open (ORM code, in its own transaction)."""
        try:
            async with self.app.sessions() as session:
                for appeal_id in appeal_ids:
                    await quality.rescore_appeal(session, appeal_id)
                await session.commit()
        except Exception:
            # Scores are recomputed by the scheduler's hourly `quality.score_replies` as well.
            logger.exception("rescoring appeals %s failed", appeal_ids)

    async def _failed(self, unit: UpdateUnit, error: BaseException) -> None:
        """Keep the update even though interpreting it failed; it is never lost."""
        if unit.session is not None:
            await unit.session.rollback()
            await unit.session.close()
        update = unit.update
        note = _note(error)
        key, update_type = str(update.update_id), _update_type(update)
        job = UpdateJob(SOURCE, key, update_type, _payload(update), "failed", note)
        if self.writer is not None:
            try:
                await self.writer.submit(job)
            except WriterError as writer_error:
                logger.error("the writer could not keep update %r: %s", key, writer_error)
                await self._store_in_session(job)
        else:
            await self._store_in_session(job)
        self._confirm(update.update_id)

    async def _store_in_session(self, job: UpdateJob) -> None:
        """The writer's job, done through an ORM session instead (same code, same result).

        If that fails too, the raw update alone is kept as "failed" (as a handler's failure
        is), so that one bad update cannot hold the intake; only if even that cannot be
        written — the database itself is unavailable — does this raise.
        """
        service = IngestService(None, self.app.defaults)
        try:
            async with self.app.sessions() as session:
                stored = await repo.run_in_transaction(
                    session, lambda db: store_update(service, db, job)
                )
                for appeal_id in stored.rescore:
                    await quality.rescore_appeal(session, appeal_id)
                await session.commit()
            return
        except Exception as error:
            logger.exception("update %s could not be stored; keeping it as failed", job.key)
            note = _note(error)
        async with self.app.sessions() as session:
            await repo.run_in_transaction(
                session,
                lambda db: repo.store_raw_update(
                    db,
                    job.source,
                    job.key,
                    job.update_type,
                    job.payload,
                    status="failed",
                    note=note,
                ),
            )
            await session.commit()

    def _confirm(self, update_id: int) -> None:
        """Remember the newest update that is committed (or was stored before)."""
        if self.last_update_id is None or update_id > self.last_update_id:
            self.last_update_id = update_id


class OpenSessionMiddleware(BaseMiddleware):
    """Inner middleware of the routers whose handlers use the database: the update's session.

    Registered on every router but the discussion group's (handlers/__init__.py), whose
    comments, edits and reactions only submit events and are stored in the background.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        unit = data.get("unit")
        if isinstance(unit, UpdateUnit):
            data["ingest"] = await unit.open()
            data["session"] = unit.session
        return await handler(event, data)


def open_sessions(router: Router) -> Router:
    """Give every handler of `router` the update's session and ingest service."""
    opener = OpenSessionMiddleware()
    for name, observer in router.observers.items():
        if name not in ("update", "error"):
            observer.middleware(opener)
    return router


async def _finish_shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` in a task that a cancellation of the caller does not stop."""
    work = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        # Finish the update in hand, then let the cancellation go on.
        await asyncio.wait({work})
        raise


async def _resume(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    """Drive a started coroutine as its task would: wait for what it waits for, step it."""
    while True:
        if isinstance(waiting, asyncio.Future):
            waiting._asyncio_future_blocking = False
            await asyncio.wait({waiting})
        else:  # a bare yield (asyncio.sleep(0))
            await asyncio.sleep(0)
        try:
            waiting = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


class FlushBeforeGetUpdates(BaseRequestMiddleware):
    """getUpdates confirms every update before its offset: they must all be committed first."""

    def __init__(self, store: UpdateStoreMiddleware) -> None:
        self.store = store

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, GetUpdates):
            await self.store.flush()
        return await make_request(bot, method)


def writer_for(app: AppContext) -> IntakeWriter | None:
    """The intake writer process for the app's database (file-based SQLite only)."""
    return IntakeWriter.for_engine(app.engine, "bot.services.ingest:update_writer", app.defaults)


def _payload(update: Update) -> str:
    """The update as Telegram sent it, as JSON text (stored as is)."""
    try:
        return update.model_dump_json(exclude_none=True)
    except ValueError:
        # Text Telegram's JSON can carry but UTF-8 cannot (a lone surrogate, "\ud83d"): the
        # same JSON with every non-ASCII character escaped.
        return json.dumps(update.model_dump(mode="json", exclude_none=True), ensure_ascii=True)


def _note(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def _log_unhandled(update: Update) -> None:
    logger.info(
        "update %r (%s) not handled; kept as skipped",
        update.update_id,
        _update_type(update) or "unknown type",
    )


def _update_type(update: Update) -> str | None:
    try:
        return update.event_type
    except Exception:  # unknown update shapes are still stored
        return None
