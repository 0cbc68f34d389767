"""`otklik run` speaks Russian to its administrator: start, stop, outages, reminders (issue 12).

Every INFO-or-higher message logged by the modules `run` goes through is checked in the source
(a message added later in English fails here), and aiogram's own polling and outage lines get
Russian templates (bot/logru.py). Debug lines may stay English.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

from bot import logru

ROOT = Path(__file__).parents[1]
# The modules whose lines an administrator reads while `otklik run` works.
RUN_MODULES = (
    "bot/cli.py",
    "bot/runner.py",
    "bot/services/notices.py",
    "bot/services/scheduler.py",
    "bot/services/reminders.py",
    "bot/services/reminder_log.py",
    "bot/services/digest.py",
    "bot/services/intake.py",
    "bot/services/intake_writer.py",
    "bot/services/health_refresh.py",
    "bot/services/quality.py",
    "bot/services/decisions.py",
    "bot/services/sent_cards.py",
    "bot/services/ingest/messages.py",
    "bot/services/ingest/changes.py",
    "bot/services/doubtful.py",
    "bot/services/roles.py",
    "bot/services/corrections.py",
    "bot/services/order_stats.py",
    "storage/rollup.py",
    "bot/text/embeddings.py",
    "storage/writer.py",
    "handlers/telegram/setup.py",
    "handlers/telegram/middlewares.py",
    "handlers/telegram/notifier.py",
    "handlers/telegram/webhook.py",
    "handlers/telegram/onboarding.py",
    "handlers/telegram/membership.py",
    "handlers/telegram/pages.py",
    "handlers/telegram/health.py",
    "handlers/telegram/private.py",
    "handlers/telegram/press.py",
    "handlers/telegram/business.py",
    "handlers/telegram/common.py",
    "handlers/telegram/doubtful.py",
    "handlers/telegram/unparsed.py",
    "handlers/telegram/web.py",
    "handlers/telegram/pressoffice.py",
    "handlers/web/server.py",
    "handlers/web/auth.py",
    "handlers/vk/health.py",
    "handlers/vk/client.py",
    "handlers/vk/sync.py",
    "handlers/vk/callback.py",
    "handlers/vk/intake.py",
    "handlers/vk/delivery.py",
)
LEVELS = {"info", "warning", "error", "exception", "critical"}
CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


def _messages(path: Path) -> list[tuple[int, str]]:
    """(line, template) of every logger.info/warning/error/… call (and `log(…)` aliases)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        is_logger = (
            isinstance(func, ast.Attribute)
            and func.attr in LEVELS
            and isinstance(func.value, ast.Name)
            and func.value.id == "logger"
        )
        if not (is_logger or (isinstance(func, ast.Name) and func.id == "log")):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.append((node.lineno, first.value))
        elif isinstance(first, ast.JoinedStr):
            found.append((node.lineno, ast.unparse(first)))
    return found


@pytest.mark.parametrize("module", RUN_MODULES)
def test_run_messages_are_russian(module: str) -> None:
    english = [
        f"{module}:{line}: {text}"
        for line, text in _messages(ROOT / module)
        if not CYRILLIC.search(text)
    ]
    assert english == []


def test_the_check_sees_the_messages() -> None:
    """The source check is not vacuous: it finds the start, stop and outage lines."""
    runner = [text for _, text in _messages(ROOT / "bot/runner.py")]
    assert "Отклик запущен: %s" in runner and "Отклик остановлен" in runner
    intake = " ".join(text for _, text in _messages(ROOT / "bot/services/intake.py"))
    assert "база данных недоступна" in intake


def test_aiogram_outage_lines_are_russian(caplog: pytest.LogCaptureFixture) -> None:
    """aiogram's own lines, through the installed filter, with aiogram's arguments."""
    logru.install()
    logru.install()  # twice is once
    dispatcher = logging.getLogger("aiogram.dispatcher")
    assert sum(isinstance(f, logru.RussianTemplates) for f in dispatcher.filters) == 1
    with caplog.at_level(logging.INFO, logger="aiogram.dispatcher"):
        dispatcher.error("Failed to fetch updates - %s: %s", "TelegramNetworkError", "timeout")
        dispatcher.warning(
            "Sleep for %f seconds and try again... (tryings = %d, bot id = %d)", 1.5, 3, 42
        )
        dispatcher.info("Connection established (tryings = %d, bot id = %d)", 3, 42)
        dispatcher.info("Something new in aiogram %s", "3.99")
    assert caplog.messages == [
        "Telegram недоступен: не удалось получить обновления — TelegramNetworkError: timeout",
        "Telegram: следующая попытка через 2 с (попытка 3, бот 42)",
        "Telegram снова доступен (попыток было: 3, бот 42)",
        "Something new in aiogram 3.99",  # unknown: unchanged, never dropped
    ]
