"""What every dashboard view shares: the app context and the templates."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from jinja2 import Environment

from bot.app import AppContext


@dataclass
class Dashboard:
    app: AppContext
    env: Environment

    @property
    def bot_token(self) -> str | None:
        token = self.app.settings.TELEGRAM_BOT_TOKEN
        return token.get_secret_value() if token is not None else None


DASHBOARD = web.AppKey("otklik_dashboard", Dashboard)
