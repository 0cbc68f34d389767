"""Press-office corrections of the classifier: a changed topic, «не обращение».

A correction is a `Decision` row (who, when, what). It wins over the classifier everywhere
because metrics read the appeal (`Appeal.topic`, `Appeal.excluded`), which the correction
changes; the classifier's own verdict stays on the citizen message for comparison. The
corrections can be exported as labelled lines for the classifier's corpus
(`scripts/train_classifier.py --extra FILE`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services.decisions import NOT_APPEAL
from bot.text import TOPIC_TITLES_RU, TOPICS, corrections_to_corpus
from storage.models import Appeal, CitizenMessage, Decision

logger = logging.getLogger(__name__)

TOPIC = "topic"
# «Это обращение» under «Возможно, обращение»: a message the model took for no appeal is one.
IS_APPEAL = "is_appeal"


class UnknownTopic(ValueError):
    """The text names none of the twelve topics."""


def topic_code(text: str) -> str:
    """«дороги», «ЖКХ», «roads» → the topic code; UnknownTopic lists the choices."""
    wanted = text.strip().lower().replace("ё", "е")
    for code in TOPICS:
        title = TOPIC_TITLES_RU[code].lower().replace("ё", "е")
        if wanted in (code, title) or (len(wanted) >= 4 and title.startswith(wanted)):
            return code
    choices = ", ".join(TOPIC_TITLES_RU[code] for code in TOPICS)
    raise UnknownTopic(f"Не знаю такой темы. Темы: {choices}.")


@dataclass(frozen=True, slots=True)
class Corrected:
    changed: bool
    message: str


async def correct_topic(
    session: AsyncSession,
    appeal: Appeal,
    topic: str,
    *,
    actor_id: str,
    actor_name: str | None,
    at: datetime,
) -> Corrected:
    """Set the appeal's topic by hand; the classifier never overrides it again."""
    title = TOPIC_TITLES_RU[topic]
    if appeal.topic == topic and appeal.topic_corrected:
        return Corrected(False, f"У обращения №{appeal.id} уже тема «{title}».")
    previous = TOPIC_TITLES_RU.get(appeal.topic, appeal.topic)
    appeal.topic = topic
    appeal.topic_corrected = True
    session.add(
        Decision(
            appeal_id=appeal.id or 0,
            action=TOPIC,
            value=topic,
            actor_id=actor_id,
            actor_name=actor_name,
            decided_at=at,
        )
    )
    await session.flush()
    logger.info("обращение %r: тема %r → %r, исправил %r", appeal.id, previous, topic, actor_id)
    return Corrected(True, f"Тема обращения №{appeal.id}: «{previous}» → «{title}».")


async def corpus_lines(session: AsyncSession) -> list[str]:
    """Every correction as a labelled corpus line (JSON), the latest decision per message.

    Decisions on appeals label the appeal's first message; «Не обращение» under «Возможно,
    обращение» names its message directly (there is no appeal).
    """
    on_appeals = await session.exec(
        select(Decision, CitizenMessage.id, CitizenMessage.text)
        .join(Appeal, col(Appeal.id) == col(Decision.appeal_id))
        .join(CitizenMessage, col(CitizenMessage.id) == col(Appeal.first_message_id))
        .where(col(Decision.action).in_((TOPIC, NOT_APPEAL, IS_APPEAL)))
    )
    on_messages = await session.exec(
        select(Decision, CitizenMessage.id, CitizenMessage.text)
        .join(CitizenMessage, col(CitizenMessage.id) == col(Decision.citizen_message_id))
        .where(col(Decision.appeal_id).is_(None), col(Decision.action) == NOT_APPEAL)
    )
    rows = sorted(
        [*on_appeals.all(), *on_messages.all()],
        key=lambda row: (row[0].decided_at, row[0].id or 0),
    )
    latest: dict[int, tuple[str, bool, str | None]] = {}
    for decision, message_id, text in rows:
        if decision.action == NOT_APPEAL:
            latest[message_id] = (text, False, None)
        else:
            latest[message_id] = (text, True, decision.value)
    return corrections_to_corpus(latest.values())
