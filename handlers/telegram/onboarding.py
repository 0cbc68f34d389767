"""Help and onboarding in chat: `/start` and `/help` by role, and command menus per scope.

Telegram shows a bot's command menu by scope (`setMyCommands`): citizens get theirs in every
private chat; the press chat gets the operators' menu; each supervisor and admin gets their own
in their private chat with the bot, and supervisors also in the press chat (a chat-member scope
beats the chat's). Menus are set on start and again when a role or a press chat changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandStart, Filter
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeChatMember,
    Message,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.services import roles
from handlers.telegram.private import GREETING
from storage.models import Staff

logger = logging.getLogger(__name__)

Menu = Sequence[tuple[str, str]]

CITIZEN_MENU: Menu = (
    ("start", "Начать"),
    ("help", "Как написать обращение"),
)
PRESS_CHAT_MENU: Menu = (
    ("help", "Что умеет бот в пресс-чате"),
    ("topic", "Исправить тему: /topic 12 дороги"),
    ("chatid", "ID этого чата и ваш"),
)
SUPERVISOR_MENU: Menu = (
    ("stats", "Статистика: неделя, месяц или даты"),
    ("overdue", "Просроченные обращения"),
    ("team", "Работа операторов"),
    ("digest", "Еженедельная сводка"),
    ("export", "Выгрузка в Excel"),
    ("web", "Веб-панель: ссылка для входа"),
    ("help", "Справка"),
)
ADMIN_MENU: Menu = (
    *SUPERVISOR_MENU[:-1],
    ("page", "Страницы: список, подключение, настройки"),
    ("staff", "Сотрудники и роли"),
    ("bind", "Привязать пресс-чат к странице"),
    ("chatid", "ID чата и ваш"),
    ("help", "Справка"),
)

CITIZEN_HELP = (
    "Это официальный бот обратной связи. Напишите вопрос, жалобу или предложение обычным "
    "сообщением — его получат сотрудники, ответ придёт сюда же. Можно приложить фото."
)
OPERATOR_HELP = (
    "Вы оператор пресс-службы.\n"
    "• В пресс-чат приходят напоминания об обращениях без ответа: на половине срока и в срок.\n"
    "• Кнопки под напоминанием: «Взять в работу», «Не обращение», «Ответили вне соцсети».\n"
    "• «Возможно, обращение» — бот не уверен: нажмите «Это обращение» или «Не обращение».\n"
    "• Личные сообщения боту пересылаются в пресс-чат: ответьте на пересланное сообщение — "
    "ответ уйдёт жителю.\n"
    "• /topic 12 дороги — исправить тему обращения №12.\n"
    "• /chatid — ID чата и ваш.\n"
    "• /web — в личном чате с ботом: ссылка для входа в веб-панель по страницам вашего пресс-чата."
)
SUPERVISOR_HELP = (
    "Вы руководитель пресс-службы.\n"
    "• /stats — статистика за 7 дней; /stats неделя, /stats месяц, /stats 01.11-15.11; "
    "в конце можно добавить страницу: /stats месяц минздрав.\n"
    "• /overdue — просроченные обращения с кнопками.\n"
    "• /team — работа операторов: взяли, ответили, в срок, открыто.\n"
    "• /digest — еженедельная сводка; /export — выгрузка в Excel (/export месяц).\n"
    "• /web — в личном чате с ботом: ссылка для входа в веб-панель (действует 10 минут).\n"
    "Кнопки под напоминаниями вам тоже доступны."
)
ADMIN_HELP = (
    SUPERVISOR_HELP.replace("Вы руководитель пресс-службы.", "Вы администратор Отклика.")
    + "\n\nНастройка:\n"
    "• /page — страницы; /page add @канал — подключить канал Telegram и проверить права бота; "
    "/page add vk ID — сообщество ВКонтакте.\n"
    "• /staff — сотрудники и роли: /staff operator ID, /staff supervisor ID.\n"
    "• /bind ID — в групповом чате: напоминания по странице будут приходить туда.\n"
    "• /chatid — узнать ID чата и пользователя."
)
PRESS_CHAT_GUEST = (
    "\n\nНажимать кнопки под напоминаниями могут операторы: попросите администратора Отклика "
    "добавить вас командой /staff operator ВАШ_ID (ваш ID покажет /chatid)."
)


async def telegram_name(bot: Bot | None, user_id: str) -> str | None:
    """«Мария Иванова» for a user who has opened the bot (getChat); None when Telegram won't say."""
    if bot is None:
        return None
    try:
        chat = await bot.get_chat(int(user_id))
    except (TelegramAPIError, ValueError):
        return None
    name = " ".join(part for part in (chat.first_name, chat.last_name) if part)
    return name or chat.title or None


def _commands(menu: Menu) -> list[BotCommand]:
    return [BotCommand(command=name, description=text) for name, text in menu]


