"""The intake writer process (storage/writer.py): what it promises, with a tiny job handler.

The handler (tests/writer_jobs.py) stores one row per job key, idempotently, as the intake's raw
update does; the child process imports it by module path.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.writer import IntakeWriter, WriterError
from tests.writer_jobs import SCHEMA, keyed_rows

HANDLER = keyed_rows
# The child runs `python -m storage.writer` in our working directory: there `tests` imports.
ROOT = Path(__file__).parents[1]
# How long any test waits for the writer's answers before it fails.
ANSWER_TIMEOUT = 15.0


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A SQLite file in WAL mode (as storage/engine.py sets it) with the handler's table."""
    path = tmp_path / "writer.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(SCHEMA)
    return path


@pytest.fixture
async def make_writer(
    database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[], IntakeWriter]]:
    """New writers on `database`; any still running at the end is killed."""
    monkeypatch.chdir(ROOT)
    writers: list[IntakeWriter] = []

    def make() -> IntakeWriter:
        writer = IntakeWriter(str(database), HANDLER, str(tmp_path))
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        await writer.abandon()


@pytest.fixture
def reader(database: Path) -> Iterator[sqlite3.Connection]:
    """Another connection, as any other part of the app would read the database."""
    connection = sqlite3.connect(database, isolation_level=None)
    yield connection
    connection.close()


def _rows(connection: sqlite3.Connection) -> dict[str, int]:
    """Committed rows: key -> pid of the child that stored it."""
    return dict(connection.execute("SELECT key, child FROM item").fetchall())


def _child_pid(writer: IntakeWriter) -> int:
    child = writer._child
    assert child is not None, "the writer has no child process"
    return child.process.pid


async def _settle(*futures: asyncio.Future[Any]) -> list[Any]:
    """The futures' results (exceptions returned, not raised), within the test's patience."""
    async with asyncio.timeout(ANSWER_TIMEOUT):
        return await asyncio.gather(*futures, return_exceptions=True)


async def test_results_come_in_order_and_are_committed_when_they_arrive(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection
) -> None:
    """Every job's answer comes in submission order, after its row is visible to others."""
    writer = make_writer()
    keys = [f"k{n}" for n in range(200)]
    answered: list[tuple[str, object, bool]] = []

    def then_for(key: str) -> Callable[[Any, BaseException | None], None]:
        def then(result: Any, error: BaseException | None) -> None:
            visible = reader.execute("SELECT 1 FROM item WHERE key = ?", (key,)).fetchone()
            answered.append((key, result if error is None else error, visible is not None))

        return then

    futures = [writer.submit(("put", key), then_for(key)) for key in keys]
    results = await _settle(*futures)

    assert results == [(key, "stored") for key in keys]  # each job's own answer, in order
    assert [key for key, _, _ in answered] == keys  # `then` runs in submission order
    assert all(visible for _, _, visible in answered)  # committed before anybody heard of it
    assert set(_rows(reader)) == set(keys)
    assert writer.pending == 0
    assert writer.batches < len(keys) / 10  # commits are grouped, not one per job
    await writer.close()


async def test_a_failing_job_is_rolled_back_alone(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection
) -> None:
    """A job that raises in the middle of a batch loses its own writes only, and says why."""
    writer = make_writer()
    await _settle(writer.submit(("put", "warm-up")))  # the child runs: the burst is one batch
    batches = writer.batches
    reported: list[BaseException | None] = []
    futures = [
        writer.submit(("put", "a")),
        writer.submit(("fail", "b"), lambda _result, error: reported.append(error)),
        writer.submit(("put", "c")),
    ]
    first, failed, last = await _settle(*futures)

    assert writer.batches == batches + 1  # all three shared one transaction
    assert (first, last) == (("a", "stored"), ("c", "stored"))
    assert isinstance(failed, WriterError)
    assert "ValueError" in str(failed) and "job b refused" in str(failed)
    assert reported == [failed]  # `then` hears of the failure too
    assert set(_rows(reader)) == {"warm-up", "a", "c"}  # b's own insert was rolled back
    await writer.close()


