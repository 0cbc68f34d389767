"""Building the aiogram Bot and Dispatcher for Otklik."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent

from bot.app import AppContext
from bot.services.intake import Intake
from handlers import setup_telegram_routers
from handlers.telegram.middlewares import STOP_TIMEOUT, UpdateStoreMiddleware
from handlers.telegram.unparsed import TolerantSession

logger = logging.getLogger(__name__)

# Reactions and business updates are not delivered unless asked for by name.
REQUIRED_UPDATES = (
    "message",
    "edited_message",
    "message_reaction",
    "my_chat_member",
    "callback_query",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
)


def make_bot(token: str, api_server: str) -> Bot:
    """An aiogram Bot talking to `api_server` (Telegram, a local Bot API server or the sandbox)."""
    # An update aiogram cannot parse must not stall polling (handlers/telegram/unparsed.py).
    session = TolerantSession(api=TelegramAPIServer.from_base(api_server.rstrip("/")))
    return Bot(token, session=session)


def make_dispatcher(
    app: AppContext, intake: Intake | None = None
) -> tuple[Dispatcher, UpdateStoreMiddleware]:
    """The dispatcher with every router; its store middleware must be closed (`store.close()`).

    `intake`: the app's intake use case (bot/services/intake.py), shared with the other
    sources; a new one if not given. On a SQLite file it has an intake writer process
    (storage/writer.py), started with the first update that uses it.
    """
    dp = Dispatcher(app=app)
    store = UpdateStoreMiddleware(app, intake or Intake.for_app(app))
    dp.update.outer_middleware(store)
    dp.include_routers(*setup_telegram_routers(app))
    dp.errors.register(_log_error)
    return dp, store


def allowed_updates(dp: Dispatcher) -> list[str]:
    used = set(dp.resolve_used_update_types())
    return sorted(used.union(REQUIRED_UPDATES))


async def _log_error(event: ErrorEvent) -> object:
    """Errors the store middleware let through: logged, and not taken as handled.

    A handler's failure is kept and confirmed by the store middleware itself
    (handlers/telegram/middlewares.py); what reaches here escaped it, so the update may not be
    stored. Returning UNHANDLED lets aiogram raise: a webhook answers 500 and Telegram sends
    the update again. (Returning True here used to let polling take such an update as done.)
    """
    logger.error(
        "обновление %r не обработано: %s: %s",
        event.update.update_id,
        type(event.exception).__name__,
        event.exception,
        exc_info=not isinstance(event.exception, TelegramAPIError),
    )
    return UNHANDLED


async def confirm_offset(bot: Bot, store: UpdateStoreMiddleware) -> None:
    """Tell Telegram every handled update is done, so none comes back after a restart."""
    try:
        async with asyncio.timeout(STOP_TIMEOUT):
            await store.flush()
    except TimeoutError:
        # Confirm only what is committed: `last_update_id` never counts the rest.
        logger.error("при остановке ещё сохранялись обновления; подтверждаем только сохранённые")
    except Exception as error:  # the database is unavailable: confirm what was committed
        logger.error("до остановки сохранены не все обновления: %s", error)
    if store.last_update_id is None:
        return
    try:
        await bot.get_updates(offset=store.last_update_id + 1, limit=1, timeout=0)
    except TelegramAPIError as error:
        logger.warning("не удалось подтвердить Telegram последнее полученное обновление: %s", error)
