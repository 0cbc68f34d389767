"""The reminder ladder, planned from the database and delivered through a `Notifier`.

For every unanswered appeal the press chat of its page gets, in working time only:

1. `urgent` — at once, for urgent appeals (no heating, no water, danger), even out of hours;
2. `half_sla` — when half of the SLA's working hours have passed;
3. `deadline` — when the SLA deadline is reached;
4. `overdue_daily` — one summary of all overdue appeals of the chat at 09:00 local time on
   working days.

Each tick inserts a `reminder_log` row for every reminder that has become due (the unique key
(kind, chat_id, due_key) means a restart or a second worker never plans one twice), then sends
the pending rows. Rows due together for one chat go out as one message. A send that fails stays
pending with `attempts`, `last_error` and `next_attempt_at` and is tried again on a later tick; a
reminder whose appeal was answered, excluded or answered elsewhere meanwhile is `cancelled`.
Nothing is sent outside the page's working hours unless the appeal is urgent: a due reminder
waits for the next working moment. When a later stage becomes due the earlier unsent one is
`skipped` (a deadline reminder says everything a late half-time one would).
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.config import Settings
from bot.ids import row_id
from bot.ru import plural
from bot.services import reminder_log
from bot.services.notify import Button, DeliveryError, Notifier
from bot.services.policy import PageDefaults, page_calendar
from bot.services.worktime import WorkCalendar, calendar_for
from bot.text import TOPIC_TITLES_RU
from storage.models import Appeal, CitizenMessage, Decision, Page, ReminderLog, Thread

logger = logging.getLogger(__name__)

URGENT = "urgent"
HALF_SLA = "half_sla"
DEADLINE = "deadline"
OVERDUE_DAILY = "overdue_daily"
# The ladder of one appeal, earliest stage first.
STAGES = (URGENT, HALF_SLA, DEADLINE)

# Individual reminders are planned for moments at most this old; older overdue appeals are in
# the daily summary (this keeps a backfill of last year from flooding the press chat).
LOOKBACK = timedelta(days=7)
# A reminder due exactly at the end of the working day may still go out this long after it.
END_OF_DAY_GRACE = timedelta(minutes=15)
DAILY_AT = time(9, 0)
# At most this many appeals (three buttons each) per message; more go in further messages.
PER_MESSAGE = 8
# The daily summary lists this many appeals; the rest are counted.
SUMMARY_LIST = 15
EXCERPT = 180
# Waiting between attempts after failed sends: 1, 2, 4 … minutes, at most an hour.
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)

# Decisions from the buttons: callback data `ap:<code>:<appeal id>`.
TAKE = "taken"
NOT_APPEAL = "not_appeal"
ANSWERED_OFFLINE = "answered_offline"
ACTION_CODES = {"take": TAKE, "no": NOT_APPEAL, "off": ANSWERED_OFFLINE}
CALLBACK_PREFIX = "ap"

# Telegram content types and VK attachment types; anything else shows as «вложение».
_CONTENT_KINDS_RU = {
    "photo": "фото",
    "voice": "голосовое сообщение",
    "audio_message": "голосовое сообщение",
    "video": "видео",
    "video_note": "видеосообщение",
    "animation": "GIF-анимация",
    "sticker": "стикер",
    "graffiti": "граффити",
    "document": "файл",
    "doc": "документ",
    "audio": "аудио",
    "poll": "опрос",
    "link": "ссылка",
    "wall": "запись со стены",
    "wall_reply": "комментарий",
    "location": "геопозиция",
    "venue": "место на карте",
    "contact": "контакт",
    "story": "история",
    "market": "товар",
    "gift": "подарок",
}
_WEEKDAYS_RU = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")


# -- routing and calendars ---------------------------------------------------------------------


def press_chat_of(page: Page, settings: Settings) -> int | None:
    """The press chat of a page: its own (/bind) or PRESS_CHAT_ID."""
    return page.press_chat_id if page.press_chat_id is not None else settings.PRESS_CHAT_ID


async def pages_by_chat(session: AsyncSession, settings: Settings) -> dict[int, list[Page]]:
    """Active pages grouped by the press chat their reminders go to."""
    chats: dict[int, list[Page]] = defaultdict(list)
    for page in (await session.exec(select(Page).order_by(col(Page.id)))).all():
        chat = press_chat_of(page, settings)
        if chat is not None and page.is_active:
            chats[chat].append(page)
    return chats


def chat_calendar(pages: Sequence[Page], defaults: PageDefaults) -> WorkCalendar:
    """The press office's calendar: of the first page bound to the chat, else the defaults."""
    bound = [page for page in pages if page.press_chat_id is not None]
    if bound:
        return page_calendar(bound[0], defaults)
    return calendar_for(defaults.timezone, defaults.work_hours, defaults.shorten_preholiday)


