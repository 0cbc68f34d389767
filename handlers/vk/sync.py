"""Reading walls and dialogues through the API: gap fill, personal walls and backfill.

Everything read here goes through `translate` and the intake use case (bot/services/intake.py),
so a comment seen live and again here is stored once (ingest is idempotent by page and message
id). Each post's comments, and each dialogue, are one job: committed together, waiting while
the database is unavailable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import vk_api

from bot import ru
from bot.events import Event
from bot.services.ingest import Outcome
from bot.services.intake import Intake, IntakeJob
from handlers.vk.client import VkCallError, call
from handlers.vk.page import TranslationError, VkPage, from_unix
from handlers.vk.translate import author_names, comment_event, dialogue_event
from storage import intake_rows
from storage import repositories as repo
from storage.engine import SessionFactory

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# Worth retrying: too many requests, flood control, internal error, transport failure.
RETRYABLE_CODES = frozenset({6, 9, 10, -1})
PAGE_SIZE = 100
THREAD_ITEMS = 10
# A gap fill reads at most this many posts from wall.get (VK_GAP_POST_DAYS sets how far back).
GAP_MAX_POSTS = 500


@dataclass
class Retry:
    """Backoff for retryable API errors (error 6 etc.): base, factor 2, capped."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0


DEFAULT_RETRY = Retry()


