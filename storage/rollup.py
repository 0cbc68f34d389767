"""Report rollups per (page, UTC day of receipt), kept from the appeal table by every writer.

Every INSERT, UPDATE or DELETE statement on the appeal table — ORM flushes, bulk Core updates
(bot/services/quality.py) and imports alike — goes through the engine-wide Core execution
events below (`install`, called by storage/engine.py): the (page, day) keys the statement
touches are read before it runs (and after, when it moves appeals), and once it has run each
of those page-days is marked stale in `rollup_stale`, in the same transaction. Writers on the
raw DB-API connection (the intake hot path, storage/repositories.py) append the same marks
through `mark_rows`. The marked page-days are recomputed from the appeal table with
`INSERT … SELECT … GROUP BY` by `refresh`: before every report (`sync`) and on every scheduler
tick. Recomputing instead of adding deltas
keeps the rollups equal to the table whatever a writer changed. A statement whose rows cannot
be told (no primary-key condition, `INSERT … SELECT`) rebuilds at once. Bulk loads (the
benchmark) call `rebuild`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Insert,
    Update,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy import Integer as SqlInteger
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList
from sqlalchemy.sql.operators import and_ as and_op
from sqlalchemy.sql.operators import eq

from storage import metrics
from storage.buckets import day_number, day_start, month_days, month_of
from storage.metrics import FRT_KINDS
from storage.models import (
    APPEAL_STATS_COLUMNS,
    Appeal,
    AppealFinalRollup,
    AppealFrtMonth,
    AppealFrtRollup,
    AppealRollup,
    AppealTopicRollup,
    RollupStale,
    table_of,
)

logger = logging.getLogger(__name__)

APPEAL = table_of(Appeal)
A = APPEAL.c
R = table_of(AppealRollup)
T = table_of(AppealTopicRollup)
H = table_of(AppealFrtRollup)
HM = table_of(AppealFrtMonth)
F = table_of(AppealFinalRollup)
S = table_of(RollupStale)
TABLES = (R, T, H, F)  # keyed by (page_id, day); HM by (page_id, month), kept from H
# A quiet day beyond every real one, for a sum of no moments (never happens: a stage has a
# final deadline).
NO_DAY = 2**31 - 1

_STACK = "otklik_rollup_keys"
_ALL = None  # marker: the statement's rows cannot be told, rebuild


Keys = set[tuple[int, int]]


def _param_sets(multiparams: Any, params: Any) -> list[Mapping[str, Any]]:
    if multiparams:
        if isinstance(multiparams, Mapping):
            return [multiparams]
        return [item for item in multiparams if isinstance(item, Mapping)] or [{}]
    return [params or {}]


def _id_parameter(statement: Update | Delete) -> BindParameter[Any] | None:
    """The bound parameter of a `WHERE appeal.id = :param` statement, if it is one."""
    where = statement.whereclause
    # ORM flushes wrap the primary-key condition in an AND of one clause; without unwrapping
    # it every flush of several appeals would rebuild all rollups in the writer's transaction.
    if isinstance(where, BooleanClauseList) and where.operator is and_op and len(where) == 1:
        where = where.clauses[0]
    if (
        isinstance(where, BinaryExpression)
        and where.operator is eq
        and where.left is A.id
        and isinstance(where.right, BindParameter)
    ):
        return where.right
    return None


def _keys_of_rows(connection: Connection, rows: Iterable[Sequence[Any]]) -> Keys:
    return {
        (int(page), day_number(_aware(moment)))
        for page, moment in rows
        if page is not None and moment is not None
    }


def _keys_where(
    connection: Connection, statement: Update | Delete, sets: list[Mapping[str, Any]]
) -> Keys | None:
    """Keys of the rows an UPDATE or DELETE on the appeal table matches (None: unknown)."""
    parameter = _id_parameter(statement)
    if parameter is not None:
        ids = [item.get(parameter.key, parameter.value) for item in sets]
        keys: Keys = set()
        for start in range(0, len(ids), 500):
            chunk = [i for i in ids[start : start + 500] if i is not None]
            rows = connection.execute(select(A.page_id, A.received_at).where(A.id.in_(chunk))).all()
            keys |= _keys_of_rows(connection, rows)
        return keys
    if len(sets) > 1:
        return _ALL
    query = select(A.page_id, A.received_at)
    if statement.whereclause is not None:
        query = query.where(statement.whereclause)
    rows = connection.execute(query, sets[0]).all()
    return _keys_of_rows(connection, rows)


def _moves(statement: Update) -> bool:
    names = {getattr(key, "key", key) for key in statement._values or {}}
    return bool(names & {"page_id", "received_at", "id"}) or statement._values is None


def _before(
    connection: Connection,
    statement: Any,
    multiparams: Any,
    params: Any,
    _options: Any,
) -> None:
    if not isinstance(statement, Insert | Update | Delete) or statement.table is not APPEAL:
        return
    sets = _param_sets(multiparams, params)
    keys: Keys | None
    if isinstance(statement, Insert):
        if statement.select is not None:
            keys = _ALL
        else:
            keys = {
                (int(item["page_id"]), day_number(item["received_at"]))
                for item in sets
                if item.get("page_id") is not None and item.get("received_at") is not None
            }
    else:
        keys = _keys_where(connection, statement, sets)
    connection.info.setdefault(_STACK, []).append((keys, sets))


def _after(
    connection: Connection,
    statement: Any,
    _multiparams: Any,
    _params: Any,
    _options: Any,
    _result: Any,
) -> None:
    if not isinstance(statement, Insert | Update | Delete) or statement.table is not APPEAL:
        return
    keys, sets = connection.info[_STACK].pop()
    if keys is not None and isinstance(statement, Update) and _moves(statement):
        after = _keys_where(connection, statement, sets)
        keys = _ALL if after is None else keys | after
    if keys is None:
        logger.warning(
            "строки обращений массовой операции неизвестны: пересчитываем все сводные данные"
        )
        rebuild(connection)
    else:
        mark(connection, keys)


def install() -> None:
    """Follow every statement on the appeal table of every engine (idempotent).

    Called by storage/engine.py `create_engine`, so every engine of the service, the commands
    and the tests keeps the rollups; plain-SQL writers mark their page-days with `mark_rows`.
    """
    if not sa_event.contains(Engine, "before_execute", _before):
        sa_event.listen(Engine, "before_execute", _before)
        sa_event.listen(Engine, "after_execute", _after)


# -- Deferred maintenance. Writers only append (page_id, day) marks to `rollup_stale` in their
# own transaction; `refresh` recomputes the marked page-days and deletes exactly the marks it
# read. Reports refresh first (`sync`), the scheduler refreshes every tick, so every report
# equals the table while a write costs one small INSERT instead of a page-day recompute.
#
# PostgreSQL, many workers: writers take no lock (a mark is a new row, never a conflict). A
# refresh takes a transaction-scoped advisory lock per page-day in key order and reads that
# key's marks only after the lock: every mark it reads was committed together with its appeal
# writes, which the recompute (later statements, READ COMMITTED) therefore sees; marks
# committed after the read are not deleted and are refreshed next time. Two refreshers of one
# key run one after the other, and the second finds the marks gone.

# The appeal columns the rollups read; a write changing none of them leaves them alone.
WATCHED = APPEAL_STATS_COLUMNS

# SQLite has one writer at a time, so a mark already there (committed or ours) is enough. On
# PostgreSQL a visible mark may be consumed by a refresh that cannot see our uncommitted
# appeal, so every write appends its own mark.
MARK_SQLITE = (
    "INSERT INTO rollup_stale (page_id, day) SELECT :page_id, :day WHERE NOT EXISTS "
    "(SELECT 1 FROM rollup_stale WHERE page_id = :page_id AND day = :day)"
)
MARK_APPEND = "INSERT INTO rollup_stale (page_id, day) VALUES (:page_id, :day)"


def mark_sql(sqlite: bool) -> str:
    """The statement that marks one `(:page_id, :day)` stale, for writers on plain SQL."""
    return MARK_SQLITE if sqlite else MARK_APPEND


def mark_rows(
    run: Callable[[str, dict[str, Any]], Any], sqlite: bool, keys: Iterable[tuple[int, int]]
) -> None:
    """Mark page-days stale through a plain-SQL runner (storage/db.py `Db.run`)."""
    sql = mark_sql(sqlite)
    for page_id, day in sorted(set(keys)):
        run(sql, {"page_id": page_id, "day": day})


def mark(connection: Connection, keys: Iterable[tuple[int, int]]) -> None:
    """Mark page-days stale inside the connection's transaction."""
    params = [{"page_id": page_id, "day": day} for page_id, day in sorted(set(keys))]
    if params:
        sqlite = connection.dialect.name == "sqlite"
        connection.execute(text(mark_sql(sqlite)), params)