def may_send_now(calendar: WorkCalendar, now: datetime, due_at: datetime, urgent: bool) -> bool:
    """Whether a reminder due at `due_at` may go out at `now` (working time, or urgent)."""
    if urgent or calendar.is_working_time(now):
        return True
    # Due at the very end of a working interval (a deadline at 18:00): a tick just after it is
    # still on time; otherwise the next morning.
    return (
        now - due_at <= END_OF_DAY_GRACE
        and due_at <= now
        and calendar.is_working_time(due_at - timedelta(seconds=1))
    )


def stage_moments(appeal: Appeal, calendar: WorkCalendar) -> dict[str, datetime]:
    """When each stage of the ladder falls due for `appeal`."""
    moments = {
        HALF_SLA: calendar.add_working_hours(appeal.received_at, appeal.sla_hours / 2),
        DEADLINE: appeal.sla_deadline,
    }
    if appeal.urgent:
        moments[URGENT] = appeal.received_at
    return moments


def is_open(appeal: Appeal, at: datetime) -> bool:
    """Unanswered at `at` and still an appeal: reminders about it make sense."""
    if appeal.excluded or appeal.answered_offline_at is not None:
        return False
    return appeal.first_response_at is None or appeal.first_response_at > at


def _open_filter(at: datetime) -> list[ColumnElement[bool]]:
    return [
        col(Appeal.excluded).is_(False),
        col(Appeal.answered_offline_at).is_(None),
        or_(col(Appeal.first_response_at).is_(None), col(Appeal.first_response_at) > at),
    ]


# -- planning ----------------------------------------------------------------------------------


@dataclass
class TickReport:
    """What one tick did (for logs and tests)."""

    planned: int = 0
    sent: int = 0
    messages: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0
    waiting: int = 0
    errors: list[str] = field(default_factory=list)


