"""VK intake: Bots Long Poll per community on its own thread, one asyncio consumer, wall polling.

Each community in VK_GROUP_TOKENS gets a thread running vk_api's long poll; its answers are
bridged into asyncio with `loop.call_soon_threadsafe`. One consumer handles every community's
events in order: the raw event is stored once, translated, ingested, and the long-poll `ts` is
stored in the same transaction as the last event it covers, so a restart resumes from it.
When VK says history was lost (`failed: 1` or `3`) the gap is read back from the wall (and the
community's dialogues) through the same ingest path. Personal walls (VK_WALL_OWNER_IDS) are
polled with VK_SERVICE_TOKEN.

Every event goes to the intake use case (bot/services/intake.py, through
handlers/vk/delivery.py). While the database is unavailable the consumer waits for it: the
batch in hand is not passed, so neither it nor any `ts` after it is stored before it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import vk_api

from bot.app import AppContext
from bot.services.intake import Cursor, DecisionFailed, Intake, is_unavailable
from bot.services.notices import tell_press
from handlers.vk.client import VkCallError, call, make_vk_session
from handlers.vk.delivery import process_event
from handlers.vk.longpoll import NETWORK_ERRORS, GapAwareLongPoll, PollResult
from handlers.vk.page import VkPage, from_unix
from handlers.vk.sync import (
    DEFAULT_RETRY,
    Retry,
    active_posts,
    api,
    fill_wall_gap,
    gap_notice,
    sync_dialogues,
    sync_wall,
)
from handlers.vk.translate import HANDLED_EVENT_TYPES
from storage import repositories as repo

logger = logging.getLogger(__name__)

RECOVERABLE: tuple[type[BaseException], ...] = (VkCallError, *NETWORK_ERRORS)
# A gap fill that ends so is tried again later (a comment read back that cannot be decided too).
GAP_FILL_ERRORS: tuple[type[BaseException], ...] = (*RECOVERABLE, DecisionFailed)
# Errors after which a community's token will not start working by itself.
# Said in the log an administrator reads (in Russian).
FATAL_CODES = {5: "ключ доступа отклонён", 15: "доступ запрещён", 27: "неверный тип ключа"}
COMMUNITY_RPS_DELAY = 0.05  # 20 requests/s with a community token
SERVICE_RPS_DELAY = 0.34  # 3 requests/s: the limit for user tokens, safe for service ones
GAP_MARGIN = timedelta(minutes=5)
GAP_DEFAULT = timedelta(days=1)  # no event ever seen: look back this far
WALL_LOOKBACK = timedelta(days=7)
GAP_RETRY_S = 60.0  # a failed gap fill is tried again with the first batch after this


def ts_cursor(group_id: int) -> str:
    return f"vk:{group_id}:ts"


def seen_cursor(group_id: int) -> str:
    return f"vk:{group_id}:seen"


def gap_cursor(group_id: int) -> str:
    return f"vk:{group_id}:gap"


@dataclass
class _Batch:
    group_id: int
    result: PollResult


@dataclass
class _Ready:
    group_id: int


_STOP = object()


@dataclass
class _Listener:
    """One community's long poll thread."""

    group_id: int
    thread: threading.Thread | None = None
    longpoll: GapAwareLongPoll | None = None
    failed: VkCallError | None = None
    page: VkPage | None = None
    resume_ts: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)


