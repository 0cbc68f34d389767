"""The press office in Telegram: reminder buttons, /overdue, /digest, /export, /page, /bind.

Handlers translate: they check the role (bot.services.roles), call a service and answer.
"""

from __future__ import annotations

import html
import logging

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.app import AppContext
from bot.ids import row_id
from bot.services import corrections, roles
from bot.services import digest as digest_service
from bot.services import export as export_service
from bot.services.cards import CALLBACK_PREFIX, MORE_PREFIX, page_title
from bot.services.decisions import apply_decision, parse_callback, takeover_text
from bot.services.notify import DeliveryError, Notifier
from bot.services.overdue import no_overdue_text, overdue_cards, summary_pages
from bot.services.policy import final_answer_days
from bot.services.reminders import press_chat_of
from bot.services.sent_cards import latest_card, parse_more, refresh_cards, send_cards
from bot.services.worktime import WorkSchedule
from bot.timeparse import TimeZoneError, resolve_timezone
from handlers.telegram import onboarding
from handlers.telegram.common import person_name
from handlers.telegram.filters import CallbackData
from handlers.telegram.notifier import TelegramNotifier
from handlers.telegram.page_health import page_health_answer
from handlers.telegram.pages import add_page
from storage import pages
from storage.models import Appeal, Page, Staff

logger = logging.getLogger(__name__)

SUPERVISOR_REFUSAL = "Извините, эта команда доступна только руководителям пресс-службы."
ADMIN_REFUSAL = "Извините, управлять страницами могут только администраторы Отклика."
STAFF_REFUSAL = "Извините, назначать сотрудников и роли могут только администраторы Отклика."
BUTTON_REFUSAL = (
    "Эти кнопки — для операторов пресс-службы. Если вы работаете с обращениями, попросите "
    "администратора Отклика добавить вас: /staff operator ВАШ_ID (ваш ID покажет /chatid)."
)
TOPIC_REFUSAL = (
    "Извините, исправлять тему обращения могут операторы и руководители пресс-службы. Если вы "
    "работаете с обращениями, попросите администратора Отклика назначить вас оператором."
)
PAGE_HELP = (
    "Страницы: /page — список.\n"
    "/page add @канал — подключить канал Telegram и проверить права бота "
    "(/page add vk 12345 — сообщество ВКонтакте, /page add business — личный аккаунт)\n"
    "/page ID — здоровье страницы за 7 дней и каких данных не хватает\n"
    "/page ID title Новое название\n"
    "/page ID tz Владивосток — часовой пояс (город или Asia/Vladivostok)\n"
    "/page ID sla 8 4 — часы на ответ: обычные и срочные\n"
    "/page ID final 7 1 — рабочие дни на ответ по существу: обычные и срочные\n"
    "/page ID hours 09:00-18:00 — рабочее время\n"
    "/page ID unbind — отвязать пресс-чат\n"
    "/bind ID в пресс-чате — напоминания по странице придут сюда."
)
# The longest final-answer term a page may set: about a quarter of a year of working days.
MAX_FINAL_DAYS = 60
# Deadlines are stored with each appeal when it arrives (docs/METRICS.md): a new term counts
# for appeals received from now on.
NEW_TERMS_NOTE = "Новые сроки действуют для обращений, полученных с этого момента."


def _notifier(app: AppContext, bot: Bot) -> Notifier:
    return app.notifier if app.notifier is not None else TelegramNotifier(bot)


# -- reminder buttons --------------------------------------------------------------------------


