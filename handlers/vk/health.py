"""VK counters for page health: members of communities, views and reactions of posts.

Batched to VK's limits: `groups.getById` takes 500 communities with `members_count`;
`wall.getById` takes 100 posts, and `execute` runs 25 of those in one request, so the counters
of 100,000 posts cost 40 requests (docs/BENCHMARKS.md). Error 6, 9 or 29 (too many requests,
flood control, rate limit) waits and tries again, doubling the pause; what still fails is left
for the next refresh. Error 15 or 30, a token of the wrong kind, or no service token at all is
a gap with its reason (in Russian, for the press office), never a zero.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import vk_api

from bot.events import PageKind, PageRef, Platform, PostCountersEvent, SubscribersEvent
from bot.services.health_refresh import DuePost
from handlers.vk.client import VkCallError, VkTransportError, call, call_raw, make_vk_session
from handlers.vk.page import TranslationError, VkPage
from handlers.vk.posts import counters_event

logger = logging.getLogger(__name__)

GROUPS_PER_CALL = 500
POSTS_PER_CALL = 100
CALLS_PER_EXECUTE = 25
RATE_LIMIT_CODES = frozenset({6, 9, 29})
NO_SERVICE_TOKEN = "нужен сервисный ключ VK_SERVICE_TOKEN: без него VK не даёт просмотры и реакции"


def refusal(code: int, message: str) -> str:
    """Why VK gave nothing, for the press office."""
    if code in (15, 30):
        return f"VK отказал в доступе (ошибка {code}): у ключа нет права или стена закрыта"
    if code in (5, 27, 28):
        return f"ключ VK не подходит для этого метода (ошибка {code})"
    if code == 18:
        return "страница VK удалена или заблокирована (ошибка 18)"
    return f"VK ответил ошибкой {code}: {message}"


@dataclass(frozen=True, slots=True)
class Backoff:
    attempts: int = 5
    base_s: float = 1.0
    cap_s: float = 30.0


class VkCounterSource:
    """`CounterSource` for VK (bot/services/health_refresh.py)."""

    platform = Platform.VK

    def __init__(
        self,
        *,
        service_token: str | None,
        group_tokens: dict[int, str],
        api_server: str | None,
        rps_delay: float | None = None,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service_token = service_token
        self.group_tokens = group_tokens
        self.api_server = api_server
        self.rps_delay = rps_delay
        self.backoff = backoff
        self.sleep = sleep
        self._sessions: dict[str, vk_api.VkApi] = {}
        self.requests = 0  # HTTP requests made (the benchmark counts them)

    def _session(self, token: str) -> vk_api.VkApi:
        session = self._sessions.get(token)
        if session is None:
            session = self._sessions[token] = make_vk_session(
                token, api_server=self.api_server, rps_delay=self.rps_delay, retry_rate_limit=False
            )
        return session

    async def _call(self, token: str, method: str, *, raw: bool = False, **params: Any) -> Any:
        """One request, waiting out VK's rate limits (doubling the pause)."""
        vk = self._session(token)
        for attempt in range(self.backoff.attempts):
            self.requests += 1
            try:
                if raw:
                    return await asyncio.to_thread(call_raw, vk, method, **params)
                return await asyncio.to_thread(call, vk, method, **params)
            except VkCallError as error:
                if error.code not in RATE_LIMIT_CODES or attempt + 1 == self.backoff.attempts:
                    raise
                pause = min(self.backoff.base_s * 2**attempt, self.backoff.cap_s)
                logger.warning("ВКонтакте %s: ошибка %d, ждём %.0f с", method, error.code, pause)
                await self.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- subscribers ---------------------------------------------------------------------------

    async def subscribers(self, pages: Sequence[PageRef], at: datetime) -> list[SubscribersEvent]:
        events: list[SubscribersEvent] = []
        groups = [page for page in pages if page.kind is PageKind.VK_GROUP]
        for page in pages:
            if page.kind is not PageKind.VK_GROUP:
                events.append(
                    SubscribersEvent(
                        page, at, None, "подписчиков личной страницы VK Отклик не читает"
                    )
                )
        token = self.service_token or next(iter(self.group_tokens.values()), None)
        if token is None:
            return events + [
                SubscribersEvent(page, at, None, "нет ключа VK для groups.getById")
                for page in groups
            ]
        for start in range(0, len(groups), GROUPS_PER_CALL):
            chunk = groups[start : start + GROUPS_PER_CALL]
            try:
                answer = await self._call(
                    token,
                    "groups.getById",
                    group_ids=[page.external_id for page in chunk],
                    fields="members_count",
                )
            except VkTransportError as error:
                logger.warning(
                    "groups.getById не удался (%s); повторим при следующем обновлении", error
                )
                continue
            except VkCallError as error:
                if error.code in RATE_LIMIT_CODES:
                    logger.warning(
                        "groups.getById всё ещё ограничен; повторим при следующем обновлении"
                    )
                    continue
                note = refusal(error.code, error.message)
                logger.warning("groups.getById: ошибка %s", note)
                events.extend(SubscribersEvent(page, at, None, note) for page in chunk)
                continue
            found = {
                str(group.get("id")): group
                for group in (answer.get("groups") or [] if isinstance(answer, dict) else answer)
                if isinstance(group, dict)
            }
            for page in chunk:
                group = found.get(page.external_id)
                count = group.get("members_count") if group else None
                if isinstance(count, int) and not isinstance(count, bool):
                    events.append(SubscribersEvent(page, at, count))
                else:
                    note = "VK не сообщил число участников (сообщество скрыто или удалено)"
                    events.append(SubscribersEvent(page, at, None, note))
        return events

    # -- post counters -------------------------------------------------------------------------

    async def counters(self, posts: Sequence[DuePost], at: datetime) -> list[PostCountersEvent]:
        if self.service_token is None:
            return [
                PostCountersEvent(post.page, post.post_id, at, note=NO_SERVICE_TOKEN)
                for post in posts
            ]
        names: dict[str, DuePost] = {}
        for post in posts:
            owner = owner_id(post.page)
            names[f"{owner}_{post.post_id}"] = post
        keys = list(names)
        chunks = [keys[i : i + POSTS_PER_CALL] for i in range(0, len(keys), POSTS_PER_CALL)]
        events: list[PostCountersEvent] = []
        for start in range(0, len(chunks), CALLS_PER_EXECUTE):
            batch = chunks[start : start + CALLS_PER_EXECUTE]
            events.extend(await self._execute_batch(batch, names, at))
        return events

    async def _execute_batch(
        self, batch: list[list[str]], names: dict[str, DuePost], at: datetime
    ) -> list[PostCountersEvent]:
        assert self.service_token is not None
        script = (
            "return ["
            + ",".join(
                f"API.wall.getById({json.dumps({'posts': ','.join(chunk)})})" for chunk in batch
            )
            + "];"
        )
        try:
            body = await self._call(self.service_token, "execute", raw=True, code=script)
        except VkTransportError as error:
            logger.warning("execute не удался (%s); повторим при следующем обновлении", error)
            return []
        except VkCallError as error:
            if error.code in RATE_LIMIT_CODES:
                logger.warning("execute всё ещё ограничен; повторим при следующем обновлении")
                return []
            note = refusal(error.code, error.message)
            logger.warning("execute: ошибка %s", note)
            return [
                PostCountersEvent(names[key].page, names[key].post_id, at, note=note)
                for chunk in batch
                for key in chunk
            ]
        results = body.get("response")
        errors = list(body.get("execute_errors") or [])
        if not isinstance(results, list) or len(results) != len(batch):
            logger.warning(
                "execute вернул результатов: %d, а вызовов было %d", len(results or []), len(batch)
            )
            return []
        events: list[PostCountersEvent] = []
        for chunk, result in zip(batch, results, strict=True):
            if result is False:
                nested = errors.pop(0) if errors else {}
                nested_code = int(nested.get("error_code", 0) or 0)
                if nested_code in RATE_LIMIT_CODES or nested_code == 0:
                    continue  # left for the next refresh
                note = refusal(nested_code, str(nested.get("error_msg", "")))
                logger.warning("wall.getById внутри execute: %s", note)
                events.extend(
                    PostCountersEvent(names[key].page, names[key].post_id, at, note=note)
                    for key in chunk
                )
                continue
            items = result.get("items") if isinstance(result, dict) else result
            seen: set[str] = set()
            for item in items or []:
                if not isinstance(item, dict):
                    continue
                key = f"{item.get('owner_id')}_{item.get('id')}"
                post = names.get(key)
                if post is None:
                    continue
                try:
                    read = counters_event(item, VkPage(owner_id(post.page)), at)
                    events.append(replace(read, page=post.page))
                except TranslationError as error:
                    logger.warning("пост %s: %s", key, error)
                    continue
                seen.add(key)
            for key in chunk:
                if key not in seen:
                    post = names[key]
                    events.append(
                        PostCountersEvent(
                            post.page, post.post_id, at, gone=True, note="пост удалён или скрыт"
                        )
                    )
        return events


def owner_id(page: PageRef) -> int:
    """The wall owner of a VK page: -group_id for a community, the person's id for a wall."""
    number = int(page.external_id)
    return -abs(number) if page.kind is PageKind.VK_GROUP else number
