"""Page health for a period: subscribers, reach, posting rhythm, video share, engagement.

Definitions: docs/METRICS.md sec. 7, where each figure has the
hand recomputation. The counters of a post are those kept 72 h after publication
(`post_counter`, mark 72); a post younger than that at `at` is not measured yet. What is
unknown is `None` with the reasons in `missing` — never 0. The health index (0–100) is a
weighted mean of five parts against open norms (`HealthNorms`); it sits beside the maturity
index, which keeps its meaning.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.policy import PageDefaults
from storage.health_models import PageSnapshot, Post, PostCounter
from storage.models import Page

VIDEO_KINDS = frozenset({"video", "clip"})
# Page kinds whose own publications are followed (the others have no posts: bots, business).
HEALTH_KINDS = frozenset({"tg_channel", "vk_group", "vk_wall"})
REACH_MARK_H = 72
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class HealthNorms:
    """What a healthy page reaches; each part of the index is min(value ÷ norm, 1).

    Defaults: the regional norm of posts a week (POSTS_PER_WEEK_NORM), a third of posts with
    video (the federal recommendation: more video), a fifth of subscribers reached per post,
    1 % of subscribers reacting per post, and no week without a post.
    """

    posts_per_week: float = 3.0
    video_share: float = 0.3
    reach_rate: float = 0.2
    er: float = 0.01
    silence_days: float = 7.0  # the silence part is max(0, 1 − longest silence ÷ this)
    # Relative weights (need not sum to 100; the index divides by the sum of the known parts).
    weights: tuple[tuple[str, float], ...] = (
        ("rhythm", 30.0),
        ("video", 20.0),
        ("reach", 20.0),
        ("engagement", 20.0),
        ("silence", 10.0),
    )


@dataclass(slots=True)
class PageHealth:
    """The page-health figures of one page for one period (docs/METRICS.md sec. 7)."""

    subscribers: int | None = None
    subscribers_change: int | None = None
    penetration: float | None = None
    posts: int = 0
    posts_per_week: float | None = None
    posts_per_week_norm: float = 3.0
    longest_silence_days: float | None = None
    video_share: float | None = None
    text_length_mean: float | None = None
    views_per_post: float | None = None
    reach_rate: float | None = None
    er: float | None = None
    err: float | None = None
    comments_open_share: float | None = None
    health_index: float | None = None
    missing: list[str] = field(default_factory=list)
    # Per content kind: (posts measured at 72 h, their mean views) — the chart's "does video
    # reach more?"; and the period's posts by ISO week for the rhythm chart.
    views_by_kind: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def below_norm(self) -> bool:
        return self.posts_per_week is not None and self.posts_per_week < self.posts_per_week_norm

    def as_json(self) -> dict[str, Any]:
        return {
            "subscribers": self.subscribers,
            "subscribers_change": self.subscribers_change,
            "penetration": self.penetration,
            "posts": self.posts,
            "posts_per_week": self.posts_per_week,
            "posts_per_week_norm": self.posts_per_week_norm,
            "longest_silence_days": self.longest_silence_days,
            "video_share": self.video_share,
            "text_length_mean": self.text_length_mean,
            "views_per_post": self.views_per_post,
            "reach_rate": self.reach_rate,
            "er": self.er,
            "err": self.err,
            "comments_open_share": self.comments_open_share,
            "health_index": self.health_index,
            "missing": list(self.missing),
        }


@dataclass(frozen=True, slots=True)
class BestPost:
    page_id: int
    link: str | None
    kind: str
    views: int
    published_at: datetime


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _ratio(top: float | None, bottom: float | None, digits: int = 4) -> float | None:
    if top is None or bottom is None or bottom <= 0:
        return None
    return round(top / bottom, digits)


async def page_health(
    session: AsyncSession,
    page_ids: Sequence[int],
    since: datetime,
    until: datetime,
    at: datetime,
    *,
    region_audience: int | None = None,
    norms: HealthNorms = HealthNorms(),
) -> dict[int, PageHealth]:
    """Page health of every page in `page_ids` for `[since, until)`, as known at `at`."""
    end = min(until, at)
    if not page_ids:
        return {}
    pages = {
        page.id: page
        for page in (await session.exec(select(Page).where(col(Page.id).in_(page_ids)))).all()
    }
    snapshots = (
        await session.exec(
            select(PageSnapshot)
            .where(col(PageSnapshot.page_id).in_(page_ids), col(PageSnapshot.taken_at) < end)
            .order_by(col(PageSnapshot.taken_at))
        )
    ).all()
    posts = (
        await session.exec(
            select(Post)
            .where(
                col(Post.page_id).in_(page_ids),
                col(Post.published_at) >= since,
                col(Post.published_at) < end,
            )
            .order_by(col(Post.published_at))
        )
    ).all()
    post_ids = [post.id for post in posts if post.id is not None]
    marks: dict[int, PostCounter] = {}
    if post_ids:
        for counter in (
            await session.exec(
                select(PostCounter).where(
                    col(PostCounter.post_id).in_(post_ids),
                    col(PostCounter.mark_h) == REACH_MARK_H,
                    col(PostCounter.taken_at) <= at,
                )
            )
        ).all():
            marks[counter.post_id] = counter
    result = {}
    for page_id in page_ids:
        page = pages.get(page_id)
        if page is None:
            continue
        result[page_id] = _figures(
            page,
            [s for s in snapshots if s.page_id == page_id],
            [p for p in posts if p.page_id == page_id],
            marks,
            since,
            end,
            region_audience,
            norms,
        )
    return result


def _figures(
    page: Page,
    snapshots: list[PageSnapshot],
    posts: list[Post],
    marks: dict[int, PostCounter],
    since: datetime,
    end: datetime,
    region_audience: int | None,
    norms: HealthNorms,
) -> PageHealth:
    health = PageHealth(posts_per_week_norm=norms.posts_per_week)
    missing: list[str] = []
    _subscribers(health, snapshots, since, missing)
    if health.subscribers is not None:
        if region_audience:
            health.penetration = _ratio(health.subscribers, region_audience, 6)
        else:
            missing.append("проникновение: не задана интернет-аудитория региона (REGION_AUDIENCE)")

    health.posts = len(posts)
    days = (end - since) / DAY
    if days > 0:
        health.posts_per_week = round(len(posts) / days * 7, 2)
        moments = [since, *(post.published_at for post in posts), end]
        gaps = [(later - earlier) / DAY for earlier, later in itertools.pairwise(moments)]
        health.longest_silence_days = round(max(gaps), 1)
    if posts:
        health.video_share = _share(sum(post.kind in VIDEO_KINDS for post in posts), len(posts))
        health.text_length_mean = round(sum(post.text_length for post in posts) / len(posts), 1)
        opened = [_comments_open(page, post) for post in posts]
        known = [value for value in opened if value is not None]
        health.comments_open_share = _share(sum(known), len(known))
        if not known:
            missing.append("открытые комментарии: платформа не сообщает")
    else:
        missing.append("постов за период нет")
    _reach(health, page, posts, marks, missing)
    health.health_index = health_index(health, norms)
    health.missing = list(dict.fromkeys(missing))
    return health


def _subscribers(
    health: PageHealth, snapshots: list[PageSnapshot], since: datetime, missing: list[str]
) -> None:
    known = [s for s in snapshots if s.subscribers is not None]
    if not known:
        notes = [s.note for s in snapshots if s.note]
        missing.append(f"подписчики: {notes[-1]}" if notes else "подписчики: ещё ни одного снимка")
        return
    last = known[-1]
    health.subscribers = last.subscribers
    if snapshots[-1].subscribers is None and snapshots[-1].note:
        missing.append(f"подписчики (последний снимок): {snapshots[-1].note}")
    before = [s for s in known if s.taken_at <= since]
    first = before[-1] if before else known[0]
    if first is not last and last.subscribers is not None and first.subscribers is not None:
        health.subscribers_change = last.subscribers - first.subscribers
    else:
        missing.append("изменение подписчиков: нужен второй снимок")


def _comments_open(page: Page, post: Post) -> bool | None:
    if post.comments_open is not None:
        return post.comments_open
    if page.kind == "tg_channel":
        # A channel's posts take comments exactly when it has a linked discussion group.
        return page.linked_chat_id is not None
    return None


def _reach(
    health: PageHealth,
    page: Page,
    posts: list[Post],
    marks: dict[int, PostCounter],
    missing: list[str],
) -> None:
    measured = [(post, marks[post.id]) for post in posts if post.id in marks]
    with_views = [(post, mark) for post, mark in measured if mark.views is not None]
    if with_views:
        total_views = sum(mark.views or 0 for _, mark in with_views)
        health.views_per_post = round(total_views / len(with_views), 1)
        by_kind: dict[str, list[int]] = {}
        for post, mark in with_views:
            by_kind.setdefault(post.kind, []).append(mark.views or 0)
        health.views_by_kind = {
            kind: (len(values), round(sum(values) / len(values), 1))
            for kind, values in sorted(by_kind.items())
        }
    interactions = [
        (_interactions(mark), mark.views) for _, mark in measured if _interactions(mark) is not None
    ]
    if interactions:
        mean = sum(value or 0 for value, _ in interactions) / len(interactions)
        health.er = _ratio(mean, health.subscribers, 6)
        both = [(value or 0, views) for value, views in interactions if views is not None]
        health.err = _ratio(sum(v for v, _ in both), sum(views or 0 for _, views in both), 6)
    health.reach_rate = _ratio(health.views_per_post, health.subscribers, 6)
    if not measured:
        if posts:
            missing.append(
                _notes(posts) or "просмотры и реакции: ни один пост ещё не измерен через 72 часа"
            )
        return
    if not with_views:
        missing.append(_notes(posts, "просмотры") or "просмотры: платформа их не сообщила")
    if page.platform == "telegram":
        missing.append("репосты: Bot API их не сообщает (в ER только реакции и комментарии)")


def _notes(posts: Iterable[Post], about: str | None = None) -> str | None:
    notes = [post.counters_note for post in posts if post.counters_note]
    if about is not None:
        notes = [note for note in notes if about in note] or notes
    return notes[-1] if notes else None


def _interactions(mark: PostCounter) -> int | None:
    parts = [mark.likes, mark.reposts, mark.comments]
    known = [part for part in parts if part is not None]
    return sum(known) if known else None


def health_index(health: PageHealth, norms: HealthNorms = HealthNorms()) -> float | None:
    """100 × Σ wᵢ·partᵢ / Σ wᵢ over the parts that are known; None if none is."""
    parts: dict[str, float | None] = {
        "rhythm": None
        if health.posts_per_week is None
        else min(health.posts_per_week / norms.posts_per_week, 1.0),
        "video": None
        if health.video_share is None
        else min(health.video_share / norms.video_share, 1.0),
        "reach": None
        if health.reach_rate is None
        else min(health.reach_rate / norms.reach_rate, 1.0),
        "engagement": None if health.er is None else min(health.er / norms.er, 1.0),
        "silence": None
        if health.longest_silence_days is None
        else max(0.0, 1.0 - health.longest_silence_days / norms.silence_days),
    }
    known = [
        (weight, parts[name])
        for name, weight in norms.weights
        if parts.get(name) is not None and weight > 0
    ]
    total = sum(weight for weight, _ in known)
    if total <= 0:
        return None
    return round(100.0 * sum(weight * (value or 0.0) for weight, value in known) / total, 1)


async def best_post(
    session: AsyncSession, page_ids: Sequence[int], since: datetime, until: datetime, at: datetime
) -> BestPost | None:
    """The post of the period with the most views 72 h after publication (ties: earliest)."""
    if not page_ids:
        return None
    rows = (
        await session.exec(
            select(Post, PostCounter)
            .join(PostCounter, col(PostCounter.post_id) == col(Post.id))
            .where(
                col(Post.page_id).in_(page_ids),
                col(Post.published_at) >= since,
                col(Post.published_at) < min(until, at),
                col(PostCounter.mark_h) == REACH_MARK_H,
                col(PostCounter.taken_at) <= at,
                col(PostCounter.views).is_not(None),
            )
            .order_by(col(PostCounter.views).desc(), col(Post.published_at), col(Post.id))
            .limit(1)
        )
    ).first()
    if rows is None:
        return None
    post, mark = rows
    return BestPost(post.page_id, post.link, post.kind, mark.views or 0, post.published_at)


def norms_of(defaults: PageDefaults) -> HealthNorms:
    """The norms with the page's posting norm from the settings (POSTS_PER_WEEK_NORM)."""
    return HealthNorms(posts_per_week=defaults.posts_per_week_norm)


