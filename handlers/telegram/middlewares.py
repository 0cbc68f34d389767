"""Every update stored once before it is interpreted; handlers get the database lazily.

Two ways an update's database work is done:

* **In the background (intake writer).** A handler flagged `ingest_only` only translates its
  update into events (`UpdateUnit.submit`). After it returns, the raw update and the decision of
  those events go to the intake writer (storage/writer.py) as one job: one SAVEPOINT, commits
  grouped with the jobs around it. Group comments, their edits and reactions — nearly all the
  traffic — go this way on SQLite.
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
update is committed before the middleware returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.flags import get_flag
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject, Update
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.events import Event
from bot.services import quality
from bot.services.ingest import IngestResult, IngestService
from storage import repositories as repo
from storage.repositories import Db
from storage.writer import IntakeWriter

logger = logging.getLogger(__name__)

SOURCE = "telegram"
# A handler with this flag only calls `UpdateUnit.submit`: its update may be stored in the
# background. `router.message.register(handler, flags=INGEST_ONLY)`.
INGEST_ONLY = {"ingest_only": True}

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class AlreadyStored(Exception):
    """The update was stored before (a redelivery); its handler stops here."""


@dataclass(slots=True)
class _Stored:
    """What the intake writer did with one update."""

    duplicate: bool = False
    results: tuple[IngestResult, ...] = ()
    rescore: tuple[int, ...] = ()
    failure: str | None = None


class UpdateUnit:
    """One update's database work: events for the background, or a session when needed."""

    __slots__ = ("events", "raw_id", "service", "session", "store", "update")

    def __init__(self, store: UpdateStoreMiddleware, update: Update) -> None:
        self.store = store
        self.update = update
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

    async def open(self) -> IngestService:
        """The update's session with the raw update stored in it; AlreadyStored if stored before."""
        if self.service is not None:
            return self.service
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

    def use_for_polling(self, bot: Bot) -> None:
        """Let polling group commits: `bot`'s getUpdates first waits for the writer."""
        self.defer_commits = True
        bot.session.middleware(FlushBeforeGetUpdates(self))

    async def flush(self) -> None:
        """Wait until every update handed to the writer is committed (and rescored)."""
        if self.writer is not None:
            await self.writer.flush()
        while self._followups:
            await asyncio.wait(set(self._followups))

    async def close(self) -> None:
        """Flush, then stop the writer thread."""
        await self.flush()
        if self.writer is not None:
            await self.writer.close()

    def abandon(self) -> None:
        """Stop the writer as a crash would, dropping what it has not committed (tests)."""
        if self.writer is not None:
            self.writer.abandon()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        work = asyncio.ensure_future(self._process(handler, event, data))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # Finish the update in hand, then let the cancellation go on.
            await asyncio.wait({work})
            raise

    async def _process(self, handler: Handler, update: Update, data: dict[str, Any]) -> Any:
        for attempt in (1, 2):
            try:
                return await self._once(handler, update, data)
            except IntegrityError:
                # Another worker stored the same row first (PostgreSQL, many workers): retry once,
                # the second pass sees it and treats the update as a redelivery.
                if attempt == 2:
                    raise
                logger.info("update %r raced with another worker; retrying", update.update_id)
        return None  # pragma: no cover

    async def _once(self, handler: Handler, update: Update, data: dict[str, Any]) -> Any:
        unit = UpdateUnit(self, update)
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
        except Exception as error:
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
        data["ingest"] = await unit.open()
        data["session"] = unit.session

    async def _in_background(self, unit: UpdateUnit, result: Any) -> None:
        """Hand the raw update and its events to the writer as one job."""
        assert self.writer is not None
        update, events = unit.update, tuple(unit.events)
        status = "skipped" if result is UNHANDLED and not events else "done"
        defaults = self.app.defaults

        def work(db: Db) -> _Stored:
            return _store(db, update, events, status, defaults)

        def then(stored: _Stored | None, error: BaseException | None) -> None:
            self._stored(update, stored, error)

        job = self.writer.submit(work, then)
        if status == "skipped":
            _log_unhandled(update)
        if not self.defer_commits:
            await job

    def _stored(self, update: Update, stored: _Stored | None, error: BaseException | None) -> None:
        """On the event loop, once the writer committed the update's job."""
        if error is not None or stored is None:
            logger.error(
                "update %r not stored: %s: %s", update.update_id, type(error).__name__, error
            )
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
        if self.writer is not None:
            await self.writer.submit(
                lambda db: repo.store_raw_update(
                    db, SOURCE, key, update_type, _payload(update), status="failed", note=note
                )
            )
        else:
            async with self.app.sessions() as session:
                await repo.run_in_transaction(
                    session,
                    lambda db: repo.store_raw_update(
                        db, SOURCE, key, update_type, _payload(update), status="failed", note=note
                    ),
                )
                await session.commit()
        self._confirm(update.update_id)

    def _confirm(self, update_id: int) -> None:
        """Remember the newest update that is committed (or was stored before)."""
        if self.last_update_id is None or update_id > self.last_update_id:
            self.last_update_id = update_id


class OpenSessionMiddleware(BaseMiddleware):
    """Inner middleware: a handler not flagged `ingest_only` gets the update's session."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        unit = data.get("unit")
        if isinstance(unit, UpdateUnit) and not get_flag(data, "ingest_only"):
            data["ingest"] = await unit.open()
            data["session"] = unit.session
        return await handler(event, data)


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


def _store(
    db: Db,
    update: Update,
    events: tuple[Event, ...],
    status: str,
    defaults: Any,
) -> _Stored:
    """The writer's job for one update: the raw update, then its events in a SAVEPOINT."""
    key, update_type = str(update.update_id), _update_type(update)
    raw_id = repo.store_raw_update(db, SOURCE, key, update_type, _payload(update), status=status)
    if raw_id is None:
        return _Stored(duplicate=True)
    if not events:
        return _Stored()
    service = IngestService(None, defaults)
    for attempt in (1, 2):
        db.run("SAVEPOINT intake_events", {})
        try:
            decided = [service.decide(db, event) for event in events]
        except IntegrityError:
            # Another connection stored one of the rows first: the second pass sees it.
            db.run("ROLLBACK TO intake_events", {})
            db.run("RELEASE intake_events", {})
            if attempt == 1:
                continue
            raise
        except Exception as error:
            db.run("ROLLBACK TO intake_events", {})
            db.run("RELEASE intake_events", {})
            note = _note(error)
            logger.error("update %r failed", update.update_id, exc_info=error)
            repo.set_raw_update_status(db, raw_id, "failed", note)
            return _Stored(failure=note)
        db.run("RELEASE intake_events", {})
        return _Stored(
            results=tuple(result for result, _ in decided),
            rescore=tuple(appeal for _, appeals in decided for appeal in appeals),
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _payload(update: Update) -> str:
    """The update as Telegram sent it, as JSON text (stored as is)."""
    return update.model_dump_json(exclude_none=True)


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
