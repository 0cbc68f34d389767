"""Texts read ahead of deciding them, and the intake writer's memo: same decisions, once.

The writer process reads a batch's texts first (bot/services/ingest/reading.py,
`JobRunner.prepare`); a decision takes the reading a job carries only if the model in use made
it. The writer remembers pages, thread ids and stale marks while it alone writes
(storage/writer.py `_Memo`): another connection's commit or a rollback makes it forget.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import pickle
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot import text as text_analysis
from bot.app import AppContext, defaults_from
from bot.events import EditEvent, MessageEvent, RatingEvent, ThreadKind, ThreadRef
from bot.services import intake as intake_module
from bot.services.ingest import Outcome
from bot.services.ingest.reading import TextReading, read_ahead
from bot.services.intake import Cursor, Intake, IntakeJob, JobRunner, RawCopy, Stored
from bot.services.intake import read_ahead as read_ahead_job
from storage.engine import SessionFactory
from storage.models import Appeal, CitizenMessage, OfficialReply, Thread
from tests.conftest import MONDAY_10_MSK, make_settings
from tests.factories import (
    APPEAL_TEXT,
    CHANNEL,
    INTERIM_ANSWER,
    THANKS_TEXT,
    citizen,
    hours,
    official,
)

# Texts of every kind the decision reads differently: appeals of several topics, an urgent
# one, thanks, a doubtful one, a return «не решено», media without text, a sticker.
TEXTS = (
    (APPEAL_TEXT, "text"),
    (THANKS_TEXT, "text"),
    ("Во дворе дома 12 не вывозят мусор уже неделю!", "text"),
    ("Нет горячей воды в доме 5 по улице Мира третий день", "text"),
    ("Срочно! Оборван провод на остановке, искрит, рядом дети", "text"),
    ("а что там с ремонтом?", "text"),
    ("Опять ничего не сделали, проблема не решена", "text"),
    ("", "voice"),
    ("", "photo"),
    ("", "sticker"),
)
CITIZEN_COLUMNS = (
    "is_appeal",
    "topic",
    "urgent",
    "confidence",
    "model_version",
    "doubtful",
    "is_reopen",
)
END_OF_TIME = datetime(9999, 12, 31, 23, 0, tzinfo=MONDAY_10_MSK.tzinfo)


def _conversation(thread: str) -> list[MessageEvent]:
    """Each text from its own citizen, each answered, then each citizen writes again."""
    ref = ThreadRef(thread, ThreadKind.COMMENTS)
    events: list[MessageEvent] = []
    for n, (text, kind) in enumerate(TEXTS):
        first = citizen(
            MONDAY_10_MSK + hours(n), text, author=f"{thread}-{n}", thread=ref, kind=kind
        )
        answer = official(
            MONDAY_10_MSK + hours(n + 0.5),
            first.message_id,
            INTERIM_ANSWER if n % 2 else "Отремонтировали, спасибо за сигнал.",
            thread=ref,
        )
        again = citizen(
            MONDAY_10_MSK + hours(n + 30),
            "Опять ничего не сделали, проблема не решена",
            author=f"{thread}-{n}",
            thread=ref,
        )
        events += [first, answer, again]
    return events


async def _rows(sessions: SessionFactory, thread: str) -> list[tuple[Any, ...]]:
    """What was decided in the thread, in order, without the ids."""
    async with sessions() as session:
        thread_id = (
            await session.exec(select(Thread.id).where(Thread.external_id == thread))
        ).one()
        messages = (
            await session.exec(
                select(CitizenMessage)
                .where(CitizenMessage.thread_id == thread_id)
                .order_by(CitizenMessage.sent_at)
            )
        ).all()
        replies = (
            await session.exec(
                select(OfficialReply)
                .where(OfficialReply.thread_id == thread_id)
                .order_by(OfficialReply.sent_at)
            )
        ).all()
    return [tuple(getattr(m, c) for c in CITIZEN_COLUMNS) for m in messages] + [
        (r.is_interim, r.appeal_id is not None, r.quality_score) for r in replies
    ]


async def test_texts_read_ahead_are_decided_as_the_writer_reads_them(
    sessions: SessionFactory,
) -> None:
    intake = Intake(sessions, defaults_from(make_settings()))
    for thread, ahead in (("plain", False), ("ahead", True)):
        for event in _conversation(thread):
            job = IntakeJob(None, (event,))
            if ahead:
                job = dataclasses.replace(job, readings=(read_ahead(event),))
            await intake.store_in_session(job)
    plain, ahead = await _rows(sessions, "plain"), await _rows(sessions, "ahead")
    assert ahead == plain
    # The conversation does exercise what is read: appeals, comments, re-opens, interim replies.
    assert {row[0] for row in plain[: 2 * len(TEXTS)]} == {True, False}
    assert any(row[6] for row in plain[: 2 * len(TEXTS)])
    assert {row[0] for row in plain[2 * len(TEXTS) :]} == {True, False}


def test_a_reading_says_what_the_text_functions_say() -> None:
    for text, kind in TEXTS:
        event = citizen(MONDAY_10_MSK, text, kind=kind)
        reading = read_ahead(event)
        assert reading.model_version == text_analysis.model_version()
        assert reading.verdict == text_analysis.classify(text, kind)
        assert reading.dissatisfied == text_analysis.is_dissatisfied(text)
        assert reading.interim is None
        answer = official(MONDAY_10_MSK, None, text)
        assert read_ahead(answer) == TextReading(
            text_analysis.model_version(), interim=text_analysis.is_interim(text)
        )


def test_jobs_cross_to_the_writer_and_back_unchanged() -> None:
    """Events, jobs and results are pickled as constructor calls (`pickled_by_fields`)."""
    event = citizen(MONDAY_10_MSK, APPEAL_TEXT, reply_to="-1002:1")
    edit = EditEvent(CHANNEL, "-1002:2", "исправлено", MONDAY_10_MSK + hours(1))
    rating = RatingEvent(CHANNEL, "-1002:3", None, False, MONDAY_10_MSK + hours(2))
    job = IntakeJob(
        RawCopy("telegram", "7", "message", '{"update_id": 7}'),
        (event, edit, rating),
        "done",
        "заметка",
        (Cursor("vk:1:ts", "42", rising=True),),
        (read_ahead(event), None, None),
    )
    stored = Stored(False, (1, 2), None, (Outcome.APPEAL, Outcome.EDIT))
    for value in (job, stored, ThreadRef("post:1", ThreadKind.BOARD, "Тема")):
        again = pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        assert again == value and type(again) is type(value)
    assert copy.copy(event) == event


@pytest.mark.parametrize("model", ["current", "another"])
async def test_a_reading_is_taken_only_from_the_model_in_use(
    sessions: SessionFactory, model: str
) -> None:
    """A reading by another model (a retrained file) is read again; the current one is taken."""
    version = text_analysis.model_version() if model == "current" else "local-0123456789ab"
    event = citizen(MONDAY_10_MSK, APPEAL_TEXT)
    assert text_analysis.classify(APPEAL_TEXT).is_appeal
    wrong = TextReading(
        version, text_analysis.Classification(False, "other", False, 0.99), dissatisfied=False
    )
    stored = await Intake(sessions, defaults_from(make_settings())).store_in_session(
        IntakeJob(None, (event,), readings=(wrong,))
    )
    assert stored.failure is None
    async with sessions() as session:
        message = (await session.exec(select(CitizenMessage))).one()
        appeals = (await session.exec(select(Appeal))).all()
    # Taken as it is when the model is the same (nothing is classified twice)...
    if model == "current":
        assert (message.is_appeal, message.confidence, len(appeals)) == (False, 0.99, 0)
    # ...and read again by the model in use when it is not.
    else:
        assert message.is_appeal and len(appeals) == 1
    assert message.model_version == text_analysis.model_version()


# -- through the writer process -------------------------------------------------------------------


@pytest.fixture
async def writing(app: AppContext) -> AsyncIterator[Intake]:
    intake = Intake.for_database(app.engine, app.sessions, app.defaults)
    assert intake.writer is not None
    yield intake
    await intake.close()


@pytest.fixture
def database(app: AppContext) -> Path:
    path = app.engine.url.database
    assert path is not None
    return Path(path)


@contextmanager
def _write_lock(database: Path) -> Iterator[None]:
    """Another connection holds the write lock: the writer takes its jobs, commits none."""
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def _job(update: int, *events: MessageEvent) -> IntakeJob:
    return IntakeJob(RawCopy("telegram", str(update), "message", "{}"), events)


def _citizen_rows(database: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(database)) as reader:
        return reader.execute(
            "SELECT m.external_id, m.is_appeal, m.topic, m.confidence, m.model_version, "
            "a.sla_hours, t.external_id FROM citizen_message m "
            "JOIN thread t ON t.id = m.thread_id LEFT JOIN appeal a ON a.id = m.appeal_id "
            "ORDER BY m.id"
        ).fetchall()


def test_the_writer_reads_a_batch_first_and_leaves_what_it_cannot_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = [citizen(MONDAY_10_MSK, text, kind=kind) for text, kind in TEXTS[:3]]
    given = TextReading(text_analysis.model_version(), interim=True)
    jobs = [
        _job(1, events[0], official(MONDAY_10_MSK, None, INTERIM_ANSWER)),
        IntakeJob(None, (events[1],), readings=(given,)),  # read already: kept as it is
        _job(3, events[2]),
        IntakeJob(None, ()),
    ]
    runner = JobRunner(None)
    prepared = runner.prepare(jobs)
    assert prepared[0] == read_ahead_job(jobs[0])
    assert prepared[0].readings[1] == TextReading(text_analysis.model_version(), interim=True)
    assert prepared[1] is jobs[1] and prepared[3] == jobs[3]
    assert prepared[2].readings == (read_ahead(events[2]),)

    def broken(job: IntakeJob) -> IntakeJob:  # a reading that fails (fault injection)
        raise RuntimeError("cannot read")

    monkeypatch.setattr(intake_module, "read_ahead", broken)
    # Left unread: deciding the job reads its text again (and keeps the update if that fails).
    assert runner.prepare(jobs[2:3]) == jobs[2:3]


async def test_a_batch_through_the_writer_is_decided_as_each_text_reads(
    writing: Intake, database: Path
) -> None:
    events = [
        citizen(MONDAY_10_MSK + hours(n), text, author=str(n), kind=kind)
        for n, (text, kind) in enumerate(TEXTS)
    ]
    stored: list[Stored] = []
    with _write_lock(database):  # everything waits, then goes in one batch
        for n, event in enumerate(events):
            writing.submit(_job(n, event), stored.append)
        await asyncio.sleep(0.3)
    await writing.flush()
    assert [s.failure for s in stored] == [None] * len(events)
    rows = _citizen_rows(database)
    for row, event in zip(rows, events, strict=True):
        verdict = text_analysis.classify(event.text, event.content_kind)
        assert row[:5] == (
            event.message_id,
            verdict.is_appeal,
            verdict.topic,
            verdict.confidence,
            text_analysis.model_version(),
        )


async def test_the_writer_sees_a_page_changed_by_another_connection(
    writing: Intake, database: Path
) -> None:
    """The memo holds the page between batches only while nobody else commits."""
    await writing.store(_job(1, citizen(MONDAY_10_MSK, APPEAL_TEXT, author="1")))
    with closing(sqlite3.connect(database, isolation_level=None)) as other:
        other.execute("UPDATE page SET sla_hours = 3")  # as `/page` does in the bot process
    await writing.store(_job(2, citizen(MONDAY_10_MSK + hours(1), APPEAL_TEXT, author="2")))
    first, second = _citizen_rows(database)
    assert first[5] != 3
    assert second[5] == 3


async def test_a_thread_rolled_back_with_a_failed_update_is_created_again(
    writing: Intake, database: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rollback makes the writer forget the rows it remembered since."""
    thread = ThreadRef("post:77", ThreadKind.COMMENTS)
    failing = _job(
        1,
        citizen(MONDAY_10_MSK, APPEAL_TEXT, author="1", thread=thread),
        # Its SLA deadline overflows `datetime`: deciding it fails, the update is kept failed.
        citizen(END_OF_TIME, APPEAL_TEXT, author="2", thread=thread),
    )
    stored: list[Stored] = []
    writing.submit(failing, stored.append)
    writing.submit(
        _job(2, citizen(MONDAY_10_MSK + hours(1), APPEAL_TEXT, author="3", thread=thread)),
        stored.append,
    )
    await writing.flush()
    assert stored[0].failure is not None and stored[1].failure is None
    # Stored by the writer itself, not by the session it falls back on when a job fails there.
    assert not [r for r in caplog.records if r.name == "bot.services.intake_writer"]
    rows = _citizen_rows(database)
    assert [row[6] for row in rows] == ["post:77"]  # joined with a thread that exists
    with closing(sqlite3.connect(database)) as reader:
        assert reader.execute("PRAGMA foreign_key_check").fetchall() == []
        assert reader.execute("SELECT status FROM raw_update ORDER BY update_key").fetchall() == [
            ("failed",),
            ("done",),
        ]


async def test_a_page_day_refreshed_by_another_connection_is_marked_stale_again(
    writing: Intake, database: Path
) -> None:
    await writing.store(_job(1, citizen(MONDAY_10_MSK, APPEAL_TEXT, author="1")))
    with closing(sqlite3.connect(database, isolation_level=None)) as other:
        assert other.execute("SELECT count(*) FROM rollup_stale").fetchone() == (1,)
        other.execute("DELETE FROM rollup_stale")  # what a refresh does once it is done
        await writing.store(_job(2, citizen(MONDAY_10_MSK + hours(1), APPEAL_TEXT, author="2")))
        assert other.execute("SELECT count(*) FROM rollup_stale").fetchone() == (1,)
        await writing.store(_job(3, citizen(MONDAY_10_MSK + hours(2), APPEAL_TEXT, author="3")))
        assert other.execute("SELECT count(*) FROM rollup_stale").fetchone() == (1,)
