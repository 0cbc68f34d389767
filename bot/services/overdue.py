"""Which appeals need attention at a moment, and the overdue summary that lists them.

An appeal needs attention at `at` when its first reaction is overdue (sec. 2 of
docs/METRICS.md), its final answer is overdue (sec. 2a), or a citizen re-opened it and it waits
for a new final answer. The daily summary (bot/services/reminders.py), `/overdue` and «Ещё» list
them oldest first, as pages of whole cards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.services.cards import (
    OVERDUE,
    AppealCard,
    CardMessage,
    appeals_count,
    load_card,
    local,
    pack,
)
from bot.services.final_stage import stage_at
from bot.services.policy import PageDefaults
from storage.models import Appeal, Page


def is_open(appeal: Appeal, at: datetime) -> bool:
    """Unanswered at `at` and still an appeal: first-reaction reminders about it make sense."""
    if appeal.excluded or appeal.answered_offline_at is not None:
        return False
    return appeal.first_response_at is None or appeal.first_response_at > at


def open_filter(at: datetime) -> list[ColumnElement[bool]]:
    return [
        col(Appeal.excluded).is_(False),
        col(Appeal.answered_offline_at).is_(None),
        or_(col(Appeal.first_response_at).is_(None), col(Appeal.first_response_at) > at),
    ]


def final_open_filter(at: datetime) -> ColumnElement[bool]:
    """Appeals whose final stage may be overdue or re-opened at `at` (checked in Python)."""
    return or_(
        and_(
            col(Appeal.final_deadline) <= at,
            or_(col(Appeal.final_response_at).is_(None), col(Appeal.final_response_at) > at),
            or_(col(Appeal.answered_offline_at).is_(None), col(Appeal.answered_offline_at) > at),
        ),
        and_(
            col(Appeal.reopened_at) <= at,
            or_(col(Appeal.reanswered_at).is_(None), col(Appeal.reanswered_at) > at),
        ),
    )


def final_waiting_filter(at: datetime) -> ColumnElement[bool]:
    """Appeals whose final stage has no answer at `at` (due or not; checked in Python)."""
    return or_(
        and_(
            col(Appeal.final_deadline).is_not(None),
            or_(col(Appeal.final_response_at).is_(None), col(Appeal.final_response_at) > at),
            or_(col(Appeal.answered_offline_at).is_(None), col(Appeal.answered_offline_at) > at),
        ),
        and_(
            col(Appeal.reopened_at) <= at,
            or_(col(Appeal.reanswered_at).is_(None), col(Appeal.reanswered_at) > at),
        ),
    )


def needs_attention(appeal: Appeal, at: datetime) -> bool:
    """Overdue at `at` (first reaction or final answer), or re-opened and waiting."""
    if appeal.excluded:
        return False
    if is_open(appeal, at) and appeal.sla_deadline <= at:
        return True
    stage = stage_at(appeal, at)
    if stage is None or stage.answered:
        return False
    return stage.deadline <= at or stage.reopened_at is not None


async def overdue_cards(
    session: AsyncSession,
    page_ids: Iterable[int],
    at: datetime,
    defaults: PageDefaults,
    *,
    after: int | None = None,
) -> list[AppealCard]:
    """Cards of the appeals of `page_ids` that need attention at `at`, the oldest first.

    With `after` (an appeal id, the last card of a summary page): only those received after it.
    """
    ids = list(page_ids)
    if not ids:
        return []
    query = select(Appeal).where(
        col(Appeal.page_id).in_(ids),
        Appeal.received_at <= at,
        col(Appeal.excluded).is_(False),
        or_(and_(col(Appeal.sla_deadline) <= at, *open_filter(at)), final_open_filter(at)),
    )
    cursor = await session.get(Appeal, after) if after is not None else None
    if cursor is not None:
        query = query.where(
            or_(
                col(Appeal.received_at) > cursor.received_at,
                and_(col(Appeal.received_at) == cursor.received_at, col(Appeal.id) > cursor.id),
            )
        )
    appeals = (await session.exec(query.order_by(col(Appeal.received_at), col(Appeal.id)))).all()
    cards = []
    pages: dict[int, Page | None] = {}
    for appeal in appeals:
        if not needs_attention(appeal, at):
            continue
        if appeal.page_id not in pages:
            pages[appeal.page_id] = await session.get(Page, appeal.page_id)
        page = pages[appeal.page_id]
        assert page is not None
        cards.append(await load_card(session, appeal, page, defaults, at))
    return cards


def no_overdue_text(now: datetime, timezone: str) -> str:
    today = local(now, timezone)
    return f"✅ На {today:%H:%M} {today:%d.%m} просроченных обращений нет."


def summary_header(cards: Sequence[AppealCard], now: datetime, timezone: str) -> str:
    """«📋 На 09:00 03.11 просрочены 2 обращения» (and how many citizens sent back)."""
    today = local(now, timezone)
    reopened = sum(
        1
        for card in cards
        if card.final is not None and card.final.reopened_at is not None and card.answered
    )
    overdue = len(cards) - reopened
    parts = []
    if overdue:
        verb = ru.plural(overdue, "просрочено", "просрочены", "просрочено")
        parts.append(f"{verb} {appeals_count(overdue)}")
    if reopened:
        verb = ru.plural(reopened, "возвращено", "возвращены", "возвращено")
        parts.append(f"{verb} жителями {appeals_count(reopened)}")
    return f"<b>📋 На {today:%H:%M} {today:%d.%m} {' и '.join(parts)}</b>"


def summary_pages(
    cards: Sequence[AppealCard],
    now: datetime,
    timezone: str,
    *,
    paged: bool,
    continued: bool = False,
) -> list[CardMessage]:
    """The summary as messages of whole cards, each with its buttons.

    `paged` (the daily summary, «Ещё»): only the first page, with a button for the next one;
    otherwise (/overdue) every page. `continued`: the first page follows an earlier one.
    """
    if not cards:
        return []
    groups = pack([(OVERDUE, card) for card in cards], now)
    header = summary_header(cards, now, timezone)
    continuation = "<b>📋 Просроченные обращения, продолжение</b>"
    messages = []
    shown = 0
    for number, group in enumerate(groups):
        shown += len(group)
        message = CardMessage(
            kind=OVERDUE,
            cards=group,
            header=continuation if number or continued else header,
        )
        rest = len(cards) - shown
        if paged and rest > 0:
            message.footer = f"…и ещё {appeals_count(rest)}: кнопка «Ещё» покажет следующие."
            message.more_after = group[-1][1].appeal_id
            return [message]
        messages.append(message)
    return messages