async def test_a_child_killed_mid_stream_is_restarted_and_loses_nothing(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection
) -> None:
    """SIGKILL while a batch is being written: a new child stores every job, each once."""
    writer = make_writer()
    done = [f"done{n}" for n in range(50)]
    assert await _settle(*(writer.submit(("put", key)) for key in done)) == [
        (key, "stored") for key in done
    ]
    first_child = _child_pid(writer)
    in_flight = [f"flight{n}" for n in range(100)]
    futures = [writer.submit(("slow", key)) for key in in_flight]  # 5 ms each: ~0.5 s of work
    await asyncio.sleep(0.15)
    assert not futures[-1].done()
    os.kill(first_child, signal.SIGKILL)
    results = await _settle(*futures)

    # A job committed just before the kill but not yet answered comes back as "duplicate".
    assert [key for key, _ in results] == in_flight
    assert {outcome for _, outcome in results} <= {"stored", "duplicate"}
    rows = _rows(reader)
    assert sorted(rows) == sorted(done + in_flight)
    assert reader.execute("SELECT count(*) FROM item").fetchone() == (150,)
    second_child = _child_pid(writer)
    assert second_child != first_child
    assert second_child in rows.values()  # the new child stored what the killed one had not
    assert writer.pending == 0
    await writer.close()


async def test_a_crash_before_the_commit_resends_the_whole_batch(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection
) -> None:
    """A child dying inside a batch commits none of it; the next child stores all of it."""
    writer = make_writer()
    await _settle(writer.submit(("put", "warm-up")))
    first_child = _child_pid(writer)
    futures = [
        writer.submit(("put", "a")),
        writer.submit(("crash_once", "b")),
        writer.submit(("put", "c")),
    ]
    results = await _settle(*futures)

    # None was committed by the first child.
    assert results == [("a", "stored"), ("b", "stored"), ("c", "stored")]
    rows = _rows(reader)
    second_child = _child_pid(writer)
    assert second_child != first_child
    assert rows == {"warm-up": first_child, "a": second_child, "b": second_child, "c": second_child}
    await writer.close()


async def test_a_crash_after_the_commit_is_seen_as_a_redelivery(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection
) -> None:
    """Committed but never answered: sent again, found stored, nothing doubled or lost."""
    writer = make_writer()
    await _settle(writer.submit(("put", "warm-up")))
    first_child = _child_pid(writer)
    futures = [
        writer.submit(("put", "a")),
        writer.submit(("crash_after_commit_once", "b")),
        writer.submit(("put", "c")),
    ]
    results = await _settle(*futures)

    # Answered by the second child, which found them committed.
    assert results == [("a", "duplicate"), ("b", "duplicate"), ("c", "duplicate")]
    assert _child_pid(writer) != first_child
    assert _rows(reader) == {key: first_child for key in ("warm-up", "a", "b", "c")}
    await writer.close()


async def test_an_answer_that_arrived_before_the_crash_is_delivered(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection
) -> None:
    """The child answers, then dies: the parent uses that answer and does not rerun the jobs."""
    writer = make_writer()
    await _settle(writer.submit(("put", "warm-up")))
    first_child = _child_pid(writer)
    futures = [writer.submit(("put", "a")), writer.submit(("crash_after_answer_once", "b"))]
    await asyncio.sleep(0)  # the jobs go out
    # The loop is busy routing updates: the answer and the child's exit are read at once.
    time.sleep(0.5)  # noqa: ASYNC251
    results = await _settle(*futures)

    assert results == [("a", "stored"), ("b", "stored")]
    assert _rows(reader) == {key: first_child for key in ("warm-up", "a", "b")}


async def test_a_child_that_keeps_dying_fails_the_jobs_instead_of_hanging(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection
) -> None:
    """A job that kills every child it reaches: after a few restarts its batch fails, loudly."""
    writer = make_writer()
    await _settle(writer.submit(("put", "warm-up")))
    futures = [writer.submit(("put", "a")), writer.submit(("crash", "b"))]
    results = await _settle(*futures)

    assert all(isinstance(result, WriterError) for result in results), results
    assert all("keeps exiting" in str(result) for result in results)
    assert set(_rows(reader)) == {"warm-up"}
    assert writer.pending == 0


