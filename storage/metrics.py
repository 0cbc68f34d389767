"""The metric conditions of docs/METRICS.md as SQL, written once for reports and rollups.

A report asks what was known at a moment `at`; a rollup row keeps the figures an appeal has
once nothing about it can change any more (storage/rollup.py). Both are the same conditions:
`conditions(at)` for a report, `conditions(None)` ("everything is known") for a rollup, so a
definition changed here changes both, and the rollups keep matching the row-by-row figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, true

from storage.models import Appeal, OfficialReply, table_of

APPEAL = table_of(Appeal)
A = APPEAL.c
# The replies that answer the final stage (bot/services/final_stage.py): the first final reply,
# and the new final reply after a re-open. Their «отписка» label is counted.
FINAL_REPLY = table_of(OfficialReply).alias("final_reply")
NEW_REPLY = table_of(OfficialReply).alias("new_reply")

# FRT histogram kinds: (kind, value column, bucket column).
FRT_KINDS = ((0, A.frt_s, A.frt_bucket), (1, A.frt_work_s, A.frt_work_bucket))

# The counted figures, in the order of the rollup table's columns; `appeals` and `quality_sum`
# are not conditions and are added by the callers.
COUNTED = (
    "answered",
    "answered_in_time",
    "overdue",
    "answered_offline",
    "replied",
    "quality_count",
    "templated",
    "rated",
    "rated_positive",
    "deleted_by_page",
)

# The final-answer stage's counted figures (docs/METRICS.md «Final answer»), after COUNTED in
# the rollup table; `final_late` is `final_answered − final_in_time`. They need
# `final_source()` (the appeal with its two final replies) instead of the bare appeal table.
FINAL_COUNTED = (
    "final_answered",
    "final_in_time",
    "final_overdue",
    "final_pending",
    "formal_replies",
    "reopened",
)


def count(condition: ColumnElement[bool]) -> Any:
    """`SUM(CASE WHEN condition THEN 1 ELSE 0 END)`, 0 over no rows."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _known(moment: Any, at: datetime | None) -> ColumnElement[bool]:
    """The moment in `moment` has happened by `at` (None: by now, whenever it was)."""
    return moment.is_not(None) if at is None else moment <= at


def _unknown(moment: Any, at: datetime | None) -> ColumnElement[bool]:
    return moment.is_(None) if at is None else or_(moment.is_(None), moment > at)


def answer_known(at: datetime | None) -> ColumnElement[bool]:
    """Whether the scored answer at `at` is the closing one (else the first reply is)."""
    if at is None:
        return true()
    return or_(A.final_response_at.is_(None), A.final_response_at <= at)


def quality_at(at: datetime | None) -> Any:
    """The quality of the answer known at `at`: a final reply sent after `at` does not count.

    `quality_score` is the closing answer's (the first final reply, else the first reply), so
    without a final reply it is the first reply's too (docs/METRICS.md).
    """
    if at is None:
        return A.quality_score
    return case((answer_known(at), A.quality_score), else_=A.first_quality_score)


def templated_at(at: datetime | None) -> Any:
    """Whether the answer known at `at` is a template (as `quality_at`)."""
    if at is None:
        return A.answer_templated
    return case((answer_known(at), A.answer_templated), else_=A.first_answer_templated)


def _happened(moment: Any, at: datetime | None) -> ColumnElement[bool]:
    """`_known` that is false, never NULL, for a missing moment (safe under NOT and CASE)."""
    return moment.is_not(None) if at is None else and_(moment.is_not(None), moment <= at)


def final_source() -> Any:
    """The appeal table with the replies that answer its final stage (for `final_conditions`)."""
    return APPEAL.outerjoin(FINAL_REPLY, FINAL_REPLY.c.id == A.final_reply_id).outerjoin(
        NEW_REPLY, NEW_REPLY.c.id == A.reanswer_reply_id
    )


