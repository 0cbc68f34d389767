"""What the dashboard lists: appeals by filter (paged on the server), one appeal's timeline,
operators' work. Figures (counts, shares, medians, the index) are not computed here: they come
from the report use case (bot/services/reports.py); the status filters use the same conditions
as the report (storage/metrics.py), so a list filtered by «просрочено» holds exactly the appeals
the report counts as overdue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, not_, or_, true
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.export import QUALITY_PARTS_RU, citizen_label, flatten_parts
from storage import metrics
from storage.models import (
    Appeal,
    CitizenMessage,
    Decision,
    OfficialReply,
    Page,
    ReminderLog,
    Staff,
)

A = metrics.A
STATUSES = ("answered_in_time", "answered_late", "overdue", "pending", "excluded")
PER_PAGE = 50
EXCERPT = 200


@dataclass(frozen=True)
class AppealFilter:
    """The filters of the appeals list; `page_ids` is what the person may see (None: all)."""

    since: datetime
    until: datetime
    at: datetime
    page_ids: frozenset[int] | None = None
    page_id: int | None = None
    topic: str | None = None
    status: str | None = None
    urgent: bool | None = None
    operator: str | None = None
    formal: bool | None = None  # the answer is labelled «отписка» (or, False, is not)
    text: str | None = None
    order: str = "new"  # new: newest first; wait: the longest wait for an answer first


def status_condition(status: str, at: datetime) -> ColumnElement[bool]:
    """The report's definition of each status at `at` (docs/METRICS.md)."""
    found = metrics.conditions(at)
    if status == "excluded":
        return A.excluded == true()
    answered = found["answered"]
    return {
        "answered_in_time": found["answered_in_time"],
        "answered_late": and_(answered, not_(found["answered_in_time"])),
        "overdue": found["overdue"],
        "pending": found["pending"],
    }[status]


def formal_condition(at: datetime) -> ColumnElement[bool]:
    """The appeal's answer by `at` — the final reply, or the new one after a reopen — carries
    the «отписка» label that quality.is_formal_reply stored on it (bot/services/final_stage.py
    counts the same replies)."""
    R = OfficialReply.__table__.c  # type: ignore[attr-defined]  # SQLModel does not type it
    labelled = sa_select(R.id).where(R.is_formal == true(), R.sent_at <= at)
    # Never NULL (an appeal without a final reply is simply not one), so NOT works as well.
    return or_(
        and_(A.final_reply_id.is_not(None), A.final_reply_id.in_(labelled)),
        and_(A.reanswer_reply_id.is_not(None), A.reanswer_reply_id.in_(labelled)),
    )


def _text_condition(text: str) -> ColumnElement[bool]:
    """Case-insensitive enough on both databases: SQLite's LIKE folds only ASCII letters."""
    variants = {text, text.lower(), text.upper(), text.capitalize()}
    column = col(CitizenMessage.text)
    return or_(*(column.contains(variant, autoescape=True) for variant in sorted(variants)))


def _where(query: AppealFilter) -> list[ColumnElement[bool]]:
    where = [A.received_at >= query.since, A.received_at < query.until, A.received_at <= query.at]
    if query.page_ids is not None:
        where.append(A.page_id.in_(sorted(query.page_ids)))
    if query.page_id is not None:
        where.append(A.page_id == query.page_id)
    if query.status != "excluded":
        where.append(A.excluded == false())
    if query.status:
        where.append(status_condition(query.status, query.at))
    if query.topic:
        where.append(A.topic == query.topic)
    if query.urgent is not None:
        where.append(A.urgent == query.urgent)
    if query.operator:
        where.append(A.taken_by == query.operator)
    if query.formal is not None:
        formal = formal_condition(query.at)
        where.append(formal if query.formal else not_(formal))
    if query.text:
        where.append(_text_condition(query.text))
    return where


