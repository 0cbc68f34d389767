"""Report figures (docs/METRICS.md) with hand-computed expectations, on SQLite and PostgreSQL.

The scenario: two weeks around Unity Day (Wednesday 2026-11-04, a public holiday) for one
Telegram channel, SLA 8 working hours, Mon–Fri 09:00–18:00 Moscow. Every appeal goes through
the real ingest path. Report period [Mon 02.11 00:00, Mon 16.11 00:00) MSK, `at` = Fri 13.11
12:00 MSK.

| appeal | received (MSK)        | deadline          | first response         | status at `at` |
|--------|-----------------------|-------------------|------------------------|----------------|
| A0     | Sun 01.11 23:00       |                   |                        | outside period |
| A1     | Mon 02.11 10:00       | Mon 02.11 18:00   | Mon 12:00 (2 h, 2 h w) | in time        |
| A2     | Mon 02.11 23:30 night | Tue 03.11 17:00   | Tue 10:00 (10.5 h, 1 h)| in time        |
| A3     | Tue 03.11 15:00 (+ follow-up 18:30) | Thu 05.11 14:00 | Thu 16:00 (49 h, 10 h) | late |
| A4     | Sat 07.11 11:00 weekend | Mon 09.11 17:00 | Sat 12:00 interim (1 h, 0 w) | in time |
|        | (final answer Tue 10.11 10:00) |          |                        |                |
| A5     | Mon 09.11 09:30 urgent | Mon 09.11 13:30  | none                   | overdue        |
| A6     | Tue 10.11 10:00       | Tue 10.11 18:00   | offline mark Tue 15:00 | in time        |
| A7     | Fri 13.11 10:00       | Fri 13.11 18:00   | Fri 14:00, after `at`  | pending        |
| A8     | Fri 13.11 11:00       | Mon 16.11 10:00   | none                   | pending        |
| A9     | Thu 12.11 10:00       |                   | «Не обращение»         | not counted    |
"""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlmodel import select

from bot.events import (
    AuthorRole,
    DeleteEvent,
    Deleter,
    MessageEvent,
    PageKind,
    PageRef,
    Platform,
    RatingEvent,
    ReactionEvent,
    ThreadKind,
    ThreadRef,
)
from bot.services.ingest import IngestService, Outcome
from bot.services.maturity import MaturityWeights, maturity_index
from bot.services.order_stats import median_of, p90_of
from bot.services.policy import PageDefaults
from bot.services.quality import score_replies
from bot.services.reports import build_report, daily_series, overdue_appeals
from storage.engine import SessionFactory
from storage.models import Appeal, OfficialReply

MSK = ZoneInfo("Europe/Moscow")
DEFAULTS = PageDefaults()
GROUP = "-1002"
PAGE = PageRef(
    Platform.TELEGRAM, "-1001", PageKind.TG_CHANNEL, "Администрация города", "city", GROUP
)
TEMPLATE = (
    "Здравствуйте! Работы выполнены, проблема устранена. Спасибо за обращение, будем рады помочь."
)
SINCE = datetime(2026, 11, 2, tzinfo=MSK)
UNTIL = datetime(2026, 11, 16, tzinfo=MSK)
AT = datetime(2026, 11, 13, 12, 0, tzinfo=MSK)


def msk(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK).astimezone(UTC)


def thread(post: int) -> ThreadRef:
    return ThreadRef(f"post:{post}", ThreadKind.COMMENTS)


def citizen(
    number: int, post: int, when: datetime, author: str, text: str, reply_to: int | None = None
) -> MessageEvent:
    return MessageEvent(
        page=PAGE,
        thread=thread(post),
        message_id=f"{GROUP}:{number}",
        sent_at=when,
        author_role=AuthorRole.PERSON,
        author_id=author,
        author_name=f"Житель {author}",
        text=text,
        reply_to_id=f"{GROUP}:{reply_to}" if reply_to else None,
    )


def official(number: int, post: int, when: datetime, reply_to: int, text: str) -> MessageEvent:
    return MessageEvent(
        page=PAGE,
        thread=thread(post),
        message_id=f"{GROUP}:{number}",
        sent_at=when,
        author_role=AuthorRole.PAGE,
        author_id="-1001",
        author_name="Администрация города",
        text=text,
        reply_to_id=f"{GROUP}:{reply_to}",
    )


