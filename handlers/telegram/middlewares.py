"""Every Telegram update stored once before it is confirmed; the aiogram side of the intake.

The store policy is the intake use case's (bot/services/intake.py); the update's session is
handlers/telegram/unit.py; the writer process is reached through
bot/services/intake_writer.py. What is left here is Telegram's part:

* **In the background.** The discussion group's handlers (comments, their edits and reactions:
  nearly all the traffic) only translate their update into events (`UpdateUnit.submit`). After
  the handler returns, the raw update and those events go to the intake writer as one job. On
  SQLite files only.
* **In a session.** Any other handler (relays, commands, buttons, business messages) gets the
  update's session, the raw update claimed in it first, and everything commits in one
  transaction after it returns. PostgreSQL and in-memory SQLite always take this way.

`last_update_id` is the newest update that is committed. In polling (`use_for_polling`) a
background job need not be waited for: the bot's next getUpdates, which confirms the offset to
Telegram, first waits for every job to be committed (`FlushBeforeGetUpdates`), and so does
`confirm_offset` at shutdown. Without `use_for_polling` (webhooks, direct `feed_update`) every
update is committed before the middleware returns.

An update whose handler failed is kept as "failed" and counts as stored. When the database is
unavailable — at the session's start, inside a handler, at the commit — the update is run again
from the start once it is back (`Intake.wait_out`: backing off, said once in the log); the
middleware does not return meanwhile, so polling asks for nothing more and confirms nothing,
and a webhook request is answered 503 after a while (handlers/telegram/webhook.py) and sent
again. A handler with side effects (a relay to the press chat) may so repeat them after an
outage; nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject, Update
from sqlalchemy.exc import IntegrityError

from bot.app import AppContext
from bot.services.intake import (
    DatabaseUnavailable,
    Intake,
    IntakeJob,
    Stored,
    is_unavailable,
    note_of,
)
from handlers.telegram.unit import (
    AlreadyStored,
    Handler,
    NeedsTask,
    UpdateUnit,
    raw_copy,
    update_type,
)
from handlers.telegram.unparsed import Unparsed, unparsed_of
from storage.writer import IntakeWriter

logger = logging.getLogger(__name__)

# Updates handed to the writer and not yet committed, beyond which intake waits for it.
MAX_PENDING = 5000
# Seconds a stop waits for the writer to commit what it has, at most twice (confirm_offset,
# then close): within systemd's TimeoutStopSec of 30 in docs/SETUP.md.
STOP_TIMEOUT = 10.0

T = TypeVar("T")


class UpdateStoreMiddleware(BaseMiddleware):
    """Outer middleware on `update`: store once, de-duplicate, commit (see the module's text).

    The update's work is shielded from cancellation: when polling is stopped (SIGTERM) the update
    in hand is finished and stored before the task ends.
    """

    def __init__(self, app: AppContext, intake: Intake) -> None:
        self.app = app
        self.intake = intake
        # Polling: background jobs are waited for before the next getUpdates, not per update.
        self.defer_commits = False
        self.last_update_id: int | None = None

    @property
    def writer(self) -> IntakeWriter | None:
        """The intake writer process's parent side, if the database has one."""
        return self.intake.writer.writer if self.intake.writer is not None else None

    def use_for_polling(self, bot: Bot) -> None:
        """Let polling group commits: `bot`'s getUpdates first waits for the writer."""
        self.defer_commits = True
        bot.session.middleware(FlushBeforeGetUpdates(self))

    async def flush(self) -> None:
        """Wait until every update handed to the writer is committed (and rescored).

        While the database is unavailable this waits for it: nothing is confirmed meanwhile.
        """
        await self.intake.flush()

    async def close(self, within: float = STOP_TIMEOUT) -> None:
        """Flush, then stop the writer process; give up after `within` seconds.

        A writer that cannot commit (the disk is full, another process holds the database's
        write lock) must not keep `otklik run` from stopping: after `within` s it is killed.
        Nothing is lost — what was not committed was not confirmed, and Telegram sends it again.
        """
        try:
            async with asyncio.timeout(within):
                await self.intake.close()
        except TimeoutError:
            logger.error(
                "процесс записи не закончил за %s с; останавливаем его (несохранённые "
                "обновления, %d, Telegram пришлёт снова)",
                within,
                self.intake.pending,
            )
            await self.abandon()

    async def abandon(self) -> None:
        """Stop the writer as a crash would, dropping what it has not committed.

        Used when a stop has waited long enough (`close`), and by crash tests.
        """
        await self.intake.abandon()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Process the update to its end even if polling is cancelled meanwhile (SIGTERM).

        Normally in a shielded task. In polling with the writer, first an eager pass without a
        task (a task and its trips round the event loop cost a group comment ~15 % of its
        time): routing and the handler's translation have no side effects, and anything that
        would wait on the eager pass — a session, the Bot API, a full writer, a failure —
        raises `NeedsTask` before doing anything, and the update runs again in the task.
        """
        assert isinstance(event, Update)
        unparsed = unparsed_of(data.get("bot"))
        held = unparsed.pop(event.update_id) if unparsed is not None else None
        if held is not None:
            return await _finish_shielded(self._keep_unparsed(held))
        if self.intake.background and self.defer_commits:
            eager = self._process(handler, event, dict(data), eager=True)
            try:
                eager.send(None)
            except StopIteration as stop:
                return stop.value
            except NeedsTask:
                pass
            else:
                # It waited on something that did not call `about_to_wait` first: stop it at
                # that point and run the update from the start in a task.
                logger.warning(
                    "обновление %r ждало быстрой обработки; обрабатываем в фоне", event.update_id
                )
                _abort(eager)
        return await _finish_shielded(self._process(handler, event, data, eager=False))

    async def _process(
        self, handler: Handler, update: Update, data: dict[str, Any], *, eager: bool
    ) -> Any:
        raced = False
        attempt = 0
        while True:
            try:
                # A second run starts from the data aiogram gave, not the first run's.
                run_data = data if attempt == 0 and not raced else dict(data)
                return await self._once(handler, update, run_data, eager)
            except IntegrityError:
                # Another worker stored the same row first (PostgreSQL, many workers): retry once,
                # the second pass sees it and treats the update as a redelivery.
                if raced:
                    raise
                raced = True
                logger.info(
                    "обновление %r одновременно обрабатывал другой процесс; повторяем",
                    update.update_id,
                )
            except DatabaseUnavailable as error:
                # Nothing of the update is stored: wait for the database, then run it again.
                if eager:
                    raise NeedsTask from error
                await self.intake.wait_out(error.__cause__ or error, attempt)
                attempt += 1

    async def _once(
        self, handler: Handler, update: Update, data: dict[str, Any], eager: bool
    ) -> Any:
        unit = UpdateUnit(self.intake, update, eager=eager)
        data["unit"] = data["ingest"] = unit
        data["app"] = self.app
        try:
            if not self.intake.background:
                # No background writer: store the update before any handler runs.
                await unit.open()
                data["session"] = unit.session
            result = await handler(update, data)
        except AlreadyStored:
            logger.info("обновление %r уже получено раньше; пропущено", update.update_id)
            self._confirm(update.update_id)
            return None
        except NeedsTask:
            raise
        except Exception as error:
            unit.about_to_wait()
            if unit.opened is not None:
                await unit.opened.discard()
            if is_unavailable(error):
                raise DatabaseUnavailable(note_of(error)) from error
            await self._failed(unit, error)
            return None
        if unit.opened is None and self.intake.background:
            await self._in_background(unit, result)
            return result
        try:
            if unit.opened is None:
                await unit.open()  # no handler touched the database
            assert unit.opened is not None
            await unit.opened.commit(handled=result is not UNHANDLED)
        except AlreadyStored:
            logger.info("обновление %r уже получено раньше; пропущено", update.update_id)
        except DatabaseUnavailable:
            raise
        except Exception as error:  # the commit failed for a reason of the update's own
            await self._failed(unit, error)
            return None
        else:
            if result is UNHANDLED:
                _log_unhandled(update)
        self._confirm(update.update_id)
        return result

    async def _in_background(self, unit: UpdateUnit, result: Any) -> None:
        """Hand the raw update and its events to the writer as one job."""
        update, events = unit.update, tuple(unit.events)
        status = "skipped" if result is UNHANDLED and not events else "done"
        job = IntakeJob(raw_copy(update), events, status)
        if self.intake.pending >= MAX_PENDING:
            unit.about_to_wait()
            await self.intake.flush()  # the writer is behind: wait for it rather than queue more

        def then(stored: Stored) -> None:
            self._stored(update, stored)

        self.intake.submit(job, then)
        if status == "skipped":
            _log_unhandled(update)
        if not self.defer_commits:
            await self.intake.flush()

    def _stored(self, update: Update, stored: Stored) -> None:
        """On the event loop, once the update's job is committed."""
        if stored.duplicate:
            logger.info("обновление %r уже получено раньше; пропущено", update.update_id)
        elif stored.failure is not None:
            logger.error(
                "обновление %r не обработано: %s (сохранено с пометкой об ошибке)",
                update.update_id,
                stored.failure,
            )
        self._confirm(update.update_id)

    async def _failed(self, unit: UpdateUnit, error: BaseException) -> None:
        """Keep the update even though interpreting it failed; it is never lost."""
        update = unit.update
        logger.error(
            "обновление %r не обработано: %s: %s (сохранено с пометкой об ошибке)",
            update.update_id,
            type(error).__name__,
            error,
            exc_info=(
                None
                if isinstance(error, TelegramAPIError)
                else (type(error), error, error.__traceback__)
            ),
        )
        # Every earlier update committed first: confirming this one confirms them.
        await self.intake.flush()
        await self.intake.keep_failed(raw_copy(update), error)
        self._confirm(update.update_id)

    async def _keep_unparsed(self, held: Unparsed) -> None:
        """An update aiogram could not parse: its raw copy kept as failed, then confirmed."""
        await self.intake.flush()  # every earlier update committed first
        await self.intake.keep_failed(held.raw, held.error)
        logger.error("обновление %s сохранено с пометкой об ошибке: %s", held.raw.key, held.error)
        self._confirm(int(held.raw.key))

    def _confirm(self, update_id: int) -> None:
        """Remember the newest update that is committed (or was stored before)."""
        if self.last_update_id is None or update_id > self.last_update_id:
            self.last_update_id = update_id


async def _finish_shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` in a task that a cancellation of the caller does not stop."""
    work = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        # Finish the update in hand, then let the cancellation go on.
        await asyncio.wait({work})
        raise


def _abort(coro: Coroutine[Any, Any, Any]) -> None:
    """Stop a started coroutine where it waits (its eager pass); it is run again from scratch."""
    try:
        coro.throw(NeedsTask())
    except (NeedsTask, StopIteration):
        return
    except Exception:
        logger.exception("быстрая обработка прервалась с ошибкой при остановке")
        return
    coro.close()


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


def _log_unhandled(update: Update) -> None:
    logger.info(
        "обновление %r (%s) не обрабатывается; сохранено как пропущенное",
        update.update_id,
        update_type(update) or "unknown type",
    )