async def on_decision(
    query: CallbackQuery, bot: Bot, session: AsyncSession, app: AppContext
) -> None:
    """«Взять в работу», «Не обращение», «Ответили вне соцсети» under a reminder."""
    parsed = parse_callback(query.data or "")
    if parsed is None:
        await query.answer()
        return
    action, appeal_id = parsed
    appeal = await session.get(Appeal, appeal_id)
    page = await session.get(Page, appeal.page_id) if appeal is not None else None
    if appeal is None or page is None:
        await query.answer("Обращение не найдено.", show_alert=True)
        return
    user = query.from_user
    chat_id = query.message.chat.id if query.message is not None else None
    role = await roles.role_of(session, app.settings, user.id, page_id=page.id)
    in_press_chat = chat_id is not None and chat_id == press_chat_of(page, app.settings)
    if role < roles.Role.OPERATOR:
        if not roles.may_join_by_pressing(app.settings, in_press_chat):
            logger.info("пользователь %r без роли нажал %r; отказано", user.id, query.data)
            await query.answer(BUTTON_REFUSAL, show_alert=True)
            return
        # An open press chat: its member is an operator from the first press (roles docs).
        await roles.register_operator(session, user.id, person_name(user), page.id)
    now = app.clock()
    result = await apply_decision(
        session,
        appeal,
        action,
        actor_id=str(user.id),
        actor_name=person_name(user),
        at=now,
        timezone=page.timezone or app.defaults.timezone,
    )
    await query.answer(result.message, show_alert=not result.changed)
    if not result.changed:
        return
    notifier = _notifier(app, bot)
    try:
        # Every card of the appeal shows the decision at once (taken by whom, struck through…).
        await refresh_cards(session, notifier, app.defaults, now, [appeal_id])
        if result.taken_from is not None and chat_id is not None:
            # A takeover is said in the chat, under the card it concerns.
            who = person_name(user) or str(user.id)
            text = takeover_text(appeal_id, who, result.taken_from)
            reply_to = await latest_card(session, chat_id, appeal_id)
            await notifier.send_text(chat_id, html.escape(text), reply_to=reply_to)
    except DeliveryError as error:
        # The decision stands; the scheduler's tick edits the cards later.
        logger.warning("карточки обращения %r пока не обновлены: %s", appeal_id, error)


async def on_more(query: CallbackQuery, session: AsyncSession, app: AppContext) -> None:
    """«Ещё» under a page of the overdue summary: the next page as a new message."""
    after = parse_more(query.data or "")
    chat_id = query.message.chat.id if query.message is not None else None
    if after is None or chat_id is None:
        await query.answer()
        return
    user = query.from_user
    active = [page for page in await pages.all_pages(session) if page.is_active]
    in_chat = [p for p in active if press_chat_of(p, app.settings) == chat_id]
    page_id = in_chat[0].id if in_chat else None
    if await roles.role_of(session, app.settings, user.id, page_id=page_id) < roles.Role.OPERATOR:
        if page_id is None:
            await query.answer(BUTTON_REFUSAL, show_alert=True)
            return
        # A member of the page's press chat: an operator from the first press (roles docs).
        await roles.register_operator(session, user.id, person_name(user), page_id)
    chosen = in_chat if in_chat else active
    now = app.clock()
    cards = await overdue_cards(
        session, [p.id for p in chosen if p.id], now, app.defaults, after=after
    )
    if not cards:
        await query.answer("Больше просроченных обращений нет.")
        return
    await query.answer()
    [page_message] = summary_pages(cards, now, app.defaults.timezone, paged=True, continued=True)[
        :1
    ]
    # aiogram types CallbackQuery.bot as optional; a dispatched query always has its bot.
    await send_cards(session, _notifier(app, query.bot), chat_id, page_message, now)  # type: ignore[arg-type]


async def topic_command(
    message: Message, command: CommandObject, session: AsyncSession, app: AppContext
) -> None:
    """/topic N тема: an operator or supervisor corrects the topic of appeal №N."""
    parts = (command.args or "").split(maxsplit=1)
    if len(parts) != 2 or not parts[0].lstrip("№").isdigit():
        await message.answer("Как исправить тему: /topic 12 дороги — номер обращения и тема.")
        return
    appeal_id = row_id(parts[0].lstrip("№"))  # None: a number no appeal can have
    appeal = await session.get(Appeal, appeal_id) if appeal_id is not None else None
    page = await session.get(Page, appeal.page_id) if appeal is not None else None
    if appeal is None or page is None:
        await message.answer(f"Обращение №{parts[0].lstrip('№')} не найдено.")
        return
    user = message.from_user
    if user is None:
        return
    role = await roles.role_of(session, app.settings, user.id, page_id=page.id)
    if role < roles.Role.OPERATOR:
        in_press_chat = message.chat.id == press_chat_of(page, app.settings)
        if not roles.may_join_by_pressing(app.settings, in_press_chat):
            await message.answer(TOPIC_REFUSAL)
            return
        await roles.register_operator(session, user.id, person_name(user), page.id)
    try:
        topic = corrections.topic_code(parts[1])
    except corrections.UnknownTopic as error:
        await message.answer(str(error))
        return
    result = await corrections.correct_topic(
        session,
        appeal,
        topic,
        actor_id=str(user.id),
        actor_name=person_name(user),
        at=app.clock(),
    )
    await message.answer(result.message)


# -- supervisors -------------------------------------------------------------------------------


