"""Benchmark: the page-health counters of many VK communities in few requests (issue 13).

1,000 communities with 100 recent posts each (100,000 posts), all past their 24 h mark: one
`HealthRefresh.run_once` through the real vk_api against the VK sandbox reads every member
count (`groups.getById`, 500 a request) and every post's counters (`wall.getById`, 100 posts,
25 of them in one `execute`) and stores them through the intake. VK's own limits put the floor
at 2 + 40 = 42 requests; the target is at most 50. Time and peak memory are reported with the
machine (docs/BENCHMARKS.md). Not a timed test.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.bench import machine

START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
FIRST_GROUP = 240_000_000
SERVICE_TOKEN = "bench-service-token"


async def bench_health(communities: int = 1_000, posts_each: int = 100) -> dict[str, Any]:
    from bot.app import AppContext
    from bot.clock import SimulatedClock
    from bot.config import Settings
    from bot.events import PageKind, PageRef, Platform, PostEvent, PostKind
    from bot.sandbox.vk import VkSandbox
    from bot.services.health_refresh import HealthRefresh
    from bot.services.intake import Intake, IntakeJob
    from handlers.vk.health import VkCounterSource
    from storage.engine import create_engine
    from storage.migrate import upgrade

    clock = SimulatedClock(START + timedelta(hours=25))
    box = VkSandbox(clock=clock)
    await box.start()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # vk_api must never write a config file into the project
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        try:
            await upgrade(engine)
            app = AppContext.create(Settings(_env_file=None), engine, clock)
            box.add_service_token(SERVICE_TOKEN)
            intake = Intake.for_database(engine, app.sessions, app.defaults)
            loading = time.perf_counter()
            for n in range(communities):
                group_id = FIRST_GROUP + n
                box.add_group(group_id, f"Сообщество {n}")
                box.set_members_count(group_id, 1_000 + n)
                page = PageRef(Platform.VK, str(group_id), PageKind.VK_GROUP, f"Сообщество {n}")
                events = []
                for k in range(posts_each):
                    published = START - timedelta(minutes=k)
                    post_id = box.add_post(-group_id, "Новость", published, emit=False)
                    box.set_post_counters(-group_id, post_id, views=100 + k, likes=k)
                    events.append(PostEvent(page, str(post_id), published, PostKind.TEXT, 7))
                await intake.deliver(IntakeJob(raw=None, events=tuple(events)))
            await intake.flush()
            loaded_s = time.perf_counter() - loading
            source = VkCounterSource(
                service_token=SERVICE_TOKEN, group_tokens={}, api_server=box.base_url, rps_delay=0
            )
            refresh = HealthRefresh(app.sessions, intake, [source], clock=clock)
            calls_before = len(box.calls)
            started = time.perf_counter()
            report = await refresh.run_once()
            await intake.flush()
            elapsed = time.perf_counter() - started
            http_requests = len(box.calls) - calls_before
            kept = await _kept(app)
            await intake.close()
        finally:
            await engine.dispose()
            await box.stop()
            os.chdir(cwd)
    expected_posts = communities * posts_each
    if kept != {"snapshots": communities, "marks": expected_posts}:
        raise RuntimeError(f"expected every reading stored, found {kept}")
    return {
        "communities": communities,
        "posts": expected_posts,
        "http_requests": http_requests,
        "requests_counted_by_source": source.requests,
        "refresh_s": round(elapsed, 1),
        "posts_loaded_s": round(loaded_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "events": report.events,
        "stored": kept,
        "machine": machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


async def _kept(app: Any) -> dict[str, int]:
    from sqlmodel import func, select

    from storage.health_models import PageSnapshot, PostCounter

    async with app.sessions() as session:
        snapshots = (await session.exec(select(func.count()).select_from(PageSnapshot))).one()
        marks = (
            await session.exec(
                select(func.count()).select_from(PostCounter).where(PostCounter.mark_h == 24)
            )
        ).one()
    return {"snapshots": int(snapshots), "marks": int(marks)}
