"""SQLite's planner statistics (`ANALYZE`), kept fresh on start and by the scheduler.

Without `sqlite_stat1` SQLite plans by fixed guesses, and over a million appeals they cost
the dashboard's overview 0.94 s against 0.19 s with statistics (4.8 s while the boolean index
`ix_appeal_excluded` existed: it was the guess for nearly every appeal query; migration 0008
dropped it). Measured in docs/BENCHMARKS.md, «Query plans».

The analysis is a full one: with `PRAGMA analysis_limit` (400 to 100,000 rows) the estimates
disagreed between the appeal indexes and the overview took 0.5–0.6 s. A full `ANALYZE` reads
every index once, 1.2–1.9 s a million appeals, holding the write lock meanwhile (the writer
process retries while the database is busy), so it runs only when the statistics are stale:
the appeal table has rows but one of its (non-partial) indexes has none (a new database, a
new index), or it has grown or shrunk by a quarter since the last analysis. PostgreSQL's
autovacuum keeps its own statistics; nothing is done there.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

# The table whose size decides: reports, the dashboard and the intake all read it.
TABLE = "appeal"
DRIFT = 0.25


def stale(connection: Connection) -> bool:
    """Whether SQLite's statistics of the appeal table are missing or a quarter off."""
    rows = int(connection.scalar(text(f"SELECT count(*) FROM {TABLE}")) or 0)
    if rows == 0:
        return False  # an empty table gets no statistics; the guesses are harmless there
    # Partial indexes are left out: one with no rows yet (`ix_appeal_taken_by` before anyone
    # takes an appeal) gets no statistics from ANALYZE.
    indexes = {
        str(name)
        for (name,) in connection.execute(
            text("SELECT name FROM pragma_index_list(:table) WHERE origin = 'c' AND NOT partial"),
            {"table": TABLE},
        )
    }
    has_stat = connection.scalar(
        text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
    )
    if not has_stat:
        return True
    known: dict[str, str] = {
        str(index): str(stat)
        for index, stat in connection.execute(
            text("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = :table"), {"table": TABLE}
        )
    }
    if not indexes <= known.keys():
        return True
    # The first number of an index's statistics is the table's rows when it was analyzed.
    counted = max((int(stat.split()[0]) for stat in known.values() if stat), default=0)
    return abs(rows - counted) > DRIFT * max(counted, 1)


def refresh(connection: Connection, *, force: bool = False) -> bool:
    """`ANALYZE` a SQLite database whose statistics are stale (or always, `force`).

    Returns whether it analyzed; on other databases nothing is done.
    """
    if connection.dialect.name != "sqlite":
        return False
    if not force and not stale(connection):
        return False
    connection.exec_driver_sql("ANALYZE")
    logger.debug("SQLite statistics refreshed (ANALYZE)")
    return True