class ReminderService:
    """Plans and delivers reminders inside one session; `deliver` commits after every message."""

    def __init__(self, session: AsyncSession, settings: Settings, defaults: PageDefaults) -> None:
        self.session = session
        self.settings = settings
        self.defaults = defaults

    async def plan(self, now: datetime, report: TickReport | None = None) -> TickReport:
        """Insert a pending row for every reminder that has become due and has none yet."""
        report = report or TickReport()
        chats = await pages_by_chat(self.session, self.settings)
        page_chat = {page.id: chat for chat, pages in chats.items() for page in pages}
        pages = {page.id: page for chat_pages in chats.values() for page in chat_pages}
        if not page_chat:
            return report
        appeals = (
            await self.session.exec(
                select(Appeal).where(
                    col(Appeal.page_id).in_(list(page_chat)),
                    Appeal.received_at <= now,
                    # Every stage falls on or before the deadline.
                    Appeal.sla_deadline >= now - LOOKBACK,
                    *_open_filter(now),
                )
            )
        ).all()
        if appeals:
            existing = await self._existing_rows([a.id for a in appeals if a.id is not None])
            for appeal in appeals:
                assert appeal.id is not None
                chat = page_chat[appeal.page_id]
                calendar = page_calendar(pages[appeal.page_id], self.defaults)
                due = {
                    kind: moment
                    for kind, moment in stage_moments(appeal, calendar).items()
                    if now - LOOKBACK <= moment <= now
                }
                if not due:
                    continue
                latest = max(due, key=STAGES.index)
                for kind, moment in sorted(due.items(), key=lambda item: STAGES.index(item[0])):
                    row = existing.get((kind, chat, appeal.id))
                    if row is not None:
                        if kind != latest and row.status == "pending":
                            row.status = "skipped"  # superseded by a later stage
                            report.skipped += 1
                        continue
                    status = "pending" if kind == latest else "skipped"
                    if await self._insert(kind, chat, str(appeal.id), appeal.id, moment, status):
                        report.planned += status == "pending"
                        report.skipped += status == "skipped"
        for chat, chat_pages in chats.items():
            await self._plan_daily(chat, chat_pages, now, report)
        return report

    async def _existing_rows(
        self, appeal_ids: list[int]
    ) -> dict[tuple[str, int, int], ReminderLog]:
        rows = (
            await self.session.exec(
                select(ReminderLog).where(
                    col(ReminderLog.appeal_id).in_(appeal_ids),
                    col(ReminderLog.kind).in_(STAGES),
                )
            )
        ).all()
        return {(row.kind, row.chat_id, row.appeal_id or 0): row for row in rows}

    async def _insert(
        self,
        kind: str,
        chat_id: int,
        due_key: str,
        appeal_id: int | None,
        due_at: datetime,
        status: str = "pending",
    ) -> bool:
        """Insert one row; False if another worker (or an earlier run) already has it."""
        row = ReminderLog(
            kind=kind,
            chat_id=chat_id,
            due_key=due_key,
            appeal_id=appeal_id,
            due_at=due_at,
            status=status,
        )
        try:
            async with self.session.begin_nested():
                self.session.add(row)
                await self.session.flush()
        except IntegrityError:
            logger.info("reminder %r/%r/%r was planned elsewhere", kind, chat_id, due_key)
            return False
        return True

    async def _plan_daily(
        self, chat: int, pages: Sequence[Page], now: datetime, report: TickReport
    ) -> None:
        calendar = chat_calendar(pages, self.defaults)
        zone = ZoneInfo(calendar.schedule.timezone)
        today = now.astimezone(zone).date()
        due_at = datetime.combine(today, DAILY_AT, tzinfo=zone).astimezone(UTC)
        if not calendar.is_working_day(today) or now < due_at:
            return
        key = today.isoformat()
        found = await self.session.exec(
            select(ReminderLog).where(
                ReminderLog.kind == OVERDUE_DAILY, ReminderLog.chat_id == chat
            )
        )
        rows = found.all()
        if any(row.due_key == key for row in rows):
            return
        for older in rows:
            if older.status == "pending":
                older.status = "skipped"  # today's summary replaces an unsent older one
                report.skipped += 1
        if await self._insert(OVERDUE_DAILY, chat, key, None, due_at):
            report.planned += 1

    # -- delivery ------------------------------------------------------------------------------

    async def deliver(self, notifier: Notifier, now: datetime, report: TickReport) -> TickReport:
        """Send every pending row that may go out now; one message per chat (and chunk)."""
        rows = (
            await self.session.exec(
                select(ReminderLog)
                .where(
                    ReminderLog.status == "pending",
                    col(ReminderLog.kind).in_((*STAGES, OVERDUE_DAILY)),
                    ReminderLog.due_at <= now,
                    or_(
                        col(ReminderLog.next_attempt_at).is_(None),
                        col(ReminderLog.next_attempt_at) <= now,
                    ),
                )
                .order_by(col(ReminderLog.due_at), col(ReminderLog.id))
            )
        ).all()
        if not rows:
            return report
        chats = await pages_by_chat(self.session, self.settings)
        by_chat: dict[int, list[ReminderLog]] = defaultdict(list)
        for row in rows:
            by_chat[row.chat_id].append(row)
        for chat_id, chat_rows in by_chat.items():
            pages = chats.get(chat_id, [])
            await self._deliver_chat(notifier, chat_id, pages, chat_rows, now, report)
            await self.session.commit()
        return report

    async def _deliver_chat(
        self,
        notifier: Notifier,
        chat_id: int,
        pages: Sequence[Page],
        rows: list[ReminderLog],
        now: datetime,
        report: TickReport,
    ) -> None:
        calendar = chat_calendar(pages, self.defaults)
        items: list[tuple[ReminderLog, AppealCard]] = []
        seen: dict[int, tuple[ReminderLog, AppealCard]] = {}
        daily: list[ReminderLog] = []
        for row in rows:
            if row.kind == OVERDUE_DAILY:
                daily.append(row)
                continue
            appeal = await self.session.get(Appeal, row.appeal_id) if row.appeal_id else None
            if appeal is None or not is_open(appeal, now):
                row.status = "cancelled"
                report.cancelled += 1
                continue
            page = await self.session.get(Page, appeal.page_id)
            assert page is not None
            if not may_send_now(page_calendar(page, self.defaults), now, row.due_at, appeal.urgent):
                report.waiting += 1
                continue
            assert appeal.id is not None
            previous = seen.get(appeal.id)
            if previous is not None:
                # Two stages of one appeal at once: only the later one is worth a line.
                if STAGES.index(row.kind) > STAGES.index(previous[0].kind):
                    previous[0].status = "skipped"
                    items.remove(previous)
                else:
                    row.status = "skipped"
                    report.skipped += 1
                    continue
                report.skipped += 1
            card = await load_card(self.session, appeal, page, self.defaults)
            seen[appeal.id] = (row, card)
            items.append((row, card))
        for start in range(0, len(items), PER_MESSAGE):
            chunk = items[start : start + PER_MESSAGE]
            text, buttons = render_reminders([(row.kind, card) for row, card in chunk], now)
            await self._send(
                [row for row, _ in chunk], notifier, chat_id, text, buttons, now, report
            )
        # The summary after the single reminders: it is the overview of what is left.
        for row in daily:
            if may_send_now(calendar, now, row.due_at, False):
                await self._send_daily(notifier, chat_id, pages, row, now, report)
            else:
                report.waiting += 1

    async def _send_daily(
        self,
        notifier: Notifier,
        chat_id: int,
        pages: Sequence[Page],
        row: ReminderLog,
        now: datetime,
        report: TickReport,
    ) -> None:
        cards = await overdue_cards(self.session, [p.id for p in pages if p.id], now, self.defaults)
        if not cards:
            row.status = "skipped"  # nothing overdue: no message is the best message
            report.skipped += 1
            return
        calendar = chat_calendar(pages, self.defaults)
        text, buttons = render_overdue_summary(cards, now, calendar.schedule.timezone)
        await self._send([row], notifier, chat_id, text, buttons, now, report)

    async def _send(
        self,
        rows: list[ReminderLog],
        notifier: Notifier,
        chat_id: int,
        text: str,
        buttons: list[list[Button]],
        now: datetime,
        report: TickReport,
    ) -> None:
        # «sending» committed before the call, «sent» right after it (bot/services/reminder_log).
        text = await reminder_log.begin(self.session, rows, text, now)
        try:
            message_id = await notifier.send_text(chat_id, text, buttons)
        except DeliveryError as error:
            attempts = max(row.attempts for row in rows) + 1
            delay = min(RETRY_BASE * 2 ** (attempts - 1), RETRY_MAX)
            reminder_log.failed(rows)
            for row in rows:
                row.attempts += 1
                row.last_error = str(error)[:500]
                row.next_attempt_at = now + delay
            report.failed += len(rows)
            report.errors.append(str(error))
            log = logger.error if attempts >= 3 or error.permanent else logger.warning
            log(
                "reminders %r to chat %r not delivered (attempt %r, next in %s): %s",
                [row.id for row in rows],
                chat_id,
                attempts,
                delay,
                error,
            )
            return
        for row in rows:
            row.status = "sent"
            row.sent_at = now
            row.message_id = message_id
            row.attempts += 1
            row.last_error = None
        # At once, not after the chat: if this worker dies on its next message, another one
        # must not send this one again (a chat's reminders may take several messages).
        await self.session.commit()
        report.sent += len(rows)
        report.messages += 1


