"""One Telegram update's database work, as every handler sees it (`data["ingest"]`).

A handler gets an `UpdateUnit`, whatever router it is on. It either only translates its update
into events and `submit`s them (the discussion group: decided and stored in the background by
the intake writer, handlers/telegram/middlewares.py), or `open`s the update's session — the
raw update claimed in it (bot/services/intake.py) — to read the database or to `handle` an
event and use the result. The routers whose handlers use the database get the session opened
for them (`open_sessions`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.types import TelegramObject, Update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.events import Event
from bot.services.ingest import IngestResult
from bot.services.intake import Intake, IntakeSession, RawCopy

SOURCE = "telegram"

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class AlreadyStored(Exception):
    """The update was processed before (a redelivery); its handler stops here."""


class NeedsTask(BaseException):
    """On the eager pass: this update would wait for something; run it again in a task.

    A BaseException, so that a handler's `except Exception` cannot swallow it.
    """


class UpdateUnit:
    """One update's database work: events for the background, or a session when needed."""

    __slots__ = ("eager", "events", "intake", "opened", "update")

    def __init__(self, intake: Intake, update: Update, *, eager: bool) -> None:
        self.intake = intake
        self.update = update
        self.eager = eager  # see UpdateStoreMiddleware.__call__
        self.events: list[Event] = []
        self.opened: IntakeSession | None = None

    @property
    def session(self) -> AsyncSession | None:
        """The update's session once `open`ed."""
        return self.opened.session if self.opened is not None else None

    async def submit(self, event: Event) -> None:
        """Record `event`; decided in the background if the update allows it, else right now."""
        if self.opened is None and self.intake.background:
            self.events.append(event)
            return
        opened = await self.open()
        await opened.handle(event)

    async def handle(self, event: Event) -> IngestResult:
        """Decide `event` now and return the result (opens the update's session)."""
        opened = await self.open()
        return await opened.handle(event)

    def about_to_wait(self) -> None:
        """Call before awaiting anything but the writer (the database, the Bot API)."""
        if self.eager:
            raise NeedsTask

    async def open(self) -> IntakeSession:
        """The update's session with the raw update claimed; AlreadyStored if processed before."""
        if self.opened is not None:
            return self.opened
        self.about_to_wait()
        opened = await self.intake.open(raw_copy(self.update))
        if opened is None:
            raise AlreadyStored
        self.opened = opened
        events, self.events = self.events, []
        for event in events:
            await opened.handle(event)
        return opened


class OpenSessionMiddleware(BaseMiddleware):
    """Inner middleware of the routers whose handlers use the database: the update's session.

    Registered on every router but the discussion group's (handlers/__init__.py), whose
    comments, edits and reactions only submit events and are stored in the background.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        unit = data.get("unit")
        if isinstance(unit, UpdateUnit):
            await unit.open()
            data["session"] = unit.session
        return await handler(event, data)


def open_sessions(router: Router) -> Router:
    """Give every handler of `router` the update's session (`data["session"]`)."""
    opener = OpenSessionMiddleware()
    for name, observer in router.observers.items():
        if name not in ("update", "error"):
            observer.middleware(opener)
    return router


def raw_copy(update: Update) -> RawCopy:
    """The update as Telegram sent it, for the raw store."""
    return RawCopy(SOURCE, str(update.update_id), update_type(update), _payload(update))


def _payload(update: Update) -> str:
    """The update as JSON text, with Telegram's own field names (`from`, not `from_user`)."""
    try:
        return update.model_dump_json(exclude_none=True, by_alias=True)
    except ValueError:
        # Text Telegram's JSON can carry but UTF-8 cannot (a lone surrogate, "\ud83d"): the
        # same JSON with every non-ASCII character escaped.
        return json.dumps(
            update.model_dump(mode="json", exclude_none=True, by_alias=True), ensure_ascii=True
        )


def update_type(update: Update) -> str | None:
    try:
        return update.event_type
    except Exception:  # unknown update shapes are still stored
        return None
