"""The final-answer stage from the rollups equals its exact row-by-row evaluation.

`build_report` sums the final stage of settled appeals from the rollups (storage/rollup.py)
and evaluates only the rest in SQL; `final_counts` (bot/services/final_stage.py) evaluates every
appeal of the period in Python with `_stage`, the definition the cards use. Random appeals with
final deadlines, «Ответили вне соцсети», re-opens, new final answers and «отписка» labels;
periods in Moscow time (not aligned to UTC days) and at random moments; SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.final_stage import FinalCounts, final_counts
from bot.services.policy import PageDefaults
from bot.services.reports import build_report
from storage.engine import SessionFactory, session_factory
from storage.models import Appeal, OfficialReply, Page, Thread

BASE = datetime(2026, 11, 2, tzinfo=UTC)
MOSCOW = ZoneInfo("Europe/Moscow")
FINAL_FIELDS = tuple(vars(FinalCounts()))


def _later(rng: random.Random, moment: datetime, days: float) -> datetime:
    return moment + timedelta(seconds=rng.uniform(0, days * 86400))


async def _load(sessions: SessionFactory, rng: random.Random, count: int) -> None:
    async with sessions() as session:
        for number in (1, 2):
            session.add(Page(id=number, platform="telegram", external_id=str(number), kind="c"))
        await session.flush()
        for number in (1, 2):
            session.add(Thread(id=number, page_id=number, external_id="t", kind="comments"))
        await session.flush()
        for index in range(count):
            page = rng.choice((1, 2))
            received = _later(rng, BASE, 6)
            first = rng.choice([None, _later(rng, received, 1)])
            final = None if first is None else rng.choice([None, first, _later(rng, first, 3)])
            offline = rng.choice([None, None, _later(rng, received, 4)])
            appeal = Appeal(
                page_id=page,
                thread_id=page,
                received_at=received,
                sla_deadline=_later(rng, received, 2),
                first_response_at=first,
                final_response_at=final,
                answered_offline_at=offline,
                final_deadline=None if rng.random() < 0.1 else _later(rng, received, 5),
                excluded=rng.random() < 0.05,
                topic="other",
            )
            if final is not None:
                reply = OfficialReply(
                    page_id=page,
                    thread_id=page,
                    external_id=f"f{index}",
                    author_role="page",
                    sent_at=final,
                    is_formal=rng.choice([None, False, True, True]),
                )
                session.add(reply)
                await session.flush()
                appeal.final_reply_id = reply.id
                if rng.random() < 0.4:  # a 👎 or a dissatisfied return re-opens it
                    appeal.reopened_at = _later(rng, final, 1)
                    appeal.reopen_deadline = _later(rng, appeal.reopened_at, 3)
                    if rng.random() < 0.6:
                        appeal.reanswered_at = _later(rng, appeal.reopened_at, 4)
                        again = OfficialReply(
                            page_id=page,
                            thread_id=page,
                            external_id=f"n{index}",
                            author_role="page",
                            sent_at=appeal.reanswered_at,
                            is_formal=rng.choice([None, False, True]),
                        )
                        session.add(again)
                        await session.flush()
                        appeal.reanswer_reply_id = again.id
            session.add(appeal)
        await session.commit()


def _moscow(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=MOSCOW).astimezone(UTC)


async def _check(sessions: SessionFactory, since: datetime, until: datetime, at: datetime) -> int:
    """Compare one period; returns how many final-stage appeals it counted."""
    async with sessions() as session:
        report = await build_report(
            session, since=since, until=until, at=at, defaults=PageDefaults()
        )
    async with sessions() as session:
        exact = await final_counts(session, since=since, until=until, at=at)
    total = FinalCounts()
    for page in report.pages:
        expected = exact.get(page.page_id, FinalCounts())
        got = {name: getattr(page.figures, name) for name in FINAL_FIELDS}
        assert got == vars(expected), (page.page_id, since, until, at)
        for name in FINAL_FIELDS:
            setattr(total, name, getattr(total, name) + getattr(expected, name))
    assert {name: getattr(report.total, name) for name in FINAL_FIELDS} == vars(total)
    assert {page.page_id for page in report.pages} >= set(exact)
    return total.final_answered + total.final_overdue + total.final_pending


async def test_final_stage_from_rollups_equals_exact_evaluation(engine: AsyncEngine) -> None:
    rng = random.Random(14)
    sessions = session_factory(engine)
    await _load(sessions, rng, 160)
    periods = [
        # Moscow-time days and weeks: their edges fall at 21:00 UTC.
        (_moscow(1), _moscow(8), _moscow(30)),
        (_moscow(3), _moscow(5), _moscow(6, 13)),
        (_moscow(2, 9), _moscow(7, 18), _moscow(9)),
        (_moscow(1), _moscow(30), _moscow(10)),
    ]
    for _ in range(12):
        since = BASE + timedelta(seconds=rng.uniform(-86400, 6 * 86400))
        until = since + timedelta(seconds=rng.uniform(3600, 5 * 86400))
        periods.append((since, until, BASE + timedelta(seconds=rng.uniform(0, 20 * 86400))))
    counted = [await _check(sessions, since, until, at) for since, until, at in periods]
    assert counted[0] > 50  # the data set exercises the stage, not only empty periods
    # Every status and label occurs somewhere in the data set, seen long after everything.
    async with sessions() as session:
        late = await build_report(
            session, since=_moscow(1), until=_moscow(30), at=_moscow(30), defaults=PageDefaults()
        )
    assert late.total.final_in_time and late.total.final_late and late.total.final_overdue
    assert late.total.formal_replies and late.total.reopened
    # A re-open and a new final answer after a report: settled rollups must follow.
    async with sessions() as session:
        appeal = (await session.get(Appeal, 3)) or (await session.get(Appeal, 4))
        assert appeal is not None
        appeal.final_deadline = appeal.final_deadline or appeal.received_at + timedelta(days=1)
        appeal.reopened_at = appeal.received_at + timedelta(days=12)
        appeal.reopen_deadline = appeal.reopened_at + timedelta(days=2)
        appeal.reanswered_at = None
        appeal.reanswer_reply_id = None
        await session.commit()
    for since, until, at in periods[:4]:
        await _check(sessions, since, until, at)
