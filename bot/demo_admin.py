"""The demo's administrator: appoints the operator before the simulated days and, at the end,
tries what an admin does in chat — /help, /page add, /page, /staff, /team.

Every command goes through the real dispatcher against the sandbox, as a person would type it.
"""

from __future__ import annotations

import re
from typing import Any

from bot.clock import SimulatedClock
from bot.sandbox import TelegramSandbox

ADMIN: dict[str, Any] = {
    "id": 9050,
    "is_bot": False,
    "first_name": "Алексей",
    "last_name": "Администратор",
}


def _plain(text: str) -> str:
    return (
        re.sub(r"<[^>]+>", "", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )


async def say(
    sandbox: TelegramSandbox, clock: SimulatedClock, user: dict[str, Any], text: str
) -> list[str]:
    """Send `text` to the bot in the person's private chat; the bot's answers (plain text)."""
    chat = int(user["id"])
    before = len(sandbox.sent_messages(chat))
    sent = sandbox.inject_message(chat, user, text, date=clock())
    await sandbox.wait_for_confirmed(sent["update_id"], timeout=30)
    return [_plain(m.text or "") for m in sandbox.sent_messages(chat)[before:] if m.text]


async def appoint_operator(
    sandbox: TelegramSandbox, clock: SimulatedClock, operator: dict[str, Any]
) -> None:
    """Before the first day: the admin makes the press officer an operator (no open chat)."""
    command = f"/staff operator {operator['id']}"
    answers = await say(sandbox, clock, ADMIN, command)
    print(f"Администратор: {command} → {' '.join(answers)}")


async def admin_tour(
    sandbox: TelegramSandbox, clock: SimulatedClock, channel_username: str, period: str
) -> None:
    """At the end: what an admin sees with /help, /page add, /page and /team."""
    print("\n=== Администратор: /help, /page add, /page, /team ===")
    for command in (
        "/help",
        f"/page add @{channel_username}",
        "/page",
        f"/team {period}",
    ):
        print(f"> {command}")
        for answer in await say(sandbox, clock, ADMIN, command):
            print(answer)