async def _require(
    message: Message,
    session: AsyncSession,
    app: AppContext,
    role: roles.Role,
    refusal: str | None = None,
) -> bool:
    user = message.from_user
    if user is not None and await roles.role_of(session, app.settings, user.id) >= role:
        return True
    default = ADMIN_REFUSAL if role >= roles.Role.ADMIN else SUPERVISOR_REFUSAL
    await message.answer(refusal or default)
    return False


async def overdue_command(
    message: Message, bot: Bot, session: AsyncSession, app: AppContext
) -> None:
    """/overdue: every overdue appeal now, with the buttons."""
    if not await _require(message, session, app, roles.Role.SUPERVISOR):
        return
    now = app.clock()
    cards = await overdue_cards(session, await pages.active_page_ids(session), now, app.defaults)
    notifier = _notifier(app, bot)
    if not cards:
        await notifier.send_text(message.chat.id, no_overdue_text(now, app.defaults.timezone))
        return
    # Long lists go as several messages, split only between cards, each with its buttons.
    for page_message in summary_pages(cards, now, app.defaults.timezone, paged=False):
        await send_cards(session, notifier, message.chat.id, page_message, now)


async def digest_command(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    app: AppContext,
    command: CommandObject,
) -> None:
    """/digest [2026-W46]: the weekly digest of the last full week (or the given one) here."""
    if not await _require(message, session, app, roles.Role.SUPERVISOR):
        return
    try:
        week = digest_service.parse_week(command.args, app.clock(), app.defaults.timezone)
    except ValueError:
        await message.answer("Неделю пишут так: /digest 2026-W46. Без неё — прошлая неделя.")
        return
    built = await digest_service.build_digest(session, app, week)
    await digest_service.send_digest(_notifier(app, bot), message.chat.id, built)


async def export_command(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    app: AppContext,
    command: CommandObject,
) -> None:
    """/export [неделя|месяц|ДД.ММ-ДД.ММ]: the XLSX file here."""
    if not await _require(message, session, app, roles.Role.SUPERVISOR):
        return
    now = app.clock()
    try:
        since, until, label = export_service.parse_period(
            command.args or "", now, app.defaults.timezone
        )
    except export_service.ExportError as error:
        await message.answer(str(error))
        return
    exported = await export_service.build_export(
        session, since=since, until=until, at=now, defaults=app.defaults, label=label
    )
    caption = f"Выгрузка за {label}: {digest_service.appeals_count(exported.appeals)}."
    await _notifier(app, bot).send_document(
        message.chat.id, exported.data, exported.filename, caption
    )


# -- admins: pages and press chats -------------------------------------------------------------


def _page_line(page: Page, app: AppContext) -> str:
    chat = press_chat_of(page, app.settings)
    chat_text = (
        f"пресс-чат {chat}" + ("" if page.press_chat_id is not None else " (по умолчанию)")
        if chat is not None
        else "пресс-чат не задан"
    )
    sla = page.sla_hours or app.defaults.sla_hours
    urgent = page.sla_urgent_hours or app.defaults.sla_urgent_hours
    final = final_answer_days(page, False, app.defaults)
    final_urgent = final_answer_days(page, True, app.defaults)
    state = "" if page.is_active else " · отключена"
    return (
        f"<b>{page.id}</b> · {html.escape(page_title(page))} ({ru.platform(page.platform)})\n"
        f"    {html.escape(page.timezone or app.defaults.timezone)} · "
        f"{html.escape(page.work_hours or app.defaults.work_hours)} · "
        f"ответ за {sla:g} ч, срочные за {urgent:g} ч · "
        f"по существу за {_working_days(final)}, срочные за {_working_days(final_urgent)} · "
        f"{chat_text}{state}"
    )


def _working_days(days: int) -> str:
    """«1 рабочий день», «2 рабочих дня», «7 рабочих дней»."""
    adjective = ru.plural(days, "рабочий", "рабочих", "рабочих")
    return f"{ru.number(days)}{ru.NBSP}{adjective} {ru.plural(days, 'день', 'дня', 'дней')}"


STAFF_USAGE = (
    "Сотрудники и роли:\n"
    "/staff — список\n"
    "/staff add ID [страница] — официальный аккаунт: его ответы засчитываются как ответы страницы\n"
    "/staff operator ID [страница] — оператор: кнопки под напоминаниями\n"
    "/staff supervisor ID — руководитель: /stats, /overdue, /digest, /export\n"
    "/staff remove ID [страница] — убрать\n"
    "ID — число из Telegram (его покажет /chatid) или vk12345 для аккаунта ВКонтакте."
)
STAFF_ROLES_RU = {
    "staff": "официальный аккаунт",
    "operator": "оператор",
    "supervisor": "руководитель",
    "admin": "администратор",
}
_STAFF_VERBS = {
    "add": "staff",
    "operator": "operator",
    "supervisor": "supervisor",
    "remove": "none",
}


