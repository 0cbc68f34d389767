"""Page health, item 3: every figure against a hand-computed expectation, on both databases.

The numbers below are worked out in the comments, as docs/METRICS.md sec. 7 says to recompute
them by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import AppContext
from bot.events import (
    Event,
    PageKind,
    PageRef,
    Platform,
    PostCountersEvent,
    PostEvent,
    PostKind,
    SubscribersEvent,
)
from bot.services.health import HealthNorms, PageHealth, best_post, health_index, page_health
from bot.services.intake import Intake, IntakeJob
from storage.repositories import page_row, run_in_transaction
from tests.conftest import make_settings

SINCE = datetime(2026, 11, 2, tzinfo=UTC)  # Monday
UNTIL = datetime(2026, 11, 9, tzinfo=UTC)
LATER = datetime(2026, 11, 20, tzinfo=UTC)
VK = PageRef(Platform.VK, "300", PageKind.VK_GROUP, "Администрация")
TG = PageRef(Platform.TELEGRAM, "-1001", PageKind.TG_CHANNEL, "Канал", "chan", "-1002")
QUIET = PageRef(Platform.VK, "301", PageKind.VK_GROUP, "Тихая страница")


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def post(
    page: PageRef, post_id: str, when: datetime, kind: PostKind, length: int, **kw: object
) -> PostEvent:
    return PostEvent(page, post_id, when, kind, length, **kw)  # type: ignore[arg-type]


def measured(
    page: PageRef, post_id: str, published: datetime, **counters: int
) -> PostCountersEvent:
    # Read 73 h after publication: the 24 h and 72 h marks are both kept from this reading.
    return PostCountersEvent(page, post_id, published + timedelta(hours=73), **counters)  # type: ignore[arg-type]


EVENTS: list[Event] = [
    SubscribersEvent(VK, at(1, 12), 10_000),
    SubscribersEvent(VK, at(8, 12), 10_500),
    post(VK, "1", at(2, 10), PostKind.VIDEO, 100, comments_open=True),
    post(VK, "2", at(3, 10), PostKind.CLIP, 0, comments_open=True),
    post(VK, "3", at(4, 10), PostKind.PHOTO, 200, comments_open=False),
    post(VK, "4", at(7, 10), PostKind.TEXT, 300, comments_open=True),
    measured(VK, "1", at(2, 10), views=2000, likes=50, reposts=10, comments=40),
    measured(VK, "2", at(3, 10), views=3000, likes=100, reposts=20, comments=30),
    measured(VK, "3", at(4, 10), views=1000, likes=20, reposts=0, comments=0),
    PostCountersEvent(VK, "4", at(8, 10), gone=True, note="пост удалён или скрыт"),
    SubscribersEvent(TG, at(8, 12), None, "Telegram отказал боту в данных канала"),
    post(TG, "10", at(5, 12), PostKind.TEXT, 50),
    post(TG, "11", at(6, 12), PostKind.CLIP, 0),
    PostCountersEvent(TG, "10", at(5, 13), likes=12),
    PostCountersEvent(TG, "10", at(8, 13), note="просмотры: Bot API их не даёт"),
    SubscribersEvent(QUIET, at(3), None, "нет ключа VK для groups.getById"),
]


async def figures(engine: AsyncEngine, until: datetime, when: datetime) -> dict[str, PageHealth]:
    app = AppContext.create(make_settings(), engine)
    intake = Intake(app.sessions, app.defaults)
    await intake.deliver(IntakeJob(raw=None, events=tuple(EVENTS)))
    async with app.sessions() as session:
        ids = {
            ref.external_id: (
                await run_in_transaction(
                    session, lambda db, r=ref: page_row(db, r.platform.value, r.external_id)
                )
            ).id  # type: ignore[misc]
            for ref in (VK, TG, QUIET)
        }
        found = await page_health(
            session, list(ids.values()), SINCE, until, when, region_audience=1_050_000
        )
    return {external: found[page_id] for external, page_id in ids.items()}


async def test_figures_of_a_week_by_hand(engine: AsyncEngine) -> None:
    result = await figures(engine, UNTIL, LATER)
    vk = result["300"]
    assert (vk.subscribers, vk.subscribers_change) == (10_500, 500)  # 10 500 − 10 000
    assert vk.penetration == 0.01  # 10 500 ÷ 1 050 000
    assert (vk.posts, vk.posts_per_week) == (4, 4.0)  # 4 posts in 7 days
    # Gaps: Mon 00:00→Mon 10:00 0.42 d, 1 d, 1 d, Wed→Sat 3 d, Sat 10:00→Mon 00:00 1.58 d.
    assert vk.longest_silence_days == 3.0
    assert vk.video_share == 0.5  # video + clip of 4
    assert vk.text_length_mean == 150.0  # (100 + 0 + 200 + 300) ÷ 4
    assert vk.comments_open_share == 0.75
    # At 72 h: views 2000, 3000, 1000 (the deleted post was never measured).
    assert vk.views_per_post == 2000.0
    assert vk.reach_rate == 0.190476  # 2000 ÷ 10 500
    # Interactions 100, 150, 20: mean 90 ÷ 10 500; ERR 270 ÷ 6000.
    assert vk.er == 0.008571
    assert vk.err == 0.045
    # 30·1 + 20·1 + 20·(0.190476 ÷ 0.2) + 20·(0.008571 ÷ 0.01) + 10·(1 − 3 ÷ 7) = 91.9 of 100
    assert vk.health_index == 91.9
    assert vk.missing == []
    assert vk.views_by_kind == {"clip": (1, 3000.0), "photo": (1, 1000.0), "video": (1, 2000.0)}

    tg = result["-1001"]
    assert tg.subscribers is None and tg.subscribers_change is None and tg.penetration is None
    assert (tg.posts, tg.posts_per_week, tg.longest_silence_days) == (2, 2.0, 3.5)
    assert tg.video_share == 0.5 and tg.text_length_mean == 25.0
    assert tg.comments_open_share == 1.0  # the channel has a discussion group
    assert tg.views_per_post is None and tg.reach_rate is None  # unknown, not zero
    assert tg.er is None and tg.err is None
    # (30·(2 ÷ 3) + 20·1 + 10·(1 − 3.5 ÷ 7)) ÷ 60 = 75.0: reach and engagement unknown
    assert tg.health_index == 75.0
    assert tg.missing == [
        "подписчики: Telegram отказал боту в данных канала",
        "просмотры: Bot API их не даёт",
        "репосты: Bot API их не сообщает (в ER только реакции и комментарии)",
    ]

    quiet = result["301"]
    assert (quiet.posts, quiet.posts_per_week, quiet.longest_silence_days) == (0, 0.0, 7.0)
    assert quiet.video_share is None and quiet.views_per_post is None
    assert quiet.health_index == 0.0  # no post in a week: rhythm 0, silence 0
    assert quiet.missing == [
        "подписчики: нет ключа VK для groups.getById",
        "постов за период нет",
    ]


async def test_a_report_shows_what_was_known_at_at(engine: AsyncEngine) -> None:
    # At Thursday 00:00 only three VK posts exist, and none is 72 h old: reach unknown.
    vk = (await figures(engine, UNTIL, at(5)))["300"]
    assert vk.posts == 3
    assert vk.posts_per_week == 7.0  # 3 posts in 3 days
    assert vk.subscribers == 10_000 and vk.subscribers_change is None
    assert vk.views_per_post is None and vk.er is None
    assert vk.missing[-1] == "просмотры и реакции: ни один пост ещё не измерен через 72 часа"


async def test_best_post_of_the_week_by_views(engine: AsyncEngine) -> None:
    app = AppContext.create(make_settings(), engine)
    await Intake(app.sessions, app.defaults).deliver(IntakeJob(raw=None, events=tuple(EVENTS)))
    async with app.sessions() as session:
        found = await best_post(session, [1, 2, 3], SINCE, UNTIL, LATER)
    assert found is not None
    assert (found.views, found.kind, found.published_at) == (3000, "clip", at(3, 10))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((("rhythm", 1.0),), 50.0),  # only the rhythm: 1.5 ÷ 3
        ((("rhythm", 1.0), ("silence", 1.0)), 25.0),  # (0.5 + 0) ÷ 2
        ((("video", 1.0),), None),  # unknown part only: no index
    ],
)
def test_the_index_weights_are_open(
    weights: tuple[tuple[str, float], ...], expected: float | None
) -> None:
    health = PageHealth(posts_per_week=1.5, longest_silence_days=7.0)
    assert health_index(health, HealthNorms(weights=weights)) == expected


async def test_weeks_for_the_chart(engine: AsyncEngine) -> None:
    from bot.services.health import HealthWeek, health_weeks
    from bot.services.health_chart import health_chart_png, views_by_kind

    app = AppContext.create(make_settings(), engine)
    await Intake(app.sessions, app.defaults).deliver(IntakeJob(raw=None, events=tuple(EVENTS)))
    async with app.sessions() as session:
        weeks = await health_weeks(
            session, [1, 2, 3], at(1) - timedelta(days=6), at(8, 21), LATER, "Europe/Moscow"
        )
        found = await page_health(session, [1, 2, 3], SINCE, UNTIL, LATER)
    # Week of 26.10: no post; VK's reading of 01.11 (10 000) is before Monday 00:00 Moscow.
    # Week of 02.11: 4 VK and 2 Telegram posts; VK's 10 500 of 08.11 (Telegram's is unknown).
    assert weeks == [
        HealthWeek(datetime(2026, 10, 26, tzinfo=UTC).date(), 0, 10_000),
        HealthWeek(datetime(2026, 11, 2, tzinfo=UTC).date(), 6, 10_500),
    ]
    kinds = views_by_kind(found.values())
    assert kinds == {"clip": 3000.0, "photo": 1000.0, "video": 2000.0}
    assert health_chart_png(weeks, kinds, "Здоровье страниц").startswith(b"\x89PNG")
    assert health_chart_png([], {}, "Пусто").startswith(b"\x89PNG")


async def test_the_report_use_case_carries_health_for_every_page(engine: AsyncEngine) -> None:
    from bot.services.report_text import format_stats
    from bot.services.reports import build_report

    app = AppContext.create(make_settings(REGION_AUDIENCE=1_050_000), engine)
    await Intake(app.sessions, app.defaults).deliver(IntakeJob(raw=None, events=tuple(EVENTS)))
    async with app.sessions() as session:
        report = await build_report(
            session, since=SINCE, until=UNTIL, at=LATER, defaults=app.defaults
        )
        one = await build_report(
            session, since=SINCE, until=UNTIL, at=LATER, page_id=1, defaults=app.defaults
        )
    pages = report.to_json()["pages"]
    # No appeals at all: the pages are listed for their posts and subscriber readings.
    assert [(p["page_id"], p["appeals"]) for p in pages] == [(1, 0), (2, 0), (3, 0)]
    vk = pages[0]["health"]
    assert set(vk) == {
        "subscribers",
        "subscribers_change",
        "penetration",
        "posts",
        "posts_per_week",
        "posts_per_week_norm",
        "longest_silence_days",
        "video_share",
        "text_length_mean",
        "views_per_post",
        "reach_rate",
        "er",
        "err",
        "comments_open_share",
        "health_index",
        "missing",
    }
    assert (vk["subscribers"], vk["penetration"], vk["health_index"]) == (10_500, 0.01, 91.9)
    assert pages[1]["health"]["views_per_post"] is None
    text = format_stats(one, "Europe/Moscow").replace("\u202f", " ").replace("\u00a0", " ")
    assert "Страница:\n  подписчики: 10 500 (+500 за период)" in text
    assert "  публикации: 4 поста, 4 в неделю при норме 3" in text
    assert "  просмотры поста (через 72 ч): 2 000, охват 19 % подписчиков" in text
    assert "  индекс здоровья страницы: 91,9 из 100" in text
    several = format_stats(report, "Europe/Moscow").replace("\u202f", " ").replace("\u00a0", " ")
    assert "— Тихая страница: постов в неделю 0 — ниже нормы, индекс здоровья 0" in several


async def test_digest_section_and_export_sheet(engine: AsyncEngine) -> None:
    import io

    from openpyxl import load_workbook

    from bot.services.digest import Week, build_digest
    from bot.services.export import build_export

    app = AppContext.create(make_settings(), engine, clock=lambda: LATER)
    await Intake(app.sessions, app.defaults).deliver(IntakeJob(raw=None, events=tuple(EVENTS)))
    async with app.sessions() as session:
        digest = await build_digest(session, app, Week(2026, 45))
        exported = await build_export(
            session, since=SINCE, until=UNTIL, at=LATER, defaults=app.defaults
        )
    text = digest.text.replace("\u202f", " ").replace("\u00a0", " ")
    assert "<b>Здоровье страниц</b>" in text
    # The week before had no post of the page at all: its index was 0 (rhythm 0, silence 0).
    assert (
        "• <b>Администрация</b>: индекс 91,9 (+91,9 к прошлой неделе), подписчиков 10 500" in text
    )
    assert "Ниже нормы публикаций: Канал (2 при норме 3), Тихая страница (0 при норме 3)" in text
    assert "Лучший пост недели по охвату: клип, 3 000 просмотров" in text

    sheet = load_workbook(io.BytesIO(exported.data))["Здоровье страниц"]
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0][:3] == ["Страница", "Подписчики", "Изменение за период"]
    by_title = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert by_title["Администрация"]["Подписчики"] == 10_500
    assert by_title["Администрация"]["Индекс здоровья (0–100)"] == 91.9
    assert by_title["Канал"]["Просмотров на пост (72 ч)"] == "нет данных"
    assert "Telegram отказал" in by_title["Канал"]["Чего не хватает"]


async def test_an_album_is_one_post_with_its_strongest_part(engine: AsyncEngine) -> None:
    from sqlmodel import select

    from storage.health_models import Post

    app = AppContext.create(make_settings(), engine)
    parts = (
        post(TG, "album:77", at(5, 12), PostKind.PHOTO, 0),
        post(TG, "album:77", at(5, 12), PostKind.VIDEO, 0),
        post(TG, "album:77", at(5, 12), PostKind.PHOTO, 42),  # the caption came with this part
    )
    await Intake(app.sessions, app.defaults).deliver(IntakeJob(raw=None, events=parts))
    async with app.sessions() as session:
        (album,) = (await session.exec(select(Post))).all()
    assert (album.kind, album.text_length) == ("video", 42)
