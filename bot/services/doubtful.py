"""«Возможно, обращение»: the citizen messages the classifier doubts go to people.

A message the model takes for no appeal, but without confidence (`bot.text.is_doubtful`, stored
as `citizen_message.doubtful` by the ingest path), reaches its page's press chat as a card with
«Это обращение» / «Не обращение». Missing an appeal costs far more than a tap (docs/METRICS.md),
so a person decides.

Cards are planned and sent like reminders (bot/services/reminders.py): each tick inserts a
`reminder_log` row of kind `doubtful` keyed by the message id (the unique key means a restart or
a second worker never plans a card twice), then sends the pending rows inside the page's working
hours with the same send states (bot/services/reminder_log.py), retrying failed sends later. A
card whose message became an appeal, was deleted or was decided meanwhile is `cancelled`.

Either answer is a correction like /topic or «Не обращение» under a reminder: a `decision` row
with who and when, exported by `otklik corrections` and learnt by `otklik train`. «Это
обращение» makes the message an appeal through the one appeal writer (`IngestService.promote`),
received at the message's own date: the SLA clock is the citizen's, not the press office's.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import or_, true
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.ids import row_id
from bot.services import quality, reminder_log
from bot.services.cards import content_kind_ru, format_moment, page_title
from bot.services.corrections import IS_APPEAL
from bot.services.decisions import NOT_APPEAL
from bot.services.ingest import IngestService
from bot.services.notify import Button, DeliveryError, Notifier
from bot.services.policy import PageDefaults, page_calendar
from bot.services.reminders import (
    RETRY_BASE,
    RETRY_MAX,
    TickReport,
    may_send_now,
    pages_by_chat,
)
from bot.text import TOPIC_TITLES_RU
from storage import repositories as repo
from storage.models import Appeal, CitizenMessage, Decision, Page, ReminderLog, Thread

logger = logging.getLogger(__name__)

DOUBTFUL = "doubtful"  # reminder_log.kind
# Only messages this recent are asked about: a backfill or a reclassified year must not flood
# the press chat with old comments.
LOOKBACK = timedelta(days=3)
# At most this many cards per chat and tick; the rest go out on the next ticks.
PER_TICK = 20
EXCERPT = 700

# Callback data `db:<yes|no>:<citizen message id>`.
CALLBACK_PREFIX = "db"
_ANSWERS = {"yes": True, "no": False}

TITLE = "🤔 Возможно, обращение"
YES_LABEL = "Это обращение"
NO_LABEL = "Не обращение"
_LINK_LABELS = {
    "conversation": "Открыть переписку",
    "board": "Открыть обсуждение",
    "comments": "Открыть комментарий",
}


def parse_callback(data: str) -> tuple[bool, int] | None:
    """`db:yes:12` → (True, 12); None for anything else."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != CALLBACK_PREFIX or parts[1] not in _ANSWERS:
        return None
    message_id = row_id(parts[2])  # a forged huge id is no message, not an OverflowError
    return None if message_id is None else (_ANSWERS[parts[1]], message_id)


def doubt_buttons(message_id: int) -> list[list[Button]]:
    return [
        [
            Button(YES_LABEL, callback_data=f"{CALLBACK_PREFIX}:yes:{message_id}"),
            Button(NO_LABEL, callback_data=f"{CALLBACK_PREFIX}:no:{message_id}"),
        ]
    ]


# -- what a card shows -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoubtCard:
    """Everything a «Возможно, обращение» card says about one citizen message."""

    message_id: int
    page_title: str
    text: str
    author: str | None
    sent_at: datetime
    link: str | None
    link_label: str
    timezone: str


async def load_card(
    session: AsyncSession, message: CitizenMessage, page: Page, defaults: PageDefaults
) -> DoubtCard:
    assert message.id is not None
    thread = await session.get(Thread, message.thread_id)
    return DoubtCard(
        message_id=message.id,
        page_title=page_title(page),
        text=_excerpt(message),
        author=message.author_name,
        sent_at=message.sent_at,
        link=message.link,
        link_label=_LINK_LABELS.get(thread.kind if thread else "", "Открыть"),
        timezone=page_calendar(page, defaults).schedule.timezone,
    )


