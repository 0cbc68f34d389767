"""The final-answer stage's half-time reminder (issue 12, item 2), through the real aiogram client.

The Bot and the notifier talk HTTP to the Telegram sandbox; a simulated clock ticks the
scheduler every 30 minutes across two weeks with a public holiday (Wednesday 4 November 2026).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.services.ladder import (
    FINAL_DEADLINE,
    FINAL_HALF,
    REOPENED,
    final_half_moment,
    final_moments,
    is_due,
)
from bot.services.policy import PageDefaults, page_calendar
from bot.services.scheduler import Scheduler
from storage.models import Appeal
from tests.factories import INTERIM_ANSWER
from tests.test_reminders import (
    PRESS_CHAT,
    ROADS,
    WASTE,
    World,
    appeal_ids,
    citizen_event,
    close_world,
    local_time,
    make_world,
    msk,
    page_reply,
)


def plain(html_text: str | None) -> str:
    return re.sub(r"<[^>]+>", "", html_text or "").replace("\u00a0", " ")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    built = await make_world(tmp_path, msk(11, 2, 10))
    yield built
    await close_world(built)


def test_half_of_the_final_stage_counts_working_time_only() -> None:
    """Monday 10:00, 7 working days: due Thu 12.11 18:00 (4.11 is a holiday); 71 h, half 35.5 h."""
    calendar = page_calendar(None, PageDefaults())
    deadline = calendar.end_of_working_day_after(msk(11, 2, 10), 7)
    assert deadline == msk(11, 12, 18)
    # Mon 8 h + Tue 9 h + Thu 9 h + Fri 9 h = 35 h, then half an hour on Monday 9 November.
    assert final_half_moment(msk(11, 2, 10), deadline, calendar) == msk(11, 9, 9, 30)


async def test_final_half_reminder_after_an_interim_reply(world: World) -> None:
    """An interim reply only: the press chat hears at half the final stage and at its deadline.

    A answered on the merits meanwhile hears nothing more; C, never answered at all, is in the
    daily summaries already, so no half-time card of the final stage is sent about it.
    """
    roads = citizen_event(msk(11, 2, 10), ROADS, "501", 101, post=10)
    waste = citizen_event(msk(11, 2, 10), WASTE, "502", 102, post=11)
    never = citizen_event(msk(11, 2, 10, 30), ROADS, "503", 103, post=12)
    a_interim = replace(page_reply(msk(11, 2, 11), 101, 201), text=INTERIM_ANSWER)
    b_interim = replace(
        page_reply(msk(11, 2, 11), 102, 202), text=INTERIM_ANSWER, thread=waste.thread
    )
    b_final = replace(page_reply(msk(11, 6, 12), 102, 203), thread=waste.thread)
    plan = [roads, waste, never, a_interim, b_interim, b_final]
    ids: list[int | None] = []
    done = 0
    scheduler = Scheduler(world.app)
    while world.clock() <= msk(11, 13, 9, 30):
        while done < len(plan) and plan[done].sent_at <= world.clock():
            ids.append(await world.ingest(plan[done]))
            done += 1
        await scheduler.tick()
        world.clock.advance(timedelta(minutes=30))
    a, b, c = ids[0], ids[1], ids[2]
    assert None not in (a, b, c) and ids[3] == a and ids[5] == b

    sent = world.sandbox.sent_messages(PRESS_CHAT)
    final_half = [m for m in sent if "половина срока ответа по существу" in plain(m.text)]
    assert [(local_time(m), appeal_ids(m)) for m in final_half] == [("Mon 09.11 09:30", [a])]
    text = plain(final_half[0].text)
    assert text.startswith("⏳ Прошла половина срока ответа по существу")
    assert (
        "💬 Промежуточный ответ пн 02.11 в 11:00; ответ по существу — до чт 12.11 в 18:00"
        " (осталось 35 ч 30 мин рабочего времени)"
    ) in text
    labels = [b["text"] for row in final_half[0].reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    assert labels == ["Взять в работу", "Не обращение", "Ответили вне соцсети"]

    final_deadline = [m for m in sent if "Истёк срок ответа по существу" in plain(m.text)]
    assert [(local_time(m), sorted(appeal_ids(m))) for m in final_deadline] == [
        ("Thu 12.11 18:00", sorted([a, c]))  # A and C together; B was answered on Friday 6th
    ]
    assert all(b not in appeal_ids(m) for m in sent[2:])  # B: nothing after its first days
    rows = {(row.kind, row.appeal_id): row.status for row in await world.rows()}
    assert rows[("final_half", a)] == "sent"
    assert rows[("final_half", c)] == "cancelled"  # C's first reaction was overdue then
    assert ("final_half", b) not in rows and ("final_deadline", b) not in rows


def test_a_reopened_stage_has_its_own_half_time_reminder() -> None:
    """After a 👎 the new final stage counts from the re-open: its own key, its own half."""
    calendar = page_calendar(None, PageDefaults())
    reopened = msk(11, 9, 10)  # Monday 9 November 10:00
    deadline = calendar.end_of_working_day_after(reopened, 7)  # Wednesday 18 November 18:00
    appeal = Appeal(
        id=7,
        page_id=1,
        thread_id=1,
        received_at=msk(11, 2, 10),
        sla_hours=8.0,
        sla_deadline=msk(11, 2, 18),
        first_response_at=msk(11, 2, 11),
        final_response_at=msk(11, 2, 11),
        final_deadline=msk(11, 12, 18),
        reopened_at=reopened,
        reopen_deadline=deadline,
    )
    moments = final_moments(appeal, msk(11, 10, 12), calendar)
    assert moments == {
        REOPENED: ("7", reopened),
        FINAL_HALF: ("7:r", final_half_moment(reopened, deadline, calendar)),
        FINAL_DEADLINE: ("7:r", deadline),
    }
    assert moments[FINAL_HALF][1] == msk(11, 13, 9, 30)  # 71 working hours, half is 35.5
    assert is_due(FINAL_HALF, appeal, msk(11, 13, 9, 30))
    # Answered again on the merits: nothing more to remind of.
    appeal.reanswered_at = msk(11, 12, 12)
    assert final_moments(appeal, msk(11, 13, 9, 30), calendar) == {}
    assert not is_due(FINAL_HALF, appeal, msk(11, 13, 9, 30))