def _account_label(platform: str, user_id: str) -> str:
    """«Telegram 12345», «ВКонтакте 777»."""
    return f"{ru.platform(platform)} {user_id}"


def _staff_account(text: str) -> tuple[str, str] | None:
    """«12345» → (telegram, 12345); «vk12345» or «vk:12345» → (vk, 12345)."""
    lowered = text.lower()
    platform = "telegram"
    if lowered.startswith("vk"):
        platform, lowered = "vk", lowered[2:].lstrip(":")
    return (platform, lowered) if lowered.lstrip("-").isdigit() else None


async def staff_command(
    message: Message, session: AsyncSession, app: AppContext, command: CommandObject
) -> None:
    """/staff: list and change who writes officially and who holds a press-office role."""
    if not await _require(message, session, app, roles.Role.ADMIN, STAFF_REFUSAL):
        return
    args = (command.args or "").split()
    if not args:
        rows = (await session.exec(select(Staff).order_by(col(Staff.id)))).all()
        if not rows:
            await message.answer("Сотрудников пока нет.\n\n" + STAFF_USAGE)
            return
        lines = [
            f"• {_account_label(row.platform, row.user_id)}{' ' + row.name if row.name else ''} — "
            f"{STAFF_ROLES_RU.get(row.role, row.role)}"
            + (f", страница {row.page_id}" if row.page_id else ", все страницы")
            for row in rows
        ]
        await message.answer("\n".join(lines))
        return
    verb = _STAFF_VERBS.get(args[0].lower())
    account = _staff_account(args[1]) if len(args) > 1 else None
    page_id = row_id(args[2]) if len(args) > 2 else None
    if verb is None or account is None or (len(args) > 2 and page_id is None):
        await message.answer(STAFF_USAGE)
        return
    if page_id is not None and await session.get(Page, page_id) is None:
        await message.answer(f"Страницы {page_id} нет. Список страниц — /page.")
        return
    platform, user_id = account
    name = await onboarding.telegram_name(message.bot, user_id) if platform == "telegram" else None
    await roles.set_role(session, user_id, verb, name=name, page_id=page_id, platform=platform)
    if platform == roles.PLATFORM and message.bot is not None:
        # The person's menu follows the role (staff rows are flushed: the query sees them).
        await onboarding.refresh_menus(message.bot, session, app, changed_users=[int(user_id)])
    where = f"на странице {page_id}" if page_id else "на всех страницах"
    who = _account_label(platform, user_id)
    if name:
        who = f"{name} ({who})"
    if verb == "none":
        await message.answer(f"{who} больше не в списке сотрудников ({where}).")
    else:
        await message.answer(f"{who} — {STAFF_ROLES_RU[verb]} {where}.")


