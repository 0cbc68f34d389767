"""Review findings on the ingest path: who answers what, when, and what counts as answered."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.events import (
    AuthorRole,
    MessageEvent,
    RatingEvent,
    ReactionEvent,
)
from bot.services.ingest import IngestService, Outcome
from bot.services.policy import PageDefaults
from storage import repositories as repo
from storage.engine import SessionFactory
from storage.models import Appeal
from tests.conftest import MONDAY_10_MSK
from tests.factories import (
    CHANNEL,
    FINAL_ANSWER,
    citizen,
    hours,
    official,
)

DEFAULTS = PageDefaults()


async def _appeals(sessions: SessionFactory) -> list[Appeal]:
    async with sessions() as session:
        return list((await session.exec(select(Appeal).order_by(Appeal.id))).all())


async def test_supervisor_comment_is_official_not_a_citizens(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session, DEFAULTS)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await repo.add_staff(session, "telegram", "boss", role="supervisor")
        reply = await service.handle(
            MessageEvent(
                page=CHANNEL,
                thread=official(MONDAY_10_MSK, None).thread,
                message_id="-1002:2",
                sent_at=MONDAY_10_MSK + hours(1),
                author_role=AuthorRole.PERSON,
                author_id="boss",
                text=FINAL_ANSWER,
                reply_to_id="-1002:1",
            )
        )
        assert await repo.is_staff(session, "telegram", "boss", 1)
        await session.commit()
    assert reply.outcome is Outcome.REPLY
    [appeal] = await _appeals(sessions)
    assert appeal.messages_count == 1
    assert appeal.first_response_at == MONDAY_10_MSK + hours(1)


def test_reaction_and_rating_reject_naive_times() -> None:
    naive = MONDAY_10_MSK.replace(tzinfo=None)
    with pytest.raises(ValueError, match="reacted_at"):
        ReactionEvent(CHANNEL, "1", "501", naive, ("👍",))
    with pytest.raises(ValueError, match="rated_at"):
        RatingEvent(CHANNEL, "1", "501", True, naive)
    ReactionEvent(CHANNEL, "1", "501", MONDAY_10_MSK, ("👍",))
    RatingEvent(CHANNEL, "1", "501", True, MONDAY_10_MSK)