class VkIntake:
    """Every configured VK source; `run()` until `stop()`."""

    def __init__(
        self,
        app: AppContext,
        *,
        wait: int = 25,
        wall_interval_s: float = 300.0,
        rps_delay: float | None = None,
        retry: Retry = DEFAULT_RETRY,
        backoff_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        join_timeout_s: float = 5.0,
        long_poll: bool = True,
        intake: Intake | None = None,
    ) -> None:
        self.app = app
        # The app's intake use case, shared with other sources; else this one's own (closed
        # by `stop`).
        self.intake = intake or Intake.for_app(app)
        self._owns_intake = intake is None
        self.wait = wait
        self.wall_interval_s = wall_interval_s
        # None: VK's limits (20/s community tokens, 3/s service); tests against the sandbox: 0.
        self.rps_delay = rps_delay
        self.retry = retry
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.join_timeout_s = join_timeout_s
        settings = app.settings
        self.tokens = {
            gid: token.get_secret_value() for gid, token in settings.vk_group_tokens.items()
        }
        self.service_token = (
            settings.VK_SERVICE_TOKEN.get_secret_value() if settings.VK_SERVICE_TOKEN else None
        )
        self.wall_owner_ids = settings.vk_wall_owner_ids if self.service_token else ()
        # long_poll=False: the communities arrive by the Callback API (handlers/vk/callback.py)
        # and only personal walls are polled here.
        self.listeners = {gid: _Listener(gid) for gid in self.tokens} if long_poll else {}
        self.ready: dict[int, asyncio.Event] = {}
        self.processed = 0  # long poll events handled (for tests and the demo)
        self.wall_rounds = 0  # completed personal wall polling rounds
        self._queue: asyncio.Queue[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = asyncio.Event()
        self._done = asyncio.Event()
        self._started = asyncio.Event()
        self._gap_vk: dict[int, vk_api.VkApi] = {}
        self._service_vk: vk_api.VkApi | None = None
        self._walls_task: asyncio.Task[None] | None = None
        self._gap_retry_at: dict[int, float] = {}  # loop time of the next gap-fill attempt

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Start every community's thread and the wall poller; consume until stopped."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        try:
            async with self.app.sessions() as session:
                for group_id, listener in self.listeners.items():
                    listener.resume_ts = await repo.get_cursor(session, ts_cursor(group_id))
            for group_id in self.listeners:
                await self._fill_pending_gap(group_id)
            for group_id, listener in self.listeners.items():
                self.ready[group_id] = asyncio.Event()
                listener.thread = threading.Thread(
                    target=self._listen, args=(listener,), name=f"vk-longpoll-{group_id}"
                )
                listener.thread.start()
            self._started.set()
            if self.wall_owner_ids:
                self._walls_task = asyncio.create_task(self._poll_walls(), name="vk-walls")
            if not self.listeners and not self._walls_task:
                logger.warning("ВКонтакте: нечего читать — нет ни ключей сообществ, ни стен")
            await self._consume()
        finally:
            self._done.set()

    async def stop(self) -> None:
        """Stop every thread and the consumer; returns within seconds."""
        self._stopping.set()
        for listener in self.listeners.values():
            listener.stop.set()
            if listener.longpoll is not None:
                listener.longpoll.interrupt()
        if self._queue is not None and self._loop is not None:
            self._queue.put_nowait(_STOP)
        for listener in self.listeners.values():
            if listener.thread is not None:
                await asyncio.to_thread(listener.thread.join, self.join_timeout_s)
                if listener.thread.is_alive():
                    logger.warning(
                        "сообщество ВКонтакте %r: поток Long Poll ещё занят", listener.group_id
                    )
        if self._walls_task is not None:
            self._walls_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._walls_task
        if self._loop is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), self.join_timeout_s)
        if self._owns_intake:
            await self.intake.close()

    async def wait_ready(self) -> None:
        """Until every community's long poll has made its first request (tests, the demo)."""
        await self._started.wait()
        await asyncio.gather(*(event.wait() for event in self.ready.values()))

    # ------------------------------------------------------------------ the threads

    def _emit(self, item: object) -> None:
        assert self._loop is not None and self._queue is not None
        with contextlib.suppress(RuntimeError):  # the loop is closing: the ts is not stored
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _listen(self, listener: _Listener) -> None:
        """Long poll one community until stopped (runs on its own thread)."""
        group_id = listener.group_id
        backoff = self.backoff_s
        announced = False
        while not listener.stop.is_set():
            try:
                if listener.longpoll is None:
                    self._connect(listener)
                assert listener.longpoll is not None
                if not announced:
                    self._emit(_Ready(group_id))
                    announced = True
                result = listener.longpoll.check_raw()
            except VkCallError as exc:
                if exc.code in FATAL_CODES:
                    listener.failed = exc
                    logger.error(
                        "сообщество ВКонтакте %r не отслеживается: %s (%s). Исправьте его "
                        "запись в VK_GROUP_TOKENS и перезапустите; остальные сообщества работают",
                        group_id,
                        FATAL_CODES[exc.code],
                        exc,
                    )
                    self._emit(_Ready(group_id))
                    return
                if exc.code == 100:
                    logger.error(
                        "сообщество ВКонтакте %r: %s — включён ли Long Poll API "
                        "(версия API 5.199)?",
                        group_id,
                        exc,
                    )
                else:
                    logger.warning(
                        "сообщество ВКонтакте %r: %s; повтор через %.0f с", group_id, exc, backoff
                    )
                listener.stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_cap_s)
                continue
            except NETWORK_ERRORS as exc:
                if listener.stop.is_set():
                    break
                logger.warning(
                    "сообщество ВКонтакте %r: Long Poll не ответил (%s); повтор через %.0f с",
                    group_id,
                    type(exc).__name__,
                    backoff,
                )
                listener.stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_cap_s)
                continue
            except Exception:
                logger.exception("сообщество ВКонтакте %r: ошибка Long Poll", group_id)
                listener.stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_cap_s)
                continue
            backoff = self.backoff_s
            if result.failed == 2:
                logger.info(
                    "сообщество ВКонтакте %r: ключ Long Poll истёк, получен новый", group_id
                )
            if result.updates or result.history_lost:
                self._emit(_Batch(group_id, result))
        if listener.longpoll is not None:
            listener.longpoll.close()

    def _connect(self, listener: _Listener) -> None:
        """Session, page name, long poll server; resumes from the stored ts once."""
        group_id = listener.group_id
        vk = make_vk_session(
            self.tokens[group_id],
            api_server=self.app.settings.VK_API_SERVER,
            rps_delay=COMMUNITY_RPS_DELAY if self.rps_delay is None else self.rps_delay,
        )
        if listener.page is None:
            listener.page = community_page(vk, group_id)
        longpoll = GapAwareLongPoll(vk, group_id, wait=self.wait)
        if listener.resume_ts:
            # Resume where the last committed event left off, not at VK's newest ts.
            longpoll.ts = listener.resume_ts
            listener.resume_ts = None
        _check_longpoll_settings(vk, group_id)
        listener.longpoll = longpoll
        logger.info("сообщество ВКонтакте %r: Long Poll запущен", group_id)

    # ------------------------------------------------------------------ the consumer

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, _Ready):
                self.ready[item.group_id].set()
                continue
            assert isinstance(item, _Batch)
            attempt = 0
            while not self._stopping.is_set():
                try:
                    await self._handle_batch(item)
                except Exception as exc:
                    if is_unavailable(exc):
                        # Not passed by: what was stored of it is seen as stored the next time.
                        await self.intake.wait_out(exc, attempt)
                        attempt += 1
                        continue
                    # Never lose the consumer: the ts of this batch stays unstored.
                    logger.exception(
                        "сообщество ВКонтакте %r: пачка событий не обработана", item.group_id
                    )
                break

    def _page(self, group_id: int) -> VkPage:
        page = self.listeners[group_id].page if group_id in self.listeners else None
        return page or VkPage(-group_id)

    async def _handle_batch(self, batch: _Batch) -> None:
        group_id, result = batch.group_id, batch.result
        if result.history_lost:
            logger.warning(
                "сообщество ВКонтакте %r: история Long Poll потеряна (failed %r); "
                "дочитываем пропуск",
                group_id,
                result.failed,
            )
            await self._mark_gap(group_id, result.ts)
            await self._fill_pending_gap(group_id)
            return
        retry_at = self._gap_retry_at.get(group_id)
        if retry_at is not None and asyncio.get_running_loop().time() >= retry_at:
            await self._fill_pending_gap(group_id)
        updates = result.updates
        for position, update in enumerate(updates):
            last = position == len(updates) - 1
            # Each event moves the stored ts too: to the batch's start, the last to its end. A
            # kill within the very first batch then resumes at its start, not at a new ts.
            await self._handle_event(group_id, update, result.ts if last else result.start_ts)

    async def _handle_event(self, group_id: int, update: Mapping[str, Any], ts: str | None) -> None:
        """One event and the position after it, committed together (waits out an outage)."""
        cursors: list[Cursor] = []
        obj = update.get("object")
        if isinstance(obj, Mapping):
            message = obj.get("message")
            date = (message if isinstance(message, Mapping) else obj).get("date")
            if isinstance(date, int) and date > 0:
                cursors.append(Cursor(seen_cursor(group_id), str(date), rising=True))
        if ts is not None:
            cursors.append(Cursor(ts_cursor(group_id), ts))
        await process_event(
            self.intake, self._page(group_id), update, self.app.clock(), cursors=tuple(cursors)
        )
        self.processed += 1

    # ------------------------------------------------------------------ gaps

    async def _mark_gap(self, group_id: int, ts: str | None) -> None:
        """Remember where the gap starts and take VK's new ts, in one transaction."""
        async with self.app.sessions() as session:
            if not await repo.get_cursor(session, gap_cursor(group_id)):
                seen = await repo.get_cursor(session, seen_cursor(group_id))
                start = (
                    from_unix(int(seen)) if seen else self.app.clock() - GAP_DEFAULT
                ) - GAP_MARGIN
                await repo.set_cursor(session, gap_cursor(group_id), str(int(start.timestamp())))
            if ts is not None:
                await repo.set_cursor(session, ts_cursor(group_id), ts)
            await session.commit()

    async def _fill_pending_gap(self, group_id: int) -> None:
        """Read a recorded gap back from the wall and the dialogues; clear it when done."""
        async with self.app.sessions() as session:
            pending = await repo.get_cursor(session, gap_cursor(group_id))
        if not pending:
            return
        since = from_unix(int(pending))
        page = self._page(group_id)
        window = timedelta(days=self.app.settings.VK_GAP_POST_DAYS)
        tz = self.app.settings.TIMEZONE
        try:
            if self.service_token is not None:
                active = await active_posts(self.app.sessions, page, since - window)
                counts = await fill_wall_gap(
                    self.intake,
                    self._service(),
                    page,
                    since,
                    post_window=window,
                    active_posts=active,
                    retry=self.retry,
                )
                logger.info(
                    "сообщество ВКонтакте %r: пропуск с %s дочитан со стены, новых сообщений — %r",
                    group_id,
                    since.isoformat(),
                    counts.new_messages,
                )
                if counts.unread_posts:
                    await tell_press(
                        self.app, gap_notice(page, group_id, since, tz, counts.unread_posts)
                    )
            else:
                logger.error(
                    "сообщество ВКонтакте %r: комментарии на стене с %s не дочитать без "
                    "VK_SERVICE_TOKEN (ключ сообщества получает ошибку 27 на wall.get); "
                    "задайте его и запустите `otklik backfill vk --group %s --since %s`",
                    group_id,
                    since.isoformat(),
                    group_id,
                    since.date().isoformat(),
                )
                await tell_press(self.app, gap_notice(page, group_id, since, tz, None))
            counts = await sync_dialogues(
                self.intake, self._community_vk(group_id), page, since, retry=self.retry
            )
            logger.info(
                "сообщество ВКонтакте %r: пропуск с %s дочитан из диалогов, новых сообщений — %r",
                group_id,
                since.isoformat(),
                counts.new_messages,
            )
        except GAP_FILL_ERRORS as exc:
            # Kept as pending: the next batch or the next start tries again.
            logger.error(
                "сообщество ВКонтакте %r: пропуск не дочитан: %s; повтор через %.0f с",
                group_id,
                exc,
                GAP_RETRY_S,
            )
            self._gap_retry_at[group_id] = asyncio.get_running_loop().time() + GAP_RETRY_S
            return
        self._gap_retry_at.pop(group_id, None)
        async with self.app.sessions() as session:
            await repo.set_cursor(session, gap_cursor(group_id), "")
            await session.commit()

    def _service(self) -> vk_api.VkApi:
        if self._service_vk is None:
            assert self.service_token is not None
            self._service_vk = make_vk_session(
                self.service_token,
                api_server=self.app.settings.VK_API_SERVER,
                rps_delay=SERVICE_RPS_DELAY if self.rps_delay is None else self.rps_delay,
                retry_rate_limit=False,
            )
        return self._service_vk

    def _community_vk(self, group_id: int) -> vk_api.VkApi:
        if group_id not in self._gap_vk:
            self._gap_vk[group_id] = make_vk_session(
                self.tokens[group_id],
                api_server=self.app.settings.VK_API_SERVER,
                rps_delay=COMMUNITY_RPS_DELAY if self.rps_delay is None else self.rps_delay,
                retry_rate_limit=False,
            )
        return self._gap_vk[group_id]

    # ------------------------------------------------------------------ personal walls

    async def _poll_walls(self) -> None:
        """Read new comments on each personal wall every `wall_interval_s`."""
        vk = self._service()
        pages = await self._wall_pages(vk)
        comment_counts: dict[tuple[int, int], int] = {}
        while not self._stopping.is_set():
            for owner_id in self.wall_owner_ids:
                page = pages[owner_id]

                def unchanged(post: Mapping[str, Any], owner: int = owner_id) -> bool:
                    count = int((post.get("comments") or {}).get("count") or 0)
                    return comment_counts.get((owner, int(post["id"]))) == count

                def remember(post: Mapping[str, Any], owner: int = owner_id) -> None:
                    count = int((post.get("comments") or {}).get("count") or 0)
                    comment_counts[(owner, int(post["id"]))] = count

                try:
                    posts_since = self.app.clock() - WALL_LOOKBACK
                    counts = await sync_wall(
                        self.intake,
                        vk,
                        page,
                        posts_since=posts_since,
                        skip_post=unchanged,
                        on_post=remember,
                        retry=self.retry,
                    )
                    if counts.new_messages:
                        logger.info(
                            "стена ВКонтакте %r: новых сообщений — %r",
                            owner_id,
                            counts.new_messages,
                        )
                except VkCallError as exc:
                    if exc.code == 5:
                        logger.error(
                            "стена ВКонтакте %r: VK_SERVICE_TOKEN отклонён (%s); стены не "
                            "отслеживаются, пока его не заменят",
                            owner_id,
                            exc,
                        )
                    else:
                        logger.error("стена ВКонтакте %r: не удалось прочитать: %s", owner_id, exc)
                except NETWORK_ERRORS as exc:
                    logger.warning(
                        "стена ВКонтакте %r: не удалось прочитать: %s", owner_id, type(exc).__name__
                    )
                except Exception:
                    logger.exception("стена ВКонтакте %r: не удалось прочитать", owner_id)
            self.wall_rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.wall_interval_s)

    async def _wall_pages(self, vk: vk_api.VkApi) -> dict[int, VkPage]:
        pages = {owner_id: VkPage(owner_id) for owner_id in self.wall_owner_ids}
        users = [owner_id for owner_id in self.wall_owner_ids if owner_id > 0]
        try:
            if users:
                for user in await api(vk, "users.get", self.retry, user_ids=users) or []:
                    name = f"{user.get('first_name', '')} {user.get('last_name', '')}".strip()
                    pages[int(user["id"])] = VkPage(
                        int(user["id"]), name or None, f"id{user['id']}"
                    )
            groups = [-owner_id for owner_id in self.wall_owner_ids if owner_id < 0]
            if groups:
                response = await api(vk, "groups.getById", self.retry, group_ids=groups)
                for group in _groups_of(response):
                    owner = -int(group["id"])
                    pages[owner] = VkPage(owner, group.get("name"), group.get("screen_name"))
        except RECOVERABLE as exc:
            logger.warning("стены ВКонтакте: названия недоступны (%s); показываем ID", exc)
        return pages


