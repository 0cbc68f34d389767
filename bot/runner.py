"""`otklik run`: Telegram and VK intake, reminders and digests until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.app import AppContext
from bot.config import Settings
from bot.memory import settle_after_start
from storage.engine import open_database

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from bot.services.intake import Intake
    from handlers.vk.callback import VkCallbackHandler

logger = logging.getLogger(__name__)

SOURCE_SETTINGS = (
    "TELEGRAM_BOT_TOKEN (бот от @BotFather), или VK_GROUP_TOKENS (id_сообщества:токен,...), "
    "или VK_SERVICE_TOKEN вместе с VK_WALL_OWNER_IDS"
)


class NoSourceConfigured(RuntimeError):
    def __init__(self) -> None:
        super().__init__(f"не настроен ни один источник: заполните в .env {SOURCE_SETTINGS}")


def secrets_of(settings: Settings) -> list[str]:
    values = [
        s.get_secret_value()
        for s in (settings.TELEGRAM_BOT_TOKEN, settings.VK_SERVICE_TOKEN, settings.WEBHOOK_SECRET)
        if s is not None
    ]
    values.extend(token.get_secret_value() for token in settings.vk_group_tokens.values())
    return values


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run until `stop` is set (SIGTERM/SIGINT set it); 0 after a clean shutdown."""
    if not settings.has_telegram and not settings.has_vk:
        raise NoSourceConfigured()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with open_database(settings.DATABASE_URL) as engine:
        from bot.services.intake import Intake

        app = AppContext.create(settings, engine)
        # One intake use case (and on SQLite one writer process) for every source; closed last.
        intake = Intake.for_app(app)
        stoppers: list[Callable[[], Awaitable[None]]] = [intake.close]
        tasks: list[asyncio.Task[object]] = []
        # Webhook mode: VK communities arrive by the Callback API on the same server as Telegram.
        callback = (
            _vk_callback(app, intake) if settings.WEBHOOK_URL and settings.vk_group_tokens else None
        )
        if settings.has_telegram:
            await _start_telegram(app, intake, tasks, stoppers, vk_callback=callback)
        if settings.has_vk:
            await _start_vk(
                app,
                intake,
                tasks,
                stoppers,
                callback=callback,
                callback_served=settings.has_telegram,
            )
        if not dashboard_on_webhook(settings) and settings.WEB_LISTEN:
            await _start_dashboard(app, settings.WEB_LISTEN, stoppers)
        await _start_jobs(app, tasks, stoppers)
        await _start_health(app, intake, tasks, stoppers)
        settle_after_start()  # bot/memory.py: fewer garbage-collector passes from here on
        logger.info("Отклик запущен: %s", started_parts(settings))
        waiter = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t for t in done if t is not waiter and t.exception() is not None]
        for task in failed:
            logger.error("служба остановилась с ошибкой: %r", task.exception())
        logger.info("Отклик останавливается")
        for stopper in reversed(stoppers):
            try:
                await stopper()
            except Exception:
                logger.exception("ошибка при остановке")
        waiter.cancel()
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    logger.info("Отклик остановлен")
    return 1 if failed else 0


def started_parts(settings: Settings) -> str:
    """«Telegram (опрос), ВКонтакте (Long Poll), напоминания и сводки»: what `run` started."""
    parts = []
    if settings.has_telegram:
        parts.append("Telegram (вебхук)" if settings.WEBHOOK_URL else "Telegram (опрос)")
    if settings.has_vk:
        if settings.vk_group_tokens:
            mode = "Callback API" if settings.WEBHOOK_URL else "Long Poll"
            parts.append(f"ВКонтакте ({mode})")
        else:
            parts.append("ВКонтакте (личные стены)")
    parts.append("напоминания и сводки")
    if dashboard_on_webhook(settings) or settings.WEB_LISTEN:
        parts.append("веб-панель")
    return ", ".join(parts)


async def _start_telegram(
    app: AppContext,
    intake: Intake,
    tasks: list[asyncio.Task[object]],
    stoppers: list[Callable[[], Awaitable[None]]],
    *,
    vk_callback: VkCallbackHandler | None = None,
) -> None:
    from handlers.telegram.setup import allowed_updates, confirm_offset, make_bot, make_dispatcher

    token = app.settings.TELEGRAM_BOT_TOKEN
    assert token is not None
    bot = make_bot(token.get_secret_value(), app.settings.TELEGRAM_API_SERVER)
    dp, store = make_dispatcher(app, intake)
    from handlers.telegram.notifier import TelegramNotifier

    app.notifier = TelegramNotifier(bot)
    if app.settings.WEBHOOK_URL:
        # Stoppers run in reverse: the store closes after the server stopped taking requests,
        # so every update answered 200 went to an open writer and is committed.
        stoppers.append(store.close)
        await _start_telegram_webhook(app, bot, dp, stoppers, vk_callback=vk_callback)
        return
    store.use_for_polling(bot)
    tasks.append(
        asyncio.create_task(
            dp.start_polling(
                bot,
                handle_signals=False,
                handle_as_tasks=False,  # in order: a reply never overtakes its comment
                close_bot_session=False,
                allowed_updates=allowed_updates(dp),
                polling_timeout=25,
            ),
            name="telegram-polling",
        )
    )

    async def stop_telegram() -> None:
        with contextlib.suppress(RuntimeError):  # polling may have ended already
            await dp.stop_polling()
        await confirm_offset(bot, store)
        await store.close()
        await bot.session.close()

    stoppers.append(stop_telegram)


