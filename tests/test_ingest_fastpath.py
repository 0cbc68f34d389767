"""The intake hot path: plain SQL in the caller's transaction, stored once, rescored on ratings."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from aiogram.types import Update
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from bot.app import AppContext
from bot.events import RatingEvent
from bot.services.ingest import IngestService, Outcome
from bot.services.intake import Intake
from handlers.telegram.middlewares import UpdateStoreMiddleware
from storage.engine import SessionFactory
from storage.models import Appeal, CitizenMessage, OfficialReply, RawUpdate
from tests.conftest import MONDAY_10_MSK
from tests.factories import CHANNEL, FINAL_ANSWER, citizen, hours, official


def _update(update_id: int) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": int(MONDAY_10_MSK.timestamp()),
                "chat": {"id": -1002, "type": "supergroup", "title": "Обсуждение"},
                "from": {"id": 501, "is_bot": False, "first_name": "Иван"},
                "text": "Когда уберут снег во дворе?",
            },
        }
    )


async def _count(sessions: SessionFactory, model: type[Any]) -> int:
    async with sessions() as session:
        return len((await session.exec(select(model))).all())


async def test_rolled_back_session_leaves_nothing(sessions: SessionFactory) -> None:
    async with sessions() as session:
        result = await IngestService(session).handle(citizen(MONDAY_10_MSK))
        assert result.outcome is Outcome.APPEAL
        await session.rollback()
    assert await _count(sessions, Appeal) == 0
    assert await _count(sessions, CitizenMessage) == 0


async def test_plain_sql_sees_pending_orm_rows_and_updates_loaded_objects(
    sessions: SessionFactory,
) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        loaded = (await session.exec(select(Appeal))).one()
        assert loaded.first_response_at is None
        await service.handle(official(MONDAY_10_MSK + hours(2), "-1002:1", FINAL_ANSWER))
        # The object the session already held shows what plain SQL wrote, without a reload.
        assert loaded.first_response_at == MONDAY_10_MSK + hours(2)
        assert loaded.answered_at == MONDAY_10_MSK + hours(2)
        await session.commit()


async def test_reply_scored_at_ingest_without_template_check(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await service.handle(official(MONDAY_10_MSK + hours(1), "-1002:1", FINAL_ANSWER))
        await session.commit()
    async with sessions() as session:
        reply = (await session.exec(select(OfficialReply))).one()
        appeal = (await session.exec(select(Appeal))).one()
    assert reply.is_template is None
    assert reply.quality_parts is not None
    assert reply.quality_parts["not_template"]["max"] == 0  # left out until the batch runs
    assert reply.quality_score is not None and reply.quality_score > 50
    assert appeal.quality_score == reply.quality_score
    assert appeal.answer_templated is None


async def test_rating_and_reopen_rescore_the_answer(sessions: SessionFactory) -> None:
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await service.handle(
            official(MONDAY_10_MSK + hours(1), "-1002:1", FINAL_ANSWER, message_id="-1002:2")
        )
        rated = await service.handle(
            RatingEvent(CHANNEL, "-1002:2", "501", True, MONDAY_10_MSK + hours(2))
        )
        await session.commit()
    assert rated.outcome is Outcome.RATING
    async with sessions() as session:
        reply = (await session.exec(select(OfficialReply))).one()
        assert reply.quality_parts is not None
        assert reply.quality_parts["rating"] == {"ok": True, "points": 10, "max": 10}
        rated_score = reply.quality_score
    async with sessions() as session:
        await IngestService(session).handle(
            citizen(MONDAY_10_MSK + hours(30), "Ничего не сделали, ямы как были, это отписка!")
        )
        await session.commit()
    async with sessions() as session:
        reply = (await session.exec(select(OfficialReply))).one()
        appeal = (await session.exec(select(Appeal).order_by(Appeal.id))).first()
    assert appeal is not None and appeal.reopened_at == MONDAY_10_MSK + hours(30)
    assert reply.quality_parts is not None
    assert reply.quality_parts["not_reopened"]["ok"] is False
    assert rated_score is not None and reply.quality_score is not None
    assert reply.quality_score < rated_score
    assert appeal.quality_score == reply.quality_score


async def _ingest_handler(update: Any, data: dict[str, Any]) -> str:
    await data["ingest"].handle(citizen(MONDAY_10_MSK, message_id=f"-1002:{update.update_id}"))
    return "done"


async def test_update_stored_once_and_redelivery_changes_nothing(app: AppContext) -> None:
    store = UpdateStoreMiddleware(app, Intake(app.sessions, app.defaults))
    calls: list[int] = []

    async def handler(update: Any, data: dict[str, Any]) -> str:
        calls.append(update.update_id)
        return await _ingest_handler(update, data)

    await store(handler, _update(7), {})
    await store(handler, _update(7), {})
    assert calls == [7]
    assert store.last_update_id == 7
    assert await _count(app.sessions, RawUpdate) == 1
    assert await _count(app.sessions, CitizenMessage) == 1
    async with app.sessions() as session:
        raw = (await session.exec(select(RawUpdate))).one()
    assert (raw.status, raw.update_key, raw.payload["update_id"]) == ("done", "7", 7)


async def test_failed_handler_rolls_back_its_writes_but_keeps_the_update(app: AppContext) -> None:
    store = UpdateStoreMiddleware(app, Intake(app.sessions, app.defaults))

    async def failing(update: Any, data: dict[str, Any]) -> str:
        await _ingest_handler(update, data)
        raise RuntimeError("boom")

    assert await store(failing, _update(8), {}) is None  # kept as failed: not raised on
    # The citizen message written before the failure went with the rollback; the update stays.
    assert await _count(app.sessions, CitizenMessage) == 0
    async with app.sessions() as session:
        raw = (await session.exec(select(RawUpdate))).one()
    assert raw.status == "failed" and raw.note == "RuntimeError: boom"
    assert store.last_update_id == 8


async def test_offset_not_confirmed_when_commit_fails(
    app: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit fails (disk full): nothing confirmed, the update waits and is stored in full."""
    intake = Intake(app.sessions, app.defaults, retry_s=0.01, retry_cap_s=0.05)
    store = UpdateStoreMiddleware(app, intake)
    await store(_ingest_handler, _update(9), {})
    assert store.last_update_id == 9

    from sqlmodel.ext.asyncio.session import AsyncSession

    real_commit = AsyncSession.commit
    failing = True

    async def commit(self: AsyncSession) -> None:
        if failing:
            orig = sqlite3.OperationalError("database or disk is full")
            raise OperationalError("COMMIT", {}, orig)
        await real_commit(self)

    monkeypatch.setattr(AsyncSession, "commit", commit)
    work = asyncio.ensure_future(store(_ingest_handler, _update(10), {}))
    async with asyncio.timeout(10):
        while not intake.waiting:  # noqa: ASYNC110  (polling state)
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # several tries, all failing
    # Update 10 never committed: it is not confirmed, and the middleware has not returned.
    assert not work.done()
    assert store.last_update_id == 9
    assert await _count(app.sessions, RawUpdate) == 1
    failing = False
    assert await asyncio.wait_for(work, 10) == "done"
    assert store.last_update_id == 10
    assert not intake.waiting
    assert await _count(app.sessions, CitizenMessage) == 2
    async with app.sessions() as session:
        statuses = (await session.exec(select(RawUpdate.status))).all()
    assert sorted(statuses) == ["done", "done"]
