"""The page-health counter sources the settings allow (Telegram, VK), for the refresh."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.config import Settings
from bot.services.health_refresh import CounterSource


def counter_sources(
    settings: Settings,
) -> tuple[list[CounterSource], list[Callable[[], Awaitable[None]]]]:
    """The sources and what closes them (a Telegram bot's HTTP session)."""
    sources: list[CounterSource] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    if settings.TELEGRAM_BOT_TOKEN is not None:
        from handlers.telegram.health import TelegramCounterSource, preview_server
        from handlers.telegram.setup import make_bot

        bot = make_bot(settings.TELEGRAM_BOT_TOKEN.get_secret_value(), settings.TELEGRAM_API_SERVER)
        sources.append(
            TelegramCounterSource(
                bot,
                preview_views=settings.TELEGRAM_PREVIEW_VIEWS,
                preview_server=preview_server(settings.TELEGRAM_API_SERVER),
            )
        )
        closers.append(bot.session.close)
    service = settings.VK_SERVICE_TOKEN
    groups = settings.vk_group_tokens
    if service is not None or groups:
        from handlers.vk.health import VkCounterSource

        sources.append(
            VkCounterSource(
                service_token=service.get_secret_value() if service is not None else None,
                group_tokens={gid: token.get_secret_value() for gid, token in groups.items()},
                api_server=settings.VK_API_SERVER,
            )
        )
    return sources, closers
