"""«Это обращение» / «Не обращение» under a «Возможно, обращение» card in the press chat.

The handler checks who pressed (the same rule as «Не обращение» under a reminder), asks the
service (bot/services/doubtful.py) to decide and edits the card in place to show who decided
what, so the chat sees the answer where the question was.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.services import doubtful, roles
from bot.services.reminders import press_chat_of
from handlers.telegram.common import person_name
from handlers.telegram.filters import CallbackData
from handlers.telegram.pressoffice import BUTTON_REFUSAL
from storage.models import CitizenMessage, Page

logger = logging.getLogger(__name__)


async def on_doubt(query: CallbackQuery, session: AsyncSession, app: AppContext) -> None:
    """A press officer answers «Возможно, обращение»."""
    parsed = doubtful.parse_callback(query.data or "")
    if parsed is None:
        await query.answer()
        return
    is_appeal, message_id = parsed
    message = await session.get(CitizenMessage, message_id)
    page = await session.get(Page, message.page_id) if message is not None else None
    if message is None or page is None:
        await query.answer("Сообщение не найдено.", show_alert=True)
        return
    user = query.from_user
    chat_id = query.message.chat.id if query.message is not None else None
    role = await roles.role_of(session, app.settings, user.id, page_id=page.id)
    if role < roles.Role.OPERATOR:
        in_press_chat = chat_id is not None and chat_id == press_chat_of(page, app.settings)
        if not roles.may_join_by_pressing(app.settings, in_press_chat):
            logger.info("пользователь %r без роли нажал %r; отказано", user.id, query.data)
            await query.answer(BUTTON_REFUSAL, show_alert=True)
            return
        # An open press chat (PRESS_CHAT_OPEN): an operator from the first press (roles docs).
        await roles.register_operator(session, user.id, person_name(user), page.id)
    now = app.clock()
    result = await doubtful.decide(
        session,
        message,
        is_appeal,
        actor_id=str(user.id),
        actor_name=person_name(user),
        at=now,
        defaults=app.defaults,
    )
    await query.answer(result.message, show_alert=not result.changed)
    if query.message is None or chat_id is None:
        return
    card = await doubtful.load_card(session, message, page, app.defaults)
    try:
        # aiogram types CallbackQuery.bot as optional; a dispatched query always has its bot.
        await query.bot.edit_message_text(  # type: ignore[union-attr]
            text=doubtful.render_decided(card, result.verdict, now),
            chat_id=chat_id,
            message_id=query.message.message_id,
            parse_mode="HTML",
            reply_markup=None,
        )
    except TelegramAPIError as error:
        # Too old to edit, deleted, or already showing this answer: the decision stands.
        logger.info(
            "карточка «Возможно, обращение» %r не изменена: %s", query.message.message_id, error
        )


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_doubt, CallbackData(f"{doubtful.CALLBACK_PREFIX}:"))
    return router
