"""The second answer stage: the final answer on the merits and its deadline (DESIGN sec. 2).

The first reaction (any official reply, interim or not) is the SLA stage and keeps its meaning.
The final answer is the first official reply that is not interim (or «Ответили вне соцсети»);
its deadline is the end of the N-th working day after the day of receipt
(`policy.final_deadline`). A 👎 or a dissatisfied return re-opens the appeal (`reopened_at`):
from then on the final stage waits for a new final reply (`reanswered_at`), with a deadline
counted from the re-open (`reopen_deadline`). What a report or a card shows at `at` is what was
known then: a re-open after `at` does not count yet, nor does a reply after `at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Appeal, OfficialReply

IN_TIME = "in_time"
LATE = "late"
OVERDUE = "overdue"
PENDING = "pending"


@dataclass(frozen=True, slots=True)
class FinalStage:
    """The final stage of one appeal as known at `at`."""

    at: datetime
    started_at: datetime  # received_at, or reopened_at after a re-open
    deadline: datetime
    answered_at: datetime | None  # the final answer of this stage, if given by `at`
    reopened_at: datetime | None  # set when this stage is a re-open
    formal: bool = False  # the final reply is «отписка» (bot/services/quality.is_formal_reply)
    reply_link: str | None = None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def status(self) -> str:
        """in_time, late, overdue or pending at `at`."""
        if self.answered_at is not None:
            return IN_TIME if self.answered_at <= self.deadline else LATE
        return OVERDUE if self.deadline <= self.at else PENDING


def stage_at(appeal: Appeal, at: datetime) -> FinalStage | None:
    """The final stage of `appeal` at `at` from its columns; None without a final deadline."""
    if appeal.final_deadline is None:
        return None
    reopened = appeal.reopened_at
    if reopened is not None and reopened <= at and appeal.reopen_deadline is not None:
        answered = appeal.reanswered_at
        return FinalStage(
            at=at,
            started_at=reopened,
            deadline=appeal.reopen_deadline,
            answered_at=answered if answered is not None and answered <= at else None,
            reopened_at=reopened,
        )
    candidates = [
        moment
        for moment in (appeal.final_response_at, appeal.answered_offline_at)
        if moment is not None and moment <= at
    ]
    return FinalStage(
        at=at,
        started_at=appeal.received_at,
        deadline=appeal.final_deadline,
        answered_at=min(candidates) if candidates else None,
        reopened_at=None,
    )


async def final_stage(session: AsyncSession, appeal: Appeal, at: datetime) -> FinalStage | None:
    """`stage_at` with the final reply's «отписка» label and link (for cards)."""
    stage = stage_at(appeal, at)
    if stage is None or stage.answered_at is None:
        return stage
    reply_id = appeal.reanswer_reply_id if stage.reopened_at is not None else appeal.final_reply_id
    if reply_id is None:
        return stage
    reply = await session.get(OfficialReply, reply_id)
    if reply is None or reply.sent_at != stage.answered_at:
        return stage  # answered elsewhere («Ответили вне соцсети») before this reply
    return FinalStage(
        at=stage.at,
        started_at=stage.started_at,
        deadline=stage.deadline,
        answered_at=stage.answered_at,
        reopened_at=stage.reopened_at,
        formal=bool(reply.is_formal),
        reply_link=reply.link,
    )
