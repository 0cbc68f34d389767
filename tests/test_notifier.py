"""TelegramNotifier against the sandbox: limits, 429, permanent errors, long texts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.sandbox import TelegramSandbox
from bot.services.notify import Button, DeliveryError, Notifier, split_text
from handlers.telegram.notifier import MAX_TRIES, RateLimiter, TelegramNotifier
from handlers.telegram.setup import make_bot

TOKEN = "123456:TEST-notifier-token"
GROUP = {"id": -1001000000009, "type": "supergroup", "title": "Пресс-служба"}
PERSON = {"id": 5001, "is_bot": False, "first_name": "Ирина"}


class FakeTime:
    """A monotonic clock that sleeping moves forward."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with TelegramSandbox() as box:
        box.add_bot(TOKEN, 123456, "otklik_bot")
        box.add_chat(GROUP)
        box.add_user(PERSON)
        yield box


@pytest.fixture
async def timed(sandbox: TelegramSandbox) -> AsyncIterator[tuple[TelegramNotifier, FakeTime]]:
    fake = FakeTime()
    bot = make_bot(TOKEN, sandbox.base_url)
    limiter = RateLimiter(monotonic=fake.monotonic, sleep=fake.sleep)
    yield TelegramNotifier(bot, limiter=limiter, sleep=fake.sleep), fake
    await bot.session.close()


async def test_is_a_notifier(timed: tuple[TelegramNotifier, FakeTime]) -> None:
    assert isinstance(timed[0], Notifier)


async def test_group_limit_twenty_a_minute(
    sandbox: TelegramSandbox, timed: tuple[TelegramNotifier, FakeTime]
) -> None:
    notifier, fake = timed
    for number in range(25):
        await notifier.send_text(GROUP["id"], f"Напоминание {number}")
    assert len(sandbox.sent_messages(GROUP["id"])) == 25
    # The 21st message waited for the minute of the first to pass.
    assert sum(fake.sleeps) == pytest.approx(60.0)
    assert fake.now == pytest.approx(60.0)


async def test_global_limit_thirty_a_second(timed: tuple[TelegramNotifier, FakeTime]) -> None:
    notifier, fake = timed
    limiter = notifier.limiter
    for user in range(31):
        await limiter.acquire(1000 + user)  # 31 different private chats
    assert sum(fake.sleeps) == pytest.approx(1.0)


async def test_429_is_retried_after_retry_after(
    sandbox: TelegramSandbox, timed: tuple[TelegramNotifier, FakeTime]
) -> None:
    notifier, fake = timed
    sandbox.fail_next("sendMessage", 2, retry_after=5)
    message_id = await notifier.send_text(GROUP["id"], "Срочно")
    assert fake.sleeps == [5.0, 5.0]
    [sent] = sandbox.sent_messages(GROUP["id"])
    assert sent.message_id == message_id


async def test_endless_429_and_permanent_errors_raise_delivery_error(
    sandbox: TelegramSandbox, timed: tuple[TelegramNotifier, FakeTime]
) -> None:
    notifier, _ = timed
    sandbox.fail_next("sendMessage", MAX_TRIES, retry_after=1)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send_text(GROUP["id"], "текст")
    assert not caught.value.permanent
    sandbox.block_chat(PERSON["id"])
    with pytest.raises(DeliveryError) as caught:
        await notifier.send_text(PERSON["id"], "текст")
    assert caught.value.permanent
    assert TOKEN not in str(caught.value)
    with pytest.raises(DeliveryError, match="chat not found"):
        await notifier.send_text(-100555, "текст")


async def test_long_text_split_buttons_on_last_piece(
    sandbox: TelegramSandbox, timed: tuple[TelegramNotifier, FakeTime]
) -> None:
    notifier, _ = timed
    lines = [f"{number}. " + "обращение " * 30 for number in range(40)]
    await notifier.send_text(
        GROUP["id"], "\n".join(lines), [[Button("Взять в работу", callback_data="ap:take:1")]]
    )
    sent = sandbox.sent_messages(GROUP["id"])
    assert len(sent) == 4
    assert all(len(m.text or "") <= 4096 for m in sent)
    assert [m.reply_markup is not None for m in sent] == [False, False, False, True]
    assert "\n".join(m.text or "" for m in sent) == "\n".join(lines)


async def test_photo_and_document(
    sandbox: TelegramSandbox, timed: tuple[TelegramNotifier, FakeTime]
) -> None:
    notifier, _ = timed
    await notifier.send_photo(GROUP["id"], b"\x89PNG fake", "График")
    await notifier.send_document(GROUP["id"], b"PK data", "otklik.xlsx", "Выгрузка")
    photo, document = sandbox.sent_messages(GROUP["id"])
    assert photo.method == "sendPhoto" and photo.message["caption"] == "График"
    assert document.files[0].filename == "otklik.xlsx"


def test_button_and_split_rules() -> None:
    with pytest.raises(ValueError):
        Button("x")
    with pytest.raises(ValueError):
        Button("x", callback_data="a" * 65)
    assert split_text("a\nb", limit=10) == ["a\nb"]
    assert split_text("aaaa\nbbbb", limit=5) == ["aaaa", "bbbb"]