def _excerpt(message: CitizenMessage) -> str:
    text = " ".join(message.text.split())
    if not text:
        return f"[{content_kind_ru(message.content_kind)}]"
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1].rstrip() + "…"


def _card_lines(card: DoubtCard, now: datetime) -> list[str]:
    lines = [f"<b>{TITLE}</b>", f"<b>{html.escape(card.page_title)}</b>"]
    who = f" — {html.escape(card.author)}" if card.author else ""
    lines.append(f"«{html.escape(card.text)}»{who}")
    lines.append(f"Написано {format_moment(card.sent_at, card.timezone, now)}")
    if card.link:
        lines.append(f'<a href="{html.escape(card.link, quote=True)}">{card.link_label}</a>')
    return lines


def render_card(card: DoubtCard, now: datetime) -> tuple[str, list[list[Button]]]:
    """The card as sent: the message and the question, with the two buttons."""
    lines = _card_lines(card, now)
    lines.append(
        "Отклик не уверен, что это обращение. Если здесь вопрос, жалоба, просьба или "
        "предложение — нажмите «Это обращение»: срок ответа считается с момента сообщения."
    )
    return "\n".join(lines), doubt_buttons(card.message_id)


def render_decided(card: DoubtCard, verdict: str, now: datetime) -> str:
    """The card after a person's answer: the message and who decided what (no buttons)."""
    return "\n".join([*_card_lines(card, now), verdict])


# -- a person's answer -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoubtResult:
    """What an answer did: the text for the person who pressed, and the card's last line."""

    changed: bool
    message: str
    verdict: str  # the line the card shows under the message once decided
    appeal_id: int | None = None


async def _earlier_decision(session: AsyncSession, message: CitizenMessage) -> Decision | None:
    conditions = [col(Decision.citizen_message_id) == message.id]
    if message.appeal_id is not None:
        conditions.append(col(Decision.appeal_id) == message.appeal_id)
    return (
        await session.exec(
            select(Decision)
            .where(or_(*conditions), col(Decision.action).in_((NOT_APPEAL, IS_APPEAL)))
            .order_by(col(Decision.decided_at).desc(), col(Decision.id).desc())
        )
    ).first()


def _verdict_line(
    is_appeal: bool, who: str, at: datetime, timezone: str, appeal_id: int | None
) -> str:
    when = format_moment(at, timezone, at)
    if is_appeal:
        return f"✅ Решение: это обращение №{appeal_id} — {html.escape(who)}, {when}."
    return f"🚫 Решение: не обращение — {html.escape(who)}, {when}. В показатели не войдёт."


