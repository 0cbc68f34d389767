"""Supervisors' commands (/stats, /overdue, /digest, /export); everyone else is refused politely."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.app import AppContext

logger = logging.getLogger(__name__)

SUPERVISOR_COMMANDS = ("stats", "overdue", "digest", "export")
REFUSAL = "Извините, эта команда доступна только руководителям пресс-службы."


async def refuse(message: Message) -> None:
    await message.answer(REFUSAL)


def create_router(app: AppContext) -> Router:
    """A fresh router with the supervisor commands."""
    router = Router(name=__name__)
    router.message.register(refuse, Command(*SUPERVISOR_COMMANDS))
    return router
