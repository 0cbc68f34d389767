"""Factories for normalised events with fixed dates."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

from bot.events import (
    AuthorRole,
    MessageEvent,
    PageKind,
    PageRef,
    Platform,
    ThreadKind,
    ThreadRef,
)

CHANNEL = PageRef(
    Platform.TELEGRAM, "-1001", PageKind.TG_CHANNEL, "Правительство области", "gov", "-1002"
)
BOT_PAGE = PageRef(Platform.TELEGRAM, "777", PageKind.TG_BOT, "Бот обратной связи", "feedback_bot")
POST = ThreadRef("post:10", ThreadKind.COMMENTS)

_ids = count(1000)

APPEAL_TEXT = "Когда отремонтируют дорогу на улице Ленина? Сплошные ямы, невозможно проехать."
THANKS_TEXT = "Спасибо большое за новости!"
FINAL_ANSWER = (
    "Здравствуйте, Иван! Ремонт дороги на улице Ленина включён в план на июнь 2027 года, "
    "работы выполнит управление дорожного хозяйства."
)
INTERIM_ANSWER = "Здравствуйте! Передали ваше обращение в профильное ведомство."


def citizen(
    sent_at: datetime,
    text: str = APPEAL_TEXT,
    *,
    author: str = "501",
    page: PageRef = CHANNEL,
    thread: ThreadRef = POST,
    message_id: str | None = None,
    reply_to: str | None = None,
    kind: str = "text",
) -> MessageEvent:
    return MessageEvent(
        page=page,
        thread=thread,
        message_id=message_id or f"-1002:{next(_ids)}",
        sent_at=sent_at,
        author_role=AuthorRole.PERSON,
        author_id=author,
        author_name="Иван Петров",
        text=text,
        content_kind=kind,
        reply_to_id=reply_to,
    )


def official(
    sent_at: datetime,
    reply_to: str | None,
    text: str = FINAL_ANSWER,
    *,
    page: PageRef = CHANNEL,
    thread: ThreadRef = POST,
    role: AuthorRole = AuthorRole.PAGE,
    author: str | None = "-1001",
    message_id: str | None = None,
    conversation: bool = False,
) -> MessageEvent:
    return MessageEvent(
        page=page,
        thread=thread,
        message_id=message_id or f"-1002:{next(_ids)}",
        sent_at=sent_at,
        author_role=role,
        author_id=author,
        text=text,
        reply_to_id=reply_to,
        answers_conversation=conversation,
    )


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