def final_conditions(at: datetime | None) -> dict[str, ColumnElement[bool]]:
    """The final stage of one appeal as known at `at` (None: its final value), by name.

    The SQL form of bot/services/final_stage.py `_stage`: appeals without a final deadline are
    in none; a re-open known at `at` starts a new stage (its deadline, its new final reply);
    otherwise the stage is answered by the earlier of the final reply and «Ответили вне
    соцсети» known at `at`. «Отписка»: the stage's reply is labelled formal and is its answer.
    """
    staged = A.final_deadline.is_not(None)
    reopened = and_(staged, _happened(A.reopened_at, at), A.reopen_deadline.is_not(None))
    final_known = _happened(A.final_response_at, at)
    offline_known = _happened(A.answered_offline_at, at)
    first_answer = case(
        (
            and_(
                final_known,
                or_(~offline_known, A.final_response_at <= A.answered_offline_at),
            ),
            A.final_response_at,
        ),
        (offline_known, A.answered_offline_at),
        else_=None,
    )
    new_answer = case((_happened(A.reanswered_at, at), A.reanswered_at), else_=None)
    answer = case((reopened, new_answer), else_=first_answer)
    deadline = case((reopened, A.reopen_deadline), else_=A.final_deadline)
    answered = and_(staged, answer.is_not(None))
    unanswered = and_(staged, answer.is_(None))
    # A settled stage without an answer is overdue: it settles once its deadline has passed.
    overdue = unanswered if at is None else and_(unanswered, deadline <= at)
    pending = false() if at is None else and_(unanswered, deadline > at)
    formal = or_(
        and_(
            reopened,
            new_answer.is_not(None),
            NEW_REPLY.c.is_formal == true(),
            NEW_REPLY.c.sent_at == A.reanswered_at,
        ),
        and_(
            staged,
            ~reopened,
            first_answer.is_not(None),
            FINAL_REPLY.c.is_formal == true(),
            FINAL_REPLY.c.sent_at == first_answer,
        ),
    )
    return {
        "final_answered": answered,
        "final_in_time": and_(answered, answer <= deadline),
        "final_overdue": overdue,
        "final_pending": pending,
        "formal_replies": formal,
        "reopened": reopened,
    }


def conditions(at: datetime | None) -> dict[str, ColumnElement[bool]]:
    """Every counted figure of one appeal as known at `at` (None: its final value), by name."""
    answered = _known(A.answered_at, at)
    replied = _known(A.first_response_at, at)
    scored = and_(replied, quality_at(at).is_not(None))
    rating_known: ColumnElement[bool] = A.rating.is_not(None)
    if at is not None:
        rating_known = and_(rating_known, or_(A.rated_at.is_(None), A.rated_at <= at))
    unanswered = _unknown(A.answered_at, at)
    # A settled appeal without an answer is overdue: it settles once its deadline has passed.
    overdue = unanswered if at is None else and_(unanswered, A.sla_deadline < at)
    # Not counted (a report derives it as appeals − answered − overdue): the dashboard lists by
    # it. Written positively: NOT of `answered` would drop the unanswered, whose moment is NULL.
    pending = false() if at is None else and_(unanswered, A.sla_deadline >= at)
    return {
        "answered": answered,
        "answered_in_time": and_(answered, A.answered_at <= A.sla_deadline),
        "overdue": overdue,
        "pending": pending,
        "answered_offline": and_(answered, _unknown(A.first_response_at, at)),
        "replied": replied,
        "quality_count": scored,
        "templated": and_(scored, templated_at(at) == true()),
        "rated": rating_known,
        "rated_positive": and_(rating_known, A.rating == 1),
        "deleted_by_page": A.deleted_by_page == true(),
    }


def quality_sum(at: datetime | None, scored: ColumnElement[bool]) -> Any:
    """The sum of the scored answers' quality at `at`, 0.0 over no rows."""
    return func.coalesce(func.sum(case((scored, quality_at(at)))), 0.0)


def counted(at: datetime | None) -> list[Any]:
    """`appeals`, every condition of `conditions(at)` and `quality_sum`, labelled, for a SELECT."""
    found = conditions(at)
    columns = [func.count().label("appeals")]
    columns += [count(found[name]).label(name) for name in COUNTED]
    columns.append(quality_sum(at, found["quality_count"]).label("quality_sum"))
    return columns


def final_counted(at: datetime | None) -> list[Any]:
    """Every figure of `final_conditions(at)`, labelled, for a SELECT from `final_source()`."""
    found = final_conditions(at)
    return [count(found[name]).label(name) for name in FINAL_COUNTED]


def received(pages: int | list[int], since: datetime, until: datetime) -> ColumnElement[bool]:
    """Appeals of a page (or pages) received in `[since, until)`, excluded ones left out."""
    return and_(
        A.page_id == pages if isinstance(pages, int) else A.page_id.in_(pages),
        A.received_at >= since,
        A.received_at < until,
        A.excluded == false(),
    )
