"""Signing in and the guard every data view goes through (bot/services/web_access.py decides).

Credentials live in real time (`utc_now`), whatever clock the reports use: Telegram signs
`initData` with its own clock, and the demo's simulated clock runs faster than a login link's
ten minutes.

Anonymous requests get 401 with the sign-in page, never data. A refused login link or Mini App
signature is logged with the reason only: the token or `initData` never reaches a log line.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import utc_now
from bot.services import web_access
from bot.services.web_access import SESSION_COOKIE, Access, AccessDenied
from handlers.web.context import DASHBOARD, Dashboard
from handlers.web.render import SECURITY_HEADERS, render

logger = logging.getLogger(__name__)

View = Callable[[web.Request, Dashboard, AsyncSession, Access], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _signin_page(dashboard: Dashboard, status: int, problem: str | None = None) -> web.Response:
    return render(dashboard.env, "signin.html", status=status, problem=problem, access=None)


def guarded(view: View) -> Handler:
    """The view runs only for a signed-in person with a role; the rest get 401."""

    @functools.wraps(view)
    async def handler(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        dashboard = request.app[DASHBOARD]
        token = dashboard.bot_token
        now = utc_now()
        cookie = request.cookies.get(SESSION_COOKIE)
        user = web_access.session_user(cookie, token, now) if token else None
        async with dashboard.app.sessions() as session:
            access = None
            if user is not None:
                access = await web_access.access_of(session, dashboard.app.settings, user)
                if access is None:
                    logger.info("веб-панель: у пользователя %r больше нет роли", user)
            if access is None:
                return _signin_page(dashboard, 401)
            response = await view(request, dashboard, session, access)
            # A report may have refreshed stale pre-aggregated days (storage/rollup.py).
            await session.commit()
        # The server's own time for the page (`otklik bench` reads it; so can a browser).
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
        return response

    return handler


def _secure(request: web.Request, dashboard: Dashboard) -> bool:
    """HTTPS directly, behind a proxy that says so, or by the configured public address."""
    public = dashboard.app.settings.WEB_PUBLIC_URL or ""
    forwarded = request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    return request.secure or forwarded or public.startswith("https://")


def _start_session(
    request: web.Request, dashboard: Dashboard, response: web.StreamResponse, user_id: str
) -> None:
    token = dashboard.bot_token
    assert token is not None
    secure = _secure(request, dashboard)
    response.set_cookie(
        SESSION_COOKIE,
        web_access.session_value(user_id, token, utc_now()),
        max_age=int(web_access.SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        secure=secure,
        # Telegram's web clients show a Mini App in a frame: there only SameSite=None
        # (which needs Secure) sends the cookie; a browser tab gets Lax.
        samesite="None" if secure else "Lax",
    )


async def signin(request: web.Request) -> web.StreamResponse:
    return _signin_page(request.app[DASHBOARD], 200)


async def login(request: web.Request) -> web.StreamResponse:
    """GET /login/<token>: a one-time link from /web opens a session."""
    dashboard = request.app[DASHBOARD]
    if dashboard.bot_token is None:
        return _signin_page(dashboard, 401, "Вход по ссылке недоступен: бот не настроен.")
    now = utc_now()
    async with dashboard.app.sessions() as session:
        try:
            user_id = await web_access.use_login_token(session, request.match_info["token"], now)
        except AccessDenied as error:
            logger.warning("веб-панель: вход по ссылке с %s отклонён: %s", request.remote, error)
            return _signin_page(
                dashboard,
                401,
                "Ссылка для входа недействительна: она уже использована или устарела. "
                "Отправьте боту /web, чтобы получить новую.",
            )
        access = await web_access.access_of(session, dashboard.app.settings, user_id)
        await session.commit()
    if access is None:
        logger.warning("веб-панель: вход отклонён, у пользователя %r нет роли", user_id)
        return _signin_page(dashboard, 401, "У вас нет доступа к панели.")
    response = web.Response(status=302, headers={**SECURITY_HEADERS, "Location": "/"})
    _start_session(request, dashboard, response, user_id)
    logger.info("веб-панель: пользователь %r вошёл по ссылке", user_id)
    return response


async def telegram_auth(request: web.Request) -> web.StreamResponse:
    """POST /auth/telegram, form field `initData`: the Mini App signs in."""
    dashboard = request.app[DASHBOARD]
    token = dashboard.bot_token
    form = await request.post()
    init_data = form.get("initData")
    now = utc_now()
    if token is None or not isinstance(init_data, str):
        logger.warning("веб-панель: вход из Mini App с %s отклонён: нет initData", request.remote)
        return web.json_response({"ok": False}, status=401, headers=SECURITY_HEADERS)
    async with dashboard.app.sessions() as session:
        try:
            user = await web_access.use_init_data(session, init_data, token, now)
        except AccessDenied as error:
            logger.warning("веб-панель: вход из Mini App с %s отклонён: %s", request.remote, error)
            return web.json_response({"ok": False}, status=401, headers=SECURITY_HEADERS)
        access = await web_access.access_of(session, dashboard.app.settings, str(user.user_id))
        await session.commit()
    if access is None:
        logger.warning(
            "веб-панель: вход из Mini App отклонён, у пользователя %r нет роли", user.user_id
        )
        return web.json_response({"ok": False}, status=403, headers=SECURITY_HEADERS)
    response = web.json_response({"ok": True}, headers=SECURITY_HEADERS)
    _start_session(request, dashboard, response, str(user.user_id))
    logger.info("веб-панель: пользователь %r вошёл из Mini App", user.user_id)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=302, headers={"Location": "/signin"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response
