"""The demo's page health: posts with video, subscribers that grow, views and reactions.

Kept apart from bot/demo.py (whose story belongs to the intake and the press office): it adds
to the simulated days what page health needs — video posts on both pages, member counts that
change every day, views that grow for days after a post (more for video), a channel's reactions
— and runs the counter refresh (bot/services/health_refresh.py) beside the scheduler, through
the real aiogram and vk_api clients, the channel's public preview and `execute`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bot.app import AppContext
from bot.services.health_refresh import CounterSource, HealthRefresh
from bot.services.intake import Intake

SERVICE_TOKEN = "demo-service-token"
REFRESH_EVERY = timedelta(hours=6)


class HealthTicks:
    """The scheduler's tick, and every `REFRESH_EVERY` of simulated time a counter refresh."""

    def __init__(self, scheduler: Any, refresh: HealthRefresh) -> None:
        self.scheduler = scheduler
        self.refresh = refresh
        self._last: datetime | None = None

    async def tick(self) -> Any:
        report = await self.scheduler.tick()
        now = self.refresh.clock()
        if self._last is None or now - self._last >= REFRESH_EVERY:
            await self.refresh.run_once()
            self._last = now
        return report


def _views(age_h: float, video: bool, seed: int) -> int:
    """Views grow fast on the first day and level off within a week; video reaches more."""
    ceiling = (9_000 if video else 4_000) * random.Random(seed).uniform(0.7, 1.3)
    return int(ceiling * (1 - math.exp(-max(age_h, 0.0) / 30)))


def plan_page_health(
    state: Any, days: int, start: datetime, *, channel_id: int, vk_group: int
) -> None:
    """Video posts, growing members, views and reactions, in the demo's steps."""
    sandbox, box = state.sandbox, state.vk.sandbox
    box.add_service_token(SERVICE_TOKEN)
    from bot.sandbox.vk.health import attachment

    for day in range(days):
        noon = start + timedelta(days=day, hours=4)  # 12:00 Moscow

        def grow(day: int = day) -> None:
            sandbox.set_member_count(channel_id, 48_000 + 140 * day)
            box.set_members_count(vk_group, 23_000 + 55 * day)

        state.at(noon - timedelta(hours=3), grow)
        if day % 2 == 0:

            def video(day: int = day, noon: datetime = noon) -> None:
                _, forward = sandbox.inject_channel_post(
                    channel_id, f"Видео: как прошёл день {day + 1}", date=noon, kind="video"
                )
                if forward is not None:
                    state.last_update = max(state.last_update, forward["update_id"])
                box.add_post(-vk_group, "Клип недели", noon, attachments=[attachment("clip")])

            state.at(noon, video)

        def counters(moment: datetime = noon + timedelta(hours=2)) -> None:
            for post in sandbox.channel_posts(channel_id):
                age_h = (moment.timestamp() - int(post["date"])) / 3600
                views = _views(age_h, "video" in post, int(post["message_id"]))
                sandbox.set_views(channel_id, post["message_id"], views)
                reactions = {"👍": views // 60, "❤": views // 150}
                update = sandbox.inject_reaction_count(
                    channel_id, post["message_id"], reactions, date=moment
                )
                state.last_update = max(state.last_update, update["update_id"])
            for post_id, date, video in box.wall_posts(-vk_group):
                views = _views((moment.timestamp() - date) / 3600, video, post_id)
                box.set_post_counters(
                    -vk_group, post_id, views=views, likes=views // 45, reposts=views // 400
                )

        state.at(noon + timedelta(hours=2), counters)


async def start_refresh(
    app: AppContext,
    scheduler: Any,
    *,
    token: str,
    api_server: str,
    vk_server: str,
    vk_group: int,
    vk_token: str,
) -> tuple[HealthTicks, Callable[[], Awaitable[None]]]:
    """The scheduler with the counter refresh beside it, and what closes the refresh's bot."""
    from handlers.telegram.health import TelegramCounterSource
    from handlers.telegram.setup import make_bot
    from handlers.vk.health import VkCounterSource

    bot = make_bot(token, api_server)
    sources: list[CounterSource] = [
        TelegramCounterSource(bot, preview_views=True, preview_server=api_server),
        VkCounterSource(
            service_token=SERVICE_TOKEN,
            group_tokens={vk_group: vk_token},
            api_server=vk_server,
            rps_delay=0,
        ),
    ]
    refresh = HealthRefresh(
        app.sessions, Intake(app.sessions, app.defaults), sources, clock=app.clock
    )
    return HealthTicks(scheduler, refresh), bot.session.close
