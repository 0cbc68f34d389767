"""The press chat: an operator's reply to a relayed message goes back to the citizen."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import text as text_analysis
from bot.events import AuthorRole, MessageEvent
from bot.services.ingest import Outcome
from handlers.telegram.common import (
    bot_page_ref,
    content_kind,
    conversation,
    message_key,
    message_text,
    person_name,
    utc,
)
from handlers.telegram.filters import IsReply
from handlers.telegram.unit import UpdateUnit
from storage import repositories as repo

logger = logging.getLogger(__name__)

RATE_PREFIX = "rate:"
RATE_QUESTION = "Оцените, пожалуйста, ответ — это поможет нам работать лучше."


async def operator_reply(
    message: Message, bot: Bot, session: AsyncSession, ingest: UpdateUnit
) -> None:
    assert message.reply_to_message is not None
    relay = await repo.find_relay(session, message.chat.id, message.reply_to_message.message_id)
    if relay is None:
        return  # ordinary talk in the press chat
    try:
        await bot.copy_message(relay.citizen_chat_id, message.chat.id, message.message_id)
    except TelegramAPIError as error:
        logger.warning("ответ жителю (чат %r) не доставлен: %s", relay.citizen_chat_id, error)
        await message.reply(
            "Не удалось доставить ответ гражданину: он мог заблокировать бота. "
            "Ответ не засчитан, свяжитесь с ним другим способом."
        )
        return
    me = await bot.me()
    reply_id = f"op:{message_key(message.chat.id, message.message_id)}"
    result = await ingest.handle(
        MessageEvent(
            page=bot_page_ref(me),
            thread=conversation(relay.citizen_chat_id),
            message_id=reply_id,
            sent_at=utc(message.date),
            author_role=AuthorRole.OPERATOR,
            author_id=str(message.from_user.id) if message.from_user else None,
            author_name=person_name(message.from_user),
            text=message_text(message),
            content_kind=content_kind(message),
            reply_to_id=message_key(relay.citizen_chat_id, relay.citizen_message_id),
            answers_conversation=True,
        )
    )
    logger.info(
        "ответ оператора передан жителю (чат %r): %s", relay.citizen_chat_id, result.outcome
    )
    if result.outcome is Outcome.REPLY and not text_analysis.is_interim(message_text(message)):
        await _ask_for_rating(bot, relay.citizen_chat_id, reply_id)


async def _ask_for_rating(bot: Bot, chat_id: int, reply_id: str) -> None:
    """👍/👎 under a final answer: the citizen's own rating feeds satisfaction and quality."""
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="👍 Помогло", callback_data=f"{RATE_PREFIX}1:{reply_id}"),
                InlineKeyboardButton(
                    text="👎 Не помогло", callback_data=f"{RATE_PREFIX}0:{reply_id}"
                ),
            ]
        ]
    )
    try:
        await bot.send_message(chat_id, RATE_QUESTION, reply_markup=keyboard)
    except TelegramAPIError as error:
        logger.info("вопрос об оценке не доставлен (чат %r): %s", chat_id, error)


def create_router() -> Router:
    """A fresh router with this module's handlers (one per dispatcher)."""
    router = Router(name=__name__)
    router.message.register(operator_reply, IsReply())
    return router
