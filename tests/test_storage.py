"""Storage against real SQLite and PostgreSQL: migrations, UTC times, idempotent writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, inspect
from sqlmodel import select

from bot.services.ingest import IngestService, Outcome
from storage import repositories as repo
from storage.buckets import derived_appeal_columns
from storage.db import run_in_transaction
from storage.engine import SessionFactory
from storage.migrate import current_revision, downgrade, upgrade
from storage.models import Appeal, CitizenMessage, OfficialReply, Page, RawUpdate
from tests.conftest import MONDAY_10_MSK, drop_engine, make_engine
from tests.factories import CHANNEL, citizen, hours, official

EXPECTED_TABLES = {
    "page",
    "thread",
    "appeal",
    "citizen_message",
    "official_reply",
    "staff",
    "decision",
    "reaction",
    "reminder_log",
    "intake_cursor",
    "raw_update",
    "relay",
}


async def test_migrations_upgrade_empty_database_to_head_and_back(db_url: str) -> None:
    engine = await make_engine(db_url)
    try:
        assert await current_revision(engine) is None
        await upgrade(engine)
        assert await current_revision(engine) is not None
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert tables >= EXPECTED_TABLES
        await downgrade(engine)
        assert await current_revision(engine) is None
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert not (EXPECTED_TABLES & tables)
        await upgrade(engine)  # and up again: downgrade left nothing behind
        assert await current_revision(engine) is not None
    finally:
        await drop_engine(db_url, engine)


async def test_times_round_trip_as_aware_utc(sessions: SessionFactory) -> None:
    vladivostok = timezone(timedelta(hours=10))
    sent = datetime(2026, 11, 2, 19, 30, tzinfo=vladivostok)
    async with sessions() as session:
        result = await IngestService(session).handle(citizen(sent))
        await session.commit()
    async with sessions() as session:
        message = (await session.exec(select(CitizenMessage))).one()
        assert message.sent_at == sent
        assert message.sent_at.tzinfo is not None
        assert message.sent_at.utcoffset() == timedelta(0)
        assert message.recorded_at.tzinfo is not None
        appeal = await session.get(Appeal, result.appeal_ids[0])
        assert appeal is not None
        assert appeal.received_at == datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


async def test_naive_datetimes_are_refused(sessions: SessionFactory) -> None:
    async with sessions() as session:
        await IngestService(session).handle(citizen(MONDAY_10_MSK))
        message = (await session.exec(select(CitizenMessage))).one()
        message.edited_at = datetime(2026, 11, 2, 12, 0)  # noqa: DTZ001  (the point of the test)
        with pytest.raises(Exception, match="naive"):
            await session.flush()


async def test_same_event_twice_stores_one_row(sessions: SessionFactory) -> None:
    comment = citizen(MONDAY_10_MSK, message_id="-1002:42")
    reply = official(MONDAY_10_MSK + hours(2), "-1002:42", message_id="-1002:43")
    for _ in range(2):
        async with sessions() as session:
            service = IngestService(session)
            await service.handle(comment)
            await service.handle(reply)
            await session.commit()
    async with sessions() as session:
        assert (await session.exec(select(func.count()).select_from(CitizenMessage))).one() == 1
        assert (await session.exec(select(func.count()).select_from(OfficialReply))).one() == 1
        assert (await session.exec(select(func.count()).select_from(Appeal))).one() == 1
        assert (await session.exec(select(func.count()).select_from(Page))).one() == 1
        second = await IngestService(session).handle(comment)
        assert second.outcome is Outcome.DUPLICATE


async def test_raw_update_stored_once(sessions: SessionFactory) -> None:
    async with sessions() as session:
        first = await run_in_transaction(
            session, lambda db: repo.store_raw_update(db, "telegram", "5", "message", {"a": 1})
        )
        again = await run_in_transaction(
            session, lambda db: repo.store_raw_update(db, "telegram", "5", "message", {"a": 1})
        )
        await session.commit()
    assert first is not None
    assert again is None
    async with sessions() as session:
        rows = (await session.exec(select(RawUpdate))).all()
        assert [(r.source, r.update_key, r.payload) for r in rows] == [("telegram", "5", {"a": 1})]


async def test_cursor_and_page_upsert(sessions: SessionFactory) -> None:
    async with sessions() as session:
        assert await repo.get_cursor(session, "vk:1") is None
        await repo.set_cursor(session, "vk:1", "10")
        await session.commit()
    async with sessions() as session:
        await repo.set_cursor(session, "vk:1", "11")
        page = await repo.ensure_page(session, CHANNEL)
        again = await repo.ensure_page(session, CHANNEL)
        assert page.id == again.id
        await session.commit()
    async with sessions() as session:
        assert await repo.get_cursor(session, "vk:1") == "11"


async def test_derived_appeal_columns_are_kept_alike_by_both_writers(
    sessions: SessionFactory,
) -> None:
    derived = ("answered_at", "settle_day", "frt_bucket", "frt_work_bucket", "final_settle_day")
    async with sessions() as session:
        service = IngestService(session)
        await service.handle(citizen(MONDAY_10_MSK, message_id="-1002:1"))
        await service.handle(official(MONDAY_10_MSK + hours(3), "-1002:1", message_id="-1002:2"))
        await session.commit()
    async with sessions() as session:
        # Written by the ingest's plain SQL (storage/repositories.py save_appeal).
        appeal = (await session.exec(select(Appeal))).one()
        assert appeal.answered_at == MONDAY_10_MSK + hours(3)
        assert appeal.frt_bucket is not None and appeal.settle_day is not None
        assert appeal.final_settle_day is not None  # a final deadline, so a final stage
        values = appeal.model_dump()
        assert {name: values[name] for name in derived} == derived_appeal_columns(values)
        # Changed through the ORM (a press-office decision): the flush derives them again.
        appeal.answered_offline_at = MONDAY_10_MSK + hours(1)
        await session.commit()
    async with sessions() as session:
        appeal = (await session.exec(select(Appeal))).one()
        assert appeal.answered_at == MONDAY_10_MSK + hours(1)
        values = appeal.model_dump()
        assert {name: values[name] for name in derived} == derived_appeal_columns(values)