# -- what a reminder shows ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppealCard:
    """Everything a reminder line says about one appeal."""

    appeal_id: int
    page_title: str
    platform: str
    topic: str
    urgent: bool
    received_at: datetime
    deadline: datetime
    excerpt: str
    citizen_name: str | None
    link: str | None
    link_label: str
    taken_by: str | None
    timezone: str
    working_left_s: float  # working seconds from the card's moment to the deadline


async def load_card(
    session: AsyncSession,
    appeal: Appeal,
    page: Page,
    defaults: PageDefaults,
    at: datetime | None = None,
) -> AppealCard:
    """A card for `appeal` as of `at` (for the working time left)."""
    assert appeal.id is not None
    message = (
        await session.get(CitizenMessage, appeal.first_message_id)
        if appeal.first_message_id
        else None
    )
    thread = await session.get(Thread, appeal.thread_id)
    calendar = page_calendar(page, defaults)
    moment = at or appeal.received_at
    return AppealCard(
        appeal_id=appeal.id,
        page_title=page_title(page),
        platform=page.platform,
        topic=appeal.topic,
        urgent=appeal.urgent,
        received_at=appeal.received_at,
        deadline=appeal.sla_deadline,
        excerpt=_excerpt(message),
        citizen_name=appeal.citizen_name,
        link=appeal.link or (message.link if message else None),
        link_label=_LINK_LABELS.get(thread.kind if thread else "", "Открыть"),
        taken_by=appeal.taken_by,
        timezone=calendar.schedule.timezone,
        working_left_s=calendar.working_seconds(moment, appeal.sla_deadline),
    )


