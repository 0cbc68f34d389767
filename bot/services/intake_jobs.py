"""The unit of intake work and what became of it (bot/services/intake.py).

Plain frozen data: a job crosses to the writer process pickled (storage/writer.py) and its
result comes back the same way, so these live apart from the intake and its writer bridge,
which both use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.events import Event, pickled_by_fields
from bot.services.ingest import Outcome
from bot.services.ingest.reading import TextReading


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RawCopy:
    """An update as the platform sent it, kept once per (source, key)."""

    source: str  # "telegram", "vk:<group id>"
    key: str  # the platform's id of the update (Telegram update_id, VK event_id)
    update_type: str | None
    payload: str  # the update as JSON text


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Cursor:
    """An intake cursor written with the job (VK's long-poll ts, the newest date seen)."""

    name: str
    value: str
    rising: bool = False  # numeric; only ever moves forward


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class IntakeJob:
    """One unit of intake work: committed as a whole, or its raw copy kept as failed."""

    raw: RawCopy | None
    events: tuple[Event, ...] = ()
    status: str = "done"  # "skipped": nothing here interprets the update
    note: str | None = None
    cursors: tuple[Cursor, ...] = ()
    # The new messages' texts read ahead, one per event in order (None: not read); empty: none
    # (bot/services/ingest/reading.py; the writer process reads a batch's texts first).
    readings: tuple[TextReading | None, ...] = ()


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Stored:
    """What became of an `IntakeJob` once committed."""

    duplicate: bool = False  # the update was processed before: nothing else was done
    rescore: tuple[int, ...] = ()  # appeals whose replies were rescored in the job's transaction
    failure: str | None = None  # deciding an event failed: the raw copy is kept as "failed"
    outcomes: tuple[Outcome, ...] = ()  # one per event, in order
