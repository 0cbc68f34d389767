"""`otklik bench`: every performance benchmark in turn (scripts, not timed tests).

docs/BENCHMARKS.md describes each: the intake (bot/bench.py), the classifier (bot/text/bench.py),
the `/stats` report (bot/services/stats_bench.py), page health (bot/health_bench.py) and the
dashboard (handlers/web/bench.py). Each is imported only when its turn comes.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bot.bench import bench_intake, machine


async def run_all() -> int:
    results: dict[str, Any] = {"machine": machine()}
    print(f"машина: {results['machine']}")
    intake = await bench_intake()
    print(
        f"приём: {intake['real_handlers_sqlite_per_s']} обновлений/с с настоящими обработчиками "
        f"и SQLite, {intake['noop_handler_per_s']} обновлений/с с пустым обработчиком "
        f"(отношение {intake['ratio']}), замер на {intake['updates']} обновлениях"
    )
    from bot.text.bench import run_benchmark, run_quality, summary_lines

    speed = await asyncio.to_thread(run_benchmark)
    quality = await asyncio.to_thread(run_quality)
    print("\n".join(summary_lines(speed, quality)))
    try:
        from bot.services.stats_bench import run_stats_benchmark
    except ImportError:
        pass
    else:
        stats = await run_stats_benchmark(rows=int(os.environ.get("OTKLIK_BENCH_ROWS", "1000000")))
        print(f"отчёт /stats: {stats}")
    from bot.health_bench import bench_health

    communities = int(os.environ.get("OTKLIK_BENCH_COMMUNITIES", "1000"))
    health = await bench_health(communities)
    print(
        f"здоровье страниц: счётчики {health['communities']} сообществ ВКонтакте и "
        f"{health['posts']} постов за {health['http_requests']} HTTP-запросов, "
        f"{health['refresh_s']} с, пик памяти {health['peak_rss_mb']} МБ ({health})"
    )
    from handlers.web.bench import run_dashboard_benchmark, summary_line

    dashboard = await run_dashboard_benchmark(
        rows=int(os.environ.get("OTKLIK_BENCH_ROWS", "1000000"))
    )
    print(f"{summary_line(dashboard)} ({dashboard})")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(run_all()))