async def report_health(
    session: AsyncSession,
    page_ids: Sequence[int],
    since: datetime,
    until: datetime,
    at: datetime,
    defaults: PageDefaults,
) -> dict[int, PageHealth]:
    """Page health as the report use case shows it (settings through `defaults`)."""
    return await page_health(
        session,
        page_ids,
        since,
        until,
        at,
        region_audience=defaults.region_audience,
        norms=norms_of(defaults),
    )


async def pages_with_health(session: AsyncSession, since: datetime, until: datetime) -> list[int]:
    """Pages with a post in `[since, until)` or a subscriber reading before `until`."""
    posted = select(Post.page_id).where(
        col(Post.published_at) >= since, col(Post.published_at) < until
    )
    counted = select(PageSnapshot.page_id).where(col(PageSnapshot.taken_at) < until)
    ids = set((await session.exec(posted)).all()) | set((await session.exec(counted)).all())
    return sorted(ids)


@dataclass(frozen=True, slots=True)
class HealthWeek:
    """One local week: its posts and the subscribers at its end (None: no reading)."""

    start: date
    posts: int
    subscribers: int | None


async def health_weeks(
    session: AsyncSession,
    page_ids: Sequence[int],
    since: datetime,
    until: datetime,
    at: datetime,
    timezone: str,
) -> list[HealthWeek]:
    """Per local Monday–Sunday week touching `[since, until)`: posts and subscribers (summed
    over the pages that have a reading by the week's end)."""
    if not page_ids:
        return []
    zone = ZoneInfo(timezone)
    end = min(until, at)
    posts = (
        await session.exec(
            select(Post.published_at).where(
                col(Post.page_id).in_(page_ids),
                col(Post.published_at) >= since,
                col(Post.published_at) < end,
            )
        )
    ).all()
    snapshots = (
        await session.exec(
            select(PageSnapshot)
            .where(
                col(PageSnapshot.page_id).in_(page_ids),
                col(PageSnapshot.taken_at) < end,
                col(PageSnapshot.subscribers).is_not(None),
            )
            .order_by(col(PageSnapshot.taken_at))
        )
    ).all()
    first = since.astimezone(zone).date()
    monday = first - timedelta(days=first.weekday())
    weeks = []
    while True:
        week_end = datetime.combine(monday + timedelta(days=7), time(), zone)
        if datetime.combine(monday, time(), zone) >= end:
            break
        count = sum(
            1
            for moment in posts
            if monday <= moment.astimezone(zone).date() < monday + timedelta(days=7)
        )
        latest: dict[int, int] = {}
        for snapshot in snapshots:
            if snapshot.taken_at < week_end and snapshot.subscribers is not None:
                latest[snapshot.page_id] = snapshot.subscribers
        weeks.append(HealthWeek(monday, count, sum(latest.values()) if latest else None))
        monday += timedelta(days=7)
    return weeks
