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
from storage.buckets import day_number, final_settle_moment, frt_bucket, settle_moment
from storage.engine import create_engine, refresh_plan_statistics, session_factory
from storage.migrate import upgrade

PAGES = 20
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 12, 1, tzinfo=UTC)
BATCH = 100_000


def _text(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def _rows(
    count: int, start: datetime, span_s: int, seed: int, first_id: int, pages: int = PAGES
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """Synthetic appeals: 85 % answered (exponential FRT, mean 5 h), 3 % offline, 2 % excluded.

    With the final stage: 7–10 days to the final deadline; the first reply is final for 80 %
    of the answered, a later final reply comes for half of the rest; 3 % of the final answers
    are re-opened (half answered again); 10 % of final replies are «отписка». Each appeal
    comes with the rows of its final replies (ids `2 × id` and `2 × id + 1`).
    """
    rng = random.Random(seed)
    for number in range(count):
        appeal_id = first_id + number
        page = rng.randrange(pages) + 1
        received = start + timedelta(seconds=rng.randrange(span_s))
        deadline = received + timedelta(hours=rng.choice((9, 15, 24, 63)))
        final_deadline = received + timedelta(days=rng.uniform(7, 10))
        draw = rng.random()
        first = offline = final = None
        frt = frt_work = quality = templated = None
        if draw < 0.85:
            frt = round(rng.expovariate(1 / 18000), 3)
            frt_work = round(frt * rng.uniform(0.2, 1.0), 3)
            first = received + timedelta(seconds=frt)
            quality = float(rng.randrange(0, 101, 5))
            templated = rng.random() < 0.2
            final_draw = rng.random()
            if final_draw < 0.8:
                final = first
            elif final_draw < 0.9:
                final = first + timedelta(hours=rng.uniform(1, 240))
        elif draw < 0.88:
            offline = received + timedelta(hours=rng.uniform(1, 30))
        reopened = reopen_deadline = reanswered = None
        if final is not None and rng.random() < 0.03:
            reopened = final + timedelta(hours=rng.uniform(1, 48))
            reopen_deadline = reopened + timedelta(days=7)
            if rng.random() < 0.5:
                reanswered = reopened + timedelta(hours=rng.uniform(1, 100))
        replies = [
            (
                2 * appeal_id + offset,
                page,
                page,
                f"r{2 * appeal_id + offset}",
                _text(moment),
                rng.random() < 0.1,
                _text(moment),
            )
            for offset, moment in ((0, final), (1, reanswered))
            if moment is not None
        ]
        answered = min((m for m in (first, offline) if m is not None), default=None)
        rating = rng.choice((None, None, None, 0, 1, 1)) if first else None
        rated = first + timedelta(hours=1) if rating is not None and first else None
        settle = settle_moment(
            answered_at=answered,
            first_response_at=first,
            final_response_at=final,
            reopened_at=reopened,
            rating=rating,
            rated_at=rated,
            sla_deadline=deadline,
        )
        final_settle = final_settle_moment(
            final_deadline=final_deadline,
            final_response_at=final,
            answered_offline_at=offline,
            reopened_at=reopened,
            reopen_deadline=reopen_deadline,
            reanswered_at=reanswered,
        )
        row = (
            appeal_id,
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
            _text(final_deadline),
            _text(final) if final else None,
            2 * appeal_id if final else None,
            _text(reopened) if reopened else None,
            _text(reopen_deadline) if reopen_deadline else None,
            _text(reanswered) if reanswered else None,
            2 * appeal_id + 1 if reanswered else None,
            day_number(final_settle) if final_settle else None,
        )
        yield row, replies


_INSERT = (
    "INSERT INTO appeal (id, page_id, thread_id, citizen_id, received_at, topic, urgent,"
    " sla_hours, sla_deadline, messages_count, first_response_at, frt_s, frt_work_s, excluded,"
    " answered_offline_at, topic_corrected, deleted_by_page, rating, rated_at, quality_score,"
    " recorded_at, answered_at, answer_templated, settle_day, frt_bucket, frt_work_bucket,"
    " final_deadline, final_response_at, final_reply_id, reopened_at, reopen_deadline,"
    " reanswered_at, reanswer_reply_id, final_settle_day)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_REPLY = (
    "INSERT INTO official_reply (id, page_id, thread_id, external_id, author_role, content_kind,"
    " text, sent_at, is_interim, is_formal, recorded_at)"
    " VALUES (?, ?, ?, ?, 'page', 'text', '', ?, 0, ?, ?)"
)


def _fill(path: Path, rows: int, extra_rows: int, pages: int = PAGES) -> tuple[float, float]:
    """Insert pages, threads and appeals, then rebuild the rollups; returns both durations."""
    started = time.perf_counter()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")  # 256 MB page cache for the index sorts
        indexes = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
            " AND tbl_name IN ('appeal', 'official_reply')"
            " AND sql IS NOT NULL"
        ).fetchall()
        connection.execute("BEGIN")
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        now = _text(MONTH_START)
        for page in range(1, pages + 1):
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
        first_id = 1
        for count, start, span, seed in plans:
            generator = _rows(count, start, span, seed, first_id, pages)
            first_id += count
            while True:
                batch = [item for _, item in zip(range(BATCH), generator, strict=False)]
                if not batch:
                    break
                connection.executemany(_INSERT, [row for row, _ in batch])
                connection.executemany(
                    _INSERT_REPLY, [reply for _, replies in batch for reply in replies]
                )
        for _, sql in indexes:
            connection.execute(sql)
        connection.execute("COMMIT")
        # No `ANALYZE` here: the benchmarks bring the file's statistics up to date the way
        # `otklik run` does on start (storage/plan_stats.py), so they time production's plans.
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
            started = time.perf_counter()
            await refresh_plan_statistics(engine)  # as on `otklik run`'s start
            statistics_s = time.perf_counter() - started
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
            "statistics_s": round(statistics_s, 2),
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
