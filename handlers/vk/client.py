"""vk_api wiring: a session that can talk to any VK API server, long poll and safe method calls."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import jconfig
import requests
import vk_api
from vk_api.bot_longpoll import VkBotLongPoll

logger = logging.getLogger(__name__)

API_VERSION = "5.199"
DEFAULT_API_SERVER = "https://api.vk.ru"

# vk_api 11.10 hard-codes the API host in VkApi.method(); older releases used vk.com.
# The Bots Long Poll server URL is not listed: it comes from groups.getLongPollServer,
# so a sandbox answers with its own URL. OAuth hosts (oauth.vk.ru, login.vk.ru) are only
# used by the login/password flows, which Otklik never uses (tokens only).
TOO_MANY_RPS_CODE = 6

HARDCODED_METHOD_PREFIXES = ("https://api.vk.ru/method/", "https://api.vk.com/method/")

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class VkCallError(Exception):
    """A VK API call failed; carries the VK error code, never the token."""

    def __init__(self, code: int, message: str, method: str) -> None:
        super().__init__(code, message, method)
        self.code = code
        self.message = message
        self.method = method

    def __str__(self) -> str:
        return f"{self.method}: [{self.code}] {self.message}"


class VkTransportError(VkCallError):
    """The VK API server could not be reached or answered with a non-200 status."""

    TRANSPORT_CODE = -1

    def __init__(self, message: str, method: str) -> None:
        super().__init__(self.TRANSPORT_CODE, message, method)


class InMemoryConfig(jconfig.MemoryConfig):
    """vk_api settings storage kept in a dict, so no vk_config.v2.json is ever written."""

    __slots__ = ()


class RewritingSession(requests.Session):
    """A requests session that sends vk_api's hard-coded API URLs to another server."""

    def __init__(self, base_url: str | None = None) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") if base_url else None
        self.headers["User-Agent"] = "Otklik (+https://github.com/otklik)"
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme != "https" and parts.hostname not in _LOOPBACK_HOSTS:
                # vk_api puts the token in the POST body: over plain HTTP the path can read it.
                logger.warning(
                    "сервер API ВКонтакте %r без HTTPS: ключи передаются незашифрованными",
                    parts.netloc,
                )

    def rewrite(self, url: str) -> str:
        """Map a hard-coded VK API URL onto the configured server."""
        if self.base_url is None:
            return url
        for prefix in HARDCODED_METHOD_PREFIXES:
            if url.startswith(prefix):
                return f"{self.base_url}/method/{url[len(prefix) :]}"
        return url

    # requests.Session.request names its parameters; this one passes them on as they came, so
    # mypy sees a narrower signature than the one it overrides.
    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Rewrite the URL, then send as usual."""
        return super().request(method, self.rewrite(url), *args, **kwargs)


def make_vk_session(
    token: str,
    *,
    api_server: str | None,
    api_version: str = API_VERSION,
    rps_delay: float | None = None,
    retry_rate_limit: bool = True,
) -> vk_api.VkApi:
    """A vk_api client for `token` talking to `api_server` (None or VK's own: the real API).

    `rps_delay` overrides vk_api's pause between calls (0.34 s, the user-token limit of 3/s);
    community tokens may go at 20/s (0.05 s), tests against the sandbox use 0.
    `retry_rate_limit=False` turns off vk_api's endless 0.5 s retry on error 6 so that the
    caller can back off (and stop) on its own.
    """
    base_url = api_server.rstrip("/") if api_server else None
    if base_url == DEFAULT_API_SERVER:
        base_url = None
    session = RewritingSession(base_url)
    vk = vk_api.VkApi(
        token=token,
        api_version=api_version,
        session=session,
        config=InMemoryConfig,
    )
    if rps_delay is not None:
        vk.RPS_DELAY = rps_delay
    if not retry_rate_limit:
        vk.error_handlers.pop(TOO_MANY_RPS_CODE, None)
    return vk


def make_bot_longpoll(vk: vk_api.VkApi, group_id: int, wait: int = 25) -> VkBotLongPoll:
    """A Bots Long Poll reader for the community (calls groups.getLongPollServer at once)."""
    longpoll = VkBotLongPoll(vk, group_id, wait=wait)
    # The long-poll server is whatever groups.getLongPollServer named; share our headers.
    longpoll.session.headers.update(vk.http.headers)
    return longpoll


def redact(text: str, token: str | None) -> str:
    """Hide the token wherever it appears in a message."""
    if token:
        text = text.replace(token, "***")
    return text


def call(vk: vk_api.VkApi, method: str, **params: Any) -> Any:
    """Call a VK API method; errors become VkCallError without the token."""
    return _call(vk, method, params, raw=False)


def call_raw(vk: vk_api.VkApi, method: str, **params: Any) -> dict[str, Any]:
    """`call`, answering VK's whole body (`execute` lists its nested errors beside `response`)."""
    body = _call(vk, method, params, raw=True)
    return body if isinstance(body, dict) else {}


def _call(vk: vk_api.VkApi, method: str, params: Mapping[str, Any], *, raw: bool) -> Any:
    values: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            value = int(value)
        values[name] = value
    token = _token_of(vk)
    try:
        return vk.method(method, values, raw=raw)
    except vk_api.exceptions.ApiError as exc:
        # `from None`: ApiError keeps the request values, token included, in its attributes.
        raise VkCallError(
            int(exc.code), redact(str(exc.error.get("error_msg", "")), token), method
        ) from None
    except vk_api.exceptions.ApiHttpError as exc:
        raise VkTransportError(f"HTTP {exc.response.status_code}", method) from None
    except requests.RequestException as exc:
        raise VkTransportError(redact(f"{type(exc).__name__}: {exc}", token), method) from None


def _token_of(vk: vk_api.VkApi) -> str | None:
    token = vk.token
    if isinstance(token, Mapping):
        value = token.get("access_token")
        return str(value) if value else None
    return None
