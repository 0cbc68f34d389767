"""Telegram webhook mode (DESIGN sec. 6): many workers behind any HTTP load balancer.

Telegram posts each update to `WEBHOOK_URL` + `/telegram` with the `WEBHOOK_SECRET` in the
`X-Telegram-Bot-Api-Secret-Token` header; a request without it gets 401. The update is stored
and committed before the 200 answer, so an update whose processing failed is redelivered by
Telegram rather than lost.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

logger = logging.getLogger(__name__)

TELEGRAM_PATH = "/telegram"


def parse_listen(value: str) -> tuple[str, int]:
    """«127.0.0.1:8080» → (host, port); a clear ValueError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"WEBHOOK_LISTEN must look like 127.0.0.1:8080, got {value!r}")
    return host or "127.0.0.1", int(port)


class TelegramWebhook:
    """The aiohttp server that receives Telegram's webhook requests."""

    def __init__(self, dp: Dispatcher, bot: Bot, *, secret: str | None, listen: str) -> None:
        self.dp = dp
        self.bot = bot
        self.host, self.port = parse_listen(listen)
        self.application = web.Application()
        SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token=secret).register(
            self.application, path=TELEGRAM_PATH
        )
        self.application.router.add_get("/health", self._health)
        self._runner: web.AppRunner | None = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def start(self, public_url: str, secret: str | None, allowed: list[str]) -> None:
        self._runner = web.AppRunner(self.application, access_log=None)  # paths are fine to log
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        await self.bot.set_webhook(
            url=public_url.rstrip("/") + TELEGRAM_PATH,
            secret_token=secret,
            allowed_updates=allowed,
        )
        logger.info(
            "webhook server on %s:%r; Telegram posts to %s%s",
            self.host,
            self.port,
            public_url.rstrip("/"),
            TELEGRAM_PATH,
        )

    async def stop(self) -> None:
        # The webhook stays registered: other workers behind the load balancer keep serving.
        if self._runner is not None:
            await self._runner.cleanup()
