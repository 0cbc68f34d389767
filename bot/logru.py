"""Russian for the log lines of libraries that an administrator reads while `otklik run` works.

Our own INFO and higher messages are written in Russian where they are logged. aiogram's
dispatcher says in English when polling starts and stops and when Telegram cannot be reached;
those are the lines an administrator looks for in an outage, so a filter on its logger gives
them Russian templates with the same arguments. An unknown message passes unchanged.
"""

from __future__ import annotations

import logging

# aiogram 3 `aiogram/dispatcher/dispatcher.py`: its message templates → ours, same arguments.
AIOGRAM_DISPATCHER_RU = {
    "Start polling": "Telegram: получение обновлений запускается",
    "Polling stopped": "Telegram: получение обновлений остановлено",
    "Run polling for bot @%s id=%d - %r": "Telegram: получаем обновления для бота @%s (id=%d, %r)",
    "Polling stopped for bot @%s id=%d - %r": (
        "Telegram: получение обновлений для бота @%s остановлено (id=%d, %r)"
    ),
    "Failed to fetch updates - %s: %s": (
        "Telegram недоступен: не удалось получить обновления — %s: %s"
    ),
    "Sleep for %f seconds and try again... (tryings = %d, bot id = %d)": (
        "Telegram: следующая попытка через %.0f с (попытка %d, бот %d)"
    ),
    "Connection established (tryings = %d, bot id = %d)": (
        "Telegram снова доступен (попыток было: %d, бот %d)"
    ),
    "Received %s signal": "получен сигнал %s",
}


class RussianTemplates(logging.Filter):
    """Replaces a record's English template by its Russian one; never drops a record."""

    def __init__(self, templates: dict[str, str]) -> None:
        super().__init__()
        self.templates = templates

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.templates.get(record.msg, record.msg)
        return True


def install() -> None:
    """Russian templates on the loggers of the libraries `otklik run` lets speak at INFO."""
    dispatcher = logging.getLogger("aiogram.dispatcher")
    if not any(isinstance(f, RussianTemplates) for f in dispatcher.filters):
        dispatcher.addFilter(RussianTemplates(AIOGRAM_DISPATCHER_RU))
