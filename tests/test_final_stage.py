"""The final-answer stage, «отписка» and re-opens in the report (issue 12 items 2, 3 and 5).

Figures are computed on SQLite and PostgreSQL and compared with expectations worked out by
hand from docs/METRICS.md sec. 2a.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from bot.services import shares
from bot.services.cards import AppealCard
from bot.services.figures import Figures
from bot.services.ingest import IngestService, Outcome
from bot.services.overdue import summary_header
from bot.services.policy import PageDefaults
from bot.services.quality import is_formal_reply
from bot.services.report_text import format_stats
from bot.services.reports import build_report
from storage.engine import SessionFactory, session_factory
from storage.migrate import upgrade
from storage.models import Appeal
from tests.conftest import drop_engine, make_engine
from tests.factories import FINAL_ANSWER, INTERIM_ANSWER, citizen, official

MSK = ZoneInfo("Europe/Moscow")
DEFAULTS = PageDefaults()
FORMAL = "Рекомендуем обратиться по телефону горячей линии 122."
BACK = "Ничего не сделали, ямы как были. Опять отписка!"


def msk(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK).astimezone(UTC)


async def _scenario(sessions: SessionFactory) -> dict[str, int]:
    """Six appeals of the week of 9 November 2026 and their answers (comments under one post)."""
    ids: dict[str, int] = {}
    async with sessions() as session:
        ingest = IngestService(session, DEFAULTS)

        async def appeal(name: str, at: datetime, author: str) -> str:
            message_id = f"-1002:{name}"
            result = await ingest.handle(citizen(at, author=author, message_id=message_id))
            assert result.outcome is Outcome.APPEAL, name
            ids[name] = result.appeal_ids[0]
            return message_id

        a = await appeal("A", msk(9, 10), "601")  # final deadline Wed 18.11 18:00
        b = await appeal("B", msk(9, 11), "602")
        c = await appeal("C", msk(10, 10), "603")  # final deadline Thu 19.11 18:00
        d = await appeal("D", msk(19, 10), "604")  # final deadline Fri 27.11 18:00
        e = await appeal("E", msk(9, 12), "605")
        f = await appeal("F", msk(10, 9, 30), "606")
        await ingest.handle(official(msk(11, 12), a))  # final, in time
        await ingest.handle(official(msk(9, 12), b, INTERIM_ANSWER))
        await ingest.handle(official(msk(19, 10), b))  # final, late (due Wed 18.11 18:00)
        await ingest.handle(official(msk(10, 11), c, INTERIM_ANSWER))  # only interim: overdue
        await ingest.handle(official(msk(9, 13), e, FORMAL))  # «отписка», in time
        await ingest.handle(official(msk(10, 10), f, message_id="-1002:Fa"))
        # F's citizen comes back dissatisfied on Wednesday: re-opened, due Fri 20.11 18:00.
        back = await ingest.handle(citizen(msk(11, 10), BACK, author="606", reply_to="-1002:Fa"))
        assert back.outcome is Outcome.REOPEN and back.appeal_ids == (ids["F"],)
        del d
        await session.commit()
    return ids


async def _report(sessions: SessionFactory, at: datetime) -> dict[str, object]:
    async with sessions() as session:
        report = await build_report(
            session, since=msk(9, 0), until=msk(21, 0), at=at, defaults=DEFAULTS
        )
    total: dict[str, object] = report.to_json()["total"]
    return total


async def test_final_stage_figures_by_hand(sessions: SessionFactory) -> None:
    ids = await _scenario(sessions)
    async with sessions() as session:
        f = await session.get(Appeal, ids["F"])
        assert f is not None
        assert f.final_deadline == msk(19, 18)  # Tue 10.11 + 7 working days
        assert f.reopened_at == msk(11, 10) and f.reopen_deadline == msk(20, 18)
        assert f.messages_count == 2

    total = await _report(sessions, msk(20, 12))
    assert total["appeals"] == 6
    assert {name: total[name] for name in total if name.startswith("final_")} == {
        "final_answered": 3,  # A, B, E
        "final_in_time": 2,  # A, E
        "final_late": 1,  # B
        "final_overdue": 1,  # C: interim only, due Thu 19.11 18:00
        "final_pending": 2,  # D (due 27.11), F re-opened (due Fri 20.11 18:00)
        "final_within_deadline_share": 0.5,  # 2 / (2 + 1 + 1)
    }
    assert total["formal_replies"] == 1  # E
    assert total["reopened"] == 1  # F

    # The next Monday: F's new final answer is overdue; the first reaction is unchanged.
    later = await _report(sessions, msk(23, 12))
    assert (later["final_overdue"], later["final_pending"]) == (2, 1)
    assert later["answered"] == total["answered"] == 5
    assert later["answered_in_time"] == total["answered_in_time"]

    # Before the return (Tuesday 18:00): F's first final answer counts, in time; A, B and C
    # wait (their final answers come later), D is not received yet.
    before = await _report(sessions, msk(10, 18))
    assert before["appeals"] == 5 and before["reopened"] == 0
    assert (before["final_answered"], before["final_in_time"], before["final_pending"]) == (
        2,
        2,
        3,
    )
    assert before["formal_replies"] == 1


async def test_answered_again_after_a_reopen_closes_the_new_stage(
    sessions: SessionFactory,
) -> None:
    ids = await _scenario(sessions)
    async with sessions() as session:
        ingest = IngestService(session, DEFAULTS)
        back_id = "-1002:F-again"
        await ingest.handle(official(msk(20, 11), "-1002:Fa", message_id=back_id))
        await session.commit()
        f = await session.get(Appeal, ids["F"])
        assert f is not None and f.reanswered_at == msk(20, 11)
    total = await _report(sessions, msk(20, 12))
    assert (total["final_in_time"], total["final_pending"], total["reopened"]) == (3, 1, 1)


def test_formal_reply_rule() -> None:
    # Redirects only, nothing concrete: «отписка».
    assert is_formal_reply(FORMAL, is_interim=False, is_template=None) is True
    assert is_formal_reply(
        "Данный вопрос не входит в компетенцию.", is_interim=False, is_template=False
    )
    # Redirects, but names the responsible body and a date: not one.
    assert not is_formal_reply(
        "Обратитесь в управление ЖКХ, до 15 декабря они проверят дом.",
        is_interim=False,
        is_template=True,
    )
    # A template without anything concrete is one; the same text judged not a template is not.
    text = "Спасибо за обращение, информация принята к сведению."
    assert is_formal_reply(text, is_interim=False, is_template=True) is True
    assert is_formal_reply(text, is_interim=False, is_template=False) is False
    assert is_formal_reply(text, is_interim=False, is_template=None) is None
    # Interim replies are not final, so never «отписка»; a concrete answer never is.
    assert is_formal_reply(INTERIM_ANSWER, is_interim=True, is_template=True) is False
    assert is_formal_reply(FINAL_ANSWER, is_interim=False, is_template=True) is False


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0\u00a0обращений"),
        (1, "1\u00a0обращения"),
        (2, "2\u00a0обращений"),
        (5, "5\u00a0обращений"),
        (11, "11\u00a0обращений"),
        (21, "21\u00a0обращения"),
        (22, "22\u00a0обращений"),
        (25, "25\u00a0обращений"),
        (111, "111\u00a0обращений"),
        (1001, "1\u202f001\u00a0обращения"),
    ],
)
def test_share_bases_after_iz(n: int, expected: str) -> None:
    """After «из» the noun is genitive: «из 1 обращения», «из 2 обращений», «из 21 обращения»."""
    assert shares.of_count(n, shares.APPEALS_OF) == expected


@pytest.mark.parametrize(
    ("n", "overdue"),
    [
        (1, "просрочено 1\u00a0обращение"),
        (2, "просрочены 2\u00a0обращения"),
        (5, "просрочено 5\u00a0обращений"),
        (11, "просрочено 11\u00a0обращений"),
        (21, "просрочено 21\u00a0обращение"),
        (22, "просрочены 22\u00a0обращения"),
        (25, "просрочено 25\u00a0обращений"),
        (111, "просрочено 111\u00a0обращений"),
        (1001, "просрочено 1\u202f001\u00a0обращение"),
    ],
)
def test_summary_header_counts(n: int, overdue: str) -> None:
    cards = [_card(i) for i in range(n)]
    header = summary_header(cards, msk(10, 9), "Europe/Moscow")
    assert header == f"<b>📋 На 09:00 10.11 {overdue}</b>"


def _card(appeal_id: int) -> AppealCard:
    return AppealCard(
        appeal_id=appeal_id,
        at=msk(10, 9),
        page_title="Правительство области",
        platform="telegram",
        topic="roads",
        urgent=False,
        received_at=msk(9, 10),
        deadline=msk(9, 18),
        excerpt="",
        citizen_name=None,
        link=None,
        link_label="Открыть",
        taken_by=None,
        taken_at=None,
        timezone="Europe/Moscow",
        working_left_s=0.0,
    )


def test_stats_text_prints_every_share_with_its_base() -> None:
    figures = Figures(
        appeals=120,
        answered=69,
        answered_in_time=54,
        answered_late=15,
        overdue=16,
        pending=35,
        final_answered=40,
        final_in_time=30,
        final_late=10,
        final_overdue=5,
        final_pending=20,
        formal_replies=3,
        reopened=2,
    )
    assert shares.in_time(figures) == "54 из 85 с истёкшим сроком, 63,5\u00a0%"
    assert shares.answered(figures) == "69 из 120\u00a0обращений, 57,5\u00a0%"
    assert shares.final_in_time(figures) == "30 из 45 с истёкшим сроком, 66,7\u00a0%"
    from bot.services.figures import StatsReport

    report = StatsReport(since=msk(9, 0), until=msk(16, 0), at=msk(16, 0), total=figures, pages=[])
    text = format_stats(report, "Europe/Moscow")
    assert "• ответили в срок: 54 из 85 с истёкшим сроком, 63,5\u00a0%" in text
    assert "• ответ по существу в срок: 30 из 45 с истёкшим сроком, 66,7\u00a0%" in text
    assert "• похожи на отписку: 3\u00a0ответа" in text
    assert "• вернулись недовольными: 2\u00a0обращения" in text


async def test_migration_gives_older_appeals_their_final_deadline(db_url: str) -> None:
    """Appeals stored before the final stage existed get a deadline by the same rule."""
    engine = await make_engine(db_url)
    try:
        await upgrade(engine, "0001")

        def stored(moment: datetime) -> datetime:
            # Plain SQL: SQLite keeps naive UTC (storage/types.py), PostgreSQL timestamptz.
            return moment.replace(tzinfo=None) if engine.dialect.name == "sqlite" else moment

        created = stored(datetime(2026, 11, 1, tzinfo=UTC))
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO page (id, platform, external_id, kind, is_active, recorded_at)"
                    " VALUES (1, 'telegram', '-1001', 'tg_channel', :yes, :now)"
                ),
                {"yes": True, "now": created},
            )
            await connection.execute(
                text(
                    "INSERT INTO thread (id, page_id, external_id, kind, recorded_at)"
                    " VALUES (1, 1, 'post:1', 'comments', :now)"
                ),
                {"now": created},
            )
            for appeal_id, received, urgent in ((1, msk(9, 10), False), (2, msk(7, 12), True)):
                await connection.execute(
                    text(
                        "INSERT INTO appeal (id, page_id, thread_id, received_at, topic, urgent,"
                        " sla_hours, sla_deadline, messages_count, excluded, topic_corrected,"
                        " deleted_by_page, recorded_at)"
                        " VALUES (:id, 1, 1, :received, 'roads', :urgent, 8, :received, 1,"
                        " :no, :no, :no, :received)"
                    ),
                    {
                        "id": appeal_id,
                        "received": stored(received),
                        "urgent": urgent,
                        "no": False,
                    },
                )
        await upgrade(engine)
        async with session_factory(engine)() as session:
            first = await session.get(Appeal, 1)
            second = await session.get(Appeal, 2)
        assert first is not None and first.final_deadline == msk(18, 18)
        assert second is not None and second.final_deadline == msk(10, 18)  # urgent, Saturday
    finally:
        await drop_engine(db_url, engine)
