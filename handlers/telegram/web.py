"""/web: a one-time login link to the dashboard and a button that opens it as a Mini App.

Only in a private chat: a link posted in a group could be used by anyone who reads it first.
Who may see what is decided by bot.services.web_access, the same as on every dashboard request.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MenuButtonWebApp,
    Message,
    WebAppInfo,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.clock import utc_now
from bot.services import web_access

logger = logging.getLogger(__name__)

PRIVATE_ONLY = (
    "Ссылка для входа в панель личная: напишите мне /web в личные сообщения, и я пришлю её."
)
REFUSAL = "Панель Отклика доступна руководителям и сотрудникам пресс-службы."
NOT_CONFIGURED = (
    "Панель пока не настроена: администратору нужно указать её адрес (WEB_PUBLIC_URL) в .env."
)


def login_text(url: str) -> str:
    return (
        "Ссылка для входа в панель Отклика:\n"
        f"{url}\n\n"
        "Она действует 10 минут и открывает панель один раз. Никому её не пересылайте."
    )


async def web_command(message: Message, bot: Bot, session: AsyncSession, app: AppContext) -> None:
    """Answer /web with a login link (and a Mini App button behind HTTPS)."""
    user = message.from_user
    if user is None:
        return
    if message.chat.type != "private":
        await message.answer(PRIVATE_ONLY)
        return
    access = await web_access.access_of(session, app.settings, str(user.id))
    if access is None:
        await message.answer(REFUSAL)
        return
    public = app.settings.WEB_PUBLIC_URL
    if not public:
        await message.answer(NOT_CONFIGURED)
        return
    # Flushed here, committed with the update (handlers/telegram/unit.py) right after the answer.
    # Real time, as the dashboard checks it (web/auth.py), whatever clock the app runs on.
    token = await web_access.issue_login_token(session, user.id, utc_now())
    markup = None
    if public.startswith("https://"):  # Telegram opens Mini Apps over HTTPS only
        app_info = WebAppInfo(url=public)
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Открыть панель", web_app=app_info)]]
        )
        # The dashboard stays one tap away in this person's chat with the bot (menu button).
        try:
            await bot.set_chat_menu_button(
                chat_id=user.id, menu_button=MenuButtonWebApp(text="Панель", web_app=app_info)
            )
        except TelegramAPIError as error:
            logger.warning("не удалось задать кнопку веб-панели в меню: %s", error)
    await message.answer(
        login_text(web_access.login_url(public, token)),
        reply_markup=markup,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    logger.info("пользователь %r получил ссылку для входа в веб-панель", user.id)


def create_router(app: AppContext) -> Router:
    router = Router(name=__name__)
    router.message.register(web_command, Command("web"))
    return router
