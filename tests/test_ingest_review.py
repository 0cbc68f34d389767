"""Review findings on the ingest path: who answers what, when, and what counts as answered."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import col, select

from bot.events import (
    AuthorRole,
    EditEvent,
    MessageEvent,
    RatingEvent,
    ReactionEvent,
    ThreadKind,
    ThreadRef,
)
from bot.services import roles
from bot.services.ingest import IngestService, Outcome
from bot.services.policy import PageDefaults
from storage import repositories as repo
from storage.db import run_in_transaction
from storage.engine import SessionFactory
from storage.models import Appeal, OfficialReply
from tests.conftest import MONDAY_10_MSK
from tests.factories import (
    BOT_PAGE,
    CHANNEL,
    FINAL_ANSWER,
    INTERIM_ANSWER,
    citizen,
    hours,
    official,
)

DEFAULTS = PageDefaults()


async def _appeals(sessions: SessionFactory) -> list[Appeal]:
    async with sessions() as session:
        return list((await session.exec(select(Appeal).order_by(col(Appeal.id)))).all())


async def test_supervisor_comment_is_official_not_a_citizens(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session, DEFAULTS)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await roles.set_role(session, "boss", "supervisor")
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
        assert await run_in_transaction(
            session, lambda db: repo.writes_officially(db, "telegram", "boss", 1)
        )
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


async def _answer_offline(sessions: SessionFactory, at: datetime) -> None:
    async with sessions() as session:
        appeal = (await session.exec(select(Appeal))).one()
        appeal.answered_offline_at = at
        await session.commit()


async def test_new_message_after_offline_answer_is_a_new_appeal(sessions: SessionFactory) -> None:
    """Answered offline counts as answered then: a later question is not a follow-up."""
    async with sessions() as session:
        await IngestService(session, DEFAULTS).handle(citizen(MONDAY_10_MSK, message_id="a:1"))
        await session.commit()
    await _answer_offline(sessions, MONDAY_10_MSK + hours(1))
    async with sessions() as session:
        service = IngestService(session, DEFAULTS)
        # Before the offline answer it is still a follow-up; after it, a new appeal.
        early = await service.handle(citizen(MONDAY_10_MSK + hours(0.5), message_id="a:2"))
        late = await service.handle(
            citizen(MONDAY_10_MSK + hours(24), "Прошу отремонтировать яму у школы №3.")
        )
        first = (await session.exec(select(Appeal).order_by(col(Appeal.id)))).first()
        assert first is not None
        thread_id, citizen_id = first.thread_id, first.citizen_id
        assert citizen_id is not None
        at = MONDAY_10_MSK + hours(2)
        assert (
            await run_in_transaction(
                session, lambda db: repo.open_appeal_row(db, thread_id, citizen_id, at)
            )
            is None
        )
        answered = await run_in_transaction(
            session, lambda db: repo.last_answered_row(db, thread_id, citizen_id, at)
        )
        assert answered is not None and answered.id == first.id
        await session.commit()
    assert early.outcome is Outcome.FOLLOW_UP
    assert late.outcome is Outcome.APPEAL
    appeals = await _appeals(sessions)
    assert [a.messages_count for a in appeals] == [2, 1]


async def test_dissatisfied_return_after_offline_answer_reopens(sessions: SessionFactory) -> None:
    async with sessions() as session:
        await IngestService(session, DEFAULTS).handle(citizen(MONDAY_10_MSK, message_id="b:1"))
        await session.commit()
    await _answer_offline(sessions, MONDAY_10_MSK + hours(1))
    async with sessions() as session:
        back = await IngestService(session, DEFAULTS).handle(
            citizen(MONDAY_10_MSK + hours(30), "Ничего не сделали, ямы как были, это отписка!")
        )
        await session.commit()
    # Back to the appeal it answers (issue 12 item 3), not a new appeal under «Другое».
    assert back.outcome is Outcome.REOPEN
    [appeal] = await _appeals(sessions)
    assert appeal.reopened_at == MONDAY_10_MSK + hours(30)
    assert appeal.messages_count == 2


async def test_conversation_reply_quoting_one_message_answers_all_unanswered(
    sessions: SessionFactory,
) -> None:
    """The relay always quotes: the quoted appeal and every other unanswered one are answered."""
    chat = ThreadRef("chat:77", ThreadKind.CONVERSATION)
    first_at = MONDAY_10_MSK
    async with sessions() as session:
        service = IngestService(session, DEFAULTS)
        await service.handle(citizen(first_at, page=BOT_PAGE, thread=chat, message_id="c:1"))
        await service.handle(
            official(
                first_at + hours(1),
                None,
                page=BOT_PAGE,
                thread=chat,
                message_id="c:2",
                conversation=True,
            )
        )
        await service.handle(
            citizen(
                first_at + hours(2),
                "Прошу вывезти мусор во дворе.",
                page=BOT_PAGE,
                thread=chat,
                message_id="c:3",
            )
        )
        await service.handle(
            citizen(
                first_at + hours(2),
                "Во дворе не горят фонари.",
                page=BOT_PAGE,
                thread=chat,
                author="502",
                message_id="c:4",
            )
        )
        # The operator quotes the old, answered message; both new appeals are answered too.
        result = await service.handle(
            official(
                first_at + hours(3),
                "c:1",
                page=BOT_PAGE,
                thread=chat,
                role=AuthorRole.OPERATOR,
                author="9",
                message_id="c:5",
                conversation=True,
            )
        )
        await session.commit()
    appeals = await _appeals(sessions)
    assert len(appeals) == 3
    assert result.outcome is Outcome.REPLY
    assert result.appeal_ids == (appeals[0].id, appeals[1].id, appeals[2].id)
    assert appeals[0].first_response_at == first_at + hours(1)
    assert [a.first_response_at for a in appeals[1:]] == [first_at + hours(3)] * 2
    async with sessions() as session:
        reply = (
            await session.exec(select(OfficialReply).where(OfficialReply.external_id == "c:5"))
        ).one()
    assert reply.appeal_id == appeals[0].id  # filed under the quoted appeal


async def test_reply_before_the_follow_up_it_answers_is_linked(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session, DEFAULTS)
        await service.handle(citizen(MONDAY_10_MSK, message_id="f:1"))
        early = await service.handle(official(MONDAY_10_MSK + hours(2), "f:2"))
        follow = await service.handle(
            citizen(MONDAY_10_MSK + hours(1), "Ну что там?", message_id="f:2")
        )
        await session.commit()
    assert early.outcome is Outcome.OFFICIAL
    assert follow.outcome is Outcome.FOLLOW_UP
    [appeal] = await _appeals(sessions)
    assert appeal.first_response_at == MONDAY_10_MSK + hours(2)
    assert appeal.final_response_at == MONDAY_10_MSK + hours(2)
    assert appeal.quality_score is not None
    async with sessions() as session:
        reply = (await session.exec(select(OfficialReply))).one()
    assert reply.appeal_id == appeal.id
    assert reply.quality_score is not None


async def test_reply_before_a_comment_below_the_appeal_is_linked(sessions: SessionFactory) -> None:
    """A reply to another citizen's comment under an appeal answers that appeal up the chain."""
    async with sessions() as session:
        service = IngestService(session, DEFAULTS)
        await service.handle(citizen(MONDAY_10_MSK, message_id="g:1"))
        await service.handle(official(MONDAY_10_MSK + hours(3), "g:2"))
        comment = await service.handle(
            citizen(
                MONDAY_10_MSK + hours(1), "Спасибо!", author="777", message_id="g:2", reply_to="g:1"
            )
        )
        await session.commit()
    assert comment.outcome is Outcome.COMMENT
    [appeal] = await _appeals(sessions)
    assert appeal.first_response_at == MONDAY_10_MSK + hours(3)
    assert appeal.quality_score is not None


