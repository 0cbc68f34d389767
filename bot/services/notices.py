"""Notices to the press chat about the tracker itself (outages, what could not be read back).

Best effort by design: a notice that cannot be sent (no Telegram, no PRESS_CHAT_ID, the Bot API
unreachable) is logged and dropped; it must never hold up what it is about. The text is plain
Russian; it is HTML-escaped here.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import AppContext

logger = logging.getLogger(__name__)


async def tell_press(app: AppContext, text: str) -> bool:
    """Send `text` to PRESS_CHAT_ID; False (logged) if it could not be sent."""
    chat_id = app.settings.PRESS_CHAT_ID
    notifier = app.notifier
    if notifier is None or chat_id is None:
        logger.warning("некому сообщить: нет пресс-чата (нужны PRESS_CHAT_ID и Telegram): %s", text)
        return False
    try:
        await notifier.send_text(chat_id, html.escape(text, quote=False))
    except Exception as error:  # the notice is not what matters; what it reports is logged
        logger.warning("сообщение в пресс-чат не отправлено (%s): %s", error, text)
        return False
    return True
