"""Telegram sandbox control: what tests and the demo use to plan failures, wait and look."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.sandbox.telegram.api import TelegramApi
from bot.sandbox.telegram.model import (
    FailureAnswer,
    JsonDict,
    SandboxApiError,
    SentMessage,
)

logger = logging.getLogger(__name__)


class TelegramControl(TelegramApi):
    """Test controls in Python and the same controls as JSON under /_sandbox/."""

    # ------------------------------------------------------------------ failures

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next `count` calls of `method` ("*" for any) fail with `status`."""
        if status not in {400, 403, 429, 500, 502}:
            raise ValueError(f"unsupported status {status}")
        self._failures.plan(method.lower(), FailureAnswer(status, retry_after, description), count)

    # ------------------------------------------------------------------ inspection

    def sent_messages(self, chat_id: int | None = None) -> list[SentMessage]:
        """Return what the bot sent (new messages, not edits), optionally in one chat."""
        return [item for item in self.sent if chat_id is None or item.chat_id == chat_id]

    def message(
        self, chat_id: int, message_id: int, business_connection_id: str | None = None
    ) -> JsonDict | None:
        """Return the current state of a stored message (after edits), or None."""
        found = self._messages.get((business_connection_id or "", chat_id, message_id))
        return copy.deepcopy(found) if found is not None else None

    def chat(self, chat_id: int) -> JsonDict | None:
        """Return a registered chat dict, or None."""
        found = self._chats.get(int(chat_id))
        return copy.deepcopy(found) if found is not None else None

    # The timeout parameters below are part of the sandbox's documented test interface.
    async def wait_for_sent(
        self,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentMessage:
        """Wait until a sent message matching predicate exists; raise TimeoutError otherwise."""
        checked = 0
        async with asyncio.timeout(timeout):
            while True:
                for item in self.sent[checked:]:
                    if predicate is None or predicate(item):
                        return item
                checked = len(self.sent)
                event = self._sent_changed
                await event.wait()

    async def wait_for_call(
        self,
        method: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> JsonDict:
        """Wait until the bot called `method`; return the params of the first such call."""
        checked = 0
        async with asyncio.timeout(timeout):
            while True:
                for name, params in self.calls[checked:]:
                    if name.lower() == method.lower():
                        return params
                checked = len(self.calls)
                event = self._sent_changed
                await event.wait()

    async def wait_for_confirmed(
        self,
        update_id: int,
        *,
        bot_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until the bot confirmed update_id (its offset moved past it)."""
        account = self._account(bot_id)
        async with asyncio.timeout(timeout):
            while account.confirmed_offset <= update_id:
                await account.wakeup.wait()

    def pending_updates(self, bot_id: int | None = None) -> int:
        """Return how many updates are queued and not yet confirmed."""
        return len(self._account(bot_id).updates)

    @property
    def confirmed_offset(self) -> int:
        """Return the highest getUpdates offset the default bot confirmed."""
        return self._account(None).confirmed_offset

    @property
    def last_allowed_updates(self) -> list[str] | None:
        """Return the last allowed_updates list the default bot sent (None if never)."""
        found = self._account(None).last_allowed_updates
        return list(found) if found is not None else None

    @property
    def webhook_url(self) -> str:
        """Return the default bot's webhook URL ('' when polling)."""
        return self._account(None).webhook_url

    def commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        """Return the default bot's commands for a scope."""
        return copy.deepcopy(
            self._account(None).commands.get(self._commands_key(scope, language_code), [])
        )

    def menu_button(self, chat_id: int = 0) -> JsonDict | None:
        """The default bot's menu button in a private chat (0: the default for all), if set."""
        return copy.deepcopy(self._account(None).menu_buttons.get(chat_id))

    @property
    def bot_user(self) -> JsonDict:
        """Return the default bot's User dict."""
        return dict(self._account(None).user)

    # ------------------------------------------------------------------ HTTP: control API

    def _add_control_routes(self, app: web.Application) -> None:
        """Expose the control API under /_sandbox/ for the demo's --serve mode."""
        app.router.add_get("/_sandbox/state", self._ctl_state)
        app.router.add_get("/_sandbox/sent", self._ctl_sent)
        app.router.add_get("/_sandbox/calls", self._ctl_calls)
        app.router.add_get("/_sandbox/chats", self._ctl_chats)
        app.router.add_get("/_sandbox/messages", self._ctl_messages)
        app.router.add_post("/_sandbox/chats", self._ctl_add_chat)
        app.router.add_post("/_sandbox/admins", self._ctl_set_admins)
        app.router.add_post("/_sandbox/updates", self._ctl_inject_update)
        app.router.add_post("/_sandbox/messages", self._ctl_inject_message)
        app.router.add_post("/_sandbox/callback_queries", self._ctl_inject_callback)
        app.router.add_post("/_sandbox/failures", self._ctl_fail_next)

    @staticmethod
    async def _ctl_body(request: web.Request) -> JsonDict:
        """Read a control request's JSON object."""
        try:
            body = await request.json()
        except ValueError as exc:
            raise web.HTTPBadRequest(text="expected a JSON object") from exc
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return body

    @staticmethod
    def _ctl_ok(result: Any) -> web.Response:
        """Answer a control call."""
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _ctl_error(exc: Exception) -> web.Response:
        """Answer a failed control call."""
        return web.json_response({"ok": False, "description": str(exc)}, status=400)

    async def _ctl_state(self, request: web.Request) -> web.Response:
        """Summarise the sandbox (no tokens)."""
        return self._ctl_ok(
            {
                "bots": [
                    {
                        "id": account.bot_id,
                        "username": account.user.get("username"),
                        "pending_updates": len(account.updates),
                        "confirmed_offset": account.confirmed_offset,
                        "allowed_updates": account.last_allowed_updates,
                        "webhook_url": account.webhook_url,
                    }
                    for account in self._bots.values()
                ],
                "chats": len(self._chats),
                "sent": len(self.sent),
                "edits": len(self.edits),
                "calls": len(self.calls),
            }
        )

    async def _ctl_sent(self, request: web.Request) -> web.Response:
        """List sent messages, optionally of one chat."""
        chat_id = request.query.get("chat_id")
        items = self.sent_messages(int(chat_id) if chat_id else None)
        return self._ctl_ok([item.to_json() for item in items])

    async def _ctl_calls(self, request: web.Request) -> web.Response:
        """List Bot API calls (method and params)."""
        return self._ctl_ok([{"method": name, "params": params} for name, params in self.calls])

    async def _ctl_chats(self, request: web.Request) -> web.Response:
        """List registered chats."""
        return self._ctl_ok(list(self._chats.values()))

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        """List stored messages of a chat."""
        chat_id = request.query.get("chat_id")
        items = [
            message
            for (_, cid, _), message in sorted(self._messages.items())
            if chat_id is None or cid == int(chat_id)
        ]
        return self._ctl_ok(items)

    async def _ctl_add_chat(self, request: web.Request) -> web.Response:
        """Register a chat."""
        body = await self._ctl_body(request)
        try:
            return self._ctl_ok(self.add_chat(body.get("chat", body)))
        except (ValueError, KeyError, TypeError) as exc:
            return self._ctl_error(exc)

    async def _ctl_set_admins(self, request: web.Request) -> web.Response:
        """Set a chat's admins."""
        body = await self._ctl_body(request)
        try:
            self.set_admins(
                int(body["chat_id"]),
                body.get("admins", []),
                bot_is_admin=bool(body.get("bot_is_admin", True)),
            )
        except (ValueError, KeyError, TypeError, SandboxApiError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok(True)

    async def _ctl_inject_update(self, request: web.Request) -> web.Response:
        """Queue a raw update."""
        body = await self._ctl_body(request)
        try:
            update_id = self.inject_update(body.get("update", body), bot_id=body.get("bot_id"))
        except (ValueError, KeyError, RuntimeError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok({"update_id": update_id})

    async def _ctl_inject_message(self, request: web.Request) -> web.Response:
        """Queue a citizen (or staff) message built from simple fields."""
        body = await self._ctl_body(request)
        try:
            date = body.get("date")
            if isinstance(date, str):
                date = datetime.fromisoformat(date)
            sender = body.get("sender_chat_id")
            message = self.inject_message(
                body["chat"] if "chat" in body else int(body["chat_id"]),
                body.get("from_user", body.get("from")),
                body.get("text"),
                sender_chat=int(sender) if sender is not None else None,
                reply_to=body.get("reply_to"),
                message_thread_id=body.get("message_thread_id"),
                date=date,
                kind=body.get("kind", "text"),
                business_connection_id=body.get("business_connection_id"),
                bot_id=body.get("bot_id"),
            )
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok(message)

    async def _ctl_inject_callback(self, request: web.Request) -> web.Response:
        """Queue a button press on a stored bot message."""
        body = await self._ctl_body(request)
        try:
            message = self.message(int(body["chat_id"]), int(body["message_id"]))
            if message is None:
                raise ValueError("message not found")
            from_user = body.get("from_user") or body["from"]
            payload = self.inject_callback_query(from_user, message, str(body["data"]))
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok(payload)

    async def _ctl_fail_next(self, request: web.Request) -> web.Response:
        """Schedule error answers for a method."""
        body = await self._ctl_body(request)
        try:
            self.fail_next(
                str(body["method"]),
                int(body.get("count", 1)),
                status=int(body.get("status", 429)),
                retry_after=int(body.get("retry_after", 1)),
                description=body.get("description"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return self._ctl_error(exc)
        return self._ctl_ok(True)
