"""A tiny job handler for tests/test_intake_writer.py; it runs inside the intake writer's child.

The child unpickles `keyed_rows` by reference, importing `tests.writer_jobs` (`python -m
storage.writer` puts the working directory, the repository root, on sys.path). A job is
`(action, key)`; every action but "fail" stores the row `key` idempotently, as the intake's raw
update does, and answers `(key, "stored")`, or `(key, "duplicate")` when the row was committed
before (a redelivery).
`context` is a directory for the markers that make a crash happen only once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.db import Db

SCHEMA = "CREATE TABLE item (key TEXT PRIMARY KEY, child INTEGER NOT NULL)"

Job = tuple[str, str]


def keyed_rows(context: str) -> Callable[[Db, Job], tuple[str, str]]:
    """The handler: `run(db, (action, key))` in the child, inside the job's SAVEPOINT."""
    markers = Path(context)

    def first_time(name: str) -> bool:
        marker = markers / f"{name}.marker"
        if marker.exists():
            return False
        marker.touch()
        return True

    def run(db: Db, job: Job) -> tuple[str, str]:
        action, key = job
        if action == "slow":
            time.sleep(0.005)
        elif action == "short_busy_timeout":
            # The child's own connection gives up on a held write lock after 100 ms, so the
            # batch's BEGIN IMMEDIATE fails with SQLITE_BUSY and the retry path is taken.
            db.run("PRAGMA busy_timeout = 100", {})
        elif action == "crash" or (action == "crash_once" and first_time(key)):
            os.kill(os.getpid(), signal.SIGKILL)  # mid-batch: nothing of it is committed
        elif action == "crash_after_commit_once" and first_time(key):
            # The batch commits, then the child dies before its answer reaches the parent.
            sys.modules["__main__"]._write_all = _die  # type: ignore[attr-defined]
        elif action == "crash_after_answer_once" and first_time(key):
            # The batch commits, its answer is written, then the child dies.
            main: Any = sys.modules["__main__"]
            main._write_all = _answer_then_die(main._write_all)
        found = db.row(
            "INSERT INTO item (key, child) VALUES (:key, :child) "
            "ON CONFLICT (key) DO NOTHING RETURNING key",
            {"key": key, "child": os.getpid()},
        )
        if action == "fail":
            raise ValueError(f"job {key} refused")  # after its insert: the SAVEPOINT undoes it
        return key, "stored" if found is not None else "duplicate"

    return run


def _die(fd: int, data: bytes) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _answer_then_die(write_all: Callable[[int, bytes], None]) -> Callable[[int, bytes], None]:
    def answer_then_die(fd: int, data: bytes) -> None:
        write_all(fd, data)
        os.kill(os.getpid(), signal.SIGKILL)

    return answer_then_die


def exits_at_start(context: object) -> Callable[[Db, Any], Any]:
    """A handler factory whose child exits at once: a writer that keeps dying."""
    os._exit(3)
