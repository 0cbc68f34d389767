"""What deciding one event gave: the outcome the callers see, and the appeals to rescore."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    DUPLICATE = "duplicate"
    COMMENT = "comment"  # a citizen message that is not an appeal
    APPEAL = "appeal"  # a new appeal
    FOLLOW_UP = "follow_up"  # joined the citizen's open appeal
    REOPEN = "reopen"  # a dissatisfied return: joined and re-opened the appeal it answers
    REPLY = "reply"  # an official reply that answered at least one appeal
    OFFICIAL = "official"  # an official message that answered nothing we know
    EDIT = "edit"
    DELETE = "delete"
    RESTORE = "restore"
    REACTION = "reaction"
    RATING = "rating"
    SKIPPED = "skipped"
    POST = "post"  # a page's own publication, new or edited (page health)
    COUNTERS = "counters"  # a post's views, likes, reposts, comments
    SUBSCRIBERS = "subscribers"  # a page's subscriber count


@dataclass(frozen=True, slots=True)
class IngestResult:
    outcome: Outcome
    page_id: int | None = None
    appeal_ids: tuple[int, ...] = ()
    message_row_id: int | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Decided:
    result: IngestResult
    rescore: tuple[int, ...] = ()  # appeals whose replies quality must rescore (rating, re-open)
