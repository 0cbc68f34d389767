"""The scheduled refresh of page-health counters: subscribers daily, posts at 24 h, 72 h, 7 d.

Nothing is kept in memory between runs: what is due is read from the database (a page without
today's subscriber reading; a post past a mark with no counters kept for it), so a restart
resumes where the last run stopped. What a platform says goes through the one intake path
(`Intake.deliver`, events of bot/events.py), like every other update.

The platforms are reached through `CounterSource`s (handlers/telegram/health.py,
handlers/vk/health.py), which batch their calls (VK: 500 communities a `groups.getById`,
25 `wall.getById` of 100 posts in one `execute`), back off on rate limits, and answer what
they cannot read as an event with `None` and a reason. One platform's or one page's failure
is logged and never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, text

from bot.clock import Clock, utc_now
from bot.events import (
    Event,
    PageKind,
    PageRef,
    Platform,
    PostCountersEvent,
    SubscribersEvent,
)
from bot.services.intake import Intake, IntakeJob
from storage.buckets import day_number
from storage.engine import SessionFactory
from storage.health_models import COUNTER_MARKS_H
from storage.repositories import as_utc
from storage.types import UTCDateTime

logger = logging.getLogger(__name__)

# Pages whose subscribers and posts are followed.
HEALTH_PAGE_KINDS = (PageKind.TG_CHANNEL, PageKind.VK_GROUP, PageKind.VK_WALL)
# A mark not reached by a reading within this long after it is given up (the post stays, its
# counters at that mark are unknown).
MARK_GRACE = timedelta(days=7)
EVENTS_PER_JOB = 500
REFRESH_EVERY_S = 600.0


@dataclass(frozen=True, slots=True)
class DuePost:
    """A post with a counter mark reached and not kept."""

    page: PageRef
    post_id: str
    published_at: datetime


class CounterSource(Protocol):
    """One platform's way to read subscribers and post counters."""

    platform: Platform

    async def subscribers(self, pages: Sequence[PageRef], at: datetime) -> list[SubscribersEvent]:
        """A reading for every page in `pages` (None with a reason where none could be made)."""
        ...

    async def counters(self, posts: Sequence[DuePost], at: datetime) -> list[PostCountersEvent]:
        """Counters for the posts it could read; gone posts with `gone`; gaps with a reason."""
        ...


@dataclass(slots=True)
class RefreshReport:
    pages: int = 0
    posts: int = 0
    events: int = 0
    failed_sources: list[str] = field(default_factory=list)