async def load_scenario(sessions: SessionFactory) -> dict[str, int]:
    """Ingest the two-week scenario; returns appeal ids by name."""
    ids: dict[str, int] = {}
    async with sessions() as session:
        ingest = IngestService(session, DEFAULTS)

        async def appeal(name: str, event: MessageEvent) -> None:
            result = await ingest.handle(event)
            assert result.outcome is Outcome.APPEAL, (name, result)
            ids[name] = result.appeal_ids[0]

        async def reply(event: MessageEvent) -> None:
            result = await ingest.handle(event)
            assert result.outcome is Outcome.REPLY, (event.message_id, result)

        await appeal(
            "A0", citizen(1, 10, msk(1, 23), "c0", "Почему не горит освещение на улице Садовой?")
        )
        await appeal(
            "A1",
            citizen(
                2,
                10,
                msk(2, 10),
                "c1",
                "Когда уберут мусор во дворе на улице Ленина 5? Неделю не вывозят.",
            ),
        )
        await reply(official(3, 10, msk(2, 12), 2, TEMPLATE))
        await appeal(
            "A2",
            citizen(4, 10, msk(2, 23, 30), "c2", "Прошу отремонтировать яму на дороге у школы №3."),
        )
        await reply(official(5, 10, msk(3, 10), 4, TEMPLATE))
        await appeal(
            "A3",
            citizen(
                6, 20, msk(3, 15), "c3", "Когда заменят детскую площадку во дворе на Пушкина 3?"
            ),
        )
        # The same citizen again while unanswered: joins A3 (not an appeal of its own).
        follow = await ingest.handle(citizen(7, 20, msk(3, 18, 30), "c3", "Алло, ответьте!"))
        assert follow.outcome is Outcome.FOLLOW_UP and follow.appeal_ids == (ids["A3"],)
        await reply(
            official(
                8,
                20,
                msk(5, 16),
                7,
                "Здравствуйте, Ольга! Площадку заменят до 12 ноября, "
                "контроль ведёт управление ЖКХ.",
            )
        )
        # Comes back dissatisfied: a re-open of A3, not a new appeal.
        reopen = await ingest.handle(citizen(9, 20, msk(6, 10), "c3", "Ничего не решено"))
        assert reopen.outcome is Outcome.REOPEN
        await appeal(
            "A4",
            citizen(
                10, 30, msk(7, 11), "c4", "Во дворе дома 7 не чистят снег, прошу принять меры."
            ),
        )
        await reply(official(11, 30, msk(7, 12), 10, "Передали в профильное ведомство."))
        await reply(
            official(12, 30, msk(10, 10), 10, "Здравствуйте! Подрядчик расчистил двор 10 ноября.")
        )
        await appeal(
            "A5",
            citizen(
                13,
                30,
                msk(9, 9, 30),
                "c5",
                "Нет горячей воды в доме 12 по улице Мира уже третий день!",
            ),
        )
        await ingest.handle(DeleteEvent(PAGE, f"{GROUP}:13", msk(9, 12), Deleter.PAGE))
        await appeal(
            "A6",
            citizen(
                14, 40, msk(10, 10), "c6", "Автобус 15 не ходит по расписанию, когда это исправят?"
            ),
        )
        await appeal(
            "A9",
            citizen(
                15, 40, msk(12, 10), "c9", "Прошу проверить свалку у реки, кто-то сваливает мусор."
            ),
        )
        thanks = await ingest.handle(citizen(16, 40, msk(12, 11), "c10", "Спасибо!"))
        assert thanks.outcome is Outcome.COMMENT
        await appeal(
            "A7", citizen(17, 50, msk(13, 10), "c7", "Когда откроют поликлинику после ремонта?")
        )
        await reply(
            official(18, 50, msk(13, 14), 17, "Здравствуйте! Поликлиника откроется 1 декабря.")
        )
        await appeal(
            "A8",
            citizen(
                19, 50, msk(13, 11), "c8", "Почему не горит освещение во дворе дома 4 на Садовой?"
            ),
        )
        # Ratings: A1's citizen 👍 in the bot, A2's citizen 👎 as a reaction to the reply.
        rated = await ingest.handle(RatingEvent(PAGE, f"{GROUP}:3", "c1", True, msk(2, 13)))
        assert rated.outcome is Outcome.RATING
        await ingest.handle(ReactionEvent(PAGE, f"{GROUP}:5", "c2", msk(3, 11), added=("👎",)))
        # Press-office decisions (their handlers set these fields).
        a6 = await session.get(Appeal, ids["A6"])
        assert a6 is not None
        a6.answered_offline_at = msk(10, 15)
        a9 = await session.get(Appeal, ids["A9"])
        assert a9 is not None
        a9.excluded = True
        await session.commit()
    async with sessions() as session:
        await score_replies(session)
        await session.commit()
    return ids