async def _start_telegram_webhook(
    app: AppContext,
    bot: Bot,
    dp: Dispatcher,
    stoppers: list[Callable[[], Awaitable[None]]],
    *,
    vk_callback: VkCallbackHandler | None = None,
) -> None:
    from handlers.telegram.setup import allowed_updates
    from handlers.telegram.webhook import TelegramWebhook

    secret = app.settings.WEBHOOK_SECRET
    secret_value = secret.get_secret_value() if secret is not None else None
    if secret_value is None:
        logger.warning(
            "WEBHOOK_SECRET не задан: любой, кто узнает адрес вебхука, сможет присылать обновления"
        )
    server = TelegramWebhook(dp, bot, secret=secret_value, listen=app.settings.WEBHOOK_LISTEN)
    if dashboard_on_webhook(app.settings):
        from handlers.web.server import mount

        mount(server.application, app)  # one port for /telegram, /vk and the dashboard
    if vk_callback is not None:
        from handlers.vk.callback import register

        register(server.application, vk_callback)  # one port for /telegram and /vk
    assert app.settings.WEBHOOK_URL is not None
    await server.start(app.settings.WEBHOOK_URL, secret_value, allowed_updates(dp))

    async def stop_webhook() -> None:
        await server.stop()
        await bot.session.close()

    stoppers.append(stop_webhook)


def dashboard_on_webhook(settings: Settings) -> bool:
    """The dashboard shares the Telegram webhook server unless WEB_LISTEN names another address."""
    return (
        settings.has_telegram
        and bool(settings.WEBHOOK_URL)
        and settings.WEB_LISTEN in (None, settings.WEBHOOK_LISTEN)
    )


async def _start_dashboard(
    app: AppContext, listen: str, stoppers: list[Callable[[], Awaitable[None]]]
) -> None:
    from handlers.web.server import DashboardServer

    server = DashboardServer(app, listen)
    await server.start()
    stoppers.append(server.stop)


async def _start_vk(
    app: AppContext,
    intake: Intake,
    tasks: list[asyncio.Task[object]],
    stoppers: list[Callable[[], Awaitable[None]]],
    *,
    callback: VkCallbackHandler | None = None,
    callback_served: bool = False,
) -> None:
    """Long poll per community, or the Callback API in webhook mode; personal walls polled."""
    from handlers.vk.intake import VkIntake

    if callback is not None and not callback_served:
        from handlers.vk.callback import VkCallbackServer

        server = VkCallbackServer(callback, listen=app.settings.WEBHOOK_LISTEN)
        await server.start(app.settings.WEBHOOK_URL)
        stoppers.append(server.stop)
    walls = app.settings.VK_SERVICE_TOKEN is not None and app.settings.vk_wall_owner_ids
    if callback is not None and not walls:
        return  # nothing left to poll
    vk = VkIntake(app, long_poll=callback is None, intake=intake)
    tasks.append(asyncio.create_task(vk.run(), name="vk-intake"))
    stoppers.append(vk.stop)


def _vk_callback(app: AppContext, intake: Intake) -> VkCallbackHandler:
    from handlers.vk.callback import VkCallbackHandler

    secret = app.settings.WEBHOOK_SECRET
    if secret is None:
        logger.warning(
            "WEBHOOK_SECRET не задан: любой, кто узнает адрес, сможет присылать события ВКонтакте"
        )
    return VkCallbackHandler(
        app, secret=secret.get_secret_value() if secret else None, intake=intake
    )


async def _start_jobs(
    app: AppContext,
    tasks: list[asyncio.Task[object]],
    stoppers: list[Callable[[], Awaitable[None]]],
) -> None:
    try:
        from bot.services.scheduler import Scheduler
    except ImportError:  # reminders not built yet in this checkout
        return
    scheduler = Scheduler(app)
    tasks.append(asyncio.create_task(scheduler.run(), name="scheduler"))
    stoppers.append(scheduler.stop)


async def _start_health(
    app: AppContext,
    intake: Intake,
    tasks: list[asyncio.Task[object]],
    stoppers: list[Callable[[], Awaitable[None]]],
) -> None:
    """The page-health refresh: subscribers daily, post counters at 24 h, 72 h and 7 days."""
    from bot.services.health_refresh import HealthRefresh
    from handlers.health_sources import counter_sources

    sources, closers = counter_sources(app.settings)
    if not sources:
        return
    refresh = HealthRefresh(app.sessions, intake, sources, clock=app.clock)
    tasks.append(asyncio.create_task(refresh.run(), name="page-health"))

    async def stop_health() -> None:
        await refresh.stop()
        for close in closers:
            await close()

    stoppers.append(stop_health)
