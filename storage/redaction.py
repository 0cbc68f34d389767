"""Stored error texts go through the secret scrubber (bot/logsafe.py), whoever writes them.

An exception's text can carry a token (aiohttp puts the request URL, with the Bot API token, into
`TooManyRedirects`), and error texts are stored for people to read: `reminder_log.last_error`,
`raw_update.note`. ORM assignments are scrubbed by attribute listeners; the statements that
write a note directly (storage/repositories.py) call `stored_text`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from bot.logsafe import scrub_optional
from storage.models import RawUpdate, ReminderLog


def stored_text(text: str | None) -> str | None:
    """An error text as it may be stored: scrubbed."""
    return scrub_optional(text)


def _scrub_on_set(target: Any, value: Any, oldvalue: Any, initiator: Any) -> Any:
    return scrub_optional(value) if isinstance(value, str) else value


for _column in (ReminderLog.last_error, RawUpdate.note):
    event.listen(_column, "set", _scrub_on_set, retval=True)
