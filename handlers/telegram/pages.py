"""`/page add`: register a page before its first message and check what the bot may do there.

Telegram: the channel's discussion group must exist and have the bot as an administrator
(otherwise Telegram does not send it the comments); as an administrator of the channel itself
it also sees the page's posts. VK: the community's token and its rights (handlers/vk/rights.py).
Telegram Business: an official connects the bot in their own Telegram settings; the press chat
is told when that happens (handlers/telegram/membership.py).
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import ChatFullInfo, Message
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import AppContext
from bot.services.page_check import PageCheck, check_text
from handlers.telegram.discussion import group_pages
from storage import repositories as repo

logger = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({"administrator", "creator"})
ADD_HELP = (
    "Как подключить страницу:\n"
    "/page add @канал — канал Telegram (или ссылка t.me/канал, или ID вида -100…): бот должен "
    "быть администратором группы обсуждений канала, лучше и самого канала.\n"
    "/page add vk 12345 — сообщество ВКонтакте: его ключ доступа должен быть в VK_GROUP_TOKENS.\n"
    "/page add business — личный аккаунт через Telegram Business."
)
BUSINESS_HOWTO = (
    "Личный аккаунт руководителя подключают в его Telegram: Настройки → Telegram для бизнеса → "
    "Чат-боты → добавить @{bot} и разрешить «Читать сообщения» и «Отвечать на сообщения». "
    "Когда аккаунт подключится или отключится, пресс-чат получит уведомление с проверкой прав."
)


def telegram_target(text: str) -> str | int | None:
    """«@name», «name», «t.me/name», «-100123» → what getChat takes; None if not a chat."""
    value = text.strip()
    for prefix in ("https://", "http://"):
        value = value.removeprefix(prefix)
    value = value.removeprefix("t.me/").removeprefix("telegram.me/").strip("/")
    if value.lstrip("-").isdigit():
        number = int(value)
        return number if abs(number) < 2**53 else None
    name = value.lstrip("@")
    if 4 <= len(name) <= 32 and name.replace("_", "").isalnum() and name.isascii():
        return f"@{name}"
    return None


async def _bot_status(bot: Bot, chat_id: int) -> str | None:
    """The bot's status in a chat; None when Telegram will not say (not a member, no access)."""
    me = await bot.me()
    try:
        member = await bot.get_chat_member(chat_id, me.id)
    except (TelegramBadRequest, TelegramForbiddenError):
        return None
    return str(member.status)


async def _chat(bot: Bot, target: str | int) -> ChatFullInfo | None:
    try:
        return await bot.get_chat(target)
    except (TelegramBadRequest, TelegramForbiddenError):
        return None


async def check_telegram(bot: Bot, target: str | int) -> tuple[PageCheck, ChatFullInfo | None]:
    """The Telegram page's check and the discussion group to register it by (None: unusable)."""
    me = await bot.me()
    check = PageCheck("telegram", title=str(target))
    chat = await _chat(bot, target)
    if chat is None:
        check.found = False
        check.missing.append(
            f"Бот не видит {target}: добавьте @{me.username} администратором в группу обсуждений "
            "канала (и в сам канал) и повторите команду."
        )
        return check, None
    check.title = chat.title or check.title
    group: ChatFullInfo | None = chat
    if chat.type == "channel":
        if await _bot_status(bot, chat.id) in ADMIN_STATUSES:
            check.ok.append("бот — администратор канала: посты и просмотры учитываются")
        else:
            check.advice.append(
                "бот не администратор канала: комментарии учитываются, но посты и охваты "
                "страницы — нет. Добавьте бота в администраторы канала (права на публикацию "
                "не нужны)."
            )
        if chat.linked_chat_id is None:
            check.missing.append(
                "у канала нет группы обсуждений: включите комментарии (Управление каналом → "
                "Обсуждение), иначе комментарии жителей не будут видны."
            )
            return check, None
        group = await _chat(bot, chat.linked_chat_id)
        if group is None:
            check.missing.append(
                f"бот не состоит в группе обсуждений канала: добавьте @{me.username} туда "
                "администратором."
            )
            return check, None
    elif chat.type not in ("group", "supergroup"):
        check.found = False
        check.missing.append(
            f"{target} — не канал и не группа: укажите канал или его группу обсуждений."
        )
        return check, None
    assert group is not None
    if await _bot_status(bot, group.id) in ADMIN_STATUSES:
        check.ok.append(
            f"бот — администратор группы обсуждений «{group.title}»: комментарии приходят"
        )
    else:
        check.missing.append(
            f"бот не администратор группы обсуждений «{group.title}»: Telegram не присылает ему "
            "комментарии жителей. Назначьте бота администратором группы (достаточно прав по "
            "умолчанию)."
        )
    return check, group


async def add_page(
    message: Message, bot: Bot, session: AsyncSession, app: AppContext, args: list[str]
) -> None:
    """/page add @канал | vk ID | business: register the page and say what the bot lacks."""
    if not args:
        await message.answer(ADD_HELP)
        return
    kind = args[0].lower()
    if kind in ("business", "бизнес"):
        me = await bot.me()
        await message.answer(BUSINESS_HOWTO.format(bot=me.username))
        return
    if kind in ("vk", "вк"):
        await _add_vk(message, session, app, args[1:])
        return
    target = telegram_target(" ".join(args))
    if target is None:
        await message.answer(ADD_HELP)
        return
    check, group = await check_telegram(bot, target)
    if group is not None:
        try:
            ref = await group_pages.discover(bot, group)
        except TelegramAPIError as error:
            logger.warning("страница %r не подключена: %s", target, error)
        else:
            page = await repo.ensure_page(session, ref)
            check.page_id, check.title = page.id, page.title or check.title
            logger.info("страница %r (%s) подключена командой /page add", page.id, page.title)
    await message.answer(check_text(check))


async def _add_vk(
    message: Message, session: AsyncSession, app: AppContext, args: list[str]
) -> None:
    from handlers.vk.rights import check_community, parse_group

    group_id = parse_group(args[0]) if len(args) == 1 else None
    if group_id is None:
        await message.answer("Укажите сообщество ВКонтакте числом: /page add vk 12345")
        return
    check, vk_page = await check_community(app, group_id)
    if vk_page is not None:
        page = await repo.ensure_page(session, vk_page.ref)
        check.page_id, check.title = page.id, page.title or check.title
        logger.info("страница ВКонтакте %r (%s) подключена командой /page add", page.id, page.title)
    await message.answer(check_text(check))
