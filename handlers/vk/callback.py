"""VK Callback API (docs/SETUP_VK.md): VK posts each community event to `WEBHOOK_URL` + `/vk`.

The counterpart of the Telegram webhook (handlers/telegram/webhook.py), for many workers
behind any HTTP load balancer. The body is JSON `{"type", "object", "group_id", "event_id",
"v", "secret"}`:

- `confirmation` (sent when an administrator presses «Подтвердить» in the community's
  Callback API settings) is answered with the community's confirmation code as plain text,
  read with `groups.getCallbackConfirmationCode` and the community token at that moment;
- every other request must carry `secret == WEBHOOK_SECRET`, else 403 (and a log line without
  the secret); a community not in VK_GROUP_TOKENS gets 403 too;
- the event goes through the same path as a long-poll event (handlers/vk/delivery.py: the
  intake use case stores it raw once, translated and decided, in one transaction) and is
  committed before the plain-text `ok`. An event whose processing fails is kept raw as
  "failed" and answered `ok` too (a redelivery of it is processed again). Only when the
  database is unavailable for `STORE_WITHIN` seconds is the answer 500: then nothing of it is
  stored, and VK delivers it again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

import vk_api
from aiohttp import web

from bot.app import AppContext
from bot.config import parse_listen
from bot.services.intake import DatabaseUnavailable, Intake
from handlers.vk.client import VkCallError, call, make_vk_session
from handlers.vk.delivery import process_event
from handlers.vk.intake import (
    COMMUNITY_RPS_DELAY,
    FATAL_CODES,
    RECOVERABLE,
    community_page,
)
from handlers.vk.page import VkPage

logger = logging.getLogger(__name__)

VK_PATH = "/vk"
PAGE_RETRY_S = 300.0  # a community whose name VK would not give is asked again after this
# How long a request waits for an unavailable database before it answers 500 (VK waits for
# an answer for about 25 s, then sends the event again).
STORE_WITHIN = 10.0


class VkCallbackHandler:
    """Answers VK's Callback API requests for the communities in VK_GROUP_TOKENS."""

    def __init__(
        self,
        app: AppContext,
        *,
        secret: str | None,
        rps_delay: float | None = None,
        intake: Intake | None = None,
    ) -> None:
        self.app = app
        # The app's intake use case, shared with other sources; else this one's own (`close`).
        self.intake = intake or Intake.for_app(app)
        self._owns_intake = intake is None
        self.secret = secret
        self.rps_delay = rps_delay
        self.tokens = {
            gid: token.get_secret_value() for gid, token in app.settings.vk_group_tokens.items()
        }
        self.processed = 0  # events committed or recognised as redeliveries (tests, the demo)
        self._vk: dict[int, vk_api.VkApi] = {}
        self._pages: dict[int, VkPage] = {}
        self._page_retry_at: dict[int, float] = {}
        self._codes: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def handle(self, request: web.Request) -> web.Response:
        """POST /vk: confirmation code, 403, `ok` after the commit, or 500 for a retry."""
        try:
            body = await request.json()
        except ValueError:  # not JSON, not UTF-8
            return web.Response(status=400, text="bad request")
        if not isinstance(body, Mapping):
            return web.Response(status=400, text="bad request")
        group_id = _group_id(body.get("group_id"))
        if group_id is None or group_id not in self.tokens:
            logger.warning(
                "Callback API: запрос от неизвестного сообщества %r с адреса %r отклонён",
                body.get("group_id"),
                request.remote,
            )
            return web.Response(status=403, text="unknown community")
        event_type = body.get("type")
        if event_type == "confirmation":
            return await self._confirm(group_id)
        if self.secret is not None and not secrets.compare_digest(
            str(body.get("secret") or "").encode(), self.secret.encode()
        ):
            logger.warning(
                "Callback API: событие %r сообщества %r с адреса %r с неверным секретом; отклонено",
                event_type,
                group_id,
                request.remote,
            )
            return web.Response(status=403, text="wrong secret")
        update = {key: value for key, value in body.items() if key != "secret"}
        page = await self.page(group_id)
        try:
            await process_event(self.intake, page, update, self.app.clock(), within=STORE_WITHIN)
        except DatabaseUnavailable as exc:
            logger.error(
                "сообщество ВКонтакте %r: событие не сохранено (%s); ВКонтакте пришлёт его снова",
                group_id,
                exc,
            )
            return web.Response(status=500, text="retry")
        self.processed += 1
        return web.Response(text="ok")

    async def close(self) -> None:
        """Stop the intake writer process if this handler started it."""
        if self._owns_intake:
            await self.intake.close()

    async def _confirm(self, group_id: int) -> web.Response:
        try:
            code = await self.confirmation_code(group_id)
        except RECOVERABLE as exc:
            logger.error(
                "сообщество ВКонтакте %r: код подтверждения недоступен (%s); адрес сервера "
                "не подтверждён — есть ли у ключа право «Управление сообществом»?",
                group_id,
                exc,
            )
            return web.Response(status=500, text="confirmation code unavailable")
        logger.info("сообщество ВКонтакте %r: адрес сервера Callback API подтверждён", group_id)
        return web.Response(text=code)

    async def confirmation_code(self, group_id: int) -> str:
        """The community's current confirmation code (`groups.getCallbackConfirmationCode`).

        Asked on every confirmation (they are rare): VK changes the code whenever a server is
        added or edited, which is exactly when it asks. The last code read is kept for when
        VK cannot be asked.
        """
        try:
            response = await asyncio.to_thread(
                call,
                self._community_vk(group_id),
                "groups.getCallbackConfirmationCode",
                group_id=group_id,
            )
            code = str((response or {}).get("code") or "")
            if not code:
                raise VkCallError(
                    100, "no code in the answer", "groups.getCallbackConfirmationCode"
                )
        except RECOVERABLE as exc:
            if group_id not in self._codes:
                raise
            logger.warning(
                "сообщество ВКонтакте %r: код подтверждения не прочитан (%s); отвечаем прежним",
                group_id,
                exc,
            )
            return self._codes[group_id]
        self._codes[group_id] = code
        return code

    async def page(self, group_id: int) -> VkPage:
        """The community's name and screen name, asked once (ids until VK says them)."""
        page = self._pages.get(group_id)
        if page is not None:
            return page
        if time.monotonic() < self._page_retry_at.get(group_id, 0.0):
            return VkPage(-group_id)
        async with self._locks.setdefault(group_id, asyncio.Lock()):
            if group_id in self._pages:
                return self._pages[group_id]
            try:
                page = await asyncio.to_thread(
                    community_page, self._community_vk(group_id), group_id
                )
            except RECOVERABLE as exc:
                if isinstance(exc, VkCallError) and exc.code in FATAL_CODES:
                    logger.error(
                        "сообщество ВКонтакте %r: %s (%s); события записываются. Исправьте его "
                        "запись в VK_GROUP_TOKENS",
                        group_id,
                        FATAL_CODES[exc.code],
                        exc,
                    )
                else:
                    logger.warning(
                        "сообщество ВКонтакте %r: название недоступно (%s)", group_id, exc
                    )
                self._page_retry_at[group_id] = time.monotonic() + PAGE_RETRY_S
                return VkPage(-group_id)
            if page.title is None:
                self._page_retry_at[group_id] = time.monotonic() + PAGE_RETRY_S
            else:
                self._pages[group_id] = page
            return page

    def _community_vk(self, group_id: int) -> vk_api.VkApi:
        if group_id not in self._vk:
            self._vk[group_id] = make_vk_session(
                self.tokens[group_id],
                api_server=self.app.settings.VK_API_SERVER,
                rps_delay=COMMUNITY_RPS_DELAY if self.rps_delay is None else self.rps_delay,
            )
        return self._vk[group_id]


def register(
    application: web.Application, handler: VkCallbackHandler, *, path: str = VK_PATH
) -> None:
    """Mount the Callback API handler on an aiohttp application (before it starts)."""
    application.router.add_post(path, handler.handle)


class VkCallbackServer:
    """A server for the Callback API alone (when Telegram is not configured)."""

    def __init__(self, handler: VkCallbackHandler, *, listen: str) -> None:
        self.handler = handler
        self.host, self.port = parse_listen(listen)
        self.application = web.Application()
        register(self.application, handler)
        self.application.router.add_get("/health", self._health)
        self._runner: web.AppRunner | None = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def start(self, public_url: str | None = None) -> None:
        """Listen on WEBHOOK_LISTEN; VK's servers are set in each community's settings."""
        self._runner = web.AppRunner(self.application, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        logger.info(
            "сервер Callback API ВКонтакте слушает %s:%r; укажите %s%s адресом сервера "
            "в каждом сообществе",
            self.host,
            self.port,
            (public_url or "").rstrip("/"),
            VK_PATH,
        )

    async def stop(self) -> None:
        """Finish the requests in hand and stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.handler.close()


def _group_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return abs(int(value))
    except (TypeError, ValueError):
        return None
