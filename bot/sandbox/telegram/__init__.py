"""Telegram Bot API sandbox: an in-process HTTP server the real aiogram client talks to.

One class, `TelegramSandbox`, built in layers, each in its own module and each seeing only the
ones below it:

- `model`   Bot API objects, errors, constants, parameter parsing
- `world`   state: bots, chats, users, stored messages, and the lookups over them
- `updates` what citizens and staff do (inject_*), the update queue, getUpdates/webhook delivery
- `outbox`  messages the bot sends, copies, forwards and edits
- `api`     the Bot API methods behind /bot<token>/<method>
- `control` test and demo controls: planned failures (bot/sandbox/failures.py), waits, the
  JSON control API under /_sandbox/
- `server`  the aiohttp application (start, stop)
"""

from bot.sandbox.telegram.model import (
    CHANNEL_BOT_USER,
    DEFAULT_EXCLUDED_UPDATES,
    GROUP_ANONYMOUS_BOT_USER,
    MESSAGE_KINDS,
    TELEGRAM_SERVICE_USER,
    JsonDict,
    MessageKey,
    SandboxApiError,
    SentMessage,
    UploadedFile,
    _BotAccount,
)
from bot.sandbox.telegram.server import TelegramSandbox

__all__ = [
    "CHANNEL_BOT_USER",
    "DEFAULT_EXCLUDED_UPDATES",
    "GROUP_ANONYMOUS_BOT_USER",
    "MESSAGE_KINDS",
    "TELEGRAM_SERVICE_USER",
    "JsonDict",
    "MessageKey",
    "SandboxApiError",
    "SentMessage",
    "TelegramSandbox",
    "UploadedFile",
    "_BotAccount",
]
