"""The rollup-backed /stats report equals the metric definitions computed naively in Python.

Random appeals over a few days on two pages, random periods and report times (not aligned to
days), written through the ORM, bulk Core updates and deletes: every figure of `build_report`
must equal a plain Python evaluation of docs/METRICS.md over the same appeals.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import AppContext
from bot.services.figures import Figures
from bot.services.policy import PageDefaults
from bot.services.reports import build_report
from bot.services.scheduler import Scheduler
from storage import rollup
from storage.buckets import day_number, frt_bucket
from storage.engine import SessionFactory, create_engine, session_factory
from storage.migrate import upgrade
from storage.models import (
    Appeal,
    AppealFinalRollup,
    AppealFrtMonth,
    AppealFrtRollup,
    AppealRollup,
    AppealTopicRollup,
    Page,
    RollupStale,
    Thread,
)

BASE = datetime(2026, 11, 2, tzinfo=UTC)
TOPICS = ("housing", "roads", "other")
TABLE = Appeal.__table__  # type: ignore[attr-defined]


@dataclass
class Spec:
    """One random appeal: offsets in seconds from BASE."""

    page: int
    received: float
    deadline_after: float
    frt: float | None
    frt_work: float | None
    offline_after: float | None
    rating: int | None
    rated_after: float | None
    quality: float | None
    templated: bool | None
    final_after: float | None  # the final answer after the first reply
    first_quality: float | None  # the first reply's score (counts while the final is after at)
    first_templated: bool | None
    excluded: bool
    deleted: bool
    topic: str


def specs_from(rng: random.Random, count: int) -> list[Spec]:
    result = []
    for _ in range(count):
        frt = rng.choice([None, 0.0, round(rng.uniform(0, 4 * 86400), 3), rng.uniform(0, 7200)])
        result.append(
            Spec(
                page=rng.choice((1, 2)),
                received=rng.uniform(0, 5 * 86400),
                deadline_after=rng.uniform(0, 3 * 86400),
                frt=frt,
                frt_work=None if frt is None else round(frt * rng.random(), 3),
                offline_after=rng.choice([None, rng.uniform(0, 3 * 86400)]),
                rating=rng.choice([None, 0, 1]) if frt is not None else None,
                rated_after=rng.choice([None, rng.uniform(0, 2 * 86400)]),
                quality=rng.choice([None, rng.randrange(0, 201) / 2]) if frt is not None else None,
                templated=rng.choice([None, True, False]),
                final_after=rng.choice([None, 0.0, rng.uniform(0, 2 * 86400)]),
                first_quality=rng.choice([None, rng.randrange(0, 201) / 2]),
                first_templated=rng.choice([None, True, False]),
                excluded=rng.random() < 0.1,
                deleted=rng.random() < 0.1,
                topic=rng.choice(TOPICS),
            )
        )
    return result


def appeal_of(spec: Spec) -> Appeal:
    received = BASE + timedelta(seconds=spec.received)
    first = None if spec.frt is None else received + timedelta(seconds=spec.frt)
    rated = None
    if spec.rating is not None and spec.rated_after is not None and first is not None:
        rated = first + timedelta(seconds=spec.rated_after)
    return Appeal(
        page_id=spec.page,
        thread_id=spec.page,
        received_at=received,
        sla_deadline=received + timedelta(seconds=spec.deadline_after),
        first_response_at=first,
        frt_s=spec.frt,
        frt_work_s=spec.frt_work,
        answered_offline_at=None
        if spec.offline_after is None
        else received + timedelta(seconds=spec.offline_after),
        rating=spec.rating,
        rated_at=rated,
        final_response_at=None
        if first is None or spec.final_after is None
        else first + timedelta(seconds=spec.final_after),
        quality_score=spec.quality,
        answer_templated=spec.templated,
        first_quality_score=spec.first_quality,
        first_answer_templated=spec.first_templated,
        excluded=spec.excluded,
        deleted_by_page=spec.deleted,
        topic=spec.topic,
    )


def naive(appeals: list[Appeal], page_ids: list[int], since: Any, until: Any, at: Any) -> Figures:
    """docs/METRICS.md evaluated row by row in Python (order statistics with `statistics`)."""
    rows = [
        a
        for a in appeals
        if a.page_id in page_ids
        and since <= a.received_at < until
        and a.received_at <= at  # docs/METRICS.md: what was known at `at`
        and not a.excluded
    ]
    figures = Figures(appeals=len(rows))
    frt: list[float] = []
    frt_work: list[float] = []
    for a in rows:
        answered_at = min(
            (m for m in (a.first_response_at, a.answered_offline_at) if m is not None),
            default=None,
        )
        answered = answered_at is not None and answered_at <= at
        replied = a.first_response_at is not None and a.first_response_at <= at
        figures.answered += answered
        figures.answered_in_time += answered and answered_at <= a.sla_deadline  # type: ignore[operator]
        figures.overdue += not answered and a.sla_deadline < at
        figures.answered_offline += answered and not replied
        figures.replied += replied
        # The answer known at `at`: the final one once sent, the first reply before.
        final_known = a.final_response_at is None or a.final_response_at <= at
        quality = a.quality_score if final_known else a.first_quality_score
        templated = a.answer_templated if final_known else a.first_answer_templated
        if replied and quality is not None:
            figures.quality_count += 1
            figures.quality_sum += quality
            figures.templated += templated is True
        rated = a.rating is not None and (a.rated_at is None or a.rated_at <= at)
        figures.rated += rated
        figures.rated_positive += rated and a.rating == 1
        figures.deleted_by_page += a.deleted_by_page
        figures.topics[a.topic] = figures.topics.get(a.topic, 0) + 1
        if replied and a.frt_s is not None:
            frt.append(a.frt_s)
        if replied and a.frt_work_s is not None:
            frt_work.append(a.frt_work_s)
    figures.answered_late = figures.answered - figures.answered_in_time
    figures.pending = figures.appeals - figures.answered - figures.overdue
    if frt:
        figures.frt_median_s = statistics.median(frt)
        figures.frt_p90_s = (
            frt[0] if len(frt) == 1 else statistics.quantiles(frt, n=10, method="inclusive")[8]
        )
    if frt_work:
        figures.frt_median_work_s = statistics.median(frt_work)
    return figures


def comparable(figures: Figures) -> dict[str, Any]:
    data = dict(vars(figures))
    data["topics"] = dict(sorted(figures.topics.items()))
    return data


async def add_pages(sessions: SessionFactory) -> None:
    async with sessions() as session:
        for number in (1, 2):
            session.add(Page(id=number, platform="telegram", external_id=str(number), kind="c"))
        await session.flush()
        for number in (1, 2):
            session.add(Thread(id=number, page_id=number, external_id="t", kind="comments"))
        await session.commit()


async def load(sessions: SessionFactory, specs: list[Spec]) -> None:
    async with sessions() as session:
        session.add_all([appeal_of(spec) for spec in specs])
        await session.commit()


async def all_appeals(sessions: SessionFactory) -> list[Appeal]:
    async with sessions() as session:
        return list((await session.exec(select(Appeal))).scalars().all())  # type: ignore[call-overload]


async def check_periods(
    sessions: SessionFactory, rng: random.Random, periods: int, appeals: list[Appeal]
) -> None:
    for _ in range(periods):
        since = BASE + timedelta(seconds=rng.uniform(-86400, 6 * 86400))
        until = since + timedelta(seconds=rng.choice([rng.uniform(0, 6 * 86400), 86400 * 3]))
        at = BASE + timedelta(seconds=rng.uniform(-86400, 10 * 86400))
        if rng.random() < 0.3:  # day-aligned periods and report times, the rollups' edges
            since = BASE + timedelta(days=rng.randrange(-1, 4))
            until = since + timedelta(days=rng.randrange(0, 5))
            at = BASE + timedelta(days=rng.randrange(0, 9))
        page_id = rng.choice([None, 1, 2])
        async with sessions() as session:
            report = await build_report(
                session, since=since, until=until, at=at, page_id=page_id, defaults=PageDefaults()
            )
        ids = [1, 2] if page_id is None else [page_id]
        expected_total = naive(appeals, ids, since, until, at)
        assert comparable(report.total) == comparable(expected_total), (since, until, at)
        for page in report.pages:
            expected = naive(appeals, [page.page_id], since, until, at)
            assert comparable(page.figures) == comparable(expected), (page.page_id, since, at)
        listed = [
            i for i in ids if page_id is not None or naive(appeals, [i], since, until, at).appeals
        ]
        assert [page.page_id for page in report.pages] == listed


async def rollups_as_rebuilt(engine: AsyncEngine) -> None:
    """The incrementally kept rollups equal a rebuild from the appeal table."""

    async def snapshot() -> list[list[Any]]:
        async with engine.connect() as connection:
            result = []
            for model in (
                AppealRollup,
                AppealTopicRollup,
                AppealFrtRollup,
                AppealFrtMonth,
                AppealFinalRollup,
            ):
                table = model.__table__  # type: ignore[union-attr]
                rows = await connection.execute(select(table).order_by(*table.primary_key))
                result.append([tuple(row) for row in rows.all()])
            return result

    async with engine.begin() as connection:
        await connection.run_sync(rollup.refresh)
    assert await stale_marks(engine) == 0
    kept = await snapshot()
    async with engine.begin() as connection:
        await connection.run_sync(rollup.rebuild)
    assert kept == await snapshot()


async def stale_marks(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(RollupStale)) or 0)


async def rollup_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(AppealRollup)) or 0)


async def scenario(engine: AsyncEngine, seed: int, count: int, periods: int) -> None:
    """Load, report, change appeals every way a writer can, report again."""
    rng = random.Random(seed)
    sessions = session_factory(engine)
    await add_pages(sessions)
    await load(sessions, specs_from(rng, count))
    await check_periods(sessions, rng, periods, await all_appeals(sessions))
    appeals = await all_appeals(sessions)
    async with sessions() as session:
        # ORM changes: press-office marks, exclusions, a moved receipt, a deletion.
        changed = rng.sample(appeals, min(len(appeals), 6))
        for appeal in changed[:2]:
            loaded = await session.get(Appeal, appeal.id)
            assert loaded is not None
            loaded.answered_offline_at = loaded.received_at + timedelta(hours=rng.uniform(0, 30))
        for appeal in changed[2:3]:
            loaded = await session.get(Appeal, appeal.id)
            assert loaded is not None
            loaded.excluded = not loaded.excluded
        for appeal in changed[3:4]:
            loaded = await session.get(Appeal, appeal.id)
            assert loaded is not None
            loaded.received_at = loaded.received_at + timedelta(days=rng.choice((-2, 1)))
        for appeal in changed[4:5]:
            loaded = await session.get(Appeal, appeal.id)
            assert loaded is not None
            await session.delete(loaded)
        await session.commit()
    async with sessions() as session:
        # Bulk Core statements, as bot/services/quality.py runs them.
        connection = await session.connection()
        ids = [a.id for a in appeals if a.id is not None][: max(1, len(appeals) // 3)]
        if ids:
            await connection.execute(
                update(TABLE)
                .where(TABLE.c.id == bindparam("aid"))
                .values(quality_score=bindparam("q"), answer_templated=bindparam("t")),
                [{"aid": i, "q": rng.randrange(0, 201) / 2, "t": rng.random() < 0.5} for i in ids],
            )
        await connection.execute(
            update(TABLE).where(TABLE.c.topic == "roads").values(deleted_by_page=True)
        )
        await connection.execute(delete(TABLE).where(TABLE.c.topic == "housing", TABLE.c.excluded))
        await session.commit()
    await check_periods(sessions, rng, periods, await all_appeals(sessions))
    await rollups_as_rebuilt(engine)


async def test_report_equals_definitions(engine: AsyncEngine) -> None:
    """SQLite and PostgreSQL: a fixed random data set, many periods, after every kind of write."""
    await scenario(engine, seed=7, count=150, periods=25)


@pytest.mark.integration  # builds a fresh SQLite database per example
@hsettings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(0, 30))
def test_report_equals_definitions_hypothesis(tmp_path: Path, seed: int, count: int) -> None:
    """SQLite: random data sets (hypothesis shrinks a failure to a small one)."""
    database = tmp_path / f"h{uuid.uuid4().hex}.db"

    async def run() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{database}")
        try:
            await upgrade(engine)
            await scenario(engine, seed=seed, count=count, periods=5)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    finally:
        for path in tmp_path.glob(f"{database.name}*"):
            path.unlink()


async def test_writes_only_mark_stale_and_reports_refresh(engine: AsyncEngine) -> None:
    """Writes leave marks, not rollups; a report brings them up to date and stays exact."""
    rng = random.Random(11)
    sessions = session_factory(engine)
    await add_pages(sessions)
    await load(sessions, specs_from(rng, 80))
    assert await stale_marks(engine) > 0
    assert await rollup_rows(engine) == 0  # nothing recomputed on the write path
    appeals = await all_appeals(sessions)
    since, until, at = BASE, BASE + timedelta(days=5), BASE + timedelta(days=9)
    extra = appeal_of(specs_from(rng, 1)[0])
    async with sessions() as session:
        # Inside an open transaction the report refreshes in it and counts the uncommitted write.
        session.add(extra)
        await session.flush()
        report = await build_report(
            session, since=since, until=until, at=at, defaults=PageDefaults()
        )
        assert comparable(report.total) == comparable(
            naive([*appeals, extra], [1, 2], since, until, at)
        )
        await session.rollback()
    assert await stale_marks(engine) > 0  # that refresh was rolled back with the transaction
    assert await rollup_rows(engine) == 0
    async with sessions() as session:
        # A fresh session refreshes on a connection of its own and commits it.
        report = await build_report(
            session, since=since, until=until, at=at, defaults=PageDefaults()
        )
    assert comparable(report.total) == comparable(naive(appeals, [1, 2], since, until, at))
    assert await stale_marks(engine) == 0
    assert await rollup_rows(engine) > 0
    # A later write marks its page-day again; the next report is exact again.
    async with sessions() as session:
        loaded = await session.get(Appeal, appeals[0].id)
        assert loaded is not None
        loaded.excluded = not loaded.excluded
        await session.commit()
    assert await stale_marks(engine) == 1
    await check_periods(sessions, rng, 10, await all_appeals(sessions))
    await rollups_as_rebuilt(engine)


async def test_concurrent_refreshes_and_writes(engine: AsyncEngine) -> None:
    """Two refreshers at once count nothing twice; a write committed meanwhile stays marked."""
    rng = random.Random(5)
    sessions = session_factory(engine)
    await add_pages(sessions)
    await load(sessions, specs_from(rng, 60))
    postgres = engine.dialect.name == "postgresql"
    writer = sessions()
    if postgres:  # SQLite has one writer at a time: a refresh would wait for this one
        # An uncommitted write on a page-day that already has a committed mark.
        writer.add(appeal_of(specs_from(rng, 1)[0]))
        await writer.flush()

    async def refresher() -> int:
        async with engine.begin() as connection:
            return int(await connection.run_sync(rollup.refresh))

    first, second = await asyncio.gather(refresher(), refresher())
    assert first + second > 0
    await writer.commit()
    await writer.close()
    if postgres:
        assert await stale_marks(engine) >= 1  # the writer's mark survived the refreshes
    await check_periods(sessions, rng, 5, await all_appeals(sessions))
    await rollups_as_rebuilt(engine)


def test_frt_bucket_is_monotone() -> None:
    values = sorted(
        [0.0, 59.999, 60.0, -0.5, -61.0, 1e7, 1919.9, 1920.0, 3840.0]
        + [random.Random(1).uniform(-1e5, 1e6) for _ in range(2000)]
    )
    buckets = [frt_bucket(value) for value in values]
    assert buckets == sorted(buckets)  # type: ignore[type-var]
    assert frt_bucket(None) is None
    assert day_number(datetime(1969, 12, 31, 23, 59, tzinfo=UTC)) == -1


async def test_scheduler_tick_refreshes_stale_rollups(app: AppContext) -> None:
    """The periodic tick brings marked page-days up to date, so reports find nothing stale."""
    engine = app.engine
    await add_pages(app.sessions)
    await load(app.sessions, specs_from(random.Random(2), 40))
    assert await stale_marks(engine) > 0
    await Scheduler(app).tick()
    assert await stale_marks(engine) == 0
    assert await rollup_rows(engine) > 0
    await rollups_as_rebuilt(engine)