async def api(vk: vk_api.VkApi, method: str, retry: Retry = DEFAULT_RETRY, **params: Any) -> Any:
    """Call `method` off the event loop, retrying rate limits and transient errors."""
    delay = retry.base_s
    for attempt in range(1, retry.attempts + 1):
        try:
            return await asyncio.to_thread(call, vk, method, **params)
        except VkCallError as exc:
            if exc.code not in RETRYABLE_CODES or attempt == retry.attempts:
                raise
            logger.warning(
                "%s: ошибка ВКонтакте %r; повтор %d из %d через %.0f с",
                method,
                exc.code,
                attempt,
                retry.attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry.cap_s)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class SyncCounts:
    """What a sync read and what it added."""

    posts: int = 0
    comments: int = 0
    new_messages: int = 0
    appeals: int = 0
    replies: int = 0
    skipped: int = 0
    unread_posts: list[int] = field(default_factory=list)  # comments could not be read

    def add(self, other: SyncCounts) -> None:
        for name in ("posts", "comments", "new_messages", "appeals", "replies", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unread_posts.extend(other.unread_posts)


async def fetch_posts(
    vk: vk_api.VkApi,
    owner_id: int,
    since: datetime,
    *,
    max_posts: int | None = None,
    retry: Retry = DEFAULT_RETRY,
    pinned: bool = False,
) -> list[JsonDict]:
    """Posts of the wall published at or after `since`, newest first (paging wall.get).

    `pinned`: the pinned post too, however old (it gathers comments for months).
    """
    posts: list[JsonDict] = []
    offset = 0
    while True:
        response = await api(
            vk, "wall.get", retry, owner_id=owner_id, offset=offset, count=PAGE_SIZE
        )
        items = [item for item in response.get("items") or [] if isinstance(item, Mapping)]
        older_seen = False
        for post in items:
            try:
                published = from_unix(post.get("date"))
            except TranslationError:
                logger.warning("запись без даты на стене %r пропущена", owner_id)
                continue
            if published >= since or (pinned and post.get("is_pinned")):
                posts.append(dict(post))
            elif not post.get("is_pinned"):
                # Newest first; only a pinned post may be older than the ones after it.
                older_seen = True
        offset += len(items)
        if max_posts is not None and len(posts) >= max_posts:
            return posts[:max_posts]
        if older_seen or len(items) < PAGE_SIZE or offset >= int(response.get("count") or 0):
            return posts


async def fetch_comments(
    vk: vk_api.VkApi, owner_id: int, post_id: int, *, retry: Retry = DEFAULT_RETRY
) -> tuple[list[JsonDict], dict[int, str]]:
    """Every comment under a post, thread replies included, and the authors' names."""
    comments: list[JsonDict] = []
    names: dict[int, str] = {}
    offset = 0
    while True:
        response = await api(
            vk,
            "wall.getComments",
            retry,
            owner_id=owner_id,
            post_id=post_id,
            offset=offset,
            count=PAGE_SIZE,
            sort="asc",
            thread_items_count=THREAD_ITEMS,
            extended=1,
        )
        names.update(author_names(response))
        items = [item for item in response.get("items") or [] if isinstance(item, Mapping)]
        for comment in items:
            comments.append(dict(comment))
            thread = comment.get("thread") or {}
            shown = [i for i in thread.get("items") or [] if isinstance(i, Mapping)]
            if int(thread.get("count") or 0) > len(shown):
                replies, reply_names = await _fetch_thread(vk, owner_id, post_id, comment, retry)
                comments.extend(replies)
                names.update(reply_names)
            else:
                comments.extend(dict(item) for item in shown)
        offset += len(items)
        level = response.get("current_level_count")
        if len(items) < PAGE_SIZE or (level is not None and offset >= int(level)):
            return comments, names


async def _fetch_thread(
    vk: vk_api.VkApi, owner_id: int, post_id: int, root: Mapping[str, Any], retry: Retry
) -> tuple[list[JsonDict], dict[int, str]]:
    replies: list[JsonDict] = []
    names: dict[int, str] = {}
    offset = 0
    while True:
        response = await api(
            vk,
            "wall.getComments",
            retry,
            owner_id=owner_id,
            post_id=post_id,
            comment_id=root.get("id"),
            offset=offset,
            count=PAGE_SIZE,
            sort="asc",
            extended=1,
        )
        names.update(author_names(response))
        items = [dict(item) for item in response.get("items") or [] if isinstance(item, Mapping)]
        replies.extend(items)
        offset += len(items)
        level = response.get("current_level_count")
        if len(items) < PAGE_SIZE or (level is not None and offset >= int(level)):
            return replies, names


async def ingest_comments(
    intake: Intake,
    page: VkPage,
    post_id: int,
    comments: list[JsonDict],
    names: Mapping[int, str],
    *,
    since: datetime | None = None,
) -> SyncCounts:
    """Ingest one post's comments, oldest first, in one transaction."""
    counts = SyncCounts(comments=len(comments))
    ordered = sorted(comments, key=lambda c: (int(c.get("date") or 0), int(c.get("id") or 0)))
    events: list[Event] = []
    for comment in ordered:
        if comment.get("deleted"):
            counts.skipped += 1
            continue
        item = {"post_id": post_id, "owner_id": page.owner_id, **comment}
        try:
            event = comment_event("wall_reply", item, page, names)
        except TranslationError as exc:
            logger.warning(
                "комментарий %r под записью %r на стене %r пропущен: %s",
                comment.get("id"),
                post_id,
                page.owner_id,
                exc,
            )
            counts.skipped += 1
            continue
        if since is not None and event.sent_at < since:
            continue
        events.append(event)
    await _ingest(intake, events, counts)
    return counts


async def _ingest(intake: Intake, events: list[Event], counts: SyncCounts) -> None:
    """Read-back events as one job (no raw copy: they were not delivered as updates)."""
    if not events:
        return
    stored = await intake.deliver(IntakeJob(None, tuple(events)))
    for outcome in stored.outcomes:
        _count(counts, outcome)


def _message_order(message: Mapping[str, Any]) -> tuple[int, int, int]:
    # id is 0 in group chats; conversation_message_id orders every dialogue.
    return (
        int(message.get("date") or 0),
        int(message.get("conversation_message_id") or 0),
        int(message.get("id") or 0),
    )


def _count(counts: SyncCounts, outcome: Outcome) -> None:
    if outcome is Outcome.DUPLICATE:
        return
    counts.new_messages += 1
    if outcome is Outcome.APPEAL:
        counts.appeals += 1
    elif outcome is Outcome.REPLY:
        counts.replies += 1


async def sync_post(
    intake: Intake,
    vk: vk_api.VkApi,
    page: VkPage,
    post: Mapping[str, Any],
    *,
    since: datetime | None = None,
    retry: Retry = DEFAULT_RETRY,
) -> SyncCounts:
    """Read and ingest every comment under one post (a deleted post is logged and skipped)."""
    post_id = int(post["id"])
    comments_info = post.get("comments")
    if isinstance(comments_info, Mapping) and int(comments_info.get("count") or 0) == 0:
        return SyncCounts(posts=1)
    try:
        comments, names = await fetch_comments(vk, page.owner_id, post_id, retry=retry)
    except VkCallError as exc:
        if exc.code in (15, 18, 100, 212):
            # Deleted post, closed comments, or no access: nothing to read, say so.
            logger.warning(
                "комментарии записи %r на стене %r недоступны: %s", post_id, page.owner_id, exc
            )
            return SyncCounts(posts=1, skipped=1, unread_posts=[post_id])
        raise
    counts = await ingest_comments(intake, page, post_id, comments, names, since=since)
    counts.posts = 1
    return counts


async def sync_wall(
    intake: Intake,
    vk: vk_api.VkApi,
    page: VkPage,
    *,
    posts_since: datetime,
    comments_since: datetime | None = None,
    max_posts: int | None = None,
    skip_post: Callable[[Mapping[str, Any]], bool] | None = None,
    on_post: Callable[[Mapping[str, Any]], None] | None = None,
    retry: Retry = DEFAULT_RETRY,
) -> SyncCounts:
    """Ingest the comments of the wall's posts published since `posts_since`."""
    total = SyncCounts()
    posts = await fetch_posts(vk, page.owner_id, posts_since, max_posts=max_posts, retry=retry)
    for post in reversed(posts):  # oldest first
        if skip_post is not None and skip_post(post):
            continue
        total.add(await sync_post(intake, vk, page, post, since=comments_since, retry=retry))
        if on_post is not None:
            on_post(post)
    return total


async def fill_wall_gap(
    intake: Intake,
    vk: vk_api.VkApi,
    page: VkPage,
    since: datetime,
    *,
    post_window: timedelta,
    active_posts: Collection[int] = (),
    retry: Retry = DEFAULT_RETRY,
) -> SyncCounts:
    """Read back the comments since `since` of every post that may have had them (issue 16 #5).

    The pinned post, the posts published within `post_window` before the gap, and
    `active_posts` (the posts the database knows had comments in that time, however old).
    Posts whose comments could not be read are in `unread_posts`.
    """
    posts = await fetch_posts(
        vk, page.owner_id, since - post_window, max_posts=GAP_MAX_POSTS, retry=retry, pinned=True
    )
    if len(posts) >= GAP_MAX_POSTS:
        logger.warning(
            "стена %r: за время пропуска больше %r записей; самые старые не дочитываются",
            page.owner_id,
            GAP_MAX_POSTS,
        )
    listed = {int(post["id"]) for post in posts}
    known = [{"id": post_id} for post_id in sorted(set(active_posts) - listed)]
    logger.info(
        "стена %r: дочитываем комментарии с %s под записями (%r): опубликованных — %r (с %s), "
        "более старых с известными комментариями — %r",
        page.owner_id,
        since.isoformat(),
        len(posts) + len(known),
        len(posts),
        (since - post_window).date().isoformat(),
        len(known),
    )
    total = SyncCounts()
    for post in [*known, *reversed(posts)]:  # oldest first
        total.add(await sync_post(intake, vk, page, post, since=since, retry=retry))
    return total


async def sync_dialogues(
    intake: Intake,
    vk: vk_api.VkApi,
    page: VkPage,
    since: datetime,
    *,
    retry: Retry = DEFAULT_RETRY,
) -> SyncCounts:
    """Ingest community dialogue messages sent since `since` (community token)."""
    total = SyncCounts()
    offset = 0
    peers: list[int] = []
    while True:
        response = await api(
            vk, "messages.getConversations", retry, offset=offset, count=200, filter="all"
        )
        items = [i for i in response.get("items") or [] if isinstance(i, Mapping)]
        recent = False
        for item in items:
            last = item.get("last_message") or {}
            try:
                if from_unix(last.get("date")) >= since:
                    peers.append(int(item["conversation"]["peer"]["id"]))
                    recent = True
            except (TranslationError, KeyError, TypeError, ValueError):
                continue
        offset += len(items)
        # Conversations come most recent first: stop at the first page with nothing new.
        if not recent or len(items) < 200 or offset >= int(response.get("count") or 0):
            break
    for peer_id in peers:
        messages: list[JsonDict] = []
        history_offset = 0
        while True:
            history = await api(
                vk,
                "messages.getHistory",
                retry,
                peer_id=peer_id,
                offset=history_offset,
                count=200,
            )
            batch = [dict(m) for m in history.get("items") or [] if isinstance(m, Mapping)]
            messages.extend(batch)
            history_offset += len(batch)
            oldest = min((int(m.get("date") or 0) for m in batch), default=0)
            if len(batch) < 200 or oldest < since.timestamp():
                break
        events: list[Event] = []
        for message in sorted(messages, key=_message_order):
            try:
                event = dialogue_event(message, page)
            except TranslationError as exc:
                logger.warning("сообщение из диалога пропущено: %s", exc)
                total.skipped += 1
                continue
            if event.sent_at < since:
                continue
            total.comments += 1
            events.append(event)
        await _ingest(intake, events, total)
    return total


async def active_posts(sessions: SessionFactory, page: VkPage, since: datetime) -> list[int]:
    """Posts of `page` the database knows had a comment or a reply at or after `since`."""
    ref = page.ref
    async with sessions() as session:
        threads = await repo.run_in_transaction(
            session,
            lambda db: intake_rows.active_thread_ids(
                db, ref.platform.value, ref.external_id, "post:", since
            ),
        )
    return [int(key) for key in (t.partition(":")[2] for t in threads) if key.isdigit()]


def gap_notice(
    page: VkPage, group_id: int, since: datetime, timezone: str, unread: list[int] | None
) -> str:
    """The press chat's notice of wall comments a gap fill could not read back (Russian).

    `unread`: the posts whose comments could not be read; None: none could (no service token).
    """
    local = since.astimezone(ZoneInfo(timezone))
    title = f"«{page.title}»" if page.title else f"сообщество {group_id}"
    head = (
        f"ВКонтакте, {title}: события Long Poll с {ru.date_short(local)} "
        f"{ru.time_short(local)} потеряны на стороне ВКонтакте."
    )
    command = f"otklik backfill vk --group {group_id} --since {local.date().isoformat()}"
    if unread is None:
        return (
            f"{head} Комментарии на стене за это время не перечитаны: не задан VK_SERVICE_TOKEN. "
            f"Задайте его и выполните: {command}"
        )
    links = ", ".join(f"https://vk.com/wall{page.owner_id}_{post}" for post in unread[:10])
    more = f" и ещё {len(unread) - 10}" if len(unread) > 10 else ""
    posts = ru.quantity(len(unread), "постом", "постами", "постами")
    return (
        f"{head} Не удалось перечитать комментарии под {posts} (закрыты, удалены или нет "
        f"доступа): {links}{more}. Проверьте их вручную."
    )
