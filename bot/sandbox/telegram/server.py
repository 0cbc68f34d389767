"""Telegram sandbox server: the aiohttp application serving the Bot API and control API."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

from aiohttp import web

from bot.sandbox.telegram.channels import TelegramChannels

logger = logging.getLogger(__name__)


class TelegramSandbox(TelegramChannels):
    """A fake Telegram Bot API server: real aiogram clients poll and send through it."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve the sandbox over HTTP; port 0 picks a free port."""
        if self._runner is not None:
            raise RuntimeError("sandbox already started")
        self._closing = False
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        self._add_control_routes(app)
        self._add_preview_routes(app)
        # access_log=None: request paths contain bot tokens, which must never reach logs.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self._base_url = f"http://{host}:{bound_port}"
        logger.info("Telegram sandbox listening on %s", self._base_url)

    @property
    def base_url(self) -> str:
        """Return the base URL for TelegramAPIServer.from_base()."""
        if not self._base_url:
            raise RuntimeError("sandbox is not started")
        return self._base_url

    async def stop(self) -> None:
        """Wake long pollers (they answer []), stop webhook delivery and the server."""
        self._closing = True
        tasks = []
        for account in self._bots.values():
            self._wake(account)
            if account.webhook_task is not None:
                account.webhook_task.cancel()
                tasks.append(account.webhook_task)
                account.webhook_task = None
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._base_url = ""

    async def __aenter__(self) -> Self:
        """Start on a free local port."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()
