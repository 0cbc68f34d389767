"""The reminder ladder, planned from the database and delivered through a `Notifier`.

For every unanswered appeal the press chat of its page gets, in working time only:

1. `urgent` — at once, for urgent appeals (no heating, no water, danger), even out of hours;
2. `half_sla` — when half of the SLA's working hours have passed;
3. `deadline` — when the SLA deadline is reached;
4. `overdue_daily` — one summary of all overdue appeals of the chat at 09:00 local time on
   working days (a page of cards with «Ещё» for the next one);

and for the final-answer stage (bot/services/final_stage.py):

5. `reopened` — at once when a citizen's 👎 or dissatisfied return re-opens an appeal, as a
   reply to the appeal's card;
6. `final_half` — when half of the final stage's working time has passed without a final
   answer (an interim reply, or a re-open, and nothing on the merits yet);
7. `final_deadline` — when the final answer's deadline passes without a final answer.

The kinds and their moments are in bot/services/ladder.py; what a card shows in
bot/services/cards.py, the sent cards and their edits in bot/services/sent_cards.py, the
overdue summary in bot/services/overdue.py, the buttons' decisions in
bot/services/decisions.py.

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

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.services import reminder_log, sent_cards
from bot.services.cards import (
    AppealCard,
    CardMessage,
    appeals_count,
    format_duration,
    load_card,
    pack,
    page_title,
    reminder_header,
)
from bot.services.ladder import (
    APPEAL_KINDS,
    DAILY_AT,
    DEADLINE,
    FINAL_DEADLINE,
    FINAL_HALF,
    HALF_SLA,
    LOOKBACK,
    OVERDUE_DAILY,
    REOPENED,
    RETRY_BASE,
    RETRY_MAX,
    STAGES,
    URGENT,
    chat_calendar,
    final_moments,
    is_due,
    may_send_now,
    pages_by_chat,
    press_chat_of,
    stage_moments,
)
from bot.services.notify import DeliveryError, Notifier
from bot.services.overdue import (
    final_waiting_filter,
    is_open,
    open_filter,
    overdue_cards,
    summary_pages,
)
from bot.services.policy import PageDefaults, page_calendar
from bot.services.worktime import WorkCalendar
from storage.models import Appeal, Page, ReminderLog

__all__ = [
    "APPEAL_KINDS",
    "DEADLINE",
    "FINAL_DEADLINE",
    "FINAL_HALF",
    "HALF_SLA",
    "OVERDUE_DAILY",
    "REOPENED",
    "RETRY_BASE",
    "RETRY_MAX",
    "STAGES",
    "URGENT",
    "appeals_count",
    "format_duration",
    "may_send_now",
    "page_title",
    "press_chat_of",
]

logger = logging.getLogger(__name__)

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
    edited: int = 0  # messages of cards edited to follow their appeals
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
                    col(Appeal.excluded).is_(False),
                    or_(
                        # Every first-reaction stage falls on or before the SLA deadline.
                        and_(col(Appeal.sla_deadline) >= now - LOOKBACK, *open_filter(now)),
                        and_(
                            or_(
                                col(Appeal.final_deadline) >= now - LOOKBACK,
                                col(Appeal.reopened_at) >= now - LOOKBACK,
                            ),
                            final_waiting_filter(now),
                        ),
                    ),
                )
            )
        ).all()
        if appeals:
            existing = await self._existing_rows([a.id for a in appeals if a.id is not None])
            for appeal in appeals:
                assert appeal.id is not None
                chat = page_chat[appeal.page_id]
                calendar = page_calendar(pages[appeal.page_id], self.defaults)
                await self._plan_first(appeal, chat, calendar, now, existing, report)
                await self._plan_final(appeal, chat, calendar, now, existing, report)
        for chat, chat_pages in chats.items():
            await self._plan_daily(chat, chat_pages, now, report)
        return report

    async def _plan_first(
        self,
        appeal: Appeal,
        chat: int,
        calendar: WorkCalendar,
        now: datetime,
        existing: dict[tuple[str, int, str], ReminderLog],
        report: TickReport,
    ) -> None:
        """The first-reaction ladder: only its latest due stage goes out."""
        assert appeal.id is not None
        if not is_open(appeal, now):
            return
        due = {
            kind: moment
            for kind, moment in stage_moments(appeal, calendar).items()
            if now - LOOKBACK <= moment <= now
        }
        if not due:
            return
        latest = max(due, key=STAGES.index)
        key = str(appeal.id)
        for kind, moment in sorted(due.items(), key=lambda item: STAGES.index(item[0])):
            row = existing.get((kind, chat, key))
            if row is not None:
                if kind != latest and row.status == "pending":
                    row.status = "skipped"  # superseded by a later stage
                    report.skipped += 1
                continue
            status = "pending" if kind == latest else "skipped"
            if await self._insert(kind, chat, key, appeal.id, moment, status):
                report.planned += status == "pending"
                report.skipped += status == "skipped"

    async def _plan_final(
        self,
        appeal: Appeal,
        chat: int,
        calendar: WorkCalendar,
        now: datetime,
        existing: dict[tuple[str, int, str], ReminderLog],
        report: TickReport,
    ) -> None:
        """The final-answer reminders: a re-open at once; half-time, then the deadline."""
        assert appeal.id is not None
        due = {
            kind: (key, moment)
            for kind, (key, moment) in final_moments(appeal, now, calendar).items()
            if now - LOOKBACK <= moment <= now
        }
        for kind, (key, moment) in due.items():
            row = existing.get((kind, chat, key))
            # Half-time is superseded once the deadline is due too (after a pause, say).
            superseded = kind == FINAL_HALF and FINAL_DEADLINE in due
            if row is not None:
                if superseded and row.status == "pending":
                    row.status = "skipped"
                    report.skipped += 1
                continue
            status = "skipped" if superseded else "pending"
            if await self._insert(kind, chat, key, appeal.id, moment, status):
                report.planned += status == "pending"
                report.skipped += status == "skipped"

    async def _existing_rows(
        self, appeal_ids: list[int]
    ) -> dict[tuple[str, int, str], ReminderLog]:
        rows = (
            await self.session.exec(
                select(ReminderLog).where(
                    col(ReminderLog.appeal_id).in_(appeal_ids),
                    col(ReminderLog.kind).in_(APPEAL_KINDS),
                )
            )
        ).all()
        return {(row.kind, row.chat_id, row.due_key): row for row in rows}

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
            logger.info(
                "напоминание %r/%r/%r уже запланировано другим процессом", kind, chat_id, due_key
            )
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
                    col(ReminderLog.kind).in_((*APPEAL_KINDS, OVERDUE_DAILY)),
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
        reopened: list[tuple[ReminderLog, AppealCard]] = []
        seen: dict[int, tuple[ReminderLog, AppealCard]] = {}
        daily: list[ReminderLog] = []
        for row in rows:
            if row.kind == OVERDUE_DAILY:
                daily.append(row)
                continue
            appeal = await self.session.get(Appeal, row.appeal_id) if row.appeal_id else None
            if appeal is None or not is_due(row.kind, appeal, now):
                row.status = "cancelled"
                report.cancelled += 1
                continue
            page = await self.session.get(Page, appeal.page_id)
            assert page is not None and appeal.id is not None
            page_hours = page_calendar(page, self.defaults)
            if not may_send_now(page_hours, now, row.due_at, appeal.urgent):
                report.waiting += 1
                continue
            # The time left as of now, when the card goes out (not as of receipt).
            card = await load_card(self.session, appeal, page, self.defaults, now)
            if row.kind == REOPENED:
                reopened.append((row, card))
                continue
            previous = seen.get(appeal.id)
            if previous is not None:
                # Two reminders of one appeal at once: only the later one is worth a card.
                if APPEAL_KINDS.index(row.kind) > APPEAL_KINDS.index(previous[0].kind):
                    previous[0].status = "skipped"
                    items.remove(previous)
                else:
                    row.status = "skipped"
                    report.skipped += 1
                    continue
                report.skipped += 1
            seen[appeal.id] = (row, card)
            items.append((row, card))
        for row, card in reopened:
            # On the appeal's card: a reply to the newest message that shows it.
            reply_to = await sent_cards.latest_card(self.session, chat_id, card.appeal_id)
            message = CardMessage(kind=REOPENED, cards=[(REOPENED, card)])
            await self._send([row], notifier, chat_id, message, now, report, reply_to)
        for chunk in pack([(row.kind, card) for row, card in items], now):
            rows_of = [row for row, card in items if (row.kind, card) in chunk]
            header = reminder_header(len(chunk)) if len(chunk) > 1 else None
            message = CardMessage(kind=chunk[0][0], cards=chunk, header=header)
            await self._send(rows_of, notifier, chat_id, message, now, report)
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
        first = summary_pages(cards, now, calendar.schedule.timezone, paged=True)[0]
        await self._send([row], notifier, chat_id, first, now, report)

    async def _send(
        self,
        rows: list[ReminderLog],
        notifier: Notifier,
        chat_id: int,
        message: CardMessage,
        now: datetime,
        report: TickReport,
        reply_to: int | None = None,
    ) -> None:
        # «sending» committed before the call, «sent» right after it (bot/services/reminder_log);
        # a repeat after a crash says so above the cards.
        note = (await reminder_log.begin(self.session, rows, "", now)).strip() or None
        try:
            message_id = await sent_cards.send_cards(
                self.session, notifier, chat_id, message, now, reply_to, note=note
            )
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
                "напоминания %r в чат %r не доставлены (попытка %r, следующая через %s): %s",
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
