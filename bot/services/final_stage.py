"""The second answer stage: the final answer on the merits and its deadline (docs/METRICS.md).

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

from sqlalchemy import false, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.engine import core
from storage.models import Appeal, OfficialReply, table_of

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
    return _stage(
        at,
        appeal.received_at,
        appeal.final_deadline,
        appeal.final_response_at,
        appeal.answered_offline_at,
        appeal.reopened_at,
        appeal.reopen_deadline,
        appeal.reanswered_at,
    )


def _stage(
    at: datetime,
    received_at: datetime,
    final_deadline: datetime | None,
    final_response_at: datetime | None,
    answered_offline_at: datetime | None,
    reopened_at: datetime | None,
    reopen_deadline: datetime | None,
    reanswered_at: datetime | None,
) -> FinalStage | None:
    if final_deadline is None:
        return None
    if reopened_at is not None and reopened_at <= at and reopen_deadline is not None:
        return FinalStage(
            at=at,
            started_at=reopened_at,
            deadline=reopen_deadline,
            answered_at=reanswered_at
            if reanswered_at is not None and reanswered_at <= at
            else None,
            reopened_at=reopened_at,
        )
    candidates = [
        moment
        for moment in (final_response_at, answered_offline_at)
        if moment is not None and moment <= at
    ]
    return FinalStage(
        at=at,
        started_at=received_at,
        deadline=final_deadline,
        answered_at=min(candidates) if candidates else None,
        reopened_at=None,
    )


@dataclass
class FinalCounts:
    """The final-stage figures of one page for a report (docs/METRICS.md, «Final answer»)."""

    final_answered: int = 0
    final_in_time: int = 0
    final_late: int = 0
    final_overdue: int = 0
    final_pending: int = 0
    formal_replies: int = 0
    reopened: int = 0


async def final_counts(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_ids: list[int] | None = None,
) -> dict[int, FinalCounts]:
    """Per page: the final stage of the appeals received in `[since, until)` as known at `at`.

    Appeals received after `at` are not known yet; excluded ones («Не обращение») are left out,
    as in every figure.
    """
    appeal = Appeal.__table__.c  # type: ignore[attr-defined]  # SQLModel does not type it
    final_reply = table_of(OfficialReply).alias("final_reply")
    new_reply = table_of(OfficialReply).alias("new_reply")
    query = (
        select(
            appeal.page_id,
            appeal.received_at,
            appeal.final_deadline,
            appeal.final_response_at,
            appeal.answered_offline_at,
            appeal.reopened_at,
            appeal.reopen_deadline,
            appeal.reanswered_at,
            final_reply.c.sent_at,
            final_reply.c.is_formal,
            new_reply.c.sent_at,
            new_reply.c.is_formal,
        )
        .select_from(
            table_of(Appeal)
            .outerjoin(final_reply, final_reply.c.id == appeal.final_reply_id)
            .outerjoin(new_reply, new_reply.c.id == appeal.reanswer_reply_id)
        )
        .where(
            appeal.received_at >= since,
            appeal.received_at < until,
            appeal.received_at <= at,
            appeal.excluded == false(),
        )
    )
    if page_ids is not None:
        query = query.where(appeal.page_id.in_(page_ids))
    counts: dict[int, FinalCounts] = {}
    for row in (await core(session, query)).all():
        page_id, *columns = row[:8]
        stage = _stage(at, *columns)
        if stage is None:
            continue
        figures = counts.setdefault(page_id, FinalCounts())
        status = stage.status
        figures.final_answered += stage.answered
        figures.final_in_time += status == IN_TIME
        figures.final_late += status == LATE
        figures.final_overdue += status == OVERDUE
        figures.final_pending += status == PENDING
        figures.reopened += stage.reopened_at is not None
        reply_at, formal = (row[10], row[11]) if stage.reopened_at else (row[8], row[9])
        # The stage's answer is that reply (not «Ответили вне соцсети» before it).
        figures.formal_replies += bool(formal) and reply_at == stage.answered_at
    return counts


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