def mark_stale(session: OrmSession, keys: Iterable[tuple[int, int]]) -> None:
    """Mark page-days written outside SQLAlchemy as stale (sync session, in its transaction)."""
    mark(session.connection(), keys)


def refresh(connection: Connection, pages: Iterable[int] | None = None) -> int:
    """Recompute the marked page-days (of `pages`, or all) and drop their marks; returns keys."""
    query = select(S.c.page_id, S.c.day).distinct()
    if pages is not None:
        query = query.where(S.c.page_id.in_(list(pages)))
    keys = sorted((int(page), int(day)) for page, day in connection.execute(query).all())
    postgres = connection.dialect.name == "postgresql"
    done = 0
    months: set[tuple[int, int]] = set()
    for page_id, day in keys:
        if postgres:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:page, :day)"), {"page": page_id, "day": day}
            )
        key = and_(S.c.page_id == page_id, S.c.day == day)
        ids = [row[0] for row in connection.execute(select(S.c.id).where(key)).all()]
        if not ids:
            continue  # another worker refreshed it meanwhile
        _recompute_day(connection, page_id, day)
        connection.execute(delete(S).where(S.c.id.in_(ids)))
        months.add((page_id, month_of(day)))
        done += 1
    _recompute_months(connection, months)
    if done:
        logger.debug("rollups refreshed for %r page-days", done)
    return done


