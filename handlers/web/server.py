"""The dashboard's routes on an aiohttp application, and a server for `otklik web`.

`mount` adds the routes to any application: the webhook server of `otklik run` (one port for
/telegram, /vk and the dashboard) or the dashboard's own (`DashboardServer`). The routes guard
themselves (`web.auth.guarded`) instead of a middleware, so the webhook routes on the same
application are left exactly as they are.
"""

from __future__ import annotations

import logging
from importlib import resources

from aiohttp import web

from bot.app import AppContext
from bot.config import parse_listen
from handlers.web import auth, views
from handlers.web.context import DASHBOARD, Dashboard
from handlers.web.render import make_environment

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8081"


def mount(application: web.Application, app: AppContext) -> Dashboard:
    """Add every dashboard route to `application`."""
    dashboard = Dashboard(app, make_environment(app.settings.TIMEZONE))
    application[DASHBOARD] = dashboard
    router = application.router
    router.add_get("/", views.overview)
    router.add_get("/pages/{page_id}", views.page_view)
    router.add_get("/appeals", views.appeals)
    router.add_get("/appeals/{appeal_id}", views.appeal_view)
    router.add_get("/operators", views.operators)
    router.add_get("/export.{fmt}", views.export)
    router.add_get("/signin", auth.signin)
    router.add_get("/login/{token}", auth.login)
    router.add_post("/auth/telegram", auth.telegram_auth)
    router.add_post("/logout", auth.logout)
    static = resources.files("handlers.web") / "static"
    router.add_static("/static/", str(static), append_version=False)
    return dashboard


class DashboardServer:
    """The dashboard alone on `listen` (`otklik web`, or `otklik run` without a webhook)."""

    def __init__(self, app: AppContext, listen: str) -> None:
        self.host, self.port = parse_listen(listen)
        self.application = web.Application()
        mount(self.application, app)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        # No access log: a login link's path is a secret until it is used.
        self._runner = web.AppRunner(self.application, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        logger.info("веб-панель: http://%s:%r", self.host, self.port)

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful with port 0)."""
        assert self._runner is not None
        for address in self._runner.addresses:
            return int(address[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
