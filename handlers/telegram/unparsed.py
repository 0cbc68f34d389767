"""Updates that do not fit aiogram's schema: kept as failed, never a stall (issue 16 item 10).

aiogram parses a whole getUpdates batch at once: one update it cannot parse (a field of a newer
Bot API, a server that sends a wrong type) fails the batch, and polling asks for the same
offset again, for ever. `TolerantSession` parses such a batch update by update instead: an
update that does not parse is put aside (`UnparsedUpdates`, keyed by its update_id) with the
JSON Telegram sent and the reason, and a bare `Update(update_id=…)` stands in its place. The
store middleware (handlers/telegram/middlewares.py) sees the stand-in, keeps the raw copy
marked "failed" like any update whose handler failed, and confirms it; polling goes on. The
webhook puts such an update aside the same way (handlers/telegram/webhook.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import ClientDecodeError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update
from pydantic import ValidationError

from bot.services.intake import RawCopy

if TYPE_CHECKING:
    from aiogram import Bot

logger = logging.getLogger(__name__)

SOURCE = "telegram"  # the raw store's source, as handlers/telegram/unit.py


class UnparsedUpdate(ValueError):
    """An update that does not fit the schema aiogram knows (the reason of its failed copy)."""


@dataclass(frozen=True, slots=True)
class Unparsed:
    raw: RawCopy
    error: UnparsedUpdate


class UnparsedUpdates:
    """Updates put aside by update_id until the store middleware keeps them as failed."""

    def __init__(self) -> None:
        self._held: dict[int, Unparsed] = {}

    def parse(self, item: Any, bot: Bot) -> Update | None:
        """`item` as an Update; a stand-in if it does not parse; None without an update_id."""
        try:
            return Update.model_validate(item, context={"bot": bot})
        except ValidationError as error:
            update_id = item.get("update_id") if isinstance(item, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                logger.error("обновление без update_id не разбирается; отброшено: %s", error)
                return None
            reason = _reason(error)
            logger.error(
                "обновление %r не разбирается (%s); сохранено с пометкой об ошибке",
                update_id,
                reason,
            )
            self._held[update_id] = Unparsed(
                RawCopy(SOURCE, str(update_id), _type_of(item), _json(item)),
                UnparsedUpdate(reason),
            )
            return Update(update_id=update_id)

    def pop(self, update_id: int) -> Unparsed | None:
        """The update put aside under `update_id`, if it was one (taken out)."""
        return self._held.pop(update_id, None)


class TolerantSession(AiohttpSession):
    """aiogram's session whose getUpdates survives an update it cannot parse."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unparsed = UnparsedUpdates()

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        try:
            return super().check_response(bot, method, status_code, content)
        except ClientDecodeError as error:
            if not isinstance(method, GetUpdates):
                raise
            body = error.data
            if not (isinstance(body, dict) and body.get("ok") is True):
                raise
            items = body.get("result")
            if not isinstance(items, list):
                raise
            parsed = [self.unparsed.parse(item, bot) for item in items]
            updates = [update for update in parsed if update is not None]
            # The generic Response is parametrised with the method's own result type at run time.
            return Response[list[Update]](ok=True, result=updates)  # type: ignore[return-value]


def unparsed_of(bot: Bot | None) -> UnparsedUpdates | None:
    """The bot's holder of unparsed updates (None for a session of another kind)."""
    session = getattr(bot, "session", None)
    return session.unparsed if isinstance(session, TolerantSession) else None


def _reason(error: ValidationError) -> str:
    errors = error.errors()
    if not errors:
        return "schema error"
    where = ".".join(str(part) for part in errors[0]["loc"]) or "?"
    return f"{len(errors)} schema error(s), first at {where}: {errors[0]['msg']}"[:300]


def _type_of(item: dict[str, Any]) -> str | None:
    return next((key for key in item if key != "update_id"), None)


def _json(item: Any) -> str:
    text = json.dumps(item, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: the same JSON, every non-ASCII escaped
        return json.dumps(item, ensure_ascii=True)
    return text
