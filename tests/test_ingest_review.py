"""Review findings on the ingest path: who answers what, when, and what counts as answered."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.events import (
    RatingEvent,
    ReactionEvent,
)
from bot.services.policy import PageDefaults
from storage.engine import SessionFactory
from storage.models import Appeal
from tests.conftest import MONDAY_10_MSK
from tests.factories import (
    CHANNEL,
)

DEFAULTS = PageDefaults()


async def _appeals(sessions: SessionFactory) -> list[Appeal]:
    async with sessions() as session:
        return list((await session.exec(select(Appeal).order_by(Appeal.id))).all())


def test_reaction_and_rating_reject_naive_times() -> None:
    naive = MONDAY_10_MSK.replace(tzinfo=None)
    with pytest.raises(ValueError, match="reacted_at"):
        ReactionEvent(CHANNEL, "1", "501", naive, ("👍",))
    with pytest.raises(ValueError, match="rated_at"):
        RatingEvent(CHANNEL, "1", "501", True, naive)
    ReactionEvent(CHANNEL, "1", "501", MONDAY_10_MSK, ("👍",))
    RatingEvent(CHANNEL, "1", "501", True, MONDAY_10_MSK)