async def help_text(
    session: AsyncSession, app: AppContext, user_id: int | None, *, in_press_chat: bool
) -> str:
    """The help a person gets, by their role and where they ask."""
    role = (
        await roles.role_of(session, app.settings, user_id)
        if user_id is not None
        else roles.Role.NONE
    )
    if role >= roles.Role.ADMIN:
        return ADMIN_HELP
    if role >= roles.Role.SUPERVISOR:
        return SUPERVISOR_HELP
    if role >= roles.Role.OPERATOR:
        return OPERATOR_HELP
    if in_press_chat:
        if app.settings.PRESS_CHAT_OPEN:
            return OPERATOR_HELP
        return OPERATOR_HELP + PRESS_CHAT_GUEST
    return CITIZEN_HELP


class PrivateOrPressChat(Filter):
    """A private chat with the bot or a press chat (not a discussion group: comments live there)."""

    def __init__(self, app: AppContext) -> None:
        self.app = app

    async def __call__(self, message: Message) -> bool:
        return message.chat.type == "private" or message.chat.id in self.app.press_chats


async def start_command(message: Message, session: AsyncSession, app: AppContext) -> None:
    """/start: the citizen greeting, or the help of a press-office role."""
    in_press_chat = message.chat.id in app.press_chats
    user_id = message.from_user.id if message.from_user else None
    text = await help_text(session, app, user_id, in_press_chat=in_press_chat)
    await message.answer(GREETING if text == CITIZEN_HELP else text)


async def help_command(message: Message, session: AsyncSession, app: AppContext) -> None:
    """/help: what the bot does for this person here."""
    in_press_chat = message.chat.id in app.press_chats
    user_id = message.from_user.id if message.from_user else None
    await message.answer(await help_text(session, app, user_id, in_press_chat=in_press_chat))


async def _people_with_role(session: AsyncSession, app: AppContext) -> dict[int, roles.Role]:
    """Telegram users with the supervisor or admin role (settings and staff rows)."""
    people: dict[int, roles.Role] = {}
    candidates: set[int] = set(app.settings.supervisor_ids)
    rows = await session.exec(
        select(Staff.user_id).where(
            Staff.platform == roles.PLATFORM, col(Staff.role).in_(("supervisor", "admin"))
        )
    )
    candidates.update(int(user_id) for user_id in rows.all() if user_id.lstrip("-").isdigit())
    for user_id in sorted(candidates):
        role = await roles.role_of(session, app.settings, user_id)
        if role >= roles.Role.SUPERVISOR:
            people[user_id] = role
    return people


async def _set(bot: Bot, menu: Menu, scope: object, where: str) -> bool:
    try:
        # aiogram declares the scope union narrower than the scope classes it accepts.
        await bot.set_my_commands(_commands(menu), scope=scope)  # type: ignore[arg-type]
    except TelegramAPIError as error:
        # A person who never opened the bot has no private chat yet: "chat not found".
        logger.warning("меню команд для %s не задано: %s", where, error)
        return False
    return True


async def _forget(bot: Bot, user_id: int, chats: Iterable[int]) -> None:
    """Drop a former supervisor's menus: they fall back to the citizens' and the chat's."""
    scopes: list[BotCommandScopeChat | BotCommandScopeChatMember] = [
        BotCommandScopeChat(chat_id=user_id)
    ]
    scopes.extend(BotCommandScopeChatMember(chat_id=chat, user_id=user_id) for chat in chats)
    for scope in scopes:
        try:
            await bot.delete_my_commands(scope=scope)
        except TelegramAPIError as error:
            logger.warning("меню команд пользователя %r не убрано: %s", user_id, error)


async def refresh_menus(
    bot: Bot,
    session: AsyncSession,
    app: AppContext,
    *,
    changed_users: Iterable[int] = (),
) -> int:
    """Set every scope's command menu; returns how many scopes were set.

    `changed_users`: people whose role just changed; those left without a supervisor's role
    lose their personal menus.
    """
    chats = sorted(app.press_chats)
    done = int(await _set(bot, CITIZEN_MENU, BotCommandScopeAllPrivateChats(), "private chats"))
    people = await _people_with_role(session, app)
    for user_id in set(changed_users) - set(people):
        await _forget(bot, user_id, chats)
    for chat_id in chats:
        done += await _set(bot, PRESS_CHAT_MENU, BotCommandScopeChat(chat_id=chat_id), "press chat")
    for user_id, role in people.items():
        menu = ADMIN_MENU if role >= roles.Role.ADMIN else SUPERVISOR_MENU
        done += await _set(bot, menu, BotCommandScopeChat(chat_id=user_id), f"user {user_id}")
        for chat_id in chats:
            scope = BotCommandScopeChatMember(chat_id=chat_id, user_id=user_id)
            done += await _set(bot, menu, scope, f"user {user_id} in the press chat")
    return done


def create_router(app: AppContext) -> Router:
    """A fresh router with /start, /help and the menus set on start.

    Include it after the press-office router: its startup loads the bound press chats first.
    """
    router = Router(name=__name__)

    async def on_startup(bot: Bot) -> None:
        async with app.sessions() as session:
            count = await refresh_menus(bot, session, app)
        logger.info("меню команд заданы (областей видимости — %d)", count)

    router.startup.register(on_startup)
    chats = PrivateOrPressChat(app)
    router.message.register(start_command, CommandStart(), chats)
    router.message.register(help_command, Command("help"), chats)
    return router