async def decide(
    session: AsyncSession,
    message: CitizenMessage,
    is_appeal: bool,
    *,
    actor_id: str,
    actor_name: str | None,
    at: datetime,
    defaults: PageDefaults,
) -> DoubtResult:
    """«Это обращение» (a new appeal, received at the message's date) or «Не обращение»."""
    assert message.id is not None
    page = await session.get(Page, message.page_id)
    timezone = page_calendar(page, defaults).schedule.timezone
    who = actor_name or actor_id
    earlier = await _earlier_decision(session, message)
    if earlier is not None or message.appeal_id is not None:
        # Decided already (another operator was quicker, or the message joined an appeal).
        earlier_who = (earlier.actor_name or earlier.actor_id or "") if earlier else ""
        became = message.appeal_id is not None and (earlier is None or earlier.action != NOT_APPEAL)
        text = (
            f"Это сообщение уже обращение №{message.appeal_id}."
            if became
            else "Это сообщение уже отмечено как «не обращение»."
        )
        verdict = _verdict_line(
            became,
            earlier_who or "Отклик",
            earlier.decided_at if earlier else at,
            timezone,
            message.appeal_id,
        )
        return DoubtResult(False, text, verdict, message.appeal_id)
    if not is_appeal:
        session.add(
            Decision(
                citizen_message_id=message.id,
                action=NOT_APPEAL,
                actor_id=actor_id,
                actor_name=actor_name,
                decided_at=at,
            )
        )
        await session.flush()
        logger.info("сомнительное сообщение %r: не обращение, решил %r", message.id, actor_id)
        return DoubtResult(
            True,
            "Отмечено: не обращение. В показатели не войдёт.",
            _verdict_line(False, who, at, timezone, None),
        )
    topic = message.topic or "other"
    appeal_id, rescore = await repo.run_in_transaction(
        session,
        partial(
            IngestService(None, defaults).promote,
            message_row_id=message.id,
            topic=topic,
            urgent=message.urgent,
        ),
    )
    if appeal_id is None:  # it joined an appeal between the two reads
        await session.refresh(message)
        return DoubtResult(
            False,
            f"Это сообщение уже обращение №{message.appeal_id}.",
            _verdict_line(True, "Отклик", at, timezone, message.appeal_id),
            message.appeal_id,
        )
    session.add(
        Decision(
            appeal_id=appeal_id,
            citizen_message_id=message.id,
            action=IS_APPEAL,
            value=topic,
            actor_id=actor_id,
            actor_name=actor_name,
            decided_at=at,
        )
    )
    await session.flush()
    for rescored in rescore:
        await repo.run_in_transaction(session, partial(quality.rescore_appeal, appeal_id=rescored))
    appeal = await session.get(Appeal, appeal_id)
    assert appeal is not None
    logger.info(
        "сомнительное сообщение %r: обращение %r, решил %r", message.id, appeal_id, actor_id
    )
    deadline = format_moment(appeal.sla_deadline, timezone, at)
    due = (
        f"срок ответа истёк {deadline}"
        if appeal.sla_deadline <= at
        else f"срок ответа — {deadline}"
    )
    topic_title = TOPIC_TITLES_RU.get(topic, topic)
    return DoubtResult(
        True,
        f"Сообщение стало обращением №{appeal_id} («{topic_title}»), {due}.",
        _verdict_line(True, who, at, timezone, appeal_id) + f" Тема «{topic_title}», {due}.",
        appeal_id,
    )


# -- planning and delivery ---------------------------------------------------------------------