def _groups_of(response: Any) -> list[Mapping[str, Any]]:
    # API 5.199 answers {"groups": [...]}, older versions a bare list.
    groups = response.get("groups") if isinstance(response, Mapping) else response
    return [g for g in groups or [] if isinstance(g, Mapping) and g.get("id") is not None]


def community_page(vk: vk_api.VkApi, group_id: int) -> VkPage:
    """The community's name and screen name (best effort; ids when VK will not say)."""
    try:
        groups = _groups_of(call(vk, "groups.getById", group_id=group_id))
    except VkCallError as exc:
        if exc.code in FATAL_CODES:
            raise
        logger.warning("сообщество ВКонтакте %r: название недоступно (%s)", group_id, exc)
        return VkPage(-group_id)
    if not groups:
        return VkPage(-group_id)
    return VkPage(-group_id, groups[0].get("name"), groups[0].get("screen_name"))


def _check_longpoll_settings(vk: vk_api.VkApi, group_id: int) -> None:
    """Warn when the community's Long Poll settings drop events we handle (best effort)."""
    try:
        settings = call(vk, "groups.getLongPollSettings", group_id=group_id)
    except VkCallError as exc:
        logger.info("сообщество ВКонтакте %r: настройки Long Poll не прочитать (%s)", group_id, exc)
        return
    if not settings.get("is_enabled", True):
        logger.error("сообщество ВКонтакте %r: Long Poll API выключен", group_id)
    version = settings.get("api_version")
    if version and version != "5.199":
        logger.warning(
            "сообщество ВКонтакте %r: версия Long Poll API — %r, нужна 5.199", group_id, version
        )
    events = settings.get("events") or {}
    missing = [name for name in HANDLED_EVENT_TYPES if not events.get(name)]
    if missing:
        logger.warning(
            "сообщество ВКонтакте %r: выключены типы событий Long Poll: %s — они не отслеживаются",
            group_id,
            ", ".join(missing),
        )
