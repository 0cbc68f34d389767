"""A VK API sandbox: an aiohttp server answering like VK API 5.199 and its Bots Long Poll.

The real vk_api client talks to it over HTTP (``VK_API_SERVER=sandbox.base_url``). Tests and
the demo drive it through the control API (Python methods, or JSON under ``/_sandbox/``):
citizens comment and write, the sandbox stores what real VK would store and queues the Bots
Long Poll events real VK would deliver; whatever the client sends is recorded in ``sent``.
A community may also have a Callback API server (``set_callback``): the sandbox confirms it
like VK does and then POSTs each new event to it, retrying until it answers ``ok``.

The class is built in layers, each in its own module and each seeing only the ones below it:
`model` (constants, records, stored objects), `world` (state and API objects), `updates`
(events, Bots Long Poll, Callback API delivery), `api` (the API methods), `control` (what tests
and the demo do, planned failures from bot/sandbox/failures.py, JSON under /_sandbox/) and
`server` (the aiohttp application).
"""

from bot.sandbox.vk.model import (
    API_VERSION,
    CALLBACK_RETRIES,
    CHAT_PEER_START,
    CLIENT_INFO,
    DEFAULT_HISTORY_LIMIT,
    ERROR_MESSAGES,
    LONG_POLL_EVENT_TYPES,
    MAX_LONG_POLL_WAIT_S,
    ApiCallError,
    CallbackDelivery,
    CommentKind,
    JsonDict,
    SandboxCall,
    SandboxError,
    SentRecord,
    TokenKind,
    to_unix,
)
from bot.sandbox.vk.server import VkSandbox

__all__ = [
    "API_VERSION",
    "CALLBACK_RETRIES",
    "CHAT_PEER_START",
    "CLIENT_INFO",
    "DEFAULT_HISTORY_LIMIT",
    "ERROR_MESSAGES",
    "LONG_POLL_EVENT_TYPES",
    "MAX_LONG_POLL_WAIT_S",
    "ApiCallError",
    "CallbackDelivery",
    "CommentKind",
    "JsonDict",
    "SandboxCall",
    "SandboxError",
    "SentRecord",
    "TokenKind",
    "VkSandbox",
    "to_unix",
]
