"""Secrets never leave the process: one scrubber for logs, stored errors, output and exports.

`scrub(text)` blanks every secret it knows (`register`: the tokens and secrets from the
settings) and anything that looks like one whatever the settings say: a Bot API URL's
`bot<id>:<token>` part and VK's `access_token=` parameter. Exception texts are where secrets
leak from (aiohttp's `TooManyRedirects` carries the request URL, and a Bot API URL contains the
token), so everything that passes such a text on goes through `scrub`:

* every log record, whichever handler writes it (`install` sets a record factory, and a filter
  on the handlers that exist, for records made before it);
* `sys.stdout` and `sys.stderr` of every `otklik` command (`guard_streams`, from bot/cli.py);
* stored error texts (`reminder_log.last_error`, `raw_update.note`: storage/redaction.py),
  `DeliveryError` texts (which reach people in the press chat and the CLI), export cells.

The intake writer is a child process: it knows no settings, so there only the patterns apply.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, TextIO

MASK = "***"
MIN_SECRET = 6  # shorter values would blank ordinary words

# `bot123456:AA...` in a Bot API URL (also `/file/bot...`); VK's token as a URL parameter.
_PATTERNS = (
    (re.compile(r"bot\d{3,}:[A-Za-z0-9_-]{8,}"), "bot" + MASK),
    (re.compile(r"(access_token=)[^&\s'\"]+"), r"\g<1>" + MASK),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\g<1>" + MASK + "@"),  # a URL's password
)

_secrets: tuple[str, ...] = ()
_lock = threading.Lock()


def register(secrets: Iterable[str]) -> None:
    """Add secrets to blank (settings call this before anything can log them)."""
    global _secrets
    with _lock:
        known = set(_secrets)
        known.update(s for s in secrets if s and len(s) >= MIN_SECRET)
        # Longest first: a secret that contains another is blanked whole.
        _secrets = tuple(sorted(known, key=len, reverse=True))


def scrub(text: str) -> str:
    """`text` with every known secret and every token-looking part replaced by «***»."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "bot" in text or "access_token" in text or "@" in text:
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    return text


def scrub_optional(text: str | None) -> str | None:
    return None if text is None else scrub(text)


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Blank secrets in a record's message and its traceback, in place."""
    if getattr(record, "_otklik_scrubbed", False):
        return record
    record._otklik_scrubbed = True
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging itself reports it later
        return record
    cleaned = scrub(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
    return record


class RedactSecrets(logging.Filter):
    """A handler filter: records that were made before `install` are scrubbed here."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        register(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


_installed_factory: Callable[..., logging.LogRecord] | None = None


def install(secrets: Iterable[str]) -> None:
    """Register `secrets`; scrub every log record from now on, whichever handler writes it."""
    global _installed_factory
    register(secrets)
    if _installed_factory is None:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return scrub_record(previous(*args, **kwargs))

        _installed_factory = factory
        logging.setLogRecordFactory(factory)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())


class ScrubbedStream:
    """A text stream that writes through `scrub` (stdout/stderr of the command line).

    Not an `io.TextIOBase`: that one closes itself, and so the stream under it, when collected.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(scrub(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer, ...
        return getattr(self.stream, name)


def guard_streams() -> None:
    """Route `sys.stdout` and `sys.stderr` through `scrub` (idempotent)."""
    import sys

    if not isinstance(sys.stdout, ScrubbedStream):
        sys.stdout = ScrubbedStream(sys.stdout)
    if not isinstance(sys.stderr, ScrubbedStream):
        sys.stderr = ScrubbedStream(sys.stderr)
