"""What every part of a running Otklik shares: settings, database, page defaults, clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock, utc_now
from bot.config import PageDefaults, Settings
from storage.engine import SessionFactory, session_factory


def defaults_from(settings: Settings) -> PageDefaults:
    return PageDefaults(
        timezone=settings.TIMEZONE,
        work_hours=settings.WORK_HOURS,
        shorten_preholiday=settings.SHORTEN_PREHOLIDAY,
        sla_hours=settings.SLA_HOURS,
        sla_urgent_hours=settings.SLA_URGENT_HOURS,
        region_audience=settings.REGION_AUDIENCE,
        posts_per_week_norm=settings.POSTS_PER_WEEK_NORM,
        dashboard_url=settings.WEB_PUBLIC_URL,
        final_answer_days=settings.FINAL_ANSWER_DAYS,
        final_answer_urgent_days=settings.FINAL_ANSWER_URGENT_DAYS,
    )


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    defaults: PageDefaults
    clock: Clock = utc_now
    # Press chats known to this process: PRESS_CHAT_ID plus chats bound with /bind.
    press_chats: set[int] = field(default_factory=set)
    # Sends messages to chats (reminders, digests); set by the runner once Telegram is up.
    notifier: Any = None

    @classmethod
    def create(cls, settings: Settings, engine: AsyncEngine, clock: Clock = utc_now) -> AppContext:
        press = {settings.PRESS_CHAT_ID} if settings.PRESS_CHAT_ID is not None else set()
        return cls(settings, engine, session_factory(engine), defaults_from(settings), clock, press)