class DoubtfulService:
    """Plans and sends «Возможно, обращение» cards inside one session (commits per card)."""

    def __init__(self, session: AsyncSession, settings: Settings, defaults: PageDefaults) -> None:
        self.session = session
        self.settings = settings
        self.defaults = defaults

    async def plan(self, now: datetime, report: TickReport | None = None) -> TickReport:
        """A pending row for every recent doubtful message nobody was asked about yet."""
        report = report or TickReport()
        chats = await pages_by_chat(self.session, self.settings)
        page_chat = {page.id: chat for chat, pages in chats.items() for page in pages}
        if not page_chat:
            return report
        # `appeal_id` is tested here, not in SQL: with statistics SQLite took `appeal_id IS
        # NULL` for a selective use of ix_citizen_message_appeal_id and read every comment
        # (docs/BENCHMARKS.md, «Query plans»). `doubtful = 1` is what the partial
        # ix_citizen_message_doubtful is defined by.
        found = await self.session.exec(
            select(
                CitizenMessage.id,
                CitizenMessage.page_id,
                CitizenMessage.sent_at,
                CitizenMessage.appeal_id,
            ).where(
                col(CitizenMessage.doubtful) == true(),
                col(CitizenMessage.deleted_at).is_(None),
                col(CitizenMessage.page_id).in_(list(page_chat)),
                CitizenMessage.sent_at >= now - LOOKBACK,
                CitizenMessage.sent_at <= now,
            )
        )
        messages = [
            (message_id, page_id, sent)
            for message_id, page_id, sent, appeal in found
            if appeal is None
        ]
        if not messages:
            return report
        keys = [str(message_id) for message_id, _, _ in messages]
        planned = set(
            (
                await self.session.exec(
                    select(ReminderLog.due_key).where(
                        ReminderLog.kind == DOUBTFUL, col(ReminderLog.due_key).in_(keys)
                    )
                )
            ).all()
        )
        for message_id, page_id, sent_at in messages:
            assert message_id is not None
            if str(message_id) in planned:
                continue
            if await self._insert(page_chat[page_id], message_id, sent_at):
                report.planned += 1
        return report

    async def _insert(self, chat_id: int, message_id: int, due_at: datetime) -> bool:
        row = ReminderLog(kind=DOUBTFUL, chat_id=chat_id, due_key=str(message_id), due_at=due_at)
        try:
            async with self.session.begin_nested():
                self.session.add(row)
                await self.session.flush()
        except IntegrityError:
            logger.info(
                "карточка «Возможно, обращение» для сообщения %r уже запланирована "
                "другим процессом",
                message_id,
            )
            return False
        return True

    async def deliver(self, notifier: Notifier, now: datetime, report: TickReport) -> TickReport:
        """Send the pending cards that may go out now (working hours), one message each."""
        rows = (
            await self.session.exec(
                select(ReminderLog)
                .where(
                    ReminderLog.kind == DOUBTFUL,
                    ReminderLog.status == "pending",
                    ReminderLog.due_at <= now,
                    or_(
                        col(ReminderLog.next_attempt_at).is_(None),
                        col(ReminderLog.next_attempt_at) <= now,
                    ),
                )
                .order_by(col(ReminderLog.due_at), col(ReminderLog.id))
            )
        ).all()
        sent_to: dict[int, int] = {}
        for row in rows:
            message = await self.session.get(CitizenMessage, int(row.due_key))
            if message is None or not await self._still_doubtful(message):
                row.status = "cancelled"
                report.cancelled += 1
                continue
            page = await self.session.get(Page, message.page_id)
            assert page is not None
            if not may_send_now(page_calendar(page, self.defaults), now, row.due_at, False):
                report.waiting += 1
                continue
            if sent_to.get(row.chat_id, 0) >= PER_TICK:
                report.waiting += 1
                continue
            card = await load_card(self.session, message, page, self.defaults)
            text, buttons = render_card(card, now)
            if await self._send(row, notifier, text, buttons, now, report):
                sent_to[row.chat_id] = sent_to.get(row.chat_id, 0) + 1
        await self.session.commit()
        return report

    async def _still_doubtful(self, message: CitizenMessage) -> bool:
        if message.appeal_id is not None or message.deleted_at is not None:
            return False
        if not message.doubtful:
            return False
        return await _earlier_decision(self.session, message) is None

    async def _send(
        self,
        row: ReminderLog,
        notifier: Notifier,
        text: str,
        buttons: list[list[Button]],
        now: datetime,
        report: TickReport,
    ) -> bool:
        # «sending» committed before the call, «sent» right after it (bot/services/reminder_log):
        # a crash inside the send is sent again after its lease, saying it may be a repeat.
        text = await reminder_log.begin(self.session, [row], text, now)
        try:
            message_id = await notifier.send_text(row.chat_id, text, buttons)
        except DeliveryError as error:
            reminder_log.failed([row])
            row.attempts += 1
            delay = min(RETRY_BASE * 2 ** (row.attempts - 1), RETRY_MAX)
            row.last_error = str(error)[:500]
            row.next_attempt_at = now + delay
            report.failed += 1
            report.errors.append(str(error))
            log = logger.error if row.attempts >= 3 or error.permanent else logger.warning
            log(
                "карточка «Возможно, обращение» %r в чат %r не доставлена "
                "(попытка %r, следующая через %s): %s",
                row.id,
                row.chat_id,
                row.attempts,
                delay,
                error,
            )
            return False
        row.status = "sent"
        row.sent_at = now
        row.message_id = message_id
        row.attempts += 1
        row.last_error = None
        # At once: if this worker dies on its next card, another one must not send this again.
        await self.session.commit()
        report.sent += 1
        report.messages += 1
        return True
