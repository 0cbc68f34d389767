"""`IngestService`: one normalised event in, decided and stored; the caller commits."""

from __future__ import annotations

from functools import partial

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.events import (
    DeleteEvent,
    EditEvent,
    Event,
    MessageEvent,
    PostCountersEvent,
    PostEvent,
    RatingEvent,
    ReactionEvent,
    RestoreEvent,
    SubscribersEvent,
)
from bot.services import posts, quality
from bot.services.ingest.changes import KnownMessageChanges
from bot.services.ingest.messages import NewMessages
from bot.services.ingest.reading import TextReading
from bot.services.ingest.result import Decided, IngestResult, Outcome
from bot.services.policy import PageDefaults
from storage.db import Db, run_in_transaction


class IngestService:
    """Decides and stores normalised events inside the caller's session (the caller commits)."""

    def __init__(self, session: AsyncSession | None, defaults: PageDefaults | None = None) -> None:
        self.session = session  # None: only `decide` is used (the intake writer's thread)
        self.defaults = defaults or PageDefaults()
        self.messages = NewMessages(self.defaults)
        self.changes = KnownMessageChanges(self.defaults)

    async def handle(self, event: Event) -> IngestResult:
        assert self.session is not None, "IngestService.handle needs a session"
        decided = await run_in_transaction(self.session, partial(self._decide_scored, event))
        return decided.result

    def _decide_scored(self, event: Event, db: Db) -> Decided:
        decided = self._decide(event, db)
        for appeal_id in decided.rescore:
            quality.rescore_appeal(db, appeal_id)  # a rating, a re-open: in the same transaction
        return decided

    def decide(
        self, db: Db, event: Event, reading: TextReading | None = None
    ) -> tuple[IngestResult, tuple[int, ...]]:
        """Decide and store `event` synchronously on `db` (storage/writer.py's thread).

        Returns the result and the appeals whose replies `quality.rescore_appeal` must rescore
        in the same transaction (a rating, a re-open, a newly linked reply). `reading`: a new
        message's text read ahead (reading.py), if it was.
        """
        if reading is not None and isinstance(event, MessageEvent):
            decided = self.messages.decide(db, event, reading)
        else:
            decided = self._decide(event, db)
        return decided.result, decided.rescore

    def promote(
        self, db: Db, message_row_id: int, topic: str, urgent: bool
    ) -> tuple[int | None, tuple[int, ...]]:
        """Make a stored citizen message that is no appeal into a new appeal (one writer).

        See `NewMessages.promote`: «Это обращение» and `otklik reclassify` come here.
        """
        return self.messages.promote(db, message_row_id, topic, urgent)

    def _decide(self, event: Event, db: Db) -> Decided:
        match event:
            case MessageEvent():
                return self.messages.decide(db, event)
            case EditEvent():
                return self.changes.edit(db, event)
            case DeleteEvent():
                return Decided(self.changes.delete(db, event))
            case RestoreEvent():
                return Decided(self.changes.restore(db, event))
            case ReactionEvent():
                return self.changes.reaction(db, event)
            case RatingEvent():
                return self.changes.rating(db, event)
            case PostEvent():
                page_id, written = posts.record_post(db, event)
                return Decided(
                    IngestResult(Outcome.POST if written else Outcome.DUPLICATE, page_id)
                )
            case PostCountersEvent():
                page_id, written = posts.record_counters(db, event)
                return Decided(
                    IngestResult(Outcome.COUNTERS if written else Outcome.SKIPPED, page_id)
                )
            case SubscribersEvent():
                return Decided(
                    IngestResult(Outcome.SUBSCRIBERS, posts.record_subscribers(db, event))
                )
        raise TypeError(f"unknown event {type(event).__name__}")  # pragma: no cover
