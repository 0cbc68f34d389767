"""The VK part of `otklik demo`: a VK community beside the Telegram channel.

The real VkIntake (vk_api's Bots Long Poll over HTTP) runs against the VK sandbox, fed over the
same simulated days as the Telegram part (bot/demo.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import datetime, timedelta
from typing import Any

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.demo_state import DemoState
from bot.services.policy import page_calendar

VK_GROUP = 230_000_001
VK_TOKEN = "vk1.a.DEMO-community-token"
VK_ADMIN = 9300
VK_APPEALS = (
    "Когда починят дорогу на Заречной? Ямы по колено",
    "Почему не вывозят мусор с площадки на Полевой, 3? Неделю стоит",
    "В доме 9 на Школьной нет холодной воды с утра, когда дадут?",
    "Прошу проверить детскую площадку во дворе Мира, 20 — сломаны качели",
    "Когда откроют новую поликлинику в микрорайоне Северный?",
)
VK_REPLIES = (
    "Здравствуйте! Ремонт дороги включён в план на май 2027 года, подрядчик — «Дорстрой».",
    "Добрый день! Управляющая компания вывезла мусор сегодня, график восстановлен.",
    "Здравствуйте! Аварийная служба водоканала устранила порыв, вода будет до 17:00.",
)


class VkDemo:
    """The VK sandbox, the VK intake and the simulated community for the demo."""

    def __init__(self, clock: SimulatedClock) -> None:
        from bot.sandbox.vk import VkSandbox

        self.sandbox = VkSandbox(clock=clock, history_limit=100_000)
        self.intake: Any = None
        self.task: asyncio.Task[None] | None = None
        self.post_id = 0

    async def start(self) -> str:
        base_url = await self.sandbox.start()
        self.sandbox.add_group(VK_GROUP, "Администрация областного центра", VK_TOKEN)
        self.sandbox.add_user(VK_ADMIN, "Ирина", "Соколова")
        return base_url

    def settings(self) -> dict[str, Any]:
        return {"VK_GROUP_TOKENS": f"{VK_GROUP}:{VK_TOKEN}", "VK_API_SERVER": self.sandbox.base_url}

    async def start_intake(self, app: AppContext) -> None:
        from handlers.vk.intake import VkIntake

        self.intake = VkIntake(app, wait=1, rps_delay=0)
        self.task = asyncio.create_task(self.intake.run(), name="vk-intake")
        await asyncio.wait_for(self.intake.wait_ready(), 20)

    async def settle(self) -> None:
        """Until the intake has handled every event the sandbox emitted."""
        emitted = len(self.sandbox.pending_events(VK_GROUP))
        async with asyncio.timeout(20):
            while self.intake.processed < emitted:  # noqa: ASYNC110  (counter of another task)
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self.intake is not None:
            await self.intake.stop()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.sandbox.stop()

    def plan(self, state: DemoState, app: AppContext, days: int, start: datetime) -> None:
        """Wall comments, the community's replies and one dialogue a working day from `start`."""
        rng = random.Random(4_11_2026)
        calendar = page_calendar(None, app.defaults)
        box, wall = self.sandbox, -VK_GROUP
        for day in range(days):
            morning = start + timedelta(days=day)
            if (morning + timedelta(hours=3)).weekday() >= 5:
                continue
            post_at = morning + timedelta(hours=1, minutes=30)

            def publish(post_at: datetime = post_at, day: int = day) -> None:
                self.post_id = box.add_post(wall, f"Новости города, день {day + 1}", post_at)

            state.at(post_at, publish)
            for n in range(rng.randint(2, 4)):
                moment = post_at + timedelta(minutes=rng.randint(15, 9 * 60))
                citizen = 300_000 + day * 10 + n
                text = rng.choice(VK_APPEALS)
                holder: dict[str, int] = {}

                def comment(
                    citizen: int = citizen,
                    text: str = text,
                    moment: datetime = moment,
                    holder: dict = holder,
                ) -> None:
                    box.add_user(citizen, "Житель", f"№{citizen}")
                    holder["id"] = box.add_comment(wall, self.post_id, citizen, text, moment)
                    holder["post"] = self.post_id

                state.at(moment, comment)
                fate = rng.random()
                if fate < 0.6:
                    hours = rng.uniform(0.5, 6) if fate < 0.45 else rng.uniform(9, 16)
                    reply_at = calendar.add_working_hours(moment, hours)

                    def reply(at: datetime = reply_at, holder: dict = holder) -> None:
                        box.add_comment(
                            wall, holder["post"], wall, rng.choice(VK_REPLIES), at, holder["id"]
                        )

                    state.at(reply_at, reply)
                elif fate < 0.7:
                    # Rude, or just inconvenient: the community deletes it.
                    delete_at = moment + timedelta(hours=1)

                    def delete(holder: dict = holder) -> None:
                        box.delete_comment(wall, holder["id"], wall)

                    state.at(delete_at, delete)
            # A dialogue: two messages, then the community answers both at once.
            peer = 400_000 + day
            asked = morning + timedelta(hours=rng.uniform(2, 7))
            for k, text in enumerate(
                ("Здравствуйте! Когда включат отопление в доме 4 на Лесной?", "В квартире +15")
            ):

                def write(
                    peer: int = peer, text: str = text, at: datetime = asked + timedelta(minutes=k)
                ) -> None:
                    box.send_community_message(VK_GROUP, peer, peer, text, at)

                state.at(asked + timedelta(minutes=k), write)
            answer_at = calendar.add_working_hours(asked, rng.uniform(0.5, 4))

            def answer(peer: int = peer, at: datetime = answer_at) -> None:
                box.send_community_message(
                    VK_GROUP,
                    peer,
                    VK_ADMIN,
                    "Здравствуйте! Теплосеть подключит дом сегодня до 18:00, проверим лично.",
                    at,
                    out=True,
                )

            state.at(answer_at, answer)
