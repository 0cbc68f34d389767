"""The one ingest path: every normalised event is decided and stored here.

This is where an appeal is decided: a citizen message becomes an appeal, joins an open one, or
stays a plain comment; an official message is linked to the appeals it answers and sets their
first and final response times. Nothing here knows Telegram or VK. Time is always the platform's
`date` carried by the event; the wall clock is never used for metrics.

Every source reaches this through the intake use case (bot/services/intake.py), which stores
the raw update once, applies the one policy for redeliveries and failures, and commits. The
decision runs as synchronous code over plain SQL (`storage.repositories.Db`) in that
transaction: on SQLite in one trip to the database thread per event, which is what lets the
intake keep up with thousands of updates a second (docs/BENCHMARKS.md).

The parts, each importing only the ones listed before it:

- `result.py` — `Outcome`, `IngestResult`: what deciding one event gave;
- `reading.py` — a new message's text read (classified, «не решено», «передали»), perhaps
  ahead, a batch at a time: the decision takes a reading made by its own model, else reads;
- `clock.py` — an appeal's clocks: a reply sets the first response and the final answer, a
  return or a 👎 re-opens the final stage;
- `messages.py` — new messages: citizen messages become appeals, follow-ups, re-opens or
  comments; official messages answer the appeals up their chain or in their conversation;
- `changes.py` — changes to known messages: edits, deletions (and who deleted), restores,
  reactions and ratings;
- `service.py` — `IngestService`, which takes every event to one of these in one transaction.
"""

from bot.services.ingest.result import IngestResult, Outcome
from bot.services.ingest.service import IngestService

__all__ = ["IngestResult", "IngestService", "Outcome"]
