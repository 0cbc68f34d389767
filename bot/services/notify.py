"""How services send to chats without knowing the messenger: a small Protocol and a button.

Reminders, digests and exports talk to a `Notifier`; the Telegram adapter
(`handlers.telegram.notifier.TelegramNotifier`) implements it. Text is a small HTML subset
(`<b>`, `<i>`, `<a href="…">`) with everything else escaped by the caller (`html.escape`); an
adapter for a messenger without markup strips the tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.logsafe import scrub

# Telegram's limits, which every service message is kept under.
MAX_TEXT = 4096
MAX_CAPTION = 1024


@dataclass(frozen=True, slots=True)
class Button:
    """An inline button: either a callback (`callback_data`, at most 64 bytes) or a link."""

    text: str
    callback_data: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.callback_data is None) == (self.url is None):
            raise ValueError("a button needs exactly one of callback_data or url")
        if self.callback_data is not None and len(self.callback_data.encode()) > 64:
            raise ValueError("callback_data is limited to 64 bytes")


# Rows of buttons, top to bottom.
Keyboard = Sequence[Sequence[Button]]


class DeliveryError(Exception):
    """A message could not be delivered; `permanent` when retrying the same call cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        # Its text is stored (reminder_log.last_error), logged and printed: no token in it.
        super().__init__(scrub(message))
        self.permanent = permanent


@runtime_checkable
class Notifier(Protocol):
    """Sends to a chat and returns the new message's id; raises `DeliveryError` on failure."""

    async def send_text(
        self,
        chat_id: int,
        text: str,
        buttons: Keyboard | None = None,
        *,
        reply_to: int | None = None,
    ) -> int:
        """Send an HTML-subset text with optional inline buttons (as a reply to `reply_to`)."""
        ...

    async def edit_text(
        self, chat_id: int, message_id: int, text: str, buttons: Keyboard | None = None
    ) -> None:
        """Replace the text and buttons of a message sent earlier (no change is no error)."""
        ...

    async def send_photo(self, chat_id: int, png: bytes, caption: str) -> int:
        """Send a PNG image with a short caption (at most `MAX_CAPTION` characters)."""
        ...

    async def send_document(self, chat_id: int, data: bytes, filename: str, caption: str) -> int:
        """Send a file with a short caption."""
        ...


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a long text at line breaks into pieces of at most `limit` characters."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # a single over-long line: cut it hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces
