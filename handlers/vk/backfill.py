"""`otklik backfill vk --group ID --since DATE`: load a past period of a wall into the database.

Posts since DATE are listed first (wall.get pages), then read oldest first: every comment thread
(wall.getComments with paging, threads fetched when longer than VK shows inline) goes through
the one ingest path. After each post the cursor `backfill:vk:{owner}` records it, so an
interrupted run resumes after the last completed post; re-reading is harmless anyway (ingest is
idempotent). For a community whose token is configured, its dialogues since DATE are read too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import datetime

import vk_api

from bot import ru
from bot.app import AppContext
from bot.progress import progress_bar
from bot.services.intake import Intake
from handlers.vk.client import VkCallError, call, make_vk_session
from handlers.vk.page import VkPage
from handlers.vk.sync import (
    DEFAULT_RETRY,
    Retry,
    SyncCounts,
    fetch_posts,
    sync_dialogues,
    sync_post,
)
from storage import repositories as repo

logger = logging.getLogger(__name__)

USER_RPS_DELAY = 0.34  # 3 requests/s: user and service tokens
COMMUNITY_RPS_DELAY = 0.05  # 20 requests/s: community tokens


class BackfillError(RuntimeError):
    """The backfill cannot run as configured; the message says what to set."""


def backfill_cursor(owner_id: int) -> str:
    return f"backfill:vk:{owner_id}"


def owner_of(app: AppContext, group_id: int) -> int:
    """The wall to read: a listed personal wall owner as is, anything else a community."""
    if group_id > 0 and group_id in app.settings.vk_wall_owner_ids:
        return group_id
    return -abs(group_id)


async def backfill_command(
    app: AppContext,
    group_id: int,
    since: datetime,
    *,
    rps_delay: float | None = None,
    retry: Retry = DEFAULT_RETRY,
    progress: bool = True,
) -> int:
    """Run the backfill and print a summary; 0 on success, 1 on an error (resumable)."""
    try:
        counts = await backfill(
            app, group_id, since, rps_delay=rps_delay, retry=retry, progress=progress
        )
    except BackfillError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2
    except VkCallError as exc:
        print(
            f"backfill: ВКонтакте ответил ошибкой: {exc}. Запустите ту же команду ещё раз — "
            "загрузка продолжится с того же места.",
            file=sys.stderr,
        )
        return 1
    print(summary_text(group_id, counts))
    return 0


def summary_text(group_id: int, counts: SyncCounts) -> str:
    """What the administrator reads after a backfill, in Russian."""
    n = ru.number
    return (
        f"ВКонтакте {group_id}: прочитано постов: {n(counts.posts)}, "
        f"комментариев и сообщений: {n(counts.comments)}; "
        f"новых сообщений: {n(counts.new_messages)}, новых обращений: {n(counts.appeals)}, "
        f"связано ответов: {n(counts.replies)}, пропущено: {n(counts.skipped)}"
    )


async def backfill(
    app: AppContext,
    group_id: int,
    since: datetime,
    *,
    rps_delay: float | None = None,
    retry: Retry = DEFAULT_RETRY,
    progress: bool = True,
) -> SyncCounts:
    """Load posts since `since` with every comment, then the dialogues (community token)."""
    if since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    settings = app.settings
    owner_id = owner_of(app, group_id)
    community_token = settings.vk_group_tokens.get(-owner_id) if owner_id < 0 else None
    if settings.VK_SERVICE_TOKEN is None:
        # A community token cannot read walls (error 27), so the wall needs the service token.
        raise BackfillError(
            "чтобы читать стену, нужен VK_SERVICE_TOKEN в .env (ключ сообщества получает "
            "ошибку 27 на wall.get)"
        )
    reader = make_vk_session(
        settings.VK_SERVICE_TOKEN.get_secret_value(),
        api_server=settings.VK_API_SERVER,
        rps_delay=USER_RPS_DELAY if rps_delay is None else rps_delay,
        retry_rate_limit=False,
    )
    page = await _page(reader, owner_id)
    source = backfill_cursor(owner_id)
    async with app.sessions() as session:
        stored = await repo.get_cursor(session, source)
    done_post = _resume_point(stored, since)
    if done_post:
        logger.info("resuming the backfill of %r after post %r", owner_id, done_post)

    posts = await fetch_posts(reader, owner_id, since, retry=retry)
    todo = sorted((p for p in posts if int(p["id"]) > done_post), key=lambda p: int(p["id"]))
    total = SyncCounts()
    intake = Intake.for_app(app)
    try:
        with progress_bar(
            total=len(todo), desc=f"ВКонтакте {owner_id}", unit="пост", enabled=progress
        ) as bar:
            for post in todo:
                total.add(await sync_post(intake, reader, page, post, retry=retry))
                async with app.sessions() as session:
                    await repo.set_cursor(
                        session,
                        source,
                        json.dumps({"since": since.isoformat(), "post": post["id"]}),
                    )
                    await session.commit()
                bar.update(1)
        if community_token is not None:
            dialogues = make_vk_session(
                community_token.get_secret_value(),
                api_server=settings.VK_API_SERVER,
                rps_delay=COMMUNITY_RPS_DELAY if rps_delay is None else rps_delay,
                retry_rate_limit=False,
            )
            total.add(await sync_dialogues(intake, dialogues, page, since, retry=retry))
    finally:
        await intake.close()
    return total


def _resume_point(stored: str | None, since: datetime) -> int:
    """The last completed post of an earlier run over the same period, else 0."""
    if not stored:
        return 0
    try:
        value = json.loads(stored)
        if value.get("since") == since.isoformat():
            return int(value["post"])
    except (ValueError, TypeError, KeyError, AttributeError):
        logger.warning("backfill cursor %r unreadable; starting over", stored)
    return 0


async def _page(vk: vk_api.VkApi, owner_id: int) -> VkPage:
    """The page's name for the report (ids when VK will not say)."""
    try:
        if owner_id < 0:
            response = await asyncio.to_thread(call, vk, "groups.getById", group_id=-owner_id)
            groups = response.get("groups") if isinstance(response, dict) else response
            if groups:
                return VkPage(owner_id, groups[0].get("name"), groups[0].get("screen_name"))
        else:
            users = await asyncio.to_thread(call, vk, "users.get", user_ids=owner_id)
            if users:
                name = f"{users[0].get('first_name', '')} {users[0].get('last_name', '')}".strip()
                return VkPage(owner_id, name or None, f"id{owner_id}")
    except VkCallError as exc:
        if exc.code == 5:
            raise
        logger.warning("name of %r unavailable: %s", owner_id, exc)
    return VkPage(owner_id)
