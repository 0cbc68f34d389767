# ruff: noqa: F811  (the fixtures imported from tests/test_pressoffice.py are parameters)
"""`/page ID final N [M]`: a page's own final-answer terms, set in chat by an admin (issue 12).

The real aiogram client polls the Telegram sandbox; the terms land on the page and give the
next appeals their final deadline (docs/METRICS.md, FINAL_ANSWER_DAYS per page).
"""

from __future__ import annotations

import re

from sqlmodel import select

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.sandbox import TelegramSandbox
from handlers.telegram.pressoffice import PAGE_HELP
from storage.models import Appeal, Page
from tests.telegram_harness import PRESS_CHAT_ID, RunningIntake
from tests.test_pressoffice import (  # noqa: F401 (fixtures)
    ADMIN,
    SUPERVISOR,
    _command,
    _ingest,
    app,
    clock,
    intake,
    sandbox,
)
from tests.test_reminders import HEATING, ROADS, WASTE, citizen_event, msk


def last_text(sandbox: TelegramSandbox) -> str:
    text = sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or ""
    return re.sub(r"<[^>]+>", "", text).replace("\u00a0", " ")


async def test_admin_sets_final_answer_days_of_a_page(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    [before] = await _ingest(app, citizen_event(msk(11, 2, 9), ROADS, "501", 101))
    async with app.sessions() as session:
        page_id = (await session.exec(select(Page.id))).one()

    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, f"/page {page_id} final 5 2")
    assert "только администраторы" in last_text(sandbox)

    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id} final 5 2")
    answer = last_text(sandbox)
    assert answer.startswith("Сохранено.")
    assert "по существу за 5 рабочих дней, срочные за 2 рабочих дня" in answer
    assert "Новые сроки действуют для обращений, полученных с этого момента." in answer

    for wrong in ("0", "семь", "61", "5 2 1", "-3"):
        await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id} final {wrong}")
        reply = last_text(sandbox)
        assert "Сохранено" not in reply, wrong
        assert "final 7 1" in reply, wrong  # the error, or the help, shows how to write it

    async with app.sessions() as session:
        page = await session.get(Page, page_id)
        assert page is not None
        assert (page.final_answer_days, page.final_answer_urgent_days) == (5, 2)

    # Appeals from now on get the page's terms; the one received before keeps its deadline.
    clock.set(msk(11, 2, 10))
    ordinary, urgent = await _ingest(
        app,
        citizen_event(msk(11, 2, 10), WASTE, "502", 102, post=11),
        citizen_event(msk(11, 2, 10), HEATING, "503", 103, post=12),
    )
    async with app.sessions() as session:
        deadlines = {
            appeal.id: appeal.final_deadline
            for appeal in (await session.exec(select(Appeal))).all()
        }
    # 4 November is a holiday: Mon 2.11 + 7 working days is Thu 12.11, + 5 is Tue 10.11,
    # + 2 (urgent) is Thu 5.11; each at 18:00.
    assert deadlines == {
        before: msk(11, 12, 18),
        ordinary: msk(11, 10, 18),
        urgent: msk(11, 5, 18),
    }

    # One number changes only the ordinary term; the listing declines «день» by the number.
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id} final 1")
    assert "по существу за 1 рабочий день, срочные за 2 рабочих дня" in last_text(sandbox)
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id} final 21 1")
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, "/page")
    assert "по существу за 21 рабочий день, срочные за 1 рабочий день" in last_text(sandbox)


def test_page_help_names_the_final_command() -> None:
    assert "/page ID final 7 1 — рабочие дни на ответ по существу: обычные и срочные" in PAGE_HELP