class HealthRefresh:
    """Reads what is due, asks the platforms, hands their answers to the intake."""

    def __init__(
        self,
        sessions: SessionFactory,
        intake: Intake,
        sources: Sequence[CounterSource],
        *,
        clock: Clock = utc_now,
        interval_s: float = REFRESH_EVERY_S,
    ) -> None:
        self.sessions = sessions
        self.intake = intake
        self.sources = {source.platform.value: source for source in sources}
        self.clock = clock
        self.interval_s = interval_s
        self._stopping = asyncio.Event()

    async def run_once(self) -> RefreshReport:
        """One refresh at `clock()`: subscribers of the day, then the posts' marks."""
        now = self.clock()
        report = RefreshReport()
        pages = await self.pages_without_reading(now)
        for platform, refs in _by_platform(pages).items():
            source = self.sources.get(platform)
            if source is None:
                continue
            try:
                events: list[Event] = list(await source.subscribers(refs, now))
            except Exception as error:
                logger.exception("не удалось прочитать число подписчиков страниц (%s)", platform)
                report.failed_sources.append(f"{platform}: {type(error).__name__}")
                continue
            report.pages += len(refs)
            report.events += await self._deliver(events)
        due = await self.due_posts(now)
        for platform, posts in _posts_by_platform(due).items():
            source = self.sources.get(platform)
            if source is None:
                continue
            try:
                events = list(await source.counters(posts, now))
            except Exception as error:
                logger.exception("не удалось прочитать счётчики публикаций страниц (%s)", platform)
                report.failed_sources.append(f"{platform}: {type(error).__name__}")
                continue
            report.posts += len(posts)
            report.events += await self._deliver(events)
        return report

    async def _deliver(self, events: list[Event]) -> int:
        for start in range(0, len(events), EVENTS_PER_JOB):
            chunk = tuple(events[start : start + EVENTS_PER_JOB])
            await self.intake.deliver(IntakeJob(raw=None, events=chunk))
        return len(events)

    async def pages_without_reading(self, now: datetime) -> list[PageRef]:
        """Active followed pages with no known subscriber count for today (UTC)."""
        kinds = ", ".join(f"'{kind.value}'" for kind in HEALTH_PAGE_KINDS)
        sql = text(
            "SELECT platform, external_id, kind, title, username, linked_chat_id FROM page p "
            f"WHERE is_active AND kind IN ({kinds}) AND NOT EXISTS (SELECT 1 FROM page_snapshot s "
            "WHERE s.page_id = p.id AND s.day = :day AND s.subscribers IS NOT NULL) ORDER BY id"
        )
        async with self.sessions() as session:
            rows = (await session.execute(sql, {"day": day_number(now)})).all()
        return [
            PageRef(Platform(row[0]), row[1], PageKind(row[2]), row[3], row[4], row[5])
            for row in rows
        ]

    async def due_posts(self, now: datetime) -> list[DuePost]:
        """Posts past a mark with no counters kept for it (oldest first), within the grace."""
        first, last = min(COUNTER_MARKS_H), max(COUNTER_MARKS_H)
        sql = text(
            "SELECT pg.platform, pg.external_id, pg.kind, pg.title, pg.username, "
            "pg.linked_chat_id, p.external_id, p.published_at, "
            "(SELECT COUNT(*) FROM post_counter c WHERE c.post_id = p.id) "
            "FROM post p JOIN page pg ON pg.id = p.page_id "
            "WHERE p.deleted_at IS NULL AND pg.is_active "
            "AND p.published_at >= :oldest AND p.published_at <= :youngest "
            "ORDER BY p.published_at, p.id"
        ).bindparams(
            bindparam("oldest", type_=UTCDateTime), bindparam("youngest", type_=UTCDateTime)
        )
        params = {
            "oldest": now - timedelta(hours=last) - MARK_GRACE,
            "youngest": now - timedelta(hours=first),
        }
        due = []
        async with self.sessions() as session:
            rows = (await session.execute(sql, params)).all()
        for row in rows:
            published = as_utc(row[7])
            assert published is not None
            age_h = (now - published).total_seconds() / 3600
            reached = [mark for mark in COUNTER_MARKS_H if age_h >= mark]
            # Marks are kept in order, all the reached ones at once: fewer kept = one is due;
            # a mark more than the grace behind is given up.
            live = [m for m in reached if age_h - m <= MARK_GRACE.total_seconds() / 3600]
            if int(row[8]) < len(reached) and live:
                page = PageRef(Platform(row[0]), row[1], PageKind(row[2]), row[3], row[4], row[5])
                due.append(DuePost(page, row[6], published))
        return due

    async def run(self) -> None:
        """Refresh every `interval_s` until `stop()`; a failed run is logged, the next goes on."""
        while not self._stopping.is_set():
            try:
                report = await self.run_once()
                if report.events:
                    logger.info(
                        "здоровье страниц обновлено: страниц — %d, публикаций — %d",
                        report.pages,
                        report.posts,
                    )
            except Exception:
                logger.exception("обновление здоровья страниц не удалось; повторим позже")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    async def stop(self) -> None:
        self._stopping.set()


def _by_platform(pages: Sequence[PageRef]) -> dict[str, list[PageRef]]:
    grouped: dict[str, list[PageRef]] = {}
    for page in pages:
        grouped.setdefault(page.platform.value, []).append(page)
    return grouped


def _posts_by_platform(posts: Sequence[DuePost]) -> dict[str, list[DuePost]]:
    grouped: dict[str, list[DuePost]] = {}
    for post in posts:
        grouped.setdefault(post.page.platform.value, []).append(post)
    return grouped
