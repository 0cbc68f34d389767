"""The tables. Every platform id is kept as text; every time is aware UTC.

Times named `*_at` that come from a platform (`sent_at`, `received_at`, `first_response_at`, …)
are the platform's own `date`; `recorded_at` is when Otklik stored the row and is never used for
metrics. Unique keys make every write idempotent: the same update delivered twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Table, UniqueConstraint
from sqlalchemy import event as sa_event
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel

from bot.clock import utc_now
from storage.buckets import DERIVED_FROM, derived_appeal_columns
from storage.templates import template_hash
from storage.types import UTCDateTime


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model, for SQL expressions over its columns."""
    # SQLAlchemy's declarative mapping sets `__table__` on every table model; SQLModel does not
    # declare the attribute, so mypy cannot see it.
    return model.__table__  # type: ignore[attr-defined]


def _utc(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _recorded() -> Any:
    return Field(default_factory=utc_now, sa_type=UTCDateTime, nullable=False)


class Page(SQLModel, table=True):
    """An official page: a channel, the feedback bot, a business account, a community, a wall."""

    __tablename__ = "page"
    __table_args__ = (UniqueConstraint("platform", "external_id", name="uq_page_platform_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    title: str | None = Field(default=None, max_length=256)
    username: str | None = Field(default=None, max_length=128)
    linked_chat_id: str | None = Field(default=None, max_length=64, index=True)
    business_connection_id: str | None = Field(default=None, max_length=128, index=True)
    # Per-page overrides; None means the `.env` default.
    timezone: str | None = Field(default=None, max_length=64)
    work_hours: str | None = Field(default=None, max_length=64)
    sla_hours: float | None = None
    sla_urgent_hours: float | None = None
    # Working days for the final answer (docs/METRICS.md sec. 2a); None: the default.
    final_answer_days: int | None = None
    final_answer_urgent_days: int | None = None
    press_chat_id: int | None = Field(default=None, sa_type=BigInteger)  # > 32 bits
    is_active: bool = True
    recorded_at: datetime = _recorded()


class Thread(SQLModel, table=True):
    """Where a conversation happens: one post's comments, one private chat, one board topic."""

    __tablename__ = "thread"
    __table_args__ = (UniqueConstraint("page_id", "external_id", name="uq_thread_page_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id")
    external_id: str = Field(max_length=128)
    kind: str = Field(max_length=16)
    title: str | None = Field(default=None, max_length=512)
    recorded_at: datetime = _recorded()


# The appeal columns reports read: the covering index holds them, and a write that changes
# none of them leaves the pre-aggregated days (storage/rollup.py) alone.
APPEAL_STATS_COLUMNS = (
    "page_id",
    "received_at",
    "excluded",
    "answered_at",
    "sla_deadline",
    "first_response_at",
    "final_response_at",
    "frt_s",
    "frt_work_s",
    "quality_score",
    "answer_templated",
    "first_quality_score",
    "first_answer_templated",
    "rating",
    "rated_at",
    "deleted_by_page",
    "topic",
    "settle_day",
    "frt_bucket",
    "frt_work_bucket",
)


SETTLE_INDEX = (
    "ix_appeal_settle",
    "page_id",
    "settle_day",
    "received_at",
    "excluded",
    "first_response_at",
)
FINAL_SETTLE_INDEX = (
    "ix_appeal_final_settle",
    "page_id",
    "final_settle_day",
    "received_at",
    "excluded",
    "final_response_at",
    "answered_offline_at",
    "reopened_at",
    "final_deadline",
)


class Appeal(SQLModel, table=True):
    """A citizen's request, complaint, question or proposal; one or more citizen messages."""

    __tablename__ = "appeal"
    __table_args__ = (
        Index("ix_appeal_page_received", "page_id", "received_at"),
        # With the columns of the status filters (bot/services/dashboard.py `status_condition`):
        # the dashboard's list walks it newest first and tests each appeal's status from the
        # index; only the matches are read from the table (migration 0009).
        Index("ix_appeal_received", "received_at", "excluded", "answered_at", "sla_deadline"),
        Index("ix_appeal_thread_citizen", "thread_id", "citizen_id"),
        # Covering index for reports (storage/metrics.py): one range scan per page and period,
        # never touching the table rows.
        Index("ix_appeal_stats", *APPEAL_STATS_COLUMNS),
        # Report rollups (storage/rollup.py): the appeals of a page that can still change with
        # the report's `at`, and exact order statistics inside one FRT histogram bucket.
        # The moments after the keys tell, from the index alone, which of these appeals a report
        # at `at` must read (bot/services/stats.py `_live_conditions`, `_live_final_conditions`).
        Index(*SETTLE_INDEX),
        Index(*FINAL_SETTLE_INDEX),
        Index(
            "ix_appeal_frt_bucket",
            "page_id",
            "frt_bucket",
            "received_at",
            "first_response_at",
            "excluded",
            "frt_s",
        ),
        Index(
            "ix_appeal_frt_work_bucket",
            "page_id",
            "frt_work_bucket",
            "received_at",
            "first_response_at",
            "excluded",
            "frt_work_s",
        ),
        # Who took appeals, for the dashboard's operator filter (bot/services/dashboard.py
        # `operator_names`): partial, so it holds only the appeals someone took.
        Index(
            "ix_appeal_taken_by",
            "taken_by",
            "page_id",
            sqlite_where=sql_text("taken_by IS NOT NULL"),
            postgresql_where=sql_text("taken_by IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id")
    thread_id: int = Field(foreign_key="thread.id")
    citizen_id: str | None = Field(default=None, max_length=64)
    citizen_name: str | None = Field(default=None, max_length=256)
    first_message_id: int | None = Field(default=None)  # citizen_message.id
    received_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    topic: str = Field(default="other", max_length=32)
    urgent: bool = False
    sla_hours: float = 8.0
    sla_deadline: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    messages_count: int = 1
    link: str | None = Field(default=None, max_length=512)
    # The first official reply (interim or final) and the first final one.
    first_response_at: datetime | None = _utc(index=True)
    # Indexed: the appeals a rescored reply closes are found by it (bot/services/quality.py).
    first_reply_id: int | None = Field(default=None, index=True)
    frt_s: float | None = None  # calendar seconds, first_response_at - received_at
    frt_work_s: float | None = None  # working seconds in the page's calendar
    final_response_at: datetime | None = _utc()
    final_reply_id: int | None = Field(default=None, index=True)
    # The final-answer stage (bot/services/final_stage.py): its deadline counted from receipt;
    # after a re-open, a deadline counted from `reopened_at` and the first final reply since.
    final_deadline: datetime | None = _utc()
    reopen_deadline: datetime | None = _utc()
    reanswered_at: datetime | None = _utc()
    reanswer_reply_id: int | None = None
    # Press-office decisions (who and when are also in `decision`).
    # «Не обращение». Not indexed: a boolean's index seeks the 98 % of appeals kept, and
    # without statistics SQLite preferred it to every selective index (migration 0008).
    excluded: bool = False
    excluded_at: datetime | None = _utc()  # when; «Вернуть» undoes it for a day
    answered_offline_at: datetime | None = _utc()  # «Ответили вне соцсети»
    taken_by: str | None = Field(default=None, max_length=128)  # «Взять в работу»
    taken_at: datetime | None = _utc()
    topic_corrected: bool = False
    # Quality signals.
    deleted_by_page: bool = False
    reopened_at: datetime | None = _utc()
    rating: int | None = None  # 1 satisfied, 0 not, None not rated
    rated_at: datetime | None = _utc()
    quality_score: float | None = None  # of the answer that closed it, 0..100
    # Of the first reply (interim or final): what a report counts while the final answer is
    # still after its `at` (docs/METRICS.md: replies after `at` do not count).
    first_quality_score: float | None = None
    recorded_at: datetime = _recorded()
    # Derived for reports, kept by `_derive_appeal_columns` on every ORM flush: the moment the
    # appeal counts as answered, min(first_response_at, answered_offline_at).
    answered_at: datetime | None = _utc()
    answer_templated: bool | None = None  # the scored answer is a template (bot/services/quality)
    first_answer_templated: bool | None = None  # the first reply is a template
    # Derived for the report rollups (storage/buckets.py), kept on every flush as well: the UTC
    # day after which the appeal's figures no longer depend on the report's `at`, and the FRT
    # histogram buckets.
    settle_day: int | None = None
    frt_bucket: int | None = None
    frt_work_bucket: int | None = None
    final_settle_day: int | None = None  # the same for the final-answer stage (None: no stage)


class AppealRollup(SQLModel, table=True):
    """Final figures of a page's appeals received on one UTC day that settle on `settle_day`.

    Kept by storage/rollup.py from the appeal table; excluded appeals are left out.
    """

    __tablename__ = "appeal_rollup"

    page_id: int = Field(primary_key=True)
    day: int = Field(primary_key=True)  # UTC day number of received_at
    settle_day: int = Field(primary_key=True)
    appeals: int = 0
    answered: int = 0
    answered_in_time: int = 0
    overdue: int = 0
    answered_offline: int = 0
    replied: int = 0
    quality_count: int = 0
    quality_sum: float = 0.0
    templated: int = 0
    rated: int = 0
    rated_positive: int = 0
    deleted_by_page: int = 0


class AppealFinalRollup(SQLModel, table=True):
    """Final-answer stages of a page's appeals received on one UTC day, by the day they settle.

    `settle_day` is the appeal's `final_settle_day` (storage/buckets.py); appeals without a
    final deadline and excluded ones are left out. Settled stages are never pending; the
    column keeps rollup rows and live rows alike (storage/metrics.py FINAL_COUNTED).
    """

    __tablename__ = "appeal_final_rollup"

    page_id: int = Field(primary_key=True)
    day: int = Field(primary_key=True)  # UTC day number of received_at
    settle_day: int = Field(primary_key=True)
    # The UTC day of the stage's first moment: the earliest of its final reply, «Ответили вне
    # соцсети», re-open and final deadline. At every `at` before that day the stage is pending,
    # so a report at such an `at` counts the row as pending however late it settles.
    quiet_day: int = Field(primary_key=True)
    final_answered: int = 0
    final_in_time: int = 0
    final_overdue: int = 0
    final_pending: int = 0
    formal_replies: int = 0
    reopened: int = 0


class AppealTopicRollup(SQLModel, table=True):
    """Appeals of a page received on one UTC day per topic (excluded ones left out)."""

    __tablename__ = "appeal_topic_rollup"

    page_id: int = Field(primary_key=True)
    day: int = Field(primary_key=True)
    topic: str = Field(primary_key=True, max_length=32)
    appeals: int = 0


class AppealFrtRollup(SQLModel, table=True):
    """FRT histogram (kind 0: calendar, 1: working seconds) of a page's replied appeals.

    Keyed by the UTC day of the first reply (`reply_day`), the only moment a histogram entry
    depends on: at every `at` on a later day the entry is known.
    """

    __tablename__ = "appeal_frt_rollup"
    __table_args__ = (Index("ix_appeal_frt_rollup_reply", "reply_day", "page_id"),)

    page_id: int = Field(primary_key=True)
    kind: int = Field(primary_key=True)
    day: int = Field(primary_key=True)  # UTC day number of received_at
    reply_day: int = Field(primary_key=True)  # UTC day number of first_response_at
    bucket: int = Field(primary_key=True)
    count: int = 0


class AppealFrtMonth(SQLModel, table=True):
    """`appeal_frt_rollup` summed over a UTC month of receipt (`month`: `storage.buckets.month_of`).

    A report over whole months reads these few rows and takes off the entries replied on or
    after the day of its `at`, instead of summing the month's daily rows.
    """

    __tablename__ = "appeal_frt_month"

    page_id: int = Field(primary_key=True)
    kind: int = Field(primary_key=True)
    month: int = Field(primary_key=True)
    bucket: int = Field(primary_key=True)
    count: int = 0


class RollupStale(SQLModel, table=True):
    """A (page, UTC day) whose rollups are behind the appeal table (storage/rollup.py).

    Writers append a mark in their own transaction; a refresh recomputes the page-day and
    deletes exactly the marks it read, so a mark committed meanwhile survives it.
    """

    __tablename__ = "rollup_stale"
    __table_args__ = (Index("ix_rollup_stale_key", "page_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    page_id: int
    day: int


class CitizenMessage(SQLModel, table=True):
    """A message by neither the page nor staff; an appeal or just a comment."""

    __tablename__ = "citizen_message"
    __table_args__ = (
        UniqueConstraint("page_id", "external_id", name="uq_citizen_message_page_ext"),
        Index("ix_citizen_message_thread_sent", "thread_id", "sent_at"),
        # The recent doubtful messages of the pages with a press chat (bot/services/doubtful.py
        # `plan`): partial, so it holds only the doubtful few (migration 0009).
        Index(
            "ix_citizen_message_doubtful",
            "page_id",
            "sent_at",
            sqlite_where=sql_text("doubtful = 1"),
            postgresql_where=sql_text("doubtful"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id")
    thread_id: int = Field(foreign_key="thread.id")
    external_id: str = Field(max_length=128)
    author_id: str | None = Field(default=None, max_length=64)
    author_name: str | None = Field(default=None, max_length=256)
    content_kind: str = Field(default="text", max_length=32)
    text: str = ""
    sent_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reply_to_external_id: str | None = Field(default=None, max_length=128)
    link: str | None = Field(default=None, max_length=512)
    is_appeal: bool = False  # the classifier's (or a correction's) verdict
    topic: str | None = Field(default=None, max_length=32)
    urgent: bool = False
    # How sure the classifier was (0..1) and which model decided (bot.text.model_version()):
    # `otklik reclassify` re-decides with a newer model, corrections are traced to a model.
    confidence: float | None = None
    model_version: str | None = Field(default=None, max_length=64)
    # Probably not an appeal but not sure (bot.text.is_doubtful): the press chat is asked
    # «Возможно, обращение» (bot/services/doubtful.py).
    doubtful: bool = False
    appeal_id: int | None = Field(default=None, foreign_key="appeal.id", index=True)
    is_reopen: bool = False  # came back dissatisfied after an answer
    edited_at: datetime | None = _utc()
    deleted_at: datetime | None = _utc()
    deleted_by: str | None = Field(default=None, max_length=16)
    recorded_at: datetime = _recorded()


class OfficialReply(SQLModel, table=True):
    """A message by the page, staff or an operator in a monitored conversation."""

    __tablename__ = "official_reply"
    __table_args__ = (
        UniqueConstraint("page_id", "external_id", name="uq_official_reply_page_ext"),
        Index("ix_official_reply_thread_sent", "thread_id", "sent_at"),
        Index("ix_official_reply_reply_to", "page_id", "reply_to_external_id"),
        Index("ix_official_reply_page_sent", "page_id", "sent_at"),
        # Identical template texts (bot/services/quality.py `score_replies`): whether another
        # reply of the page with the same normalised text answers a different appeal is one
        # lookup; also finds the rows whose hash is missing (migration 0011).
        Index("ix_official_reply_template", "template_hash", "page_id", "appeal_id"),
        # Covering index for the dashboard's operators page (bot/services/dashboard.py
        # `operators_work`): the period's replies read from the index alone (migration 0010).
        Index(
            "ix_official_reply_work",
            "sent_at",
            "author_role",
            "appeal_id",
            "author_id",
            "author_name",
            "is_interim",
            "quality_score",
            "page_id",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id")
    thread_id: int = Field(foreign_key="thread.id")
    external_id: str = Field(max_length=128)
    author_role: str = Field(max_length=16)  # page, staff, operator
    author_id: str | None = Field(default=None, max_length=64)
    author_name: str | None = Field(default=None, max_length=256)
    content_kind: str = Field(default="text", max_length=32)
    text: str = ""
    sent_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reply_to_external_id: str | None = Field(default=None, max_length=128)
    link: str | None = Field(default=None, max_length=512)
    appeal_id: int | None = Field(default=None, foreign_key="appeal.id", index=True)
    is_interim: bool = False
    quality_score: float | None = None
    quality_parts: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    is_template: bool | None = None  # near-duplicate of replies to other appeals; None: unchecked
    # storage/templates.py `template_hash(text)`: written with the text (None: not yet, filled
    # by the next `quality.score_replies`).
    template_hash: int | None = Field(default=None, sa_type=BigInteger)
    is_formal: bool | None = (
        None  # «отписка» (bot/services/quality.is_formal_reply); None: unchecked
    )
    scored_at: datetime | None = _utc()  # when quality was last computed (recording time)
    edited_at: datetime | None = _utc()
    deleted_at: datetime | None = _utc()
    deleted_by: str | None = Field(default=None, max_length=16)
    recorded_at: datetime = _recorded()


# Staff roles; a message by any of them on their page is official, not a citizen's (a
# supervisor's comment is not an appeal). bot/services/roles.py ranks them.
OFFICIAL_ROLES = ("staff", "operator", "supervisor", "admin")


class Staff(SQLModel, table=True):
    """Accounts whose messages are official (staff) and people with roles in the press office."""

    __tablename__ = "staff"
    __table_args__ = (
        UniqueConstraint("platform", "user_id", "page_id", name="uq_staff_platform_user_page"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    user_id: str = Field(max_length=64)
    page_id: int | None = Field(default=None, foreign_key="page.id")  # None: every page
    name: str | None = Field(default=None, max_length=256)
    role: str = Field(default="staff", max_length=16)  # staff, operator, supervisor, admin
    recorded_at: datetime = _recorded()


class Decision(SQLModel, table=True):
    """A press-office decision on an appeal with who and when; also classifier corrections.

    A decision on a citizen message that is no appeal («Не обращение» under «Возможно,
    обращение») has no appeal: it names the message instead.
    """

    __tablename__ = "decision"
    __table_args__ = (
        # Covering index for the dashboard's operators page (bot/services/dashboard.py
        # `operators_work`): the period's takes read from the index alone (migration 0010).
        # Partial: over every decision, an index led by `decided_at` drew the plans that order
        # decisions by it (bot/services/doubtful.py `_earlier_decision` walked the whole index).
        Index(
            "ix_decision_taken",
            "decided_at",
            "action",  # SQLite (3.40) reads a column of the condition from the table otherwise
            "appeal_id",
            "actor_id",
            "actor_name",
            sqlite_where=sql_text("action = 'taken'"),
            postgresql_where=sql_text("action = 'taken'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    appeal_id: int | None = Field(default=None, foreign_key="appeal.id", index=True)
    citizen_message_id: int | None = Field(
        default=None, foreign_key="citizen_message.id", index=True
    )
    # taken, not_appeal, answered_offline, topic, restore, is_appeal
    action: str = Field(max_length=32)
    value: str | None = Field(default=None, max_length=64)
    actor_id: str | None = Field(default=None, max_length=64)
    actor_name: str | None = Field(default=None, max_length=256)
    decided_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    recorded_at: datetime = _recorded()


class Reaction(SQLModel, table=True):
    """A reaction to a message in a monitored conversation (a satisfaction signal on replies)."""

    __tablename__ = "reaction"
    __table_args__ = (
        UniqueConstraint("page_id", "message_external_id", "user_id", "emoji", name="uq_reaction"),
    )

    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id")
    message_external_id: str = Field(max_length=128)
    user_id: str = Field(max_length=64)
    emoji: str = Field(max_length=64)
    reacted_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    removed_at: datetime | None = _utc()


class ReminderLog(SQLModel, table=True):
    """Every reminder and digest due to a chat; the unique key stops duplicates after restarts."""

    __tablename__ = "reminder_log"
    __table_args__ = (UniqueConstraint("kind", "chat_id", "due_key", name="uq_reminder"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # urgent, half_sla, deadline, overdue_daily, digest
    chat_id: int = Field(sa_type=BigInteger)  # Telegram chat ids exceed 32 bits
    due_key: str = Field(max_length=128)  # appeal id, date or ISO week
    appeal_id: int | None = Field(default=None, foreign_key="appeal.id", index=True)
    due_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # pending (due or being retried), sending (the Bot API call is under way, or a crash
    # interrupted it: bot/services/reminder_log.py), sent, cancelled (answered before), skipped
    status: str = Field(default="pending", max_length=16, index=True)
    attempts: int = 0
    next_attempt_at: datetime | None = _utc()  # after a failed send: not before this moment
    sent_at: datetime | None = _utc()
    message_id: int | None = None
    last_error: str | None = Field(default=None, max_length=512)
    recorded_at: datetime = _recorded()


class SentCard(SQLModel, table=True):
    """One appeal's card in a message the bot sent, so that the message can be edited later.

    A message holds one or several cards (a reminder, a page of the overdue summary); every card
    of it has a row here with its position. `state` is what the card showed when last rendered
    (bot/services/cards.py): a different state now means the message is edited.
    """

    __tablename__ = "sent_card"
    __table_args__ = (
        UniqueConstraint("chat_id", "message_id", "appeal_id", name="uq_sent_card"),
        Index("ix_sent_card_live_sent", "live", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_type=BigInteger)  # Telegram chat ids exceed 32 bits
    message_id: int = Field(sa_type=BigInteger)
    appeal_id: int = Field(foreign_key="appeal.id", index=True)
    # urgent, half_sla, deadline, final_deadline, reopened (reminders), overdue (summary pages)
    kind: str = Field(max_length=32)
    position: int = 0
    header: str | None = Field(default=None, max_length=512)  # the message's first line (HTML)
    footer: str | None = Field(default=None, max_length=512)  # «…и ещё 9 обращений» (HTML)
    more_after: int | None = None  # the «Ещё» button: the next page starts after this appeal
    sent_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    state: str = Field(default="", max_length=512)
    live: bool = True  # False once the message cannot be edited (deleted, too old)
    recorded_at: datetime = _recorded()


class IntakeCursor(SQLModel, table=True):
    """Where an intake stopped (Telegram offset, VK long-poll ts, backfill progress)."""

    __tablename__ = "intake_cursor"

    source: str = Field(primary_key=True, max_length=128)
    value: str = Field(max_length=512)
    updated_at: datetime = _recorded()


class RawUpdate(SQLModel, table=True):
    """Every update that reached us, stored once before it is interpreted."""

    __tablename__ = "raw_update"
    __table_args__ = (UniqueConstraint("source", "update_key", name="uq_raw_update"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64)
    update_key: str = Field(max_length=128)
    update_type: str | None = Field(default=None, max_length=64)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default="new", max_length=16)  # new, done, skipped, failed
    note: str | None = Field(default=None, max_length=512)
    recorded_at: datetime = _recorded()


class Relay(SQLModel, table=True):
    """A citizen's private message to the bot relayed into the press chat, and its way back."""

    __tablename__ = "relay"
    __table_args__ = (
        UniqueConstraint("press_chat_id", "press_message_id", name="uq_relay_press_message"),
    )

    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="page.id")
    press_chat_id: int = Field(sa_type=BigInteger)  # Telegram chat ids exceed 32 bits
    press_message_id: int
    citizen_chat_id: int = Field(sa_type=BigInteger)
    citizen_message_id: int
    recorded_at: datetime = _recorded()


class WebLogin(SQLModel, table=True):
    """A one-time dashboard credential: a /web login link or a used Mini App `initData`.

    Only the SHA-256 of the secret is kept (`secret_hash`), so the table gives nobody a way in.
    A link is used by setting `used_at` in one conditional UPDATE (safe with many workers); a
    Mini App `initData` is recorded when used, so the same signed data cannot be replayed.
    """

    __tablename__ = "web_login"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # link, initdata
    secret_hash: str = Field(max_length=64, unique=True)
    user_id: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    used_at: datetime | None = _utc()


@sa_event.listens_for(OrmSession, "before_flush")
def _derive_appeal_columns(session: OrmSession, _context: Any, _instances: Any) -> None:
    """Keep the derived appeal columns (storage/buckets.py) and the replies' template hashes
    (storage/templates.py) current on every ORM write.

    Ingest, press-office decisions and imports pass here; plain-SQL writers
    (storage/repositories.py `save_appeal`) call the same function themselves.
    """
    for instance in (*session.new, *session.dirty):
        if isinstance(instance, OfficialReply):
            hashed = template_hash(instance.text)
            if instance.template_hash != hashed:
                instance.template_hash = hashed
        if isinstance(instance, Appeal):
            values = {name: getattr(instance, name) for name in DERIVED_FROM}
            for name, value in derived_appeal_columns(values).items():
                if getattr(instance, name) != value:
                    setattr(instance, name, value)
