"""One database session per update, and every update stored once before it is interpreted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from sqlalchemy.exc import IntegrityError

from bot.app import AppContext
from bot.services.ingest import IngestService
from storage import repositories as repo

logger = logging.getLogger(__name__)

SOURCE = "telegram"

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateStoreMiddleware(BaseMiddleware):
    """Outer middleware on `update`: store, de-duplicate, give handlers a session, commit once.

    The raw update and everything its handler writes commit in one transaction, so an update is
    either fully recorded or not at all (and then Telegram delivers it again). `last_update_id`
    is the newest update committed here; `confirm_offset` (handlers/telegram/setup.py) hands it
    to Telegram at shutdown, and polling's next getUpdates confirms it while running. No offset
    is written to the database: Telegram keeps it, and the raw update's unique key makes a
    redelivery after a crash harmless.

    The update's work is shielded from cancellation: when polling is stopped (SIGTERM) the update
    in hand is finished and committed before the task ends.
    """

    def __init__(self, app: AppContext) -> None:
        self.app = app
        self.last_update_id: int | None = None

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
        payload = update.model_dump(mode="json", exclude_none=True)
        key, update_type = str(update.update_id), _update_type(update)
        async with self.app.sessions() as session:
            raw_id = await repo.run_in_transaction(
                session, lambda db: repo.store_raw_update(db, SOURCE, key, update_type, payload)
            )
            if raw_id is None:
                logger.info("update %r was delivered before; skipped", update.update_id)
                self._confirm(update.update_id)
                return None
            data["session"] = session
            data["ingest"] = IngestService(session, self.app.defaults)
            data["app"] = self.app
            try:
                result = await handler(update, data)
            except Exception as error:
                await session.rollback()
                await self._record_failure(update, payload, error)
                raise
            if result is UNHANDLED:
                # Stored for the record and for reprocessing; nothing here interprets it.
                await repo.run_in_transaction(
                    session, lambda db: repo.set_raw_update_status(db, raw_id, "skipped")
                )
                logger.info(
                    "update %r (%s) not handled; kept as skipped",
                    update.update_id,
                    update_type or "unknown type",
                )
            await session.commit()
        self._confirm(update.update_id)
        return result

    def _confirm(self, update_id: int) -> None:
        """Remember the newest update that is committed (or was stored before)."""
        if self.last_update_id is None or update_id > self.last_update_id:
            self.last_update_id = update_id

    async def _record_failure(
        self, update: Update, payload: dict[str, Any], error: BaseException
    ) -> None:
        """Keep the update even though interpreting it failed; it is never lost."""
        note = f"{type(error).__name__}: {error}"[:500]
        key, update_type = str(update.update_id), _update_type(update)
        async with self.app.sessions() as session:
            await repo.run_in_transaction(
                session,
                lambda db: repo.store_raw_update(
                    db, SOURCE, key, update_type, payload, status="failed", note=note
                ),
            )
            await session.commit()
        self._confirm(update.update_id)


def _update_type(update: Update) -> str | None:
    try:
        return update.event_type
    except Exception:  # unknown update shapes are still stored
        return None