async def overdue_cards(
    session: AsyncSession, page_ids: Iterable[int], at: datetime, defaults: PageDefaults
) -> list[AppealCard]:
    """Cards of the appeals of `page_ids` overdue at `at`, the longest overdue first."""
    ids = list(page_ids)
    if not ids:
        return []
    appeals = (
        await session.exec(
            select(Appeal)
            .where(
                col(Appeal.page_id).in_(ids),
                Appeal.received_at <= at,
                Appeal.sla_deadline <= at,
                *_open_filter(at),
            )
            .order_by(col(Appeal.sla_deadline), col(Appeal.id))
        )
    ).all()
    cards = []
    pages: dict[int, Page | None] = {}
    for appeal in appeals:
        if appeal.page_id not in pages:
            pages[appeal.page_id] = await session.get(Page, appeal.page_id)
        page = pages[appeal.page_id]
        assert page is not None
        cards.append(await load_card(session, appeal, page, defaults, at))
    return cards


_PAGE_KINDS_RU = {
    "tg_channel": "канал в Telegram",
    "tg_group": "группа в Telegram",
    "tg_bot": "бот в Telegram",
    "tg_business": "аккаунт в Telegram",
    "vk_group": "сообщество ВКонтакте",
    "vk_wall": "страница ВКонтакте",
}


def page_title(page: Page) -> str:
    """The page's name for a press officer: its title, @username or «канал в Telegram −100…»."""
    if page.title or page.username:
        return page.title or page.username or ""
    kind = _PAGE_KINDS_RU.get(page.kind) or f"страница {ru.platform(page.platform)}"
    return f"{kind} {page.external_id}"


def content_kind_ru(kind: str) -> str:
    """«фото», «голосовое сообщение»: never a raw platform type."""
    return _CONTENT_KINDS_RU.get(kind, "вложение")


def _excerpt(message: CitizenMessage | None) -> str:
    if message is None:
        return ""
    text = " ".join(message.text.split())
    if not text:
        return f"[{content_kind_ru(message.content_kind)}]"
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1].rstrip() + "…"


_LINK_LABELS = {
    "conversation": "Открыть переписку",
    "board": "Открыть обсуждение",
    "comments": "Открыть комментарий",
}


