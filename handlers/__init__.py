"""Platform adapters. Telegram routers are collected here with their chat-type filters."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Filter
from aiogram.types import Message

from bot.app import AppContext


class InPressChat(Filter):
    """The message is in a press chat (PRESS_CHAT_ID or one bound with /bind)."""

    def __init__(self, app: AppContext) -> None:
        self.app = app

    async def __call__(self, message: Message) -> bool:
        return message.chat.id in self.app.press_chats


def setup_telegram_routers(app: AppContext) -> Router:
    """All Telegram routers, each behind the filter of the chats it serves."""
    from handlers.telegram import (
        business,
        discussion,
        membership,
        press,
        pressoffice,
        private,
        service,
        supervisors,
    )

    in_press = InPressChat(app)
    press_router = press.create_router()
    press_router.message.filter(in_press)
    private_router = private.create_router()
    private_router.message.filter(F.chat.type == "private")
    group_router = discussion.create_router()
    group_router.message.filter(F.chat.type.in_({"group", "supergroup"}), ~in_press)
    group_router.edited_message.filter(F.chat.type.in_({"group", "supergroup"}))

    root = Router(name="otklik")
    # Supervisors' and operators' commands come first so they are never taken as appeals.
    root.include_routers(
        service.create_router(),
        supervisors.create_router(app),
        pressoffice.create_router(app),
        membership.create_router(),
        business.create_router(),
        press_router,
        private_router,
        group_router,
    )
    return root