async def test_editing_interim_into_final_and_back_updates_the_final_answer(
    sessions: SessionFactory,
) -> None:
    async with sessions() as session:
        service = IngestService(session, DEFAULTS)
        await service.handle(citizen(MONDAY_10_MSK, message_id="e:1"))
        await service.handle(
            official(MONDAY_10_MSK + hours(1), "e:1", INTERIM_ANSWER, message_id="e:2")
        )
        await session.commit()
    [appeal] = await _appeals(sessions)
    assert appeal.final_response_at is None
    interim_score = appeal.quality_score

    async def edit(text: str, after: float) -> None:
        async with sessions() as session:
            result = await IngestService(session, DEFAULTS).handle(
                EditEvent(CHANNEL, "e:2", text, MONDAY_10_MSK + hours(after))
            )
            await session.commit()
        assert result.outcome is Outcome.EDIT

    await edit(FINAL_ANSWER, 2)
    [appeal] = await _appeals(sessions)
    assert appeal.final_response_at == MONDAY_10_MSK + hours(1)
    assert appeal.quality_score is not None and appeal.quality_score > (interim_score or 0)
    await edit(INTERIM_ANSWER, 3)
    [appeal] = await _appeals(sessions)
    assert appeal.final_response_at is None and appeal.final_reply_id is None
    assert appeal.quality_score == interim_score
    # A later final answer takes over; editing the early one into a final one wins back.
    async with sessions() as session:
        await IngestService(session, DEFAULTS).handle(
            official(MONDAY_10_MSK + hours(5), "e:1", message_id="e:3")
        )
        await session.commit()
    [appeal] = await _appeals(sessions)
    assert appeal.final_response_at == MONDAY_10_MSK + hours(5)
    await edit(FINAL_ANSWER, 6)
    [appeal] = await _appeals(sessions)
    assert appeal.final_response_at == MONDAY_10_MSK + hours(1)
    await edit(INTERIM_ANSWER, 7)
    [appeal] = await _appeals(sessions)
    assert appeal.final_response_at == MONDAY_10_MSK + hours(5)