def local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def format_moment(moment: datetime, timezone: str, now: datetime | None = None) -> str:
    """«сегодня в 10:15», «вт 03.11 в 09:30» in the page's time zone."""
    at = local(moment, timezone)
    if now is not None and local(now, timezone).date() == at.date():
        return f"сегодня в {at:%H:%M}"
    return f"{_WEEKDAYS_RU[at.weekday()]} {at:%d.%m} в {at:%H:%M}"


def format_duration(seconds: float) -> str:
    """«2 ч 15 мин», «1 дн 3 ч», «40 мин»: the one Russian duration format (bot.ru)."""
    return ru.duration(max(seconds, 0.0))


def appeals_count(n: int) -> str:
    return ru.quantity(n, "обращение", "обращения", "обращений")


_HEADERS = {
    URGENT: "🚨 Срочное обращение",
    HALF_SLA: "⏳ Прошла половина срока ответа",
    DEADLINE: "⏰ Срок ответа истёк",
}


def _card_lines(kind: str | None, card: AppealCard, now: datetime) -> list[str]:
    topic = TOPIC_TITLES_RU.get(card.topic, card.topic)
    # The appeal id, not a position in the list: the buttons, the confirmation and /topic use it.
    head = (
        f"<b>№{card.appeal_id}</b> · <b>{html.escape(card.page_title)}</b> · {html.escape(topic)}"
    )
    if card.urgent:
        head += " · <b>срочное</b>"
    lines = [head]
    if card.excerpt:
        who = f" — {html.escape(card.citizen_name)}" if card.citizen_name else ""
        lines.append(f"«{html.escape(card.excerpt)}»{who}")
    timing = f"Поступило {format_moment(card.received_at, card.timezone, now)}"
    if card.deadline > now:
        timing += (
            f" · срок ответа — {format_moment(card.deadline, card.timezone, now)}"
            f" (осталось {format_duration(card.working_left_s)} рабочего времени)"
        )
    else:
        timing += (
            f" · срок истёк {format_moment(card.deadline, card.timezone, now)}"
            f" (просрочено на {format_duration((now - card.deadline).total_seconds())})"
        )
    lines.append(timing)
    if card.link:
        lines.append(f'<a href="{html.escape(card.link, quote=True)}">{card.link_label}</a>')
    lines.append(
        f"👤 В работе: {html.escape(card.taken_by)}" if card.taken_by else "👤 Никто не взял"
    )
    return lines


def appeal_buttons(appeal_id: int, labelled: bool = False) -> list[list[Button]]:
    """The three decision buttons of one appeal, labelled «№57 · …» when a message has several."""
    prefix = f"№{appeal_id} · " if labelled else ""
    data = f"{CALLBACK_PREFIX}:{{}}:{appeal_id}"
    return [
        [Button(f"{prefix}Взять в работу", callback_data=data.format("take"))],
        [
            Button(f"{prefix}Не обращение", callback_data=data.format("no")),
            Button(f"{prefix}Ответили вне соцсети", callback_data=data.format("off")),
        ],
    ]


def render_reminders(
    items: Sequence[tuple[str, AppealCard]], now: datetime
) -> tuple[str, list[list[Button]]]:
    """One message for reminders due together: text and buttons."""
    if len(items) == 1:
        kind, card = items[0]
        lines = [f"<b>{_HEADERS[kind]}</b>", *_card_lines(kind, card, now)]
        return "\n".join(lines), appeal_buttons(card.appeal_id)
    blocks = [f"<b>🔔 Напоминание: {appeals_count(len(items))} ждут ответа</b>"]
    buttons: list[list[Button]] = []
    for kind, card in items:
        lines = _card_lines(kind, card, now)
        lines[0] = f"{_HEADERS[kind]}\n{lines[0]}"
        blocks.append("\n".join(lines))
        buttons.extend(appeal_buttons(card.appeal_id, labelled=True))
    return "\n\n".join(blocks), buttons


