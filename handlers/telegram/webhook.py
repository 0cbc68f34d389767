"""Telegram webhook mode (docs/SETUP.md): many workers behind any HTTP load balancer.

Telegram posts each update to `WEBHOOK_URL` + `/telegram` with the `WEBHOOK_SECRET` in the
`X-Telegram-Bot-Api-Secret-Token` header; a request without it gets 401. The update is stored
and committed before the 200 answer (`StoreThenAnswer`), so an update whose processing failed
or took too long is redelivered by Telegram rather than lost.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.config import parse_listen
from handlers.telegram.unparsed import unparsed_of

logger = logging.getLogger(__name__)

TELEGRAM_PATH = "/telegram"


# Telegram waits about 60 s for an answer, then posts the update again.
ANSWER_WITHIN = 50.0


class StoreThenAnswer(SimpleRequestHandler):
    """Answers Telegram 200 only once the update is stored (committed).

    aiogram's own handler answers after 55 s even if the update is still being processed, and
    Telegram never sends a 200-answered update again. Here a slow update gets 503 instead: it
    goes on, and when Telegram posts it again it is recognised as stored (or stored then).
    A failure answers 500, and Telegram posts the update again as well. A body that does not
    parse as a JSON object answers 400 (issue 16 item 11): it is not an update. An object that
    does not fit the schema is kept as failed (handlers/telegram/unparsed.py) and answered 200.
    """

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            update = await request.json(loads=bot.session.json_loads)
        except ValueError:  # not JSON, not UTF-8: no sending it again will make it parse
            logger.warning("тело запроса вебхука — не JSON; ответ 400")
            return web.Response(status=400, text="the body is not a JSON object")
        if not isinstance(update, dict):
            logger.warning("тело запроса вебхука — JSON, но не обновление; ответ 400")
            return web.Response(status=400, text="the body is not a JSON object")
        unparsed = unparsed_of(bot)
        if unparsed is None:
            feeding = self.dispatcher.feed_raw_update(bot, update, **self.data)
        else:
            # An update that does not parse is kept as failed and answered 200 (issue 16
            # item 10): posting it again would not make it parse, and would hold the queue.
            parsed = unparsed.parse(update, bot)
            if parsed is None:
                return web.Response(status=400, text="the body is not an update")
            feeding = self.dispatcher.feed_update(bot, parsed, **self.data)
        work = asyncio.ensure_future(feeding)
        done, _ = await asyncio.wait({work}, timeout=ANSWER_WITHIN)
        if not done:
            logger.warning(
                "обновление %r не сохранено за %s с; просим Telegram прислать его снова",
                update.get("update_id"),
                ANSWER_WITHIN,
            )
            return web.Response(status=503, text="still storing; send it again")
        return web.Response(body=self._build_response_writer(bot=bot, result=work.result()))


class TelegramWebhook:
    """The aiohttp server that receives Telegram's webhook requests."""

    def __init__(self, dp: Dispatcher, bot: Bot, *, secret: str | None, listen: str) -> None:
        self.dp = dp
        self.bot = bot
        self.host, self.port = parse_listen(listen)
        self.application = web.Application()
        StoreThenAnswer(dp, bot, handle_in_background=False, secret_token=secret).register(
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
            "вебхук-сервер слушает %s:%r; Telegram присылает обновления на %s%s",
            self.host,
            self.port,
            public_url.rstrip("/"),
            TELEGRAM_PATH,
        )

    async def stop(self) -> None:
        # The webhook stays registered: other workers behind the load balancer keep serving.
        if self._runner is not None:
            await self._runner.cleanup()
