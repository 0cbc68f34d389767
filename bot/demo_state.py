"""The state `otklik demo` plans its simulated days in: timed steps and what they refer to.

bot/demo.py builds it and runs the steps; bot/demo_vk.py and bot/demo_health.py add theirs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.clock import SimulatedClock

if TYPE_CHECKING:
    from bot.sandbox import TelegramSandbox


@dataclass(order=True)
class Step:
    at: datetime
    order: int
    action: Any = field(compare=False)


@dataclass
class DemoState:
    sandbox: TelegramSandbox
    rng: random.Random
    clock: SimulatedClock
    posts: dict[int, int] = field(default_factory=dict)  # day -> forward message id
    last_update: int = 0
    steps: list[Step] = field(default_factory=list)
    counter: int = 0
    vk: Any = None  # VkDemo: the VK community beside the Telegram channel

    def at(self, moment: datetime, action: Any) -> None:
        self.counter += 1
        self.steps.append(Step(moment, self.counter, action))