def render_overdue_summary(
    cards: Sequence[AppealCard], now: datetime, timezone: str, *, with_buttons: int = PER_MESSAGE
) -> tuple[str, list[list[Button]]]:
    """The daily (and /overdue) list of overdue appeals: text and buttons for the first ones."""
    today = local(now, timezone)
    if not cards:
        return f"✅ На {today:%H:%M} {today:%d.%m} просроченных обращений нет.", []
    overdue = plural(len(cards), "просрочено", "просрочены", "просрочено")
    blocks = [f"<b>📋 На {today:%H:%M} {today:%d.%m} {overdue} {appeals_count(len(cards))}</b>"]
    buttons: list[list[Button]] = []
    shown = cards[:SUMMARY_LIST]
    for position, card in enumerate(shown):
        blocks.append("\n".join(_card_lines(None, card, now)))
        if position < with_buttons:
            buttons.extend(appeal_buttons(card.appeal_id, labelled=len(shown) > 1))
    rest = len(cards) - len(shown)
    if rest > 0:
        # Read in the press chat, where operators cannot use /export or /overdue: say what
        # is missing and who can get it.
        later = plural(rest, "просроченное", "просроченных", "просроченных")
        blocks.append(
            f"…и ещё {appeals_count(rest)}, {later} позже. Здесь — {len(shown)} самых давних;"
            " остальные появятся в сводке, когда с этими разберутся. Полный список — в выгрузке"
            " /export (статус «просрочено»), её получают руководители пресс-службы."
        )
    return "\n\n".join(blocks), buttons


# -- decisions from the buttons ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What a button press did, with the text to show the person who pressed it."""

    changed: bool
    message: str
    appeal: Appeal | None = None


def parse_callback(data: str) -> tuple[str, int] | None:
    """`ap:take:12` → ("taken", 12); None for anything else."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != CALLBACK_PREFIX or parts[1] not in ACTION_CODES:
        return None
    appeal_id = row_id(parts[2])  # a forged huge id is no appeal, not an OverflowError
    return None if appeal_id is None else (ACTION_CODES[parts[1]], appeal_id)


async def apply_decision(
    session: AsyncSession,
    appeal: Appeal,
    action: str,
    *,
    actor_id: str,
    actor_name: str | None,
    at: datetime,
) -> DecisionResult:
    """Take an appeal, exclude it (not an appeal) or mark it answered elsewhere; keep who/when."""
    number = f"№{appeal.id}"
    who = actor_name or actor_id
    if appeal.excluded:
        return DecisionResult(False, f"Обращение {number} уже отмечено как «не обращение».", appeal)
    if action == TAKE:
        if appeal.taken_by == who:
            return DecisionResult(False, f"Обращение {number} уже у вас в работе.", appeal)
        appeal.taken_by, appeal.taken_at = who, at
        message = f"Обращение {number} взято в работу: {who}."
    elif action == NOT_APPEAL:
        appeal.excluded = True
        message = f"Обращение {number} отмечено как «не обращение» и не войдёт в показатели."
    elif action == ANSWERED_OFFLINE:
        if appeal.answered_offline_at is not None:
            return DecisionResult(False, f"По обращению {number} уже отмечен ответ вне соцсети.")
        if appeal.first_response_at is not None and appeal.first_response_at <= at:
            return DecisionResult(False, f"На обращение {number} уже ответили в соцсети.", appeal)
        appeal.answered_offline_at = at
        message = f"Обращение {number} засчитано как отвеченное вне соцсети."
    else:
        raise ValueError(f"unknown decision {action!r}")
    session.add(
        Decision(
            appeal_id=appeal.id or 0,
            action=action,
            value=appeal.topic if action == NOT_APPEAL else None,
            actor_id=actor_id,
            actor_name=actor_name,
            decided_at=at,
        )
    )
    if action != TAKE:
        # The ladder stops here: pending reminders about it will not go out.
        pending = await session.exec(
            select(ReminderLog).where(
                ReminderLog.appeal_id == appeal.id, ReminderLog.status == "pending"
            )
        )
        for row in pending.all():
            row.status = "cancelled"
    await session.flush()
    logger.info("appeal %r: %s by %r", appeal.id, action, actor_id)
    return DecisionResult(True, message, appeal)
