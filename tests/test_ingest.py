"""The one ingest path: what becomes an appeal, what answers it, follow-ups, edits, deletions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from bot.events import (
    AuthorRole,
    DeleteEvent,
    Deleter,
    EditEvent,
    PageKind,
    ReactionEvent,
    ThreadKind,
    ThreadRef,
)
from bot.services import roles
from bot.services.ingest import IngestService, Outcome
from storage import repositories as repo
from storage.engine import SessionFactory
from storage.models import Appeal, CitizenMessage, OfficialReply
from tests.conftest import MONDAY_10_MSK
from tests.factories import (
    BOT_PAGE,
    CHANNEL,
    INTERIM_ANSWER,
    THANKS_TEXT,
    citizen,
    hours,
    official,
)


async def _appeals(sessions: SessionFactory) -> list[Appeal]:
    async with sessions() as session:
        return list((await session.exec(select(Appeal).order_by(Appeal.id))).all())


async def test_appeal_and_channel_reply_two_hours_later(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        first = await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        reply = await service.handle(official(MONDAY_10_MSK + hours(2), "-1002:1"))
        await session.commit()
    assert first.outcome is Outcome.APPEAL
    assert reply.outcome is Outcome.REPLY
    [appeal] = await _appeals(sessions)
    assert appeal.first_response_at == MONDAY_10_MSK + hours(2)
    assert appeal.final_response_at == MONDAY_10_MSK + hours(2)
    assert appeal.frt_s == 7200
    assert appeal.frt_work_s == 7200
    # Monday 10:00 Moscow + 8 working hours = Monday 18:00 Moscow (the day's end) = 15:00 UTC.
    assert appeal.sla_deadline == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    assert appeal.topic == "roads"


async def test_gratitude_is_a_citizen_message_not_an_appeal(sessions: SessionFactory) -> None:
    async with sessions() as session:
        result = await IngestService(session).handle(citizen(MONDAY_10_MSK, THANKS_TEXT))
        await session.commit()
    assert result.outcome is Outcome.COMMENT
    assert await _appeals(sessions) == []
    async with sessions() as session:
        message = (await session.exec(select(CitizenMessage))).one()
        assert message.is_appeal is False
        assert message.appeal_id is None


async def test_follow_up_joins_open_appeal_and_reply_to_it_answers(
    sessions: SessionFactory,
) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        follow = await service.handle(
            citizen(MONDAY_10_MSK + hours(1), "Ну что там? Ответьте уже", message_id="-1002:2")
        )
        other = await service.handle(
            citizen(MONDAY_10_MSK + hours(1), author="999", message_id="-1002:3")
        )
        # The page answers the follow-up (a message below the first comment).
        await service.handle(official(MONDAY_10_MSK + hours(3), "-1002:2"))
        await session.commit()
    assert follow.outcome is Outcome.FOLLOW_UP
    assert other.outcome is Outcome.APPEAL
    first, second = await _appeals(sessions)
    assert first.messages_count == 2
    assert first.first_response_at == MONDAY_10_MSK + hours(3)
    assert second.first_response_at is None


async def test_interim_reply_starts_response_but_not_final(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await service.handle(
            official(MONDAY_10_MSK + hours(1), "-1002:1", INTERIM_ANSWER, message_id="-1002:2")
        )
        await service.handle(official(MONDAY_10_MSK + hours(30), "-1002:2"))
        await session.commit()
    [appeal] = await _appeals(sessions)
    assert appeal.first_response_at == MONDAY_10_MSK + hours(1)
    assert appeal.final_response_at == MONDAY_10_MSK + hours(30)
    async with sessions() as session:
        replies = (await session.exec(select(OfficialReply).order_by(OfficialReply.id))).all()
        assert [r.is_interim for r in replies] == [True, False]
        assert [r.appeal_id for r in replies] == [appeal.id, appeal.id]


async def test_conversation_reply_answers_all_unanswered_before_it(
    sessions: SessionFactory,
) -> None:
    chat = ThreadRef("chat:501", ThreadKind.CONVERSATION)
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, page=BOT_PAGE, thread=chat))
        await service.handle(citizen(MONDAY_10_MSK + hours(1), "Алло?", page=BOT_PAGE, thread=chat))
        await service.handle(
            citizen(
                MONDAY_10_MSK + hours(1),
                "Во дворе не вывозят мусор уже неделю",
                page=BOT_PAGE,
                thread=chat,
                author="502",
            )
        )
        result = await service.handle(
            official(
                MONDAY_10_MSK + hours(2),
                None,
                page=BOT_PAGE,
                thread=chat,
                role=AuthorRole.OPERATOR,
                author="9",
                conversation=True,
            )
        )
        await session.commit()
    assert result.outcome is Outcome.REPLY
    appeals = await _appeals(sessions)
    assert len(appeals) == 2  # the "Алло?" follow-up joined the first appeal
    assert all(a.first_response_at == MONDAY_10_MSK + hours(2) for a in appeals)


async def test_reply_arriving_before_its_comment_is_linked_later(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        early = await service.handle(official(MONDAY_10_MSK + hours(2), "-1002:1"))
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await session.commit()
    assert early.outcome is Outcome.OFFICIAL
    [appeal] = await _appeals(sessions)
    assert appeal.first_response_at == MONDAY_10_MSK + hours(2)


async def test_reply_to_a_message_never_seen_is_kept_unlinked(sessions: SessionFactory) -> None:
    async with sessions() as session:
        result = await IngestService(session).handle(official(MONDAY_10_MSK, "-1002:404"))
        await session.commit()
    assert result.outcome is Outcome.OFFICIAL
    async with sessions() as session:
        reply = (await session.exec(select(OfficialReply))).one()
        assert reply.appeal_id is None


async def test_staff_account_reply_is_official(sessions: SessionFactory) -> None:
    async with sessions() as session:
        page = await repo.ensure_page(session, CHANNEL)
        await roles.set_role(session, "42", "staff", page_id=page.id, name="Пресс-секретарь")
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        result = await service.handle(
            official(MONDAY_10_MSK + hours(1), "-1002:1", role=AuthorRole.PERSON, author="42")
        )
        await session.commit()
    assert result.outcome is Outcome.REPLY


async def test_deletion_by_page_is_recorded_not_erased(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:2", author="600"))
        gone = await service.handle(
            DeleteEvent(CHANNEL, "-1002:1", MONDAY_10_MSK + hours(1), Deleter.PAGE, "-1001")
        )
        await service.handle(
            DeleteEvent(CHANNEL, "-1002:2", MONDAY_10_MSK + hours(1), deleter_id="600")
        )
        await session.commit()
    assert gone.outcome is Outcome.DELETE
    first, second = await _appeals(sessions)
    assert first.deleted_by_page is True
    assert second.deleted_by_page is False
    async with sessions() as session:
        messages = (await session.exec(select(CitizenMessage).order_by(CitizenMessage.id))).all()
        assert [m.deleted_by for m in messages] == ["page", "citizen"]
        assert all(m.text for m in messages)


async def test_edit_updates_text_and_unknown_edit_is_skipped(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        edited = await service.handle(
            EditEvent(CHANNEL, "-1002:1", "Исправил: яма у дома 5", MONDAY_10_MSK + hours(1))
        )
        unknown = await service.handle(
            EditEvent(CHANNEL, "-1002:77", "текст", MONDAY_10_MSK + hours(1))
        )
        await session.commit()
    assert edited.outcome is Outcome.EDIT
    assert unknown.outcome is Outcome.SKIPPED
    async with sessions() as session:
        message = (await session.exec(select(CitizenMessage))).one()
        assert message.text == "Исправил: яма у дома 5"
        assert message.edited_at == MONDAY_10_MSK + hours(1)


async def test_citizen_reaction_on_answer_is_a_rating(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await service.handle(official(MONDAY_10_MSK + hours(1), "-1002:1", message_id="-1002:2"))
        await service.handle(
            ReactionEvent(CHANNEL, "-1002:2", "999", MONDAY_10_MSK + hours(2), added=("👎",))
        )
        await service.handle(
            ReactionEvent(CHANNEL, "-1002:2", "501", MONDAY_10_MSK + hours(2), added=("👍",))
        )
        await session.commit()
    [appeal] = await _appeals(sessions)
    assert appeal.rating == 1  # only the appeal's author rates it


async def test_voice_message_and_empty_sticker_are_stored_with_kind(
    sessions: SessionFactory,
) -> None:
    async with sessions() as session:
        service = IngestService(session)
        voice = await service.handle(citizen(MONDAY_10_MSK, "", kind="voice"))
        sticker = await service.handle(citizen(MONDAY_10_MSK, "", kind="sticker", author="7"))
        long_text = await service.handle(
            citizen(MONDAY_10_MSK, "Прошу отремонтировать крышу. " * 300, author="8")
        )
        await session.commit()
    assert voice.outcome is Outcome.APPEAL
    assert sticker.outcome is Outcome.COMMENT
    assert long_text.outcome is Outcome.APPEAL
    async with sessions() as session:
        kinds = sorted(m.content_kind for m in (await session.exec(select(CitizenMessage))).all())
        assert kinds == ["sticker", "text", "voice"]
        assert max(len(m.text) for m in (await session.exec(select(CitizenMessage))).all()) > 4096


async def test_dissatisfied_return_marks_reopen(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await service.handle(official(MONDAY_10_MSK + hours(1), "-1002:1"))
        await service.handle(
            citizen(MONDAY_10_MSK + hours(30), "Ничего не сделали, ямы как были, это отписка!")
        )
        await session.commit()
    appeals = await _appeals(sessions)
    assert appeals[0].reopened_at == MONDAY_10_MSK + hours(30)


def test_page_kinds_cover_sources() -> None:
    assert {k.value for k in PageKind} >= {"tg_channel", "tg_bot", "tg_business", "vk_group"}
