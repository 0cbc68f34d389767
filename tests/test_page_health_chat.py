"""Page health, item 4 in the chat: `/page ID` says what the page is missing and why."""

from __future__ import annotations

from sqlmodel import select

from bot.app import AppContext
from bot.events import PageKind, PageRef, Platform, PostEvent, PostKind, SubscribersEvent
from bot.sandbox import TelegramSandbox
from bot.services.intake import Intake, IntakeJob
from storage.models import Page
from tests.telegram_harness import CHANNEL_ID, GROUP_ID, PRESS_CHAT_ID, RunningIntake
from tests.test_pressoffice import (  # noqa: F401
    ADMIN,
    SUPERVISOR,
    _command,
    app,
    clock,
    intake,
    sandbox,
)
from tests.test_reminders import msk

CHANNEL = PageRef(
    Platform.TELEGRAM, str(CHANNEL_ID), PageKind.TG_CHANNEL, "Правительство", "gov", str(GROUP_ID)
)


async def test_page_id_shows_health_and_the_missing_rights(
    app: AppContext,  # noqa: F811
    intake: RunningIntake,  # noqa: F811
    sandbox: TelegramSandbox,  # noqa: F811
) -> None:
    events = (
        SubscribersEvent(CHANNEL, msk(10, 28, 12), 5_000),
        SubscribersEvent(CHANNEL, msk(11, 1, 12), 5_400),
        PostEvent(CHANNEL, "1", msk(10, 28, 12), PostKind.VIDEO, 120),
        PostEvent(CHANNEL, "2", msk(10, 30, 12), PostKind.TEXT, 80),
    )
    await Intake(app.sessions, app.defaults).deliver(IntakeJob(raw=None, events=events))
    async with app.sessions() as session:
        page_id = (await session.exec(select(Page.id))).one()
    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, f"/page {page_id}")
    text = (sandbox.sent_messages(PRESS_CHAT_ID)[-1].text or "").replace("\u202f", " ")
    text = text.replace("\u00a0", " ")
    assert "Правительство — последние 7 дней" in text
    # The window is 26.10 09:00 – 02.11 09:00 (Moscow): 5 000 → 5 400.
    assert "подписчики: 5 400 (+400 за период)" in text
    assert "публикации: 2 поста, 2 в неделю при норме 3 — ниже нормы" in text
    assert "доля видео: 50 %" in text
    assert "просмотры поста (через 72 ч): нет данных" in text
    assert "проникновение: нет данных" in text
    assert "TELEGRAM_PREVIEW_VIEWS" in text
    assert "REGION_AUDIENCE" in text
    assert "Репосты: Telegram не сообщает их ботам." in text

    await _command(intake, sandbox, PRESS_CHAT_ID, ADMIN, "/page 999")
    assert sandbox.sent_messages(PRESS_CHAT_ID)[-1].text == "Страницы 999 нет. Список: /page"

    # /stats: the «Страница» block in the text, and the page-health chart after the appeals one.
    await _command(intake, sandbox, PRESS_CHAT_ID, SUPERVISOR, "/stats 26.10-01.11")
    sent = sandbox.sent_messages(PRESS_CHAT_ID)[-3:]
    assert [m.method for m in sent] == ["sendMessage", "sendPhoto", "sendPhoto"]
    stats = (sent[0].text or "").replace("\u202f", " ").replace("\u00a0", " ")
    assert "Страница:\n  подписчики: 5 400 (+400 за период)" in stats
    assert "  просмотры поста (через 72 ч): нет данных" in stats
    assert [m.files[0].filename for m in sent[1:]] == ["stats.png", "page_health.png"]