def apply_pending(session: OrmSession) -> None:
    """Bring every stale page-day up to date (sync session, inside its transaction)."""
    refresh(session.connection())


async def sync(session: Any, pages: Iterable[int] | None = None) -> None:
    """Make the rollups a report reads equal to the table (AsyncSession).

    A session without an open transaction has nothing uncommitted, so the refresh runs and
    commits on a connection of its own and later reports need not repeat it; otherwise it runs
    inside the session's transaction so that its own uncommitted writes count.
    """
    wanted = None if pages is None else list(pages)
    bind = session.bind
    if session.in_transaction() or not isinstance(bind, AsyncEngine):
        await session.flush()
        await session.run_sync(lambda sync_session: refresh(sync_session.connection(), wanted))
        return
    async with bind.begin() as connection:
        await connection.run_sync(refresh, wanted)


def _aware(value: Any) -> datetime:
    """A datetime from a result (SQLite aggregates return the stored text, naive UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def recompute(connection: Connection, keys: Iterable[tuple[int, int]]) -> None:
    """Recompute the rollups of the given (page_id, UTC day number) keys from the appeal table."""
    ordered = sorted(set(keys))
    postgres = connection.dialect.name == "postgresql"
    for page_id, day in ordered:
        if postgres:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:page, :day)"), {"page": page_id, "day": day}
            )
        _recompute_day(connection, page_id, day)
    _recompute_months(connection, {(page_id, month_of(day)) for page_id, day in ordered})
    if ordered:
        logger.debug("rollups recomputed for %r page-days", len(ordered))


def day_of(connection: Connection, moment: Any) -> ColumnElement[int]:
    """The UTC day number (`storage.buckets.day_number`) of a datetime column, in SQL.

    SQLite keeps naive UTC text: its date part, so no rounding of fractions can cross midnight.
    """
    if connection.dialect.name == "sqlite":
        return cast(func.julianday(func.substr(moment, 1, 10)) - 2440587.5, SqlInteger)
    return cast(func.floor(func.extract("epoch", moment) / 86400), SqlInteger)


def _earliest(connection: Connection, *days: ColumnElement[int]) -> ColumnElement[int]:
    if connection.dialect.name == "sqlite":
        return func.min(*days)  # the scalar min() of SQLite
    return func.least(*days)


def _recompute_months(connection: Connection, months: Iterable[tuple[int, int]]) -> None:
    """Recompute `appeal_frt_month` of the given (page_id, month) keys from the daily rows.

    PostgreSQL: under an advisory lock per (page, month), taken after every page-day lock and
    in key order; whoever recomputes a month last sees every page-day committed before it.
    """
    postgres = connection.dialect.name == "postgresql"
    for page_id, month in sorted(set(months)):
        if postgres:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:page, :key)"),
                {"page": page_id, "key": -1 - month},
            )
        first, end = month_days(month)
        connection.execute(delete(HM).where(HM.c.page_id == page_id, HM.c.month == month))
        sums = (
            select(literal(page_id), H.c.kind, literal(month), H.c.bucket, func.sum(H.c.count))
            .where(H.c.page_id == page_id, H.c.day >= first, H.c.day < end)
            .group_by(H.c.kind, H.c.bucket)
        )
        connection.execute(
            insert(HM).from_select(["page_id", "kind", "month", "bucket", "count"], sums)
        )


def _recompute_day(connection: Connection, page_id: int, day: int) -> None:
    for table in TABLES:
        connection.execute(delete(table).where(table.c.page_id == page_id, table.c.day == day))
    where = metrics.received(page_id, day_start(day), day_start(day + 1))
    # The final figures of each appeal (storage/metrics.py), grouped by the day they settled.
    counts = select(literal(page_id), literal(day), A.settle_day, *metrics.counted(None))
    columns = ["page_id", "day", "settle_day", "appeals", *metrics.COUNTED, "quality_sum"]
    connection.execute(insert(R).from_select(columns, counts.where(where).group_by(A.settle_day)))
    _recompute_final(connection, page_id, day)
    topics = select(literal(page_id), literal(day), A.topic, func.count()).where(where)
    connection.execute(
        insert(T).from_select(["page_id", "day", "topic", "appeals"], topics.group_by(A.topic))
    )
    _recompute_histograms(connection, page_id, day)


def _recompute_final(connection: Connection, page_id: int, day: int) -> None:
    """The final-answer stages of one page-day, by the day they settle («отписка»: joined)."""
    where = metrics.received(page_id, day_start(day), day_start(day + 1))
    moments = (A.final_response_at, A.answered_offline_at, A.reopened_at, A.final_deadline)
    quiet = _earliest(
        connection,
        *(case((moment.is_(None), NO_DAY), else_=day_of(connection, moment)) for moment in moments),
    ).label("quiet_day")
    stages = (
        select(
            literal(page_id),
            literal(day),
            A.final_settle_day,
            quiet,
            *metrics.final_counted(None),
        )
        .select_from(metrics.final_source())
        .where(where, A.final_settle_day.is_not(None))
        .group_by(A.final_settle_day, quiet)
    )
    columns = ["page_id", "day", "settle_day", "quiet_day", *metrics.FINAL_COUNTED]
    connection.execute(insert(F).from_select(columns, stages))


def _recompute_histograms(connection: Connection, page_id: int, day: int) -> None:
    where = metrics.received(page_id, day_start(day), day_start(day + 1))
    replied = metrics.conditions(None)["replied"]
    reply_day = day_of(connection, A.first_response_at).label("reply_day")
    for kind, value, bucket in FRT_KINDS:
        histogram = select(
            literal(page_id), literal(kind), literal(day), reply_day, bucket, func.count()
        ).where(where, replied, value.is_not(None))
        connection.execute(
            insert(H).from_select(
                ["page_id", "kind", "day", "reply_day", "bucket", "count"],
                histogram.group_by(reply_day, bucket),
            )
        )


def rebuild_final_and_histograms(connection: Connection) -> None:
    """Recompute the final-stage and FRT histogram rollups of every page-day, and the monthly
    histograms (migration 0007 gives them their keys); the other rollups are left as they are.
    """
    for table in (F, H, HM):
        connection.execute(delete(table))
    query = select(A.page_id, func.min(A.received_at), func.max(A.received_at)).group_by(A.page_id)
    months: set[tuple[int, int]] = set()
    for page_id, first, last in connection.execute(query).all():
        for day in range(day_number(_aware(first)), day_number(_aware(last)) + 1):
            _recompute_final(connection, int(page_id), day)
            _recompute_histograms(connection, int(page_id), day)
            months.add((int(page_id), month_of(day)))
    _recompute_months(connection, months)


def rebuild(connection: Connection) -> int:
    """Recompute every page-day from the appeal table (after raw writes); returns page-days."""
    # Marks read before the recompute are covered by it; later ones stay for the next refresh.
    marks = [row[0] for row in connection.execute(select(S.c.id)).all()]
    query = select(A.page_id, func.min(A.received_at), func.max(A.received_at)).group_by(A.page_id)
    keys: list[tuple[int, int]] = []
    for page_id, first, last in connection.execute(query).all():
        first_day, last_day = day_number(_aware(first)), day_number(_aware(last))
        keys += [(int(page_id), day) for day in range(first_day, last_day + 1)]
    with_appeals = len(keys)
    # Page-days with rollups but no appeals any more are emptied by their recompute. No
    # table-wide DELETE: on PostgreSQL every rollup row is written under its page-day's
    # advisory lock, taken in key order, or a concurrent refresh holding one lock and waiting
    # for these rows would deadlock with this rebuild waiting for that lock.
    for table in TABLES:
        rows = connection.execute(select(table.c.page_id, table.c.day).distinct()).all()
        keys += [(int(page_id), int(day)) for page_id, day in rows]
    recompute(connection, keys)
    # Months left without any page-day are emptied too.
    months = connection.execute(select(HM.c.page_id, HM.c.month).distinct()).all()
    _recompute_months(connection, [(int(page_id), int(month)) for page_id, month in months])
    for start in range(0, len(marks), 500):
        connection.execute(delete(S).where(S.c.id.in_(marks[start : start + 500])))
    return with_appeals