async def test_two_week_scenario_figures(sessions: SessionFactory) -> None:
    ids = await load_scenario(sessions)
    async with sessions() as session:
        a3 = await session.get(Appeal, ids["A3"])
        # Two messages before the answer, and the dissatisfied return joined it (issue 12 item 3).
        assert a3 is not None and a3.messages_count == 3 and a3.reopened_at == msk(6, 10)
        a4 = await session.get(Appeal, ids["A4"])
        assert a4 is not None
        assert a4.first_response_at == msk(7, 12) and a4.final_response_at == msk(10, 10)
        report = await build_report(session, since=SINCE, until=UNTIL, at=AT, defaults=DEFAULTS)
        closing = {}
        for name in ("A1", "A2", "A3", "A4"):
            appeal = await session.get(Appeal, ids[name])
            assert appeal is not None and appeal.quality_score is not None
            closing[name] = appeal.quality_score
        templates = (
            await session.exec(select(OfficialReply).where(OfficialReply.is_template == True))  # noqa: E712
        ).all()
    data = report.to_json()
    total = data["total"]
    assert data["since"] == "2026-11-01T21:00:00+00:00"
    assert data["at"] == "2026-11-13T09:00:00+00:00"
    expected = {
        "appeals": 8,
        "answered": 5,
        "unanswered": 3,
        "answered_share": 0.625,
        "answered_in_time": 4,
        "answered_late": 1,
        "overdue": 1,
        "pending": 2,
        "within_sla_share": round(4 / 6, 4),
        "answered_offline": 1,
        "frt_median_s": 22500.0,  # median of 3600, 7200, 37800, 176400
        "frt_p90_s": 134820.0,  # (37800·3 + 176400·7) / 10
        "frt_median_work_s": 5400.0,  # median of 0, 3600, 7200, 36000
        "templated_share": 0.5,  # A1 and A2 got the same text
        "deleted_by_page": 1,
        "csat": 0.5,
    }
    assert {key: total[key] for key in expected} == expected
    assert sorted(r.external_id for r in templates) == [f"{GROUP}:3", f"{GROUP}:5"]
    assert total["quality_mean"] == round(statistics.mean(closing.values()), 2)
    assert total["maturity_index"] == maturity_index(
        0.625, round(4 / 6, 4), total["quality_mean"], 0.5
    )
    assert total["topics"]["amenities"] >= 2
    [page] = data["pages"]
    assert page["title"] == "Администрация города" and page["platform"] == "telegram"
    assert {key: page[key] for key in expected} == expected


async def test_report_later_and_earlier(sessions: SessionFactory) -> None:
    await load_scenario(sessions)
    async with sessions() as session:
        # A month later A7 has its answer (in time) and A8 is overdue.
        later = await build_report(
            session,
            since=SINCE,
            until=UNTIL,
            at=AT + timedelta(days=30),
            defaults=DEFAULTS,
        )
        # Right after A1 arrived: only A1 is known (docs/METRICS.md), and it is not answered yet.
        early = await build_report(
            session, since=SINCE, until=UNTIL, at=msk(2, 11), defaults=DEFAULTS
        )
        # The first week only: A1–A4.
        week = await build_report(
            session, since=SINCE, until=datetime(2026, 11, 9, tzinfo=MSK), at=AT, defaults=DEFAULTS
        )
        empty = await build_report(
            session,
            since=datetime(2027, 1, 1, tzinfo=MSK),
            until=datetime(2027, 2, 1, tzinfo=MSK),
            at=AT,
            defaults=DEFAULTS,
        )
    late = later.to_json()["total"]
    assert (late["answered"], late["answered_in_time"], late["overdue"], late["pending"]) == (
        6,
        5,
        2,
        0,
    )
    # FRT sample adds A7's 4 h: 3600, 7200, 14400, 37800, 176400.
    assert late["frt_median_s"] == 14400.0
    first = early.to_json()["total"]
    assert (first["appeals"], first["answered"], first["pending"], first["overdue"]) == (1, 0, 1, 0)
    assert first["frt_median_s"] is None and first["within_sla_share"] is None
    week_total = week.to_json()["total"]
    assert (week_total["appeals"], week_total["answered_in_time"], week_total["answered_late"]) == (
        4,
        3,
        1,
    )
    nothing = empty.to_json()
    assert nothing["pages"] == []
    zero = nothing["total"]
    assert zero["appeals"] == 0 and zero["answered_share"] is None
    assert zero["maturity_index"] is None and zero["csat"] is None