async def test_close_commits_what_was_queued_and_the_child_exits(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection
) -> None:
    """close() waits for every queued job's commit, then the child exits cleanly."""
    writer = make_writer()
    futures = [writer.submit(("put", f"k{n}")) for n in range(100)]
    child = writer._child
    assert child is not None
    async with asyncio.timeout(ANSWER_TIMEOUT):
        await writer.close()

    assert all(future.done() for future in futures)
    assert [future.result() for future in futures] == [(f"k{n}", "stored") for n in range(100)]
    assert len(_rows(reader)) == 100
    assert child.process.returncode == 0
    with pytest.raises(WriterError):
        writer.submit(("put", "late"))


async def test_abandon_leaves_uncommitted_jobs_uncommitted(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection, database: Path
) -> None:
    """abandon() is a crash: the child is gone and what it had not committed never appears."""
    writer = make_writer()
    await _settle(writer.submit(("put", "warm-up")))
    child = writer._child
    assert child is not None
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the child can read its jobs but never commit them
    try:
        futures = [writer.submit(("put", f"k{n}")) for n in range(10)]
        await asyncio.sleep(0.2)
        await writer.abandon()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await asyncio.sleep(0.2)  # a child still alive would commit now

    assert child.process.returncode == -signal.SIGKILL
    assert _rows(reader) == {"warm-up": child.process.pid}
    # Nobody is told they were stored: every unanswered job fails (so nothing waits forever).
    assert all(isinstance(future.exception(), WriterError) for future in futures)
    with pytest.raises(WriterError):
        writer.submit(("put", "late"))


async def test_a_write_lock_held_past_the_busy_timeout_delays_but_loses_nothing(
    make_writer: Callable[[], IntakeWriter], reader: sqlite3.Connection, database: Path
) -> None:
    """Another connection holds the write lock 15 times the child's busy timeout: retried."""
    writer = make_writer()
    # BUSY_TIMEOUT_MS is applied in the child, out of monkeypatch's reach: this job lowers the
    # child connection's busy timeout to 100 ms instead.
    await _settle(writer.submit(("short_busy_timeout", "warm-up")))
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("INSERT INTO item (key, child) VALUES ('blocker', 0)")
    try:
        futures = [writer.submit(("put", f"k{n}")) for n in range(20)]
        await asyncio.sleep(1.5)
        assert not any(future.done() for future in futures)  # not failed, not falsely stored
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    results = await _settle(*futures)

    assert results == [(f"k{n}", "stored") for n in range(20)]
    rows = _rows(reader)
    assert sorted(rows) == sorted(["warm-up", "blocker", *(f"k{n}" for n in range(20))])
    assert reader.execute("SELECT count(*) FROM item").fetchone() == (22,)
    await writer.close()


PARENT = """
import asyncio, os, signal, sys
from storage.writer import IntakeWriter
from tests.writer_jobs import keyed_rows

async def main():
    writer = IntakeWriter(sys.argv[1], keyed_rows, sys.argv[2])
    key, outcome = await writer.submit(("put", "from-parent"))
    print(outcome, writer._child.process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_the_child_exits_when_its_parent_dies(
    database: Path, tmp_path: Path, reader: sqlite3.Connection
) -> None:
    """The parent killed: the child sees its stdin close and exits (no orphan writer)."""
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PARENT,
        str(database),
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    async with asyncio.timeout(ANSWER_TIMEOUT):
        output, _ = await parent.communicate()
    assert parent.returncode == -signal.SIGKILL
    result, pid = output.decode().split()
    assert result == "stored"
    assert _rows(reader) == {"from-parent": int(pid)}

    try:
        async with asyncio.timeout(5):
            while _alive(int(pid)):  # noqa: ASYNC110  (another process's state)
                await asyncio.sleep(0.05)
    finally:
        if _alive(int(pid)):
            os.kill(int(pid), signal.SIGKILL)  # the orphan must not outlive a failed test


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaped has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
