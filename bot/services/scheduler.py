"""Periodic jobs: reminders, the weekly digest, reply-quality scoring, rollup refreshes and
SQLite's planner statistics.

Nothing is kept in memory between ticks: a tick reads what is due from `appeal` and
`reminder_log`, records it, sends it and marks it sent, so a restart (or a crash) neither
repeats nor skips a reminder. With PostgreSQL and several workers one tick at a time holds an
advisory lock; the others skip that round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy import text

from bot.app import AppContext
from bot.services import digest, quality, reminder_log, sent_cards
from bot.services.doubtful import DoubtfulService
from bot.services.reminders import ReminderService, TickReport
from storage import rollup
from storage.engine import refresh_plan_statistics

logger = logging.getLogger(__name__)

TICK_SECONDS = 30.0
# Template detection compares a reply with the page's other replies, so it runs as a batch.
QUALITY_EVERY = timedelta(hours=1)
QUALITY_LOOKBACK = timedelta(days=3)
# SQLite's statistics are checked this often and re-analyzed when stale (storage/plan_stats.py).
STATISTICS_EVERY = timedelta(hours=1)
# A fixed 32-bit number that no other job uses: with the schema it keys the jobs' lock.
ADVISORY_LOCK_KEY = 0x4F544B  # "OTK"


class Scheduler:
    """Runs `tick` every `interval` seconds until `stop`; tests call `tick` directly."""

    def __init__(self, app: AppContext, *, interval: float = TICK_SECONDS) -> None:
        self.app = app
        self.interval = interval
        self._stopping = asyncio.Event()
        self._warned_no_notifier = False
        self._scored_at: datetime | None = None
        self._statistics_at: datetime | None = None

    async def tick(self) -> TickReport:
        """Plan and send everything due at `app.clock()`."""
        now = self.app.clock()
        report = TickReport()
        async with self._exclusive() as acquired:
            if not acquired:
                logger.debug("another worker runs the periodic jobs; skipping this tick")
                return report
            await self._refresh_rollups()
            if self._statistics_at is None or now - self._statistics_at >= STATISTICS_EVERY:
                self._statistics_at = now
                await refresh_plan_statistics(self.app.engine)
            async with self.app.sessions() as session:
                service = ReminderService(session, self.app.settings, self.app.defaults)
                await service.plan(now, report)
                doubts = DoubtfulService(session, self.app.settings, self.app.defaults)
                await doubts.plan(now, report)
                if self._scored_at is None or now - self._scored_at >= QUALITY_EVERY:
                    scored = await quality.score_replies(session, since=now - QUALITY_LOOKBACK)
                    self._scored_at = now
                    logger.debug("rescored %r replies", scored)
                await digest.plan_digests(session, self.app.settings, now, report)
                await session.commit()
                notifier = self.app.notifier
                if notifier is None:
                    if not self._warned_no_notifier:
                        logger.warning(
                            "Telegram не настроен: напоминания планируются, но не отправляются"
                        )
                        self._warned_no_notifier = True
                    return report
                # Sends a crash interrupted are due again after their lease (at least once).
                await reminder_log.recover(session, now)
                await service.deliver(notifier, now, report)
                await doubts.deliver(notifier, now, report)
                # Cards follow their appeals: answers, re-opens and decisions made elsewhere.
                report.edited += await sent_cards.refresh_cards(
                    session, notifier, self.app.defaults, now
                )
                await digest.deliver_digests(session, self.app, notifier, now, report)
                await session.commit()
        if report.planned or report.sent or report.failed:
            logger.info(
                "напоминания на %s: запланировано — %r, отправлено — %r (сообщений — %r), "
                "не доставлено — %r, ждут рабочего времени — %r",
                now.isoformat(),
                report.planned,
                report.sent,
                report.messages,
                report.failed,
                report.waiting,
            )
        return report

    async def _refresh_rollups(self) -> None:
        """Recompute the report rollups writers marked stale, so reports need not."""
        try:
            async with self.app.engine.begin() as connection:
                refreshed = await connection.run_sync(rollup.refresh)
        except Exception:
            # A failed refresh leaves the marks; the next tick or report retries.
            logger.exception("не удалось пересчитать сводные данные отчётов")
            return
        if refreshed:
            logger.debug("refreshed %r stale rollup page-days", refreshed)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[bool]:
        """PostgreSQL: a session advisory lock on a connection of its own; SQLite: always."""
        if self.app.engine.dialect.name != "postgresql":
            yield True
            return
        # A transaction-scoped lock on a connection of its own: however the tick ends (even
        # cancelled), the transaction ends and the lock with it. The schema is part of the key,
        # so two deployments in one database do not take turns.
        async with self.app.engine.connect() as connection, connection.begin():
            acquired = bool(
                await connection.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key, hashtext(current_schema()))"),
                    {"key": ADVISORY_LOCK_KEY},
                )
            )
            yield acquired

    async def run(self) -> None:
        """Tick until `stop()`; an error in one tick is logged and the next tick goes on."""
        logger.info("планировщик запущен (проверка каждые %r с)", self.interval)
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception:
                logger.exception("ошибка планировщика; повтор при следующей проверке")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
        logger.info("планировщик остановлен")

    async def stop(self) -> None:
        self._stopping.set()
