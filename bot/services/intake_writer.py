"""The bridge between the intake use case and the intake writer process (storage/writer.py).

The writer process commits jobs in groups on the second core; this side adds what the intake
promises on top of it: a job the writer cannot store (it keeps exiting, SQLite refused the
batch) is stored through a session at the next `flush`, waiting while the database is
unavailable, so that nothing handed over is dropped and nothing is confirmed before it is
committed. (Ratings and re-opens are rescored inside the job's own transaction.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bot.config import PageDefaults
from bot.services.intake_jobs import IntakeJob, Stored
from storage.writer import Handler, IntakeWriter, WriterError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

Then = Callable[[Stored], None]


class SessionIntake(Protocol):
    """What the bridge needs of the intake (bot/services/intake.py `Intake`, which builds it)."""

    defaults: PageDefaults

    async def deliver(
        self, job: IntakeJob, *, within: float | None = None, session_only: bool = False
    ) -> Stored: ...


class WriterBridge:
    """The intake's side of the writer process."""

    def __init__(self, writer: IntakeWriter, intake: SessionIntake) -> None:
        self.writer = writer
        self.intake = intake
        # Jobs the writer could not store (no result yet), with their callbacks: stored through
        # a session by the next flush, before anything is confirmed. Jobs the writer stored
        # after one of those wait here too (with their result), so that callbacks run in order
        # and a later update is never confirmed before an earlier one is stored.
        self._unstored: list[tuple[IntakeJob, Then, Stored | None]] = []
        # One flush at a time drains `_unstored` (webhook requests flush concurrently).
        self._draining = asyncio.Lock()

    @classmethod
    def for_engine(
        cls, engine: AsyncEngine, intake: SessionIntake, runner: Handler
    ) -> WriterBridge | None:
        """A bridge to a writer process for a file-based SQLite engine; None for anything else.

        `runner` is what the writer process runs per job (`intake.job_runner`); it is passed
        to the child by reference, so it must be a module-level function.
        """
        writer = IntakeWriter.for_engine(engine, runner, intake.defaults)
        return None if writer is None else cls(writer, intake)

    @property
    def open(self) -> bool:
        return not self.writer.closed

    @property
    def pending(self) -> int:
        return self.writer.pending + sum(1 for _, _, stored in self._unstored if stored is None)

    def submit(self, job: IntakeJob, then: Then) -> None:
        """Queue `job`; `then(stored)` runs on the loop once it is committed."""

        def done(stored: Stored | None, error: BaseException | None) -> None:
            if error is not None or stored is None:
                key = job.raw.key if job.raw is not None else "(read back)"
                logger.error(
                    "обновление %s не сохранено процессом записи (%s); сохраняем напрямую",
                    key,
                    error,
                )
                self._unstored.append((job, then, None))
                return
            if self._unstored:
                self._unstored.append((job, then, stored))
            else:
                then(stored)

        self.writer.submit(job, done)

    async def store(self, job: IntakeJob) -> Stored | None:
        """Commit one job through the writer and wait; None if the writer could not."""
        try:
            stored: Stored = await self.writer.submit(job)
        except WriterError as error:
            logger.error("процесс записи не смог сохранить задание (%s); сохраняем напрямую", error)
            return None
        return stored

    async def flush(self) -> None:
        """Until every job submitted so far is committed, by the writer or through a session."""
        await self.writer.flush()
        async with self._draining:
            while self._unstored:
                job, then, stored = self._unstored[0]
                if stored is None:
                    stored = await self.intake.deliver(job, session_only=True)
                self._unstored.pop(0)
                then(stored)

    async def close(self) -> None:
        await self.flush()
        await self.writer.close()

    async def abandon(self) -> None:
        """Kill the writer; what it had not committed is not stored (nor confirmed)."""
        await self.writer.abandon()
        self._unstored.clear()
