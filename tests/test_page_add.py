"""`/page add` checks the bot's rights through the real clients (aiogram, vk_api) against the
sandboxes; the press chat hears when a page or a Business account connects or disconnects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import AppContext
from bot.sandbox import TelegramSandbox
from bot.sandbox.vk import VkSandbox
from storage.models import Page
from tests.conftest import make_settings
from tests.telegram_harness import (
    CHANNEL,
    CHANNEL_ID,
    GROUP,
    GROUP_ID,
    PRESS_CHAT_ID,
    RunningIntake,
    eventually,
    setup_sandbox,
)

ADMIN = {"id": 9001, "is_bot": False, "first_name": "Олег", "last_name": "Админов"}
OWNER = {"id": 9100, "is_bot": False, "first_name": "Мария", "last_name": "Губернаторова"}
VK_GROUP = 230000001
VK_TOKEN = "vk1.a.community-token-of-the-city"
VK_POOR = 230000002
VK_POOR_TOKEN = "vk1.a.community-token-without-rights"
LONELY = {"id": -1001000000077, "type": "channel", "title": "Канал без обсуждения"}


@pytest.fixture
async def vk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VkSandbox]:
    monkeypatch.chdir(tmp_path)  # vk_api must never write a config file anywhere
    box = VkSandbox()
    box.add_group(VK_GROUP, "Администрация города", VK_TOKEN, screen_name="city_adm")
    box.add_group(VK_POOR, "Минздрав области", VK_POOR_TOKEN, scopes=("photos",))
    async with box:
        yield box


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        setup_sandbox(box)
        box.add_chat(LONELY)
        box.add_user(ADMIN)
        yield box


@pytest.fixture
async def intake(
    sqlite_engine: AsyncEngine, sandbox: TelegramSandbox, vk: VkSandbox
) -> AsyncIterator[RunningIntake]:
    settings = make_settings(
        PRESS_CHAT_ID=PRESS_CHAT_ID,
        ADMIN_IDS=str(ADMIN["id"]),
        VK_GROUP_TOKENS=f"{VK_GROUP}:{VK_TOKEN},{VK_POOR}:{VK_POOR_TOKEN}",
        VK_API_SERVER=vk.base_url,
    )
    running = RunningIntake(AppContext.create(settings, sqlite_engine), sandbox)
    await running.start()
    yield running
    await running.stop()


async def _say(sandbox: TelegramSandbox, text: str) -> str:
    before = len(sandbox.sent_messages(ADMIN["id"]))
    sandbox.inject_message(ADMIN["id"], ADMIN, text)

    async def answered() -> bool:
        return len(sandbox.sent_messages(ADMIN["id"])) > before

    await eventually(answered)
    return sandbox.sent_messages(ADMIN["id"])[before].text or ""


async def _press_chat_notice(sandbox: TelegramSandbox, before: int) -> str:
    async def told() -> bool:
        return len(sandbox.sent_messages(PRESS_CHAT_ID)) > before

    await eventually(told)
    return sandbox.sent_messages(PRESS_CHAT_ID)[before].text or ""


async def _pages(intake: RunningIntake) -> list[Page]:
    async with intake.app.sessions() as session:
        return list((await session.exec(select(Page).order_by(Page.id))).all())  # type: ignore[arg-type]


async def test_page_add_telegram_checks_admin_rights(
    intake: RunningIntake, sandbox: TelegramSandbox
) -> None:
    # The bot is in the group but not an admin, and not an admin of the channel either.
    sandbox.set_admins(GROUP_ID, [ADMIN], bot_is_admin=False)
    text = await _say(sandbox, "/page add @gov_region")
    assert text.startswith("Страница «Правительство области» (Telegram, №1) добавлена")
    assert "❌ бот не администратор группы обсуждений «Обсуждение: Правительство области»" in text
    assert "⚠️ бот не администратор канала" in text
    assert "Исправьте и повторите /page add" in text
    [page] = await _pages(intake)  # registered before any message
    assert (page.external_id, page.linked_chat_id) == (str(CHANNEL_ID), str(GROUP_ID))
    # The admin fixes the rights: the same command now says everything is in order.
    sandbox.set_admins(GROUP_ID, [ADMIN], bot_is_admin=True)
    sandbox.set_admins(CHANNEL_ID, [ADMIN], bot_is_admin=True)
    text = await _say(sandbox, f"/page add https://t.me/{CHANNEL['username']}")
    assert text.splitlines()[0] == (
        "Страница «Правительство области» (Telegram, №1) подключена, права бота в порядке."
    )
    assert "❌" not in text and "⚠️" not in text
    assert len(await _pages(intake)) == 1


async def test_page_add_telegram_says_what_is_missing(
    intake: RunningIntake, sandbox: TelegramSandbox
) -> None:
    unknown = await _say(sandbox, "/page add @nobody_here")
    assert unknown.startswith("Не удалось подключить страницу Telegram.")
    assert "Бот не видит @nobody_here: добавьте @otklik_test_bot администратором" in unknown
    lonely = await _say(sandbox, f"/page add {LONELY['id']}")
    assert "у канала нет группы обсуждений: включите комментарии" in lonely
    group = await _say(sandbox, f"/page add {GROUP['id']}")  # the group itself works too
    assert "Правительство области" in group
    assert "/page add @канал" in await _say(sandbox, "/page add что-то не то!")
    business = await _say(sandbox, "/page add business")
    assert "Telegram для бизнеса" in business and "@otklik_test_bot" in business
    assert [p.external_id for p in await _pages(intake)] == [str(CHANNEL_ID)]


async def test_page_add_vk_checks_the_token_scopes(intake: RunningIntake, vk: VkSandbox) -> None:
    sandbox = intake.sandbox
    good = await _say(sandbox, f"/page add vk club{VK_GROUP}")
    assert good.startswith("Страница «Администрация города» (ВКонтакте, №1) подключена")
    assert "✅ «Управление сообществом» — есть" in good
    poor = await _say(sandbox, f"/page add vk {VK_POOR}")
    assert "(ВКонтакте, №2) добавлена, но боту не хватает прав:" in poor
    assert "❌ у ключа нет права «Управление сообществом»" in poor
    assert "❌ у ключа нет права «Сообщения сообщества»" in poor
    missing = await _say(sandbox, "/page add vk 999")
    assert "В VK_GROUP_TOKENS (.env) нет ключа сообщества 999" in missing
    assert VK_TOKEN not in good + poor + missing and VK_POOR_TOKEN not in poor
    pages = await _pages(intake)
    assert [(p.platform, p.external_id) for p in pages] == [
        ("vk", str(VK_GROUP)),
        ("vk", str(VK_POOR)),
    ]
    assert [c for c in vk.calls if c.method == "groups.getTokenPermissions"]


async def test_press_chat_hears_pages_connect_and_disconnect(
    intake: RunningIntake, sandbox: TelegramSandbox
) -> None:
    sandbox.set_admins(CHANNEL_ID, [ADMIN], bot_is_admin=True)
    before = len(sandbox.sent_messages(PRESS_CHAT_ID))
    sandbox.inject_my_chat_member(GROUP_ID, "administrator", from_user=ADMIN)
    notice = await _press_chat_notice(sandbox, before)
    assert notice.startswith("🔌 Страница «Правительство области» (Telegram, №1) подключена")
    before = len(sandbox.sent_messages(PRESS_CHAT_ID))
    sandbox.inject_my_chat_member(GROUP_ID, "member", old_status="administrator", from_user=ADMIN)
    notice = await _press_chat_notice(sandbox, before)
    assert notice.startswith("⚠️ Бот больше не администратор в «Правительство области»")
    assert "комментарии жителей с этой страницы больше не приходят" in notice

    before = len(sandbox.sent_messages(PRESS_CHAT_ID))
    sandbox.inject_business_connection("bc-1", OWNER, can_reply=False)
    notice = await _press_chat_notice(sandbox, before)
    assert notice.splitlines()[0] == (
        "🔌 Подключён аккаунт Telegram Business Мария Губернаторова (страница №2)."
    )
    assert "⚠️ нет права «Отвечать на сообщения»" in notice
    before = len(sandbox.sent_messages(PRESS_CHAT_ID))
    sandbox.inject_business_connection("bc-1", OWNER, is_enabled=False)
    notice = await _press_chat_notice(sandbox, before)
    assert notice.startswith("⚠️ Аккаунт Telegram Business Мария Губернаторова отключил бота")


async def test_staff_changes_update_the_persons_menu(
    intake: RunningIntake, sandbox: TelegramSandbox
) -> None:
    person: dict[str, Any] = {"id": 9300, "is_bot": False, "first_name": "Вера"}
    sandbox.add_user(person)
    scope = {"type": "chat", "chat_id": person["id"]}
    answer = await _say(sandbox, f"/staff supervisor {person['id']}")
    # The name comes from Telegram (getChat of the person's private chat with the bot).
    assert answer == "Вера (Telegram 9300) — руководитель на всех страницах."
    assert "stats" in [c["command"] for c in sandbox.commands(scope)]
    await _say(sandbox, f"/staff remove {person['id']}")
    assert sandbox.commands(scope) == []
