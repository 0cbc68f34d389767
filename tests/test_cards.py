# ruff: noqa: F811  (the fixtures imported from tests/test_pressoffice.py are parameters)
"""Cards as live objects (issue 12 item 1) and dissatisfaction back to work (item 3).

The real aiogram client polls the Telegram sandbox; buttons are pressed as a press officer
would, cards are edited through editMessageText, and the database is the one the intake uses.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.events import AuthorRole, MessageEvent, ThreadKind, ThreadRef
from bot.ru import plural
from bot.sandbox import TelegramSandbox
from bot.sandbox.telegram import SentMessage
from bot.services.scheduler import Scheduler
from tests.telegram_harness import GROUP_ID, PRESS_CHAT_ID, RunningIntake
from tests.test_pressoffice import (  # noqa: F401 (fixtures)
    OPERATOR,
    SUPERVISOR,
    _command,
    _ingest,
    _press,
    _report,
    app,
    clock,
    intake,
    sandbox,
)
from tests.test_reminders import (
    CHANNEL_PAGE,
    PRESS_CHAT,
    ROADS,
    WASTE,
    appeal_ids,
    citizen_event,
    close_world,
    make_world,
    msk,
    page_reply,
)

COLLEAGUE = {"id": 7002, "is_bot": False, "first_name": "Пётр", "last_name": "Петров"}


def plain(html_text: str | None) -> str:
    return re.sub(r"<[^>]+>", "", html_text or "").replace("\u00a0", " ")


def current(sandbox: TelegramSandbox, message: SentMessage) -> tuple[str, list[str]]:
    """The message as it stands now (after edits): its HTML text and button labels."""
    edits = [
        e for e in sandbox.edits if (e.chat_id, e.message_id) == (PRESS_CHAT_ID, message.message_id)
    ]
    text = edits[-1].text if edits else message.text
    state = sandbox.message(PRESS_CHAT_ID, message.message_id)
    assert state is not None
    rows = (state.get("reply_markup") or {}).get("inline_keyboard", [])
    return text or "", [button["text"] for row in rows for button in row]


def dissatisfied(sent_at: object, author: str, number: int, reply_to: int) -> MessageEvent:
    return MessageEvent(
        page=CHANNEL_PAGE,
        thread=ThreadRef("post:10", ThreadKind.COMMENTS),
        message_id=f"{GROUP_ID}:{number}",
        sent_at=sent_at,  # type: ignore[arg-type]
        author_role=AuthorRole.PERSON,
        author_id=author,
        author_name=f"Житель {author}",
        text="Ничего не сделали, ямы как были. Опять отписка!",
        reply_to_id=f"{GROUP_ID}:{reply_to}",
    )


async def test_time_left_is_counted_when_the_card_is_sent(tmp_path: Path) -> None:
    """A half-time card of an 8-hour appeal says 4 hours are left, not 8."""
    world = await make_world(tmp_path, msk(11, 2, 9))
    try:
        await world.ingest(citizen_event(msk(11, 2, 9), ROADS, "501", 101))
        world.clock.set(msk(11, 2, 13))
        await Scheduler(world.app).tick()
        [card] = world.sandbox.sent_messages(PRESS_CHAT)
        text = plain(card.text)
        assert "Прошла половина срока ответа" in text
        assert "(осталось 4 ч рабочего времени)" in text
    finally:
        await close_world(world)


async def test_cards_follow_decisions_answers_and_undo(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    roads, waste = await _ingest(
        app,
        citizen_event(msk(11, 2, 9), ROADS, "501", 101),
        citizen_event(msk(11, 2, 9, 5), WASTE, "502", 102),
    )
    clock.set(msk(11, 2, 13, 10))
    await Scheduler(app).tick()
    [reminder] = sandbox.sent_messages(PRESS_CHAT_ID)
    text, buttons = current(sandbox, reminder)
    assert plain(text).count("Никто не взял") == 2

    # Taken: the card says by whom and since when.
    await _press(intake, sandbox, OPERATOR, reminder, f"ap:take:{roads}")
    text, _ = current(sandbox, reminder)
    assert "В работе: Анна Иванова с сегодня в 13:10" in plain(text)
    assert sandbox.sent_messages(PRESS_CHAT_ID) == [reminder]

    # A colleague takes it over: the card changes and the chat is told, under the card.
    clock.advance(timedelta(minutes=5))
    answer = await _press(intake, sandbox, COLLEAGUE, reminder, f"ap:take:{roads}")
    assert "Пётр Петров" in answer["text"]
    [_, note] = sandbox.sent_messages(PRESS_CHAT_ID)
    assert note.text == (
        f"Обращение №{roads} взято в работу: Пётр Петров (до этого — Анна Иванова)."
    )
    assert note.reply_to_message_id == reminder.message_id
    text, _ = current(sandbox, reminder)
    assert "В работе: Пётр Петров с сегодня в 13:15" in plain(text)

    # «Не обращение»: struck through, with «Вернуть»; «Вернуть» brings it back.
    await _press(intake, sandbox, OPERATOR, reminder, f"ap:no:{waste}")
    text, buttons = current(sandbox, reminder)
    assert f"<s><b>№{waste}</b>" in text
    assert f"№{waste} · Вернуть" in buttons and f"№{waste} · Взять в работу" not in buttons
    assert (await _report(app))["appeals"] == 1
    answer = await _press(intake, sandbox, OPERATOR, reminder, f"ap:back:{waste}")
    assert answer["text"] == f"Обращение №{waste} возвращено и снова входит в показатели."
    text, buttons = current(sandbox, reminder)
    assert "<s>" not in text and f"№{waste} · Взять в работу" in buttons
    assert (await _report(app))["appeals"] == 2

    # Excluded again, then a day passes: «Вернуть» is gone from the card and refused.
    await _press(intake, sandbox, OPERATOR, reminder, f"ap:no:{waste}")
    clock.set(msk(11, 3, 13, 30))
    await Scheduler(app).tick()
    text, buttons = current(sandbox, reminder)
    assert f"№{waste} · Вернуть" not in buttons and "«Вернуть» — до" not in text
    answer = await _press(intake, sandbox, OPERATOR, reminder, f"ap:back:{waste}")
    assert answer["show_alert"] is True and "можно было до" in answer["text"]

    # Answered in the group: the next tick marks the card ✅ with the time and a link.
    reply_at = msk(11, 3, 13, 40)
    link = "https://t.me/c/1000000002/300?thread=10"
    await _ingest(app, replace(page_reply(reply_at, 101, 300), link=link))
    clock.set(msk(11, 3, 13, 45))
    await Scheduler(app).tick()
    text, buttons = current(sandbox, reminder)
    assert f'✅ Ответили сегодня в 13:40 · <a href="{link}">ответ</a>' in text
    assert buttons == []  # answered on the merits, the other one excluded: nothing to press


async def test_summary_pages_with_more_and_overdue_split_between_cards(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    long_text = ROADS + " " + "Очень прошу разобраться, это продолжается уже давно. " * 4
    events = [
        citizen_event(
            msk(11, 2, 9, n),
            long_text.replace("Ленина", f"Ленина, {n}"),
            f"9{n:02d}",
            700 + n,
            post=40 + n,
        )
        for n in range(17)
    ]
    ids = await _ingest(app, *events)
    clock.set(msk(11, 3, 9))
    await Scheduler(app).tick()
    [summary] = [m for m in sandbox.sent_messages(PRESS_CHAT_ID) if "📋" in (m.text or "")]

    # «Ещё»: the next page, each card with its buttons, and «Ещё» again while any are left.
    pages = [summary]
    while True:
        rows = (pages[-1].reply_markup or {}).get("inline_keyboard", [])
        more = [b["callback_data"] for row in rows for b in row if b["text"] == "Ещё ›"]
        if not more:
            break
        shown = sum(len(appeal_ids(p)) for p in pages)
        left = len(ids) - shown
        assert plain(pages[-1].text).endswith(
            f"…и ещё {left} {plural(left, 'обращение', 'обращения', 'обращений')}:"
            " кнопка «Ещё» покажет следующие."
        )
        assert more == [f"ov:{appeal_ids(pages[-1])[-1]}"]
        await _press(intake, sandbox, OPERATOR, pages[-1], more[0])
        pages.append(sandbox.sent_messages(PRESS_CHAT_ID)[-1])
    assert [i for p in pages for i in appeal_ids(p)] == ids  # all actionable, none twice
    assert len(pages) == 3 and all(1 <= len(appeal_ids(p)) <= 8 for p in pages)

    # /overdue: every overdue appeal, long lists split only between whole cards.
    before = len(sandbox.sent_messages(PRESS_CHAT_ID))
    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, "/overdue")
    parts = sandbox.sent_messages(PRESS_CHAT_ID)[before:]
    assert len(parts) >= 3
    shown = []
    for part in parts:
        assert len(part.text or "") <= 4096
        in_text = [int(n) for n in re.findall(r"<b>№(\d+)</b>", part.params["text"])]
        assert in_text == appeal_ids(part)  # every card of a message has its buttons there
        shown.extend(in_text)
    assert shown == ids
    assert "просрочено 17 обращений" in plain(parts[0].text)


async def test_dissatisfied_return_reopens_on_the_appeals_card(
    app: AppContext, intake: RunningIntake, sandbox: TelegramSandbox, clock: SimulatedClock
) -> None:
    [roads] = await _ingest(app, citizen_event(msk(11, 2, 9), ROADS, "501", 101))
    clock.set(msk(11, 2, 13))
    await Scheduler(app).tick()
    [card] = sandbox.sent_messages(PRESS_CHAT_ID)
    await _ingest(app, page_reply(msk(11, 2, 14), 101, 200))
    clock.set(msk(11, 2, 14, 30))
    before = await _report(app)

    # The citizen comes back dissatisfied: the same appeal, re-opened, not a new one.
    back = await _ingest(app, dissatisfied(msk(11, 2, 15), "501", 201, 200))
    assert back == [roads]
    clock.set(msk(11, 2, 15, 1))
    await Scheduler(app).tick()
    notice = sandbox.sent_messages(PRESS_CHAT_ID)[-1]
    assert notice.reply_to_message_id == card.message_id  # on that appeal's card
    assert "Житель недоволен ответом" in plain(notice.text)
    assert appeal_ids(notice) == [roads]
    text, _ = current(sandbox, card)
    assert "↩️ Житель недоволен ответом (сегодня в 15:00): новый ответ по существу — до" in plain(
        text
    )
    after = await _report(app)
    # First-reaction figures do not change.
    for name in ("appeals", "answered", "answered_in_time", "frt_median_s"):
        assert after[name] == before[name], name

    # In /overdue until answered again.
    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, "/overdue")
    listing = sandbox.sent_messages(PRESS_CHAT_ID)[-1]
    assert appeal_ids(listing) == [roads]
    assert "возвращено жителями 1 обращение" in plain(listing.text)
    await _ingest(app, page_reply(msk(11, 2, 16), 201, 202))
    clock.set(msk(11, 2, 16, 5))
    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, "/overdue")
    assert "просроченных обращений нет" in (sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or "")
    await Scheduler(app).tick()
    text, buttons = current(sandbox, card)
    assert "✅ Ответ по существу сегодня в 16:00" in plain(text) and buttons == []
