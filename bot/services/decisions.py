"""Decisions from the buttons under a card: take, «Не обращение» / «Вернуть», answered elsewhere.

Each decision is kept with who and when (`decision`); the card it was made on is edited by the
caller (`cards.refresh_cards`), and a takeover from a colleague is said in the chat.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.ids import row_id
from bot.services.cards import CALLBACK_PREFIX, UNDO_FOR, format_moment
from bot.services.final_stage import stage_at
from storage.models import Appeal, Decision, ReminderLog

logger = logging.getLogger(__name__)

TAKE = "taken"
NOT_APPEAL = "not_appeal"
ANSWERED_OFFLINE = "answered_offline"
RESTORE = "restore"  # «Вернуть»: undoes «Не обращение» within a day
ACTION_CODES = {"take": TAKE, "no": NOT_APPEAL, "off": ANSWERED_OFFLINE, "back": RESTORE}


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What a button press did, with the text to show the person who pressed it."""

    changed: bool
    message: str
    appeal: Appeal | None = None
    # A takeover: who had the appeal before (the chat is told).
    taken_from: str | None = None


def parse_callback(data: str) -> tuple[str, int] | None:
    """`ap:take:12` → ("taken", 12); None for anything else."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != CALLBACK_PREFIX or parts[1] not in ACTION_CODES:
        return None
    appeal_id = row_id(parts[2])  # a forged huge id is no appeal, not an OverflowError
    return None if appeal_id is None else (ACTION_CODES[parts[1]], appeal_id)


def takeover_text(appeal_id: int, who: str, before: str) -> str:
    """The chat's note when a colleague takes an appeal over (no names declined)."""
    return f"Обращение №{appeal_id} взято в работу: {who} (до этого — {before})."


async def apply_decision(
    session: AsyncSession,
    appeal: Appeal,
    action: str,
    *,
    actor_id: str,
    actor_name: str | None,
    at: datetime,
    timezone: str = "Europe/Moscow",
) -> DecisionResult:
    """Take an appeal, exclude it (or bring it back), mark it answered elsewhere; keep who/when."""
    number = f"№{appeal.id}"
    who = actor_name or actor_id
    taken_from = None
    if action == RESTORE:
        if not appeal.excluded:
            return DecisionResult(False, f"Обращение {number} и так в работе.", appeal)
        excluded_at = appeal.excluded_at or appeal.received_at
        if at >= excluded_at + UNDO_FOR:
            return DecisionResult(
                False,
                f"Вернуть обращение {number} можно было до "
                f"{format_moment(excluded_at + UNDO_FOR, timezone)}.",
                appeal,
            )
        appeal.excluded, appeal.excluded_at = False, None
        message = f"Обращение {number} возвращено и снова входит в показатели."
    elif appeal.excluded:
        return DecisionResult(False, f"Обращение {number} уже отмечено как «не обращение».", appeal)
    elif action == TAKE:
        if appeal.taken_by == who:
            return DecisionResult(False, f"Обращение {number} уже у вас в работе.", appeal)
        taken_from = appeal.taken_by
        appeal.taken_by, appeal.taken_at = who, at
        message = f"Обращение {number} взято в работу: {who}."
    elif action == NOT_APPEAL:
        appeal.excluded, appeal.excluded_at = True, at
        message = (
            f"Обращение {number} отмечено как «не обращение» и не войдёт в показатели. "
            "Передумали — «Вернуть» под карточкой, в течение суток."
        )
    elif action == ANSWERED_OFFLINE:
        if appeal.answered_offline_at is not None:
            return DecisionResult(False, f"По обращению {number} уже отмечен ответ вне соцсети.")
        stage = stage_at(appeal, at)
        answered = appeal.first_response_at is not None and appeal.first_response_at <= at
        if answered and (stage is None or stage.answered):
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
    if action in (NOT_APPEAL, ANSWERED_OFFLINE):
        # The ladder stops here: pending reminders about it will not go out.
        pending = await session.exec(
            select(ReminderLog).where(
                ReminderLog.appeal_id == appeal.id, ReminderLog.status == "pending"
            )
        )
        for row in pending.all():
            row.status = "cancelled"
    await session.flush()
    logger.info("обращение %r: %s, нажал %r", appeal.id, action, actor_id)
    return DecisionResult(True, message, appeal, taken_from)
