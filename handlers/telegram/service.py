"""Service commands anyone may use: `/chatid` tells the id of the chat and of the sender."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message


async def chat_id(message: Message) -> None:
    lines = [f"ID этого чата: {message.chat.id}"]
    if message.from_user is not None:
        lines.append(f"Ваш ID: {message.from_user.id}")
    await message.answer("\n".join(lines))


def create_router() -> Router:
    """A fresh router with the service commands."""
    router = Router(name=__name__)
    router.message.register(chat_id, Command("chatid"))
    return router
