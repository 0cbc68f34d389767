"""Jinja2 templates with the Russian formatting of bot/ru.py as filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot import ru
from bot.text import TOPIC_TITLES_RU

# What the browser may load: only this server (docs/SETUP.md sec. 6a): no CDN, fonts, analytics.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # A login link is a secret: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _percent(share: float | None) -> str:
    return ru.percent(share)


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else ru.number(value, digits)


def _index(value: float | None) -> str:
    return "—" if value is None else ru.number(value, 1)


def make_environment(timezone: str) -> Environment:
    env = Environment(
        loader=PackageLoader("handlers.web", "templates"),
        autoescape=select_autoescape(("html", "svg")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    zone = ZoneInfo(timezone)

    def moment(value: datetime | None) -> str:
        if value is None:
            return "—"
        local = value.astimezone(zone)
        return f"{ru.date_short(local)} {ru.time_short(local)}"

    def day(value: datetime | None) -> str:
        return "—" if value is None else ru.date_short(value.astimezone(zone))

    env.filters.update(
        percent=_percent,
        number=_number,
        index=_index,
        duration=ru.duration,
        moment=moment,
        day=day,
        topic=lambda code: TOPIC_TITLES_RU.get(code, code),
        platform=ru.platform,
        quantity=ru.quantity,
    )
    env.globals.update(plural=ru.plural, quantity=ru.quantity, dict=dict)
    return env


def html_response(body: str, status: int = 200) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response


def render(env: Environment, name: str, status: int = 200, **context: Any) -> web.Response:
    return html_response(env.get_template(name).render(**context), status)