async def page_command(
    message: Message, bot: Bot, session: AsyncSession, app: AppContext, command: CommandObject
) -> None:
    """/page: list pages; /page add …: connect one; /page ID title|tz|sla|final|hours|unbind …."""
    if not await _require(message, session, app, roles.Role.ADMIN):
        return
    args = (command.args or "").split()
    if args and args[0].lower() in ("add", "добавить"):
        await add_page(message, bot, session, app, args[1:])
        return
    if not args:
        listed = await pages.all_pages(session)
        if not listed:
            await message.answer(
                "Страниц пока нет. Подключите первую: /page add @канал или /page add vk 12345."
            )
            return
        lines = [_page_line(page, app) for page in listed]
        await message.answer("\n".join(["<b>Страницы</b>", *lines]), parse_mode="HTML")
        return
    if len(args) == 1 and args[0].isdigit():
        # Page health: the figures and which right or token would give the missing ones.
        await page_health_answer(message, session, app, args[0])
        return
    if len(args) < 2 or not args[0].isdigit():
        await message.answer(PAGE_HELP)
        return
    number = row_id(args[0])
    page = await session.get(Page, number) if number is not None else None
    if page is None:
        await message.answer(f"Страницы {args[0]} нет. Список: /page")
        return
    field, values = args[1].lower(), args[2:]
    if field == "title" and values:
        page.title = " ".join(values)[:256]
    elif field == "tz" and values:
        try:
            page.timezone = resolve_timezone(" ".join(values))
        except TimeZoneError:
            await message.answer(
                f"Не знаю часовой пояс «{' '.join(values)}». "
                "Пример: /page ID tz Владивосток или /page ID tz Asia/Vladivostok"
            )
            return
    elif field == "sla" and 1 <= len(values) <= 2:
        try:
            hours = [float(v.replace(",", ".")) for v in values]
        except ValueError:
            hours = []
        if not hours or any(not 0 < h <= 24 * 30 for h in hours):
            await message.answer("Часы на ответ — положительные числа: /page ID sla 8 4")
            return
        page.sla_hours = hours[0]
        if len(hours) == 2:
            page.sla_urgent_hours = hours[1]
    elif field == "final" and 1 <= len(values) <= 2:
        days = [int(v) if v.isdigit() else 0 for v in values]
        if any(not 1 <= d <= MAX_FINAL_DAYS for d in days):
            await message.answer(
                "Рабочие дни на ответ по существу — целые числа от 1 до "
                f"{MAX_FINAL_DAYS}: /page ID final 7 1 (обычные и срочные)"
            )
            return
        page.final_answer_days = days[0]
        if len(days) == 2:
            page.final_answer_urgent_days = days[1]
    elif field == "hours" and values:
        try:
            WorkSchedule.parse(page.timezone or app.defaults.timezone, " ".join(values))
        except ValueError:
            await message.answer("Рабочее время пишут так: 09:00-18:00 или 09:00-18:00,13:00-14:00")
            return
        page.work_hours = " ".join(values)
    elif field == "unbind" and not values:
        page.press_chat_id = None
    else:
        await message.answer(PAGE_HELP)
        return
    await session.flush()
    logger.info(
        "страница %r: настройку %s изменил %r",
        page.id,
        field,
        message.from_user and message.from_user.id,
    )
    note = f"\n{NEW_TERMS_NOTE}" if field in ("sla", "final") else ""
    await message.answer("Сохранено.\n" + _page_line(page, app) + note, parse_mode="HTML")


async def bind_command(
    message: Message, session: AsyncSession, app: AppContext, command: CommandObject
) -> None:
    """/bind ID (or /bind all) in a group: that page's reminders go to this chat."""
    if not await _require(message, session, app, roles.Role.ADMIN):
        return
    if message.chat.type not in ("group", "supergroup"):
        await message.answer("Команду /bind отправляют в групповом чате пресс-службы.")
        return
    arg = (command.args or "").strip().lower()
    known = await pages.all_pages(session)
    if arg == "all":
        chosen = list(known)
    elif arg.isdigit():
        chosen = [page for page in known if page.id == row_id(arg)]
    elif not arg and len(known) == 1:
        chosen = list(known)
    else:
        listing = "\n".join(f"{p.id} · {page_title(p)}" for p in known)
        await message.answer(
            "Укажите страницу: /bind ID или /bind all.\n" + (listing or "Страниц пока нет.")
        )
        return
    if not chosen:
        await message.answer(f"Страницы {arg} нет. Список: /page")
        return
    for page in chosen:
        page.press_chat_id = message.chat.id
    app.press_chats.add(message.chat.id)
    await session.flush()
    if message.bot is not None:
        await onboarding.refresh_menus(message.bot, session, app)  # the new chat's menu
    titles = ", ".join(f"«{html.escape(page_title(p))}»" for p in chosen)
    pages_word = "странице" if len(chosen) == 1 else "страницам"  # not a count: one or several
    logger.info("чат %r привязан к страницам %r", message.chat.id, [p.id for p in chosen])
    await message.answer(
        f"Готово: напоминания по {pages_word} {titles} будут приходить в этот чат.",
        parse_mode="HTML",
    )


async def _load_press_chats(app: AppContext) -> None:
    """On startup: chats bound with /bind are press chats of this process too."""
    async with app.sessions() as session:
        app.press_chats.update(await pages.press_chat_ids(session))


def create_router(app: AppContext) -> Router:
    """A fresh router with the press-office handlers."""
    router = Router(name=__name__)

    async def on_startup() -> None:
        await _load_press_chats(app)

    router.startup.register(on_startup)
    router.callback_query.register(on_decision, CallbackData(f"{CALLBACK_PREFIX}:"))
    router.callback_query.register(on_more, CallbackData(f"{MORE_PREFIX}:"))
    router.message.register(overdue_command, Command("overdue"))
    router.message.register(topic_command, Command("topic"))
    router.message.register(digest_command, Command("digest"))
    router.message.register(export_command, Command("export"))
    router.message.register(page_command, Command("page"))
    router.message.register(staff_command, Command("staff"))
    router.message.register(bind_command, Command("bind"))
    return router
