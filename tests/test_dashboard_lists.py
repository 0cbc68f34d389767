"""The dashboard's list by status holds exactly the appeals of that status at `at`
(bot/services/export.py `status_at`, the report's definitions), on both databases."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.services.dashboard import STATUSES, AppealFilter, find_appeals
from bot.services.export import status_at
from storage.engine import session_factory
from storage.models import Appeal, Page, Thread
from tests.conftest import MONDAY_10_MSK

AT = MONDAY_10_MSK + timedelta(days=10)


async def _appeals(engine: AsyncEngine) -> list[Appeal]:
    """Appeals in every state at AT: answered in time or late (online or elsewhere), answered
    only after AT, unanswered before and after their deadline, excluded."""
    chance = random.Random(14)
    async with session_factory(engine)() as session:
        session.add(Page(id=1, platform="telegram", external_id="-1001", kind="tg_channel"))
        session.add(Thread(id=1, page_id=1, external_id="t", kind="comments"))
        await session.flush()
        for number in range(120):
            received = MONDAY_10_MSK + timedelta(hours=2 * number, minutes=number % 7)
            deadline = received + timedelta(hours=8)
            answer = received + timedelta(hours=chance.choice([1, 7, 9, 30, 400]))
            elsewhere = chance.random() < 0.2
            answered = chance.random() < 0.7
            session.add(
                Appeal(
                    page_id=1,
                    thread_id=1,
                    received_at=received,
                    sla_deadline=deadline,
                    first_response_at=answer if answered and not elsewhere else None,
                    answered_offline_at=answer if answered and elsewhere else None,
                    excluded=chance.random() < 0.05,
                )
            )
        await session.commit()
    async with session_factory(engine)() as session:
        return list((await session.exec(select(Appeal))).all())


async def test_each_status_lists_the_appeals_of_that_status(engine: AsyncEngine) -> None:
    appeals = await _appeals(engine)
    since, until = MONDAY_10_MSK - timedelta(days=1), AT + timedelta(days=1)
    expected: dict[str, set[int]] = {status: set() for status in STATUSES}
    for appeal in appeals:
        if appeal.received_at <= AT:
            assert appeal.id is not None
            expected[status_at(appeal, AT)].add(appeal.id)
    assert all(expected.values()), {status: len(ids) for status, ids in expected.items()}
    # Pending appeals include the never answered (NULL `answered_at`) and those answered after AT.
    pending = [a for a in appeals if a.id in expected["pending"]]
    assert any(a.answered_at is None for a in pending)
    assert any(a.answered_at is not None for a in pending)
    sessions = session_factory(engine)
    for status in STATUSES:
        query = AppealFilter(since=since, until=until, at=AT, status=status)
        listed: list[int] = []
        async with sessions() as session:
            first = await find_appeals(session, query, page=1, per_page=7)
            for page in range(1, first.pages + 1):
                found = await find_appeals(session, query, page=page, per_page=7)
                assert all(item.status == status for item in found.items)
                listed += [item.appeal_id for item in found.items]
        assert first.total == len(expected[status]), status
        assert sorted(listed) == sorted(expected[status]), status
        # Newest first, every appeal once.
        received = {a.id: a.received_at for a in appeals}
        assert [received[i] for i in listed] == sorted((received[i] for i in listed), reverse=True)