@dataclass(frozen=True)
class AppealItem:
    appeal_id: int
    page_id: int
    page_title: str
    received_at: datetime
    sla_deadline: datetime
    topic: str
    urgent: bool
    status: str
    wait_s: float | None  # to the first answer known at `at`, or so far when unanswered
    taken_by: str | None
    citizen: str | None
    excerpt: str
    link: str | None


@dataclass(frozen=True)
class AppealList:
    items: list[AppealItem]
    total: int
    page: int
    pages: int


def _status_of(appeal: Appeal, at: datetime) -> str:
    from bot.services.export import status_at

    return status_at(appeal, at)


def _excerpt(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= EXCERPT else flat[: EXCERPT - 1].rstrip() + "…"


async def find_appeals(
    session: AsyncSession, query: AppealFilter, page: int = 1, per_page: int = PER_PAGE
) -> AppealList:
    """One page of the appeals matching `query` and how many match in all."""
    from bot.services.reminders import page_title

    where = _where(query)
    joined = select(func.count()).select_from(Appeal)
    if query.text:
        joined = joined.join(CitizenMessage, col(CitizenMessage.id) == A.first_message_id)
    total = int((await session.exec(joined.where(*where))).one())
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    rows = select(Appeal, Page, CitizenMessage).join(Page, col(Page.id) == A.page_id)
    rows = rows.join(
        CitizenMessage,
        col(CitizenMessage.id) == A.first_message_id,
        isouter=not query.text,
    )
    if query.order == "wait":
        order: list[Any] = [func.coalesce(A.frt_s, 1e12).desc(), A.id]
    else:
        order = [A.received_at.desc(), A.id.desc()]
    found = await session.exec(
        rows.where(*where).order_by(*order).offset((page - 1) * per_page).limit(per_page)
    )
    items = []
    for appeal, page_row, message in found.all():
        assert appeal.id is not None
        answered = [
            m
            for m in (appeal.first_response_at, appeal.answered_offline_at)
            if m is not None and m <= query.at
        ]
        wait_until = min(answered) if answered else query.at
        items.append(
            AppealItem(
                appeal_id=appeal.id,
                page_id=appeal.page_id,
                page_title=page_title(page_row),
                received_at=appeal.received_at,
                sla_deadline=appeal.sla_deadline,
                topic=appeal.topic,
                urgent=appeal.urgent,
                status=_status_of(appeal, query.at),
                wait_s=(wait_until - appeal.received_at).total_seconds(),
                taken_by=appeal.taken_by,
                citizen=citizen_label(page_row.platform, appeal.citizen_name, appeal.citizen_id),
                excerpt=_excerpt(message.text if message else None),
                link=appeal.link or (message.link if message else None),
            )
        )
    return AppealList(items, total, page, pages)


async def matching_appeals(session: AsyncSession, query: AppealFilter, limit: int) -> list[Appeal]:
    """Every appeal matching `query` (at most `limit`), oldest first: what an export holds."""
    statement = select(Appeal)
    if query.text:
        statement = statement.join(CitizenMessage, col(CitizenMessage.id) == A.first_message_id)
    found = await session.exec(
        statement.where(*_where(query)).order_by(A.received_at, A.id).limit(limit)
    )
    return list(found.all())


async def operator_names(session: AsyncSession, page_ids: frozenset[int] | None) -> list[str]:
    """Who has taken appeals (for the operator filter)."""
    statement = select(Appeal.taken_by).where(col(Appeal.taken_by).is_not(None)).distinct()
    if page_ids is not None:
        statement = statement.where(A.page_id.in_(sorted(page_ids)))
    return sorted(name for name in (await session.exec(statement)).all() if name)


# -- one appeal's timeline ----------------------------------------------------------------------


@dataclass
class TimelineEvent:
    at: datetime
    kind: str  # received, message, reopen, reminder, decision, reply, rating, deleted, deadline
    title: str
    text: str | None = None
    checklist: list[tuple[str, str]] = field(default_factory=list)
    link: str | None = None
    note: str | None = None


@dataclass
class Timeline:
    appeal: Appeal
    page: Page
    status: str
    events: list[TimelineEvent]


_REMINDERS_RU = {
    "urgent": "Напоминание в пресс-чат: срочное обращение",
    "half_sla": "Напоминание в пресс-чат: прошла половина срока",
    "deadline": "Напоминание в пресс-чат: срок ответа истёк",
    "reopened": "Напоминание в пресс-чат: житель недоволен ответом",
    "final_half": "Напоминание в пресс-чат: прошла половина срока ответа по существу",
    "final_deadline": "Напоминание в пресс-чат: истёк срок ответа по существу",
}
_DECISIONS_RU = {
    "taken": "Взято в работу",
    "not_appeal": "Отмечено «Не обращение»",
    "answered_offline": "Отмечено «Ответили вне соцсети»",
    "restore": "Возвращено в обращения",
    "topic": "Изменена тема",
}
_DELETED_BY_RU = {"page": "страницей", "citizen": "автором"}


def _checklist(parts: dict[str, Any] | None) -> list[tuple[str, str]]:
    cells = flatten_parts(parts or {})
    return [(QUALITY_PARTS_RU.get(name, name), str(value)) for name, value in cells.items()]


async def appeal_timeline(session: AsyncSession, appeal_id: int, at: datetime) -> Timeline | None:
    """Everything that happened to one appeal, in order."""
    appeal = await session.get(Appeal, appeal_id)
    if appeal is None:
        return None
    page = await session.get(Page, appeal.page_id)
    assert page is not None
    events: list[TimelineEvent] = []
    messages = (
        await session.exec(
            select(CitizenMessage)
            .where(CitizenMessage.appeal_id == appeal_id)
            .order_by(col(CitizenMessage.sent_at), col(CitizenMessage.id))
        )
    ).all()
    for message in messages:
        first = message.id == appeal.first_message_id
        kind = "received" if first else ("reopen" if message.is_reopen else "message")
        title = {
            "received": "Поступило обращение",
            "reopen": "Гражданин вернулся недовольным",
            "message": "Ещё сообщение гражданина",
        }[kind]
        events.append(
            TimelineEvent(message.sent_at, kind, title, message.text or None, link=message.link)
        )
        if message.deleted_at is not None:
            who = _DELETED_BY_RU.get(message.deleted_by or "", "")
            events.append(
                TimelineEvent(message.deleted_at, "deleted", f"Сообщение удалено {who}".strip())
            )
    replies = (
        await session.exec(
            select(OfficialReply)
            .where(OfficialReply.appeal_id == appeal_id)
            .order_by(col(OfficialReply.sent_at), col(OfficialReply.id))
        )
    ).all()
    for reply in replies:
        stage = "промежуточный" if reply.is_interim else "итоговый"
        title = f"Ответ ({stage})"
        if reply.author_name:
            title += f" — {reply.author_name}"
        note = None
        if reply.quality_score is not None:
            note = f"Качество: {round(reply.quality_score)} из 100"
            if reply.is_template:
                note += ", шаблон"
        if reply.is_formal:
            note = f"{note}, похоже на отписку" if note else "Похоже на отписку"
        events.append(
            TimelineEvent(
                reply.sent_at,
                "reply",
                title,
                reply.text or None,
                checklist=_checklist(reply.quality_parts),
                link=reply.link,
                note=note,
            )
        )
        if reply.deleted_at is not None:
            who = _DELETED_BY_RU.get(reply.deleted_by or "", "")
            events.append(TimelineEvent(reply.deleted_at, "deleted", f"Ответ удалён {who}".strip()))
    reminders = (
        await session.exec(
            select(ReminderLog).where(
                ReminderLog.appeal_id == appeal_id, col(ReminderLog.sent_at).is_not(None)
            )
        )
    ).all()
    for reminder in reminders:
        assert reminder.sent_at is not None
        title = _REMINDERS_RU.get(reminder.kind, "Напоминание в пресс-чат")
        events.append(TimelineEvent(reminder.sent_at, "reminder", title))
    decisions = (await session.exec(select(Decision).where(Decision.appeal_id == appeal_id))).all()
    for decision in decisions:
        action = _DECISIONS_RU.get(decision.action, decision.action)
        actor = decision.actor_name or decision.actor_id
        events.append(TimelineEvent(decision.decided_at, "decision", action, note=actor))
    if appeal.rating is not None:
        mood = "доволен" if appeal.rating == 1 else "недоволен"
        events.append(
            TimelineEvent(appeal.rated_at or appeal.received_at, "rating", f"Оценка: {mood}")
        )
    if appeal.reopened_at is not None and not any(e.kind == "reopen" for e in events):
        events.append(TimelineEvent(appeal.reopened_at, "reopen", "Обращение открыто снова"))
    events.append(TimelineEvent(appeal.sla_deadline, "deadline", "Срок первого ответа"))
    events.sort(key=lambda event: event.at)
    return Timeline(appeal, page, _status_of(appeal, at), events)


# -- operators ----------------------------------------------------------------------------------


@dataclass
class OperatorRow:
    name: str
    role: str | None
    taken: int = 0
    replies: int = 0
    final_replies: int = 0
    quality_sum: float = 0.0
    quality_count: int = 0

    @property
    def quality_mean(self) -> float | None:
        return self.quality_sum / self.quality_count if self.quality_count else None


async def operators_work(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    page_ids: frozenset[int] | None,
) -> list[OperatorRow]:
    """Per person of the press office: appeals taken, replies written, their mean quality."""
    rows: dict[str, OperatorRow] = {}
    names: dict[str, str] = {}
    roles: dict[str, str] = {}
    for staff in (await session.exec(select(Staff))).all():
        if staff.name:
            names[staff.user_id] = staff.name
        roles[staff.user_id] = staff.role
    taken = select(col(Decision.actor_id), col(Decision.actor_name), func.count()).where(
        Decision.action == "taken",
        col(Decision.decided_at) >= since,
        col(Decision.decided_at) < until,
    )
    if page_ids is not None:
        # A subquery, not a join: with statistics SQLite drove the join from the period's
        # decisions of every page (`ix_decision_work`) and looked up each one's appeal (0.6 s
        # at a million); the pages' appeals are listed first (docs/BENCHMARKS.md).
        taken = taken.where(
            col(Decision.appeal_id).in_(
                sa_select(col(Appeal.id)).where(A.page_id.in_(sorted(page_ids)))
            )
        )
    for actor_id, actor_name, count in (
        await session.exec(taken.group_by(col(Decision.actor_id), col(Decision.actor_name)))
    ).all():
        key = actor_id or actor_name or "?"
        row = rows.setdefault(key, OperatorRow(names.get(key) or actor_name or key, roles.get(key)))
        row.taken += int(count)
    replies = sa_select(
        col(OfficialReply.author_id),
        col(OfficialReply.author_name),
        func.count(),
        func.sum(case((col(OfficialReply.is_interim) == false(), 1), else_=0)),
        func.sum(col(OfficialReply.quality_score)),
        func.count(col(OfficialReply.quality_score)),
    ).where(
        col(OfficialReply.author_role).in_(("staff", "operator")),
        col(OfficialReply.sent_at) >= since,
        col(OfficialReply.sent_at) < until,
        col(OfficialReply.appeal_id).is_not(None),
    )
    if page_ids is not None:
        replies = replies.where(col(OfficialReply.page_id).in_(sorted(page_ids)))
    connection = await session.connection()
    for author_id, author_name, count, finals, quality_sum, quality_count in (
        await connection.execute(
            replies.group_by(col(OfficialReply.author_id), col(OfficialReply.author_name))
        )
    ).all():
        key = author_id or author_name or "?"
        row = rows.setdefault(
            key, OperatorRow(names.get(key) or author_name or key, roles.get(key))
        )
        row.replies += int(count)
        row.final_replies += int(finals or 0)
        row.quality_sum += float(quality_sum or 0.0)
        row.quality_count += int(quality_count or 0)
    return sorted(rows.values(), key=lambda r: (-(r.taken + r.replies), r.name))
