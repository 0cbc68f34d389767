"""VK sandbox updates: events, their Bots Long Poll and their Callback API delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.sandbox.vk.model import (
    _COMMENT_KINDS,
    _LOOPBACK_HOSTS,
    CLIENT_INFO,
    MAX_LONG_POLL_WAIT_S,
    CallbackDelivery,
    JsonDict,
    SandboxError,
    _Callback,
    _Comment,
    _Group,
    _Message,
)
from bot.sandbox.vk.world import VkWorld

logger = logging.getLogger(__name__)


class VkUpdates(VkWorld):
    """Queue the events real VK would send and deliver them by long poll or callback."""

    # ------------------------------------------------------------------ events

    def _emit_for_owner(self, owner_id: int, event_type: str, obj: JsonDict) -> None:
        group = self._groups.get(-owner_id)
        if group is not None:
            self._emit(group, event_type, obj)

    def _emit_comment_event(self, comment: _Comment, action: str) -> None:
        event_prefix, container_field, _ = _COMMENT_KINDS[comment.kind]
        if action == "delete":
            obj: JsonDict
            if comment.kind == "board":
                obj = {
                    "topic_owner_id": comment.owner_id,
                    "topic_id": comment.container_id,
                    "id": comment.id,
                }
            else:
                # dev.vk.com names the deleter `deleter_id`; the JSON schema `user_id`: send both.
                obj = {
                    "owner_id": comment.owner_id,
                    "id": comment.id,
                    "deleter_id": comment.deleter_id,
                    "user_id": comment.deleter_id,
                    container_field: comment.container_id,
                }
        else:
            obj = self._comment_object(comment)
        self._emit_for_owner(comment.owner_id, f"{event_prefix}_{action}", obj)

    def _emit_message_event(self, group: _Group, message: _Message) -> None:
        obj = self._message_object(group, message)
        if message.out:
            self._emit(group, "message_reply", obj)
        else:
            self._emit(group, "message_new", {"message": obj, "client_info": dict(CLIENT_INFO)})

    def _emit(self, group: _Group, event_type: str, obj: JsonDict) -> None:
        if not group.longpoll_enabled and group.callback is None:
            return
        if not group.longpoll_events.get(event_type, 1):
            return
        event: JsonDict = {
            "group_id": group.id,
            "type": event_type,
            "event_id": secrets.token_hex(20),
            "v": group.longpoll_api_version,
            "object": obj,
        }
        if group.callback is not None:
            self._enqueue(group.callback, event)
        if not group.longpoll_enabled:
            return
        group.events.append((group.next_ts, event))
        group.next_ts += 1
        while len(group.events) > self.history_limit:
            group.events.popleft()
        self._wake(group)

    def _wake(self, group: _Group) -> None:
        if self._loop is None or threading.get_ident() == self._loop_thread:
            self._swap_wakeup(group)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._swap_wakeup, group)

    @staticmethod
    def _swap_wakeup(group: _Group) -> None:
        event, group.wakeup = group.wakeup, asyncio.Event()
        event.set()

    # ------------------------------------------------------------------ Callback API

    async def set_callback(
        self,
        group_id: int,
        url: str,
        secret: str | None = None,
        confirmation_code: str | None = None,
    ) -> str:
        """Add the community's Callback API server, confirmed as VK does; returns the code.

        The server must answer `{"type": "confirmation", "group_id": G}` with the community's
        confirmation code (SandboxError otherwise); from then on every new event is POSTed to
        it with `secret`, again up to `callback_retries` times until it answers `ok`.
        Loopback addresses only: the sandbox never posts anywhere else.
        """
        if urlsplit(url).hostname not in _LOOPBACK_HOSTS:
            raise SandboxError(f"callback server {url!r} is not on 127.0.0.1")
        with self._lock:
            group = self._group(group_id)
            if confirmation_code is not None:
                group.confirmation_code = confirmation_code
            code = group.confirmation_code
        status, body = await self._post_json(url, {"type": "confirmation", "group_id": group_id})
        if status != 200 or body != code:
            raise SandboxError(
                f"callback server {url!r} answered {status!r} {body[:100]!r}, "
                f"not the confirmation code {code!r}"
            )
        callback = _Callback(url, secret)
        callback.idle.set()
        callback.task = asyncio.create_task(
            self._deliver_events(group_id, callback), name=f"vk-sandbox-callback-{group_id}"
        )
        with self._lock:
            previous, group.callback = group.callback, callback
        if previous is not None and previous.task is not None:
            previous.task.cancel()
        return code

    def redeliver(self, group_id: int, event_id: str) -> None:
        """Send an already delivered event again (as VK does when an `ok` got lost)."""
        with self._lock:
            callback = self._group(group_id).callback
            if callback is None or event_id not in callback.events:
                raise SandboxError(f"event {event_id!r} was never sent to a callback server")
            self._enqueue(callback, callback.events[event_id])

    async def callback_idle(self, group_id: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until every queued event of the community was delivered or given up on."""
        callback = self._group(group_id).callback
        if callback is None:
            raise SandboxError(f"group {group_id} has no callback server")
        async with asyncio.timeout(timeout):
            while True:
                await callback.idle.wait()
                await asyncio.sleep(0)  # an _emit scheduled from another thread lands first
                if callback.idle.is_set():
                    return

    async def _post_json(
        self, url: str, body: JsonDict, headers: Mapping[str, str] | None = None
    ) -> tuple[int | None, str]:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.callback_timeout_s)
            )
        try:
            async with self._http.post(url, json=body, headers=dict(headers or {})) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, type(exc).__name__

    async def _deliver_events(self, group_id: int, callback: _Callback) -> None:
        """Deliver the community's events one by one, in order, each with its retries."""
        while True:
            event = await callback.queue.get()
            try:
                await self._deliver(group_id, callback, event)
            finally:
                callback.pending -= 1
                if callback.pending <= 0:
                    callback.idle.set()

    async def _deliver(self, group_id: int, callback: _Callback, event: JsonDict) -> None:
        body = dict(event)
        if callback.secret is not None:
            body["secret"] = callback.secret
        for attempt in range(1, self.callback_retries + 2):
            # VK numbers its retries in this header; the first delivery goes without it.
            headers = {"X-Retry-Counter": str(attempt - 1)} if attempt > 1 else {}
            status, text = await self._post_json(callback.url, body, headers)
            delivery = CallbackDelivery(
                group_id,
                str(event["event_id"]),
                str(event["type"]),
                attempt,
                status,
                text,
                self.now(),
            )
            self.deliveries.append(delivery)
            if delivery.ok:
                return
            await asyncio.sleep(self.callback_retry_delay_s)
        logger.warning(
            "VK sandbox: event %r of group %r given up after %r attempts",
            event["event_id"],
            group_id,
            self.callback_retries + 1,
        )

    def _enqueue(self, callback: _Callback, event: JsonDict) -> None:
        callback.events[str(event["event_id"])] = event
        callback.pending += 1
        callback.idle.clear()
        if self._loop is None or threading.get_ident() == self._loop_thread:
            callback.queue.put_nowait(event)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback.queue.put_nowait, event)

    # ------------------------------------------------------------------ HTTP: long poll

    async def _handle_long_poll(self, request: web.Request) -> web.Response:
        return web.json_response(await self._long_poll(request))

    async def _long_poll(self, request: web.Request) -> JsonDict:
        query = request.query
        try:
            group_id = int(request.match_info["group_id"])
        except ValueError:
            return {"failed": 3}
        with self._lock:
            group = self._groups.get(group_id)
            if group is None or not group.longpoll_enabled:
                return {"failed": 3}
            if query.get("act") != "a_check":
                return {"failed": 3}
            if group.forced_poll_failures:
                code = group.forced_poll_failures.popleft()
                if code == 1:
                    return {"failed": 1, "ts": str(group.next_ts)}
                # The key really is gone: a retry with it must fail too.
                group.key = secrets.token_hex(20)
                return {"failed": code}
        try:
            wait = min(MAX_LONG_POLL_WAIT_S, max(0, int(query.get("wait", "25"))))
        except ValueError:
            wait = 25
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            with self._lock:
                if query.get("key") != group.key:
                    return {"failed": 2}
                try:
                    ts = int(query.get("ts", ""))
                except ValueError:
                    return {"failed": 1, "ts": str(group.next_ts)}
                oldest = group.events[0][0] if group.events else group.next_ts
                if ts < oldest or ts > group.next_ts:
                    return {"failed": 1, "ts": str(group.next_ts)}
                updates = [event for number, event in group.events if number >= ts]
                wakeup = group.wakeup
                next_ts = group.next_ts
            remaining = deadline - loop.time()
            if updates or self._closing or remaining <= 0:
                return {"ts": str(next_ts), "updates": updates}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), remaining)
