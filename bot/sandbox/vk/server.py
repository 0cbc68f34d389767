"""VK sandbox server: the aiohttp application serving the API, long poll and control."""

from __future__ import annotations

import asyncio
import logging
import threading

from aiohttp import web

from bot.sandbox.vk.health import VkHealth

logger = logging.getLogger(__name__)


class VkSandbox(VkHealth):
    """An in-memory VK with the API server and Bots Long Poll on one aiohttp app."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); returns base_url."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._closing = False
        app = web.Application()
        app.router.add_route("*", "/method/{method}", self._handle_method)
        app.router.add_get("/lp/{group_id}", self._handle_long_poll)
        app.router.add_get("/_sandbox/{action}", self._handle_control)
        app.router.add_post("/_sandbox/{action}", self._handle_control)
        # No access log: long-poll URLs carry the poll key.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        if ":" in bound_host:
            bound_host = f"[{bound_host}]"
        self.base_url = f"http://{bound_host}:{bound_port}"
        logger.info("VK sandbox serving at %r", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Release pending long polls and stop serving."""
        self._closing = True
        with self._lock:
            for group in self._groups.values():
                self._wake(group)
            tasks = [
                g.callback.task for g in self._groups.values() if g.callback and g.callback.task
            ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> VkSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ HTTP: API methods

    async def _handle_method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, str] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        token = params.pop("access_token", None)
        authorization = request.headers.get("Authorization", "")
        if token is None and authorization.startswith("Bearer "):
            token = authorization.removeprefix("Bearer ")
        body = self.dispatch(method, params, token)
        return web.json_response(body)
