"""Bots Long Poll that reports lost history and can be interrupted from another thread."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
import vk_api
from requests.adapters import HTTPAdapter
from vk_api.bot_longpoll import VkBotLongPoll

from handlers.vk.client import call

logger = logging.getLogger(__name__)


class InterruptibleAdapter(HTTPAdapter):
    """An adapter whose open sockets another thread can shut down.

    A long poll blocks in `recv` for up to `wait` seconds; closing the requests session does not
    wake it. Shutting the socket down does, so SIGTERM stops a community within a second
    instead of after the poll's 25 s.
    """

    def __init__(self) -> None:
        self._connections: set[Any] = set()
        self._guard = threading.Lock()
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager with connection classes that register themselves."""
        super().init_poolmanager(*args, **kwargs)
        adapter = self
        classes = dict(self.poolmanager.pool_classes_by_scheme)
        for scheme, pool_class in classes.items():
            # urllib3's pool classes set ConnectionCls as a class attribute it does not type.
            base_connection = pool_class.ConnectionCls  # type: ignore[attr-defined]

            # A class made from a value known only at run time (the pool's connection class).
            class Tracked(base_connection):  # type: ignore[valid-type,misc]
                def connect(self) -> None:
                    super().connect()
                    with adapter._guard:
                        adapter._connections.add(self)

                def close(self) -> None:
                    with adapter._guard:
                        adapter._connections.discard(self)
                    super().close()

            classes[scheme] = type(pool_class.__name__, (pool_class,), {"ConnectionCls": Tracked})
        # A copy: urllib3's default mapping is shared module state.
        self.poolmanager.pool_classes_by_scheme = classes
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)

    def interrupt(self) -> None:
        """Wake any request blocked on a socket of this adapter (it fails with an error)."""
        with self._guard:
            connections = list(self._connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@dataclass
class PollResult:
    """One long poll answer: raw events, the ts after them, and whether history was lost."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    ts: str | None = None
    failed: int | None = None
    # The ts the request was made with: the position before these events (a restart that
    # stopped among them resumes there, and the events already stored come again as duplicates).
    start_ts: str | None = None

    @property
    def history_lost(self) -> bool:
        """failed 1 (ts too old) and failed 3 (key and ts gone) both skip events."""
        return self.failed in (1, 3)


class GapAwareLongPoll(VkBotLongPoll):
    """vk_api's VkBotLongPoll returning raw events and telling when VK dropped history.

    vk_api's own `check()` takes the new ts on `failed: 1` silently; here the caller learns of it
    and fills the gap from the wall. Method calls go through `call()` so errors carry the VK code
    and never the token.
    """

    def __init__(self, vk: vk_api.VkApi, group_id: int, wait: int = 25) -> None:
        self.adapter = InterruptibleAdapter()
        super().__init__(vk, group_id, wait=wait)

    def update_longpoll_server(self, update_ts: bool = True) -> None:
        """Ask for a key (and ts); the session gets our interruptible adapter first."""
        if not isinstance(self.session.get_adapter("http://"), InterruptibleAdapter):
            self.session.mount("http://", self.adapter)
            self.session.mount("https://", self.adapter)
            self.session.headers.update(self.vk.http.headers)
        response = call(self.vk, "groups.getLongPollServer", group_id=self.group_id)
        self.key = response["key"]
        self.server = response["server"]
        self.url = self.server
        if update_ts:
            self.ts = response["ts"]

    def check_raw(self) -> PollResult:
        """One long poll request; raises requests errors and ValueError on a bad answer."""
        values = {"act": "a_check", "key": self.key, "ts": self.ts, "wait": self.wait}
        response = self.session.get(self.url, params=values, timeout=self.wait + 10).json()
        if not isinstance(response, dict):
            raise ValueError("long poll answered with something other than an object")
        if "failed" not in response:
            updates = response.get("updates")
            if not isinstance(updates, list):
                raise ValueError("long poll answer without updates")
            start_ts = str(self.ts)
            self.ts = str(response["ts"])
            return PollResult([u for u in updates if isinstance(u, dict)], self.ts, None, start_ts)
        failed = response["failed"]
        if failed == 1:
            self.ts = str(response["ts"])
        elif failed == 2:
            self.update_longpoll_server(update_ts=False)
        else:
            self.update_longpoll_server()
        return PollResult([], str(self.ts), int(failed))

    def interrupt(self) -> None:
        """Wake a poll in progress (called from another thread)."""
        self.adapter.interrupt()

    def close(self) -> None:
        self.session.close()


NETWORK_ERRORS: tuple[type[BaseException], ...] = (requests.RequestException, ValueError, OSError)
