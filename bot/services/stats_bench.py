"""Benchmark of the month report: N synthetic appeals in one month on SQLite (docs/METRICS.md).

Rows are bulk-inserted in a child process with the stdlib sqlite3 driver and `executemany` in
one transaction, journal and sync off, the appeal indexes dropped during the load and rebuilt
after it (sorting once is far cheaper than ten million random B-tree inserts); the rollups are
then rebuilt with `storage.rollup.rebuild`. The report is built through the real `build_report`
on the async engine, as `/stats` does, in this process, so its peak memory is the report's.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import random
import resource
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine as create_sync_engine

from bot.services.policy import PageDefaults
from bot.services.reports import build_report
from storage import rollup
from storage.buckets import day_number, frt_bucket, settle_moment
from storage.engine import create_engine, session_factory
from storage.migrate import upgrade

PAGES = 20
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 12, 1, tzinfo=UTC)
BATCH = 100_000


def _text(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def _rows(count: int, start: datetime, span_s: int, seed: int) -> Iterator[tuple[Any, ...]]:
    """Synthetic appeals: 85 % answered (exponential FRT, mean 5 h), 3 % offline, 2 % excluded."""
    rng = random.Random(seed)
    for _ in range(count):
        page = rng.randrange(PAGES) + 1
        received = start + timedelta(seconds=rng.randrange(span_s))
        deadline = received + timedelta(hours=rng.choice((9, 15, 24, 63)))
        draw = rng.random()
        first = offline = None
        frt = frt_work = quality = templated = None
        if draw < 0.85:
            frt = round(rng.expovariate(1 / 18000), 3)
            frt_work = round(frt * rng.uniform(0.2, 1.0), 3)
            first = received + timedelta(seconds=frt)
            quality = float(rng.randrange(0, 101, 5))
            templated = rng.random() < 0.2
        elif draw < 0.88:
            offline = received + timedelta(hours=rng.uniform(1, 30))
        answered = min((m for m in (first, offline) if m is not None), default=None)
        rating = rng.choice((None, None, None, 0, 1, 1)) if first else None
        rated = first + timedelta(hours=1) if rating is not None and first else None
        settle = settle_moment(
            answered_at=answered,
            first_response_at=first,
            rating=rating,
            rated_at=rated,
            sla_deadline=deadline,
        )
        yield (
            page,
            page,
            f"c{rng.randrange(1_000_000)}",
            _text(received),
            "other",
            0,
            8.0,
            _text(deadline),
            1,
            _text(first) if first else None,
            frt,
            frt_work,
            1 if rng.random() < 0.02 else 0,
            _text(offline) if offline else None,
            0,
            1 if rng.random() < 0.01 else 0,
            rating,
            _text(rated) if rated else None,
            quality,
            _text(received),
            _text(answered) if answered else None,
            templated,
            day_number(settle),
            frt_bucket(frt),
            frt_bucket(frt_work),
        )


_INSERT = (
    "INSERT INTO appeal (page_id, thread_id, citizen_id, received_at, topic, urgent, sla_hours,"
    " sla_deadline, messages_count, first_response_at, frt_s, frt_work_s, excluded,"
    " answered_offline_at, topic_corrected, deleted_by_page, rating, rated_at, quality_score,"
    " recorded_at, answered_at, answer_templated, settle_day, frt_bucket, frt_work_bucket)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _fill(path: Path, rows: int, extra_rows: int) -> tuple[float, float]:
    """Insert pages, threads and appeals, then rebuild the rollups; returns both durations."""
    started = time.perf_counter()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")  # 256 MB page cache for the index sorts
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'appeal'"
            " AND sql IS NOT NULL"
        ).fetchall()
        connection.execute("BEGIN")
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        now = _text(MONTH_START)
        for page in range(1, PAGES + 1):
            connection.execute(
                "INSERT INTO page (id, platform, external_id, kind, title, is_active, recorded_at)"
                " VALUES (?, 'telegram', ?, 'tg_channel', ?, 1, ?)",
                (page, f"-100{page}", f"Страница {page}", now),
            )
            connection.execute(
                "INSERT INTO thread (id, page_id, external_id, kind, recorded_at)"
                " VALUES (?, ?, 'chat', 'comments', ?)",
                (page, page, now),
            )
        plans = [(rows, MONTH_START, int((MONTH_END - MONTH_START).total_seconds()), 1)]
        if extra_rows:
            # The other rows fill the two years before the month.
            before = MONTH_START - timedelta(days=730)
            plans.append((extra_rows, before, 730 * 86400, 2))
        for count, start, span, seed in plans:
            generator = _rows(count, start, span, seed)
            while True:
                batch = [row for _, row in zip(range(BATCH), generator, strict=False)]
                if not batch:
                    break
                connection.executemany(_INSERT, batch)
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
    finally:
        connection.close()
    loaded = time.perf_counter()
    engine = create_sync_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as sync:
            rollup.rebuild(sync)
    finally:
        engine.dispose()
    return loaded - started, time.perf_counter() - loaded


async def run_stats_benchmark(
    rows: int = 1_000_000, extra_rows: int = 0, path: str | Path | None = None, repeats: int = 5
) -> dict[str, Any]:
    """Build a month report over `rows` appeals (plus `extra_rows` outside the month)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(path) if path is not None else Path(tmp) / "bench.db"
        fresh = not db.exists()
        engine = create_engine(f"sqlite+aiosqlite:///{db}")
        try:
            await upgrade(engine)
            fill_s = rollup_s = 0.0
            if fresh:
                # The load needs the file to itself (journal off), and a child process: the
                # load's memory is not the report's.
                await engine.dispose()
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(1, mp_context=context) as pool:
                    future = pool.submit(_fill, db, rows, extra_rows)
                    fill_s, rollup_s = await asyncio.wrap_future(future)
            sessions = session_factory(engine)
            at = MONTH_END + timedelta(days=1)
            timings: list[float] = []
            report = None
            gc.collect()
            for _ in range(repeats):
                async with sessions() as session:
                    started = time.perf_counter()
                    report = await build_report(
                        session, since=MONTH_START, until=MONTH_END, at=at, defaults=PageDefaults()
                    )
                    timings.append(time.perf_counter() - started)
            # Python allocations in a separate run: tracing slows Python code down severalfold.
            tracemalloc.start()
            async with sessions() as session:
                await build_report(
                    session, since=MONTH_START, until=MONTH_END, at=at, defaults=PageDefaults()
                )
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        finally:
            await engine.dispose()
        assert report is not None
        return {
            "rows_in_month": rows,
            "rows_in_table": rows + extra_rows,
            "fill_s": round(fill_s, 1),
            "rollup_rebuild_s": round(rollup_s, 1),
            "report_first_ms": round(timings[0] * 1000, 1),
            "report_median_ms": round(statistics.median(timings) * 1000, 1),
            "report_best_ms": round(min(timings) * 1000, 1),
            "python_peak_mb": round(peak / 2**20, 1),
            "process_max_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
            "appeals_counted": report.total.appeals,
            "frt_median_s": report.total.frt_median_s,
        }


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    extra = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    print(json.dumps(asyncio.run(run_stats_benchmark(count, extra)), indent=2))
