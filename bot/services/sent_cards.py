"""The table of sent cards: each card a message shows is kept, to edit the message later.

Every message of cards (a reminder, a page of the overdue summary, a re-open notice) is sent
through `send_cards`, which records its cards in `sent_card` with the state each showed
(`AppealCard.state`). `refresh_cards` renders again and edits (editMessageText through the
runner's `Notifier`) every live message whose appeals changed: after a button press at once,
and on every scheduler tick for changes the intake made (answers, re-opens). A message that
can no longer be edited (deleted, too old) stops being followed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.ids import row_id
from bot.services.cards import (
    LIVE_FOR,
    MORE_PREFIX,
    OVERDUE,
    CardMessage,
    card_state,
    load_cards,
    render_message,
)
from bot.services.notify import DeliveryError, Notifier
from bot.services.policy import PageDefaults
from storage.models import Appeal, SentCard

logger = logging.getLogger(__name__)


def record_message(
    session: AsyncSession, chat_id: int, message_id: int, message: CardMessage, at: datetime
) -> None:
    """Keep the cards of a sent message, to edit it when one of its appeals changes."""
    for position, (kind, card) in enumerate(message.cards):
        session.add(
            SentCard(
                chat_id=chat_id,
                message_id=message_id,
                appeal_id=card.appeal_id,
                kind=kind,
                position=position,
                header=message.header,
                footer=message.footer,
                more_after=message.more_after,
                sent_at=at,
                state=card.state(),
            )
        )


async def send_cards(
    session: AsyncSession,
    notifier: Notifier,
    chat_id: int,
    message: CardMessage,
    now: datetime,
    reply_to: int | None = None,
    *,
    note: str | None = None,
) -> int:
    """Send one message of cards and record it; its message id (raises `DeliveryError`).

    `note`: a line above the cards in this sending only (edits leave it out).
    """
    text, buttons = render_message(message, now)
    if note:
        text = f"{note}\n\n{text}"
    message_id = await notifier.send_text(chat_id, text, buttons, reply_to=reply_to)
    record_message(session, chat_id, message_id, message, now)
    return message_id


async def latest_card(session: AsyncSession, chat_id: int, appeal_id: int) -> int | None:
    """The newest message in `chat_id` with a card of `appeal_id` (to reply to it)."""
    found = await session.exec(
        select(SentCard.message_id)
        .where(SentCard.chat_id == chat_id, SentCard.appeal_id == appeal_id)
        .order_by(col(SentCard.sent_at).desc(), col(SentCard.id).desc())
        .limit(1)
    )
    return found.first()


async def refresh_cards(
    session: AsyncSession,
    notifier: Notifier,
    defaults: PageDefaults,
    now: datetime,
    appeal_ids: Iterable[int] | None = None,
) -> int:
    """Edit every live message whose cards no longer show their appeals' state; how many."""
    query = select(SentCard).where(col(SentCard.live), SentCard.sent_at >= now - LIVE_FOR)
    if appeal_ids is not None:
        ids = list(appeal_ids)
        if not ids:
            return 0
        messages = select(SentCard.message_id).where(col(SentCard.appeal_id).in_(ids))
        query = query.where(col(SentCard.message_id).in_(messages))
    rows = (await session.exec(query.order_by(col(SentCard.id)))).all()
    by_message: dict[tuple[int, int], list[SentCard]] = defaultdict(list)
    for row in rows:
        by_message[(row.chat_id, row.message_id)].append(row)
    ids = list({row.appeal_id for row in rows})
    appeals = {
        appeal.id: appeal
        for appeal in (await session.exec(select(Appeal).where(col(Appeal.id).in_(ids)))).all()
    }
    # Only messages whose appeals changed are rendered again (cards cost several reads).
    changed = {
        key: message_rows
        for key, message_rows in by_message.items()
        if any(
            row.appeal_id not in appeals or card_state(appeals[row.appeal_id], now) != row.state
            for row in message_rows
        )
    }
    cards = await load_cards(
        session, {row.appeal_id for rows_ in changed.values() for row in rows_}, defaults, now
    )
    edited = 0
    for (chat_id, message_id), message_rows in changed.items():
        message_rows.sort(key=lambda row: row.position)
        first = message_rows[0]
        message = CardMessage(
            kind=OVERDUE if first.kind == OVERDUE else first.kind,
            cards=[
                (row.kind, cards[row.appeal_id]) for row in message_rows if row.appeal_id in cards
            ],
            header=first.header,
            footer=first.footer,
            more_after=first.more_after,
        )
        if not message.cards:
            for row in message_rows:
                row.live = False  # its appeals are gone
            continue
        text, buttons = render_message(message, now)
        try:
            await notifier.edit_text(chat_id, message_id, text, buttons)
        except DeliveryError as error:
            if error.permanent:
                logger.info("карточку %r/%r больше нельзя изменить: %s", chat_id, message_id, error)
                for row in message_rows:
                    row.live = False
            else:
                logger.warning("карточка %r/%r пока не обновлена: %s", chat_id, message_id, error)
            continue
        for row in message_rows:
            if row.appeal_id in cards:
                row.state = cards[row.appeal_id].state()
        edited += 1
    await session.flush()
    return edited


def parse_more(data: str) -> int | None:
    """`ov:12` → 12 (the last appeal of the page shown); None for anything else."""
    parts = data.split(":")
    if len(parts) != 2 or parts[0] != MORE_PREFIX:
        return None
    return row_id(parts[1])
