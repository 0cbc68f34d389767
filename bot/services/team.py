"""`/team`: each operator's work over a period — taken, answered, in time, still open.

An appeal belongs to the operator who last pressed «Взять в работу» on it by the report time
`at` (the `decision` rows keep who and when; a takeover by a colleague moves it). Appeals count
by the period they were received in, as in `/stats`; «Не обращение» leaves them out. For each
operator: **taken** — appeals they hold; **answered** — of those, answered by `at` (in the
social network or «Ответили вне соцсети»); **in time** — answered by the first-reaction deadline;
**open** — not answered by `at`. Operators with a role but nothing taken are listed with zeros,
and the appeals nobody took are summed up as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.services.decisions import TAKE
from storage.models import Appeal, Decision, Staff


@dataclass
class OperatorWork:
    """One operator's figures for the period."""

    actor_id: str
    name: str
    taken: int = 0
    answered: int = 0
    in_time: int = 0
    open: int = 0


@dataclass(frozen=True)
class TeamReport:
    operators: list[OperatorWork]
    untaken_open: int  # appeals of the period nobody took that are still unanswered at `at`
    appeals: int  # appeals of the period (without «Не обращение»)


def _answered_by(appeal: Appeal, at: datetime) -> datetime | None:
    moments = [m for m in (appeal.first_response_at, appeal.answered_offline_at) if m is not None]
    moment = min(moments) if moments else None
    return moment if moment is not None and moment <= at else None


async def team_report(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    page_id: int | None = None,
) -> TeamReport:
    """Operators' work on the appeals received in [since, until), as known at `at`."""
    query = select(Appeal).where(
        col(Appeal.received_at) >= since,
        col(Appeal.received_at) < until,
        col(Appeal.received_at) <= at,
        col(Appeal.excluded).is_(False),
    )
    if page_id is not None:
        query = query.where(Appeal.page_id == page_id)
    appeals = {a.id: a for a in (await session.exec(query)).all() if a.id is not None}
    holder: dict[int, Decision] = {}
    if appeals:
        # The moment and the order are applied here: with them in SQL, SQLite walked the
        # takes' index (`ix_decision_taken`) up to `at` instead of seeking these appeals' few
        # decisions once there were 20,000 of them (docs/BENCHMARKS.md, «Query plans»).
        decisions = await session.exec(
            select(Decision).where(
                Decision.action == TAKE, col(Decision.appeal_id).in_(list(appeals))
            )
        )
        takes = [taken for taken in decisions.all() if taken.decided_at <= at]
        for taken in sorted(takes, key=lambda taken: (taken.decided_at, taken.id or 0)):
            if taken.appeal_id is not None:  # decisions on a doubtful message have no appeal
                holder[taken.appeal_id] = taken  # the last take wins
    staff_rows = (
        await session.exec(
            select(Staff).where(col(Staff.role).in_(("operator", "supervisor", "admin")))
        )
    ).all()
    names = {row.user_id: row.name for row in staff_rows if row.name}
    work: dict[str, OperatorWork] = {}
    for row in staff_rows:
        if row.role == "operator" and (page_id is None or row.page_id in (None, page_id)):
            work.setdefault(row.user_id, OperatorWork(row.user_id, row.name or row.user_id))
    untaken_open = 0
    for appeal_id, appeal in appeals.items():
        answered_at = _answered_by(appeal, at)
        decision = holder.get(appeal_id)
        if decision is None:
            untaken_open += answered_at is None
            continue
        actor = decision.actor_id or decision.actor_name or "?"
        name = decision.actor_name or names.get(actor) or actor
        entry = work.setdefault(actor, OperatorWork(actor, name))
        if decision.actor_name and entry.name == actor:
            entry.name = decision.actor_name  # a staff row without a name: the button knows it
        entry.taken += 1
        if answered_at is None:
            entry.open += 1
        else:
            entry.answered += 1
            entry.in_time += answered_at <= appeal.sla_deadline
    operators = sorted(work.values(), key=lambda w: (-w.taken, w.name.lower()))
    return TeamReport(operators, untaken_open, len(appeals))


def team_lines(report: TeamReport, period: str) -> list[str]:
    """The /team answer in Russian: one line per operator, shares with their base."""
    lines = [f"Работа операторов за {period}"]
    if not report.operators:
        lines.append(
            "Операторов пока нет и никто не брал обращения в работу. Назначить оператора: "
            "/staff operator ID."
        )
    for work in report.operators:
        in_time = (
            f"в срок {ru.number(work.in_time)} из {ru.number(work.answered)}"
            if work.answered
            else "в срок —"
        )
        lines.append(
            f"• {work.name}: взято в работу {ru.number(work.taken)}, "
            f"ответили {ru.number(work.answered)} ({in_time}), открыто {ru.number(work.open)}"
        )
    lines.append(
        f"Никто не взял, без ответа: {ru.number(report.untaken_open)} "
        f"(всего обращений за период: {ru.number(report.appeals)})"
    )
    return lines
