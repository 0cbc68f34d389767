"""A fault proxy in front of a sandbox: answers the sandboxes themselves never give.

The sandboxes plan API errors (`fail_next`). Some faults are below the API: a redirect loop
(aiohttp's `TooManyRedirects`, whose text carries the request URL and so the bot token), or a
body that is not JSON (a proxy's HTML page: aiogram's `ClientDecodeError`). `FaultProxy`
forwards every call to the sandbox unchanged unless such an answer is planned for its method.

`TcpProxy` stands between Otklik and PostgreSQL: cut, it resets every open connection and
refuses new ones (a database outage), until it is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

_LOOP = "/_loop/"


@dataclass
class _Planned:
    method: str  # lower case; "*" for any
    kind: str  # "redirect" or "garbage"
    remaining: int
    body: bytes = b""
    status: int = 200


class FaultProxy:
    """Forward HTTP calls to `upstream`; answer planned ones with a redirect loop or garbage."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls: list[str] = []  # method names of the calls that reached the proxy
        self._planned: list[_Planned] = []
        self._hops = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._base_url = ""

    # ------------------------------------------------------------------ plans

    def redirect_loop(self, method: str, count: int = 1) -> None:
        """The next `count` calls of `method` redirect to themselves until the client gives up."""
        self._planned.append(_Planned(method.lower(), "redirect", count))

    def garbage(
        self,
        method: str,
        count: int = 1,
        *,
        body: bytes = b"<html><body>502 Bad Gateway</body></html>",
        status: int = 200,
    ) -> None:
        """The next `count` calls of `method` get `body` (not JSON) with `status`."""
        self._planned.append(_Planned(method.lower(), "garbage", count, body, status))

    def _take(self, method: str) -> _Planned | None:
        for planned in self._planned:
            if planned.method in {method.lower(), "*"} and planned.remaining > 0:
                planned.remaining -= 1
                if planned.remaining <= 0:
                    self._planned.remove(planned)
                return planned
        return None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        # access_log=None: request paths contain bot tokens.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._base_url = f"http://{host}:{runner.addresses[0][1]}"

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("proxy is not started")
        return self._base_url

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._base_url = ""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith(_LOOP):  # one more hop of a redirect loop
            original = "/" + path[len(_LOOP) :].partition("/")[2]
            raise web.HTTPFound(f"{_LOOP}{next(self._hops)}{original}")
        method = path.rstrip("/").rsplit("/", 1)[-1]
        self.calls.append(method)
        planned = self._take(method)
        if planned is not None and planned.kind == "redirect":
            raise web.HTTPFound(f"{_LOOP}{next(self._hops)}{path}")
        if planned is not None:
            return web.Response(body=planned.body, status=planned.status, content_type="text/html")
        assert self._client is not None
        headers = {}
        if "Content-Type" in request.headers:
            headers["Content-Type"] = request.headers["Content-Type"]
        async with self._client.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read(),
            headers=headers,
        ) as answer:
            body = await answer.read()
            return web.Response(
                body=body,
                status=answer.status,
                headers={"Content-Type": answer.headers.get("Content-Type", "application/json")},
            )


class TcpProxy:
    """127.0.0.1:port → PostgreSQL, that can be cut (connections reset, new ones refused)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.Transport] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        for stream in (writer, up_writer):
            transport = stream.transport
            assert isinstance(transport, asyncio.Transport)
            self._transports.add(transport)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(_pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    sink.transport.abort()
