"""A new message's text, read ahead of deciding it: a batch's texts one after another.

Deciding a message reads its text (bot/text/): a citizen's is classified and checked for «не
решено», an official one for «передали в работу». That reading is a pure function of the text,
its kind and the model, and it is the larger part of the intake writer's work per comment. Read
between SQLite's statements, the classifier finds its model out of the processor's caches; so
the writer process reads a whole batch's texts first (bot/services/intake.py
`JobRunner.prepare`) and the decision takes the reading a job carries (`IntakeJob.readings`) —
only if the model in use made it (`model_version`). Without a reading, or with a stale one, the
text is read where it is decided, as on every other path (VK, imports, backfill, the session
fallback): the decision is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import text as text_analysis
from bot.events import AuthorRole, MessageEvent, pickled_by_fields

# Authors whose messages are official whatever the staff list says.
_OFFICIAL_ROLES = (AuthorRole.PAGE, AuthorRole.OPERATOR)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class TextReading:
    """What a message's text says, read ahead (None: not read, the decider reads it)."""

    model_version: str
    verdict: text_analysis.Classification | None = None  # a citizen's message
    dissatisfied: bool | None = None  # a citizen came back unhappy
    interim: bool | None = None  # an official reply only acknowledges


def read_ahead(event: MessageEvent) -> TextReading:
    """Read `event`'s text as deciding it will: as an official's or as a citizen's."""
    version = text_analysis.model_version()
    if event.author_role in _OFFICIAL_ROLES:
        return TextReading(version, interim=text_analysis.is_interim(event.text))
    # Probably a citizen (a staff member's message turns out official: read where decided).
    return TextReading(
        version,
        verdict=text_analysis.classify(event.text, event.content_kind),
        dissatisfied=(
            text_analysis.is_dissatisfied(event.text) if event.author_id is not None else None
        ),
    )


def current(reading: TextReading | None) -> TextReading | None:
    """`reading` if the model in use here made it; None (read again) if another did."""
    if reading is None or reading.model_version != text_analysis.model_version():
        return None
    return reading


def verdict(event: MessageEvent, reading: TextReading | None) -> text_analysis.Classification:
    """The classifier's verdict on a citizen's message (`reading`: a `current` one or None)."""
    if reading is not None and reading.verdict is not None:
        return reading.verdict
    return text_analysis.classify(event.text, event.content_kind)


def dissatisfied(event: MessageEvent, reading: TextReading | None) -> bool:
    """Did the citizen come back unhappy («не решено», «опять»)?"""
    if reading is not None and reading.dissatisfied is not None:
        return reading.dissatisfied
    return text_analysis.is_dissatisfied(event.text)


def interim(event: MessageEvent, reading: TextReading | None) -> bool:
    """Does an official reply only acknowledge («передали», «взяли в работу»)?"""
    if reading is not None and reading.interim is not None:
        return reading.interim
    return text_analysis.is_interim(event.text)
