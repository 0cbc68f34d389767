"""One VK community event, from Long Poll or the Callback API, as one intake job.

The event is translated (handlers/vk/translate.py) and handed to the intake use case
(bot/services/intake.py) with its raw copy, keyed by VK's `event_id`: stored once, a redelivery
changes nothing, one whose processing failed before is processed again, a failure is kept raw
as "failed". Long Poll adds its position (`ts`, the newest date seen) as cursors of the same
job, so a restart resumes after the last committed event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from hashlib import sha1
from typing import Any

from bot.services.intake import Cursor, Intake, IntakeJob, RawCopy, note_of
from handlers.vk.page import TranslationError, VkPage
from handlers.vk.translate import translate

logger = logging.getLogger(__name__)


def event_source(group_id: int) -> str:
    """The raw store's source of a community's events (long poll and Callback API alike)."""
    return f"vk:{group_id}"


def event_key(update: Mapping[str, Any]) -> str:
    """The raw store's key of an event: VK's event_id (the same on every redelivery)."""
    return str(update.get("event_id") or _fallback_key(update))


def event_job(
    page: VkPage, update: Mapping[str, Any], now: datetime, cursors: tuple[Cursor, ...] = ()
) -> IntakeJob:
    """The intake job of a community event: its raw copy and events (none if not ours)."""
    group_id = -page.owner_id
    event_type = update.get("type")
    raw = RawCopy(
        event_source(group_id),
        event_key(update),
        event_type if isinstance(event_type, str) else None,
        json.dumps(dict(update), default=str),
    )
    try:
        events = translate(update, page, now)
    except TranslationError as exc:
        logger.warning(
            "сообщество ВКонтакте %r: событие %r пропущено (%s); сохранено как есть",
            group_id,
            event_type,
            exc,
        )
        return IntakeJob(raw, (), "skipped", str(exc)[:500], cursors)
    except Exception as exc:  # a bug in translation: kept raw as failed, never lost
        logger.exception(
            "сообщество ВКонтакте %r: событие %r не обработано; сохранено как есть",
            group_id,
            raw.key,
        )
        return IntakeJob(raw, (), "failed", note_of(exc), cursors)
    if events is None:
        logger.info(
            "сообщество ВКонтакте %r: %r не обрабатывается; сохранено как есть",
            group_id,
            event_type,
        )
        return IntakeJob(raw, (), "skipped", "event type not handled", cursors)
    return IntakeJob(raw, tuple(events), "done", None, cursors)


async def process_event(
    intake: Intake,
    page: VkPage,
    update: Mapping[str, Any],
    now: datetime,
    *,
    cursors: tuple[Cursor, ...] = (),
    within: float | None = None,
) -> str:
    """Store a community event once, translated and decided, in one committed transaction.

    Returns the raw event's status: `done`, `skipped` (not an event we interpret), `failed`
    (kept raw as failed), or `duplicate` (processed before). Waits while the database is
    unavailable (at most `within` s, then DatabaseUnavailable: not stored, do not confirm).
    """
    job = event_job(page, update, now, cursors)
    stored = await intake.deliver(job, within=within)
    if stored.duplicate:
        logger.info(
            "событие ВКонтакте %r (%r) уже получено раньше; пропущено",
            job.raw and job.raw.key,
            page,
        )
        return "duplicate"
    if stored.failure is not None:
        logger.error(
            "событие ВКонтакте %r не обработано: %s (сохранено с пометкой об ошибке)",
            job.raw and job.raw.key,
            stored.failure,
        )
        return "failed"
    return job.status


def _fallback_key(update: Mapping[str, Any]) -> str:
    """A stable key for an event that came without event_id."""
    digest = sha1(json.dumps(update, sort_keys=True, default=str).encode(), usedforsecurity=False)
    return f"noid:{digest.hexdigest()}"