async def test_daily_series_and_overdue(sessions: SessionFactory) -> None:
    ids = await load_scenario(sessions)
    async with sessions() as session:
        series = await daily_series(session, since=SINCE, until=UNTIL, at=AT, tz="Europe/Moscow")
        overdue = await overdue_appeals(session, at=AT)
    assert len(series) == 14
    by_day = {row.day.day: row for row in series}
    assert (by_day[2].appeals, by_day[2].in_time, by_day[2].frt_median_s) == (2, 2, 22500.0)
    assert (by_day[3].late, by_day[3].frt_median_s) == (1, 176400.0)
    assert (by_day[9].overdue, by_day[13].pending) == (1, 2)
    assert by_day[4].appeals == 0 and by_day[4].frt_median_s is None
    assert sum(row.appeals for row in series) == 8
    assert sum(sum(row.frt_bins) for row in series) == 4
    # A5 is the only overdue appeal (A0 outside the period was answered never: overdue too).
    assert [item.appeal_id for item in overdue] == [ids["A0"], ids["A5"]]
    a5 = overdue[1]
    assert a5.urgent and a5.overdue_s == (AT - msk(9, 13, 30)).total_seconds()
    assert "горячей воды" in a5.text


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=60))
def test_quantiles_equal_statistics(values: list[float]) -> None:
    data = sorted(values)
    assert median_of(data.__getitem__, len(data)) == statistics.median(data)
    expected = (
        data[0] if len(data) == 1 else statistics.quantiles(data, n=10, method="inclusive")[8]
    )
    assert p90_of(data.__getitem__, len(data)) == expected


def test_maturity_index_weights() -> None:
    assert maturity_index(None, None, None, None) is None
    # All parts: 100·(0.3·1 + 0.3·0.5 + 0.25·0.8 + 0.15·0) = 65.
    assert maturity_index(1.0, 0.5, 80.0, 0.0) == 65.0
    # Nobody rated: satisfaction is left out, weights re-normalised over 0.85.
    assert maturity_index(1.0, 0.5, 80.0, None) == round(100 * 0.65 / 0.85, 1)
    assert maturity_index(0.5, 0.5, None, None, MaturityWeights(1, 1, 1, 1)) == 50.0
    with pytest.raises(ValueError):
        MaturityWeights(-1, 0, 0, 0)


async def test_weekly_series_sums_the_days_and_matches_the_week_reports(
    sessions: SessionFactory,
) -> None:
    await load_scenario(sessions)
    tz = "Europe/Moscow"
    async with sessions() as session:
        days = await daily_series(session, since=SINCE, until=UNTIL, at=AT, tz=tz)
        weeks = await daily_series(session, since=SINCE, until=UNTIL, at=AT, tz=tz, step="week")
        reports = [
            await build_report(session, since=start, until=end, at=AT, defaults=DEFAULTS)
            for start, end in ((SINCE, msk(9, 0)), (msk(9, 0), UNTIL))
        ]
        # A period starting on a Wednesday: its row is keyed by the Monday, counts from Wednesday.
        midweek = await daily_series(
            session, since=msk(4, 0), until=msk(9, 0), at=AT, tz=tz, step="week"
        )
    assert [row.day for row in weeks] == [date(2026, 11, 2), date(2026, 11, 9)]
    for week, report in zip(weeks, reports, strict=True):
        in_week = [row for row in days if week.day <= row.day < week.day + timedelta(days=7)]
        for name in ("appeals", "in_time", "late", "overdue", "pending"):
            assert getattr(week, name) == sum(getattr(row, name) for row in in_week)
        bins = [row.frt_bins for row in in_week]
        assert week.frt_bins == tuple(map(sum, zip(*bins, strict=True)))
        total = report.to_json()["total"]
        assert (week.appeals, week.frt_median_s) == (total["appeals"], total["frt_median_s"])
    assert reports[0].total.appeals == 4 and reports[0].total.frt_median_s is not None
    [partial] = midweek
    assert partial.day == date(2026, 11, 2)
    assert partial.appeals == sum(row.appeals for row in days if 4 <= row.day.day < 9)
