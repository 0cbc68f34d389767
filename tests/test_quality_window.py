"""The hourly reply rescoring (`score_replies(since=…)`) reads only the lookback window, yet gives
the same scores and template flags as rescoring every reply of the page (docs/METRICS.md)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import quality
from storage.engine import SessionFactory, core
from storage.models import Appeal, OfficialReply, Page, Thread
from storage.templates import template_hash

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
TEMPLATES = [
    "Здравствуйте! Ваше обращение передано в управление ЖКХ, ответ будет дан в установленный срок.",
    "Добрый день. Благодарим за обращение, информация направлена ответственным специалистам.",
    "Здравствуйте, Мария! Ремонт дороги на улице Садовой включён в план работ на следующий год.",
]
INTERIM = "Ваше обращение принято в работу, мы уточняем информацию и вернёмся с ответом."


def _variant(rng: random.Random, text: str) -> str:
    """A near-duplicate: a digit, a word's case or one short word changed."""
    choice = rng.randrange(3)
    if choice == 0:
        return f"{text} {rng.randrange(100)}"
    if choice == 1:
        return text.replace("обращение", "Обращение").replace("ё", "е")
    words = text.split()
    words[rng.randrange(len(words))] = "и"
    return " ".join(words)


def _reply_text(rng: random.Random, number: int) -> str:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(TEMPLATES)
    if roll < 0.45:
        return _variant(rng, rng.choice(TEMPLATES))
    if roll < 0.52:
        return rng.choice(["Спасибо, принято.", "Спасибо принято", "Решено."])  # short, exact
    if roll < 0.55:
        return rng.choice(["", "123 !!", "👍"])  # nothing to compare
    return (
        f"Здравствуйте! По вашему вопросу номер {number}: бригада выедет "
        f"{rng.choice(['завтра', 'в пятницу', 'пятого числа'])} на участок "
        f"{rng.choice(['Ленина', 'Мира', 'Гагарина', 'Кирова'])} {rng.randrange(1000)}, "
        f"{rng.choice(['позвоните', 'напишите', 'обратитесь'])} мастеру {'абвгд' * (number % 7)}."
    )


async def _page_and_thread(session: AsyncSession, external_id: str) -> tuple[Page, Thread]:
    """A Telegram channel page with its comments thread, flushed (both have ids)."""
    page = Page(platform="telegram", external_id=external_id, kind="tg_channel")
    session.add(page)
    await session.flush()
    assert page.id is not None
    thread = Thread(page_id=page.id, external_id="t", kind="comments")
    session.add(thread)
    await session.flush()
    assert thread.id is not None
    return page, thread


async def _fixture(sessions: SessionFactory) -> None:
    """Three pages: templates, near-duplicates, short identical texts, interim replies, ratings,
    re-opens, replies sharing a timestamp, unlinked replies and a reply answering two appeals."""
    rng = random.Random(11)
    async with sessions() as session:
        number = 0
        for page_number in (1, 2, 3):
            page, thread = await _page_and_thread(session, f"-100{page_number}")
            for appeal_number in range(60):
                received = START + timedelta(hours=3 * appeal_number + page_number)
                appeal = Appeal(
                    page_id=page.id,
                    thread_id=thread.id,
                    received_at=received,
                    sla_deadline=received + timedelta(hours=8),
                )
                if rng.random() < 0.3:
                    appeal.rating = rng.choice([1, -1])
                    appeal.rated_at = received + timedelta(hours=rng.choice([1, 30]))
                if rng.random() < 0.2:
                    appeal.reopened_at = received + timedelta(hours=rng.choice([2, 20]))
                session.add(appeal)
                await session.flush()
                replies: list[OfficialReply] = []
                for order in range(rng.choice([1, 1, 2, 3])):
                    number += 1
                    interim = order == 0 and rng.random() < 0.3
                    # Whole hours: replies of different appeals share timestamps.
                    sent = received + timedelta(hours=order * 6 + rng.choice([1, 2, 3]))
                    reply = OfficialReply(
                        page_id=page.id,
                        thread_id=thread.id,
                        external_id=str(number),
                        author_role="page",
                        text=INTERIM if interim else _reply_text(rng, number),
                        sent_at=sent,
                        appeal_id=appeal.id,
                        is_interim=interim,
                    )
                    session.add(reply)
                    replies.append(reply)
                if rng.random() < 0.1:  # never linked to an appeal
                    number += 1
                    session.add(
                        OfficialReply(
                            page_id=page.id,
                            thread_id=thread.id,
                            external_id=str(number),
                            author_role="page",
                            text=rng.choice(TEMPLATES),
                            sent_at=received + timedelta(hours=2),
                        )
                    )
                await session.flush()
                if replies:
                    appeal.first_reply_id = min(replies, key=lambda r: (r.sent_at, r.id or 0)).id
                    finals = [r for r in replies if not r.is_interim]
                    if finals:
                        appeal.final_reply_id = min(finals, key=lambda r: (r.sent_at, r.id or 0)).id
            # A conversation reply answering a second appeal: it opens that one too.
            shared = Appeal(
                page_id=page.id,
                thread_id=thread.id,
                received_at=START + timedelta(days=6),
                sla_deadline=START + timedelta(days=7),
                first_reply_id=replies[0].id if replies else None,
            )
            session.add(shared)
        await session.commit()


async def _state(sessions: SessionFactory) -> dict[str, Any]:
    async with sessions() as session:
        replies = await core(
            session,
            sql_text(
                "SELECT id, quality_score, quality_parts, is_template, is_formal "
                "FROM official_reply ORDER BY id"
            ),
        )
        appeals = await core(
            session,
            sql_text(
                "SELECT id, quality_score, answer_templated, first_quality_score, "
                "first_answer_templated FROM appeal ORDER BY id"
            ),
        )
        return {
            "replies": [
                (row[0], row[1], row[2] if isinstance(row[2], dict) else str(row[2]), *row[3:])
                for row in replies.all()
            ],
            "appeals": [tuple(row) for row in appeals.all()],
        }


async def _scramble(sessions: SessionFactory, since: datetime) -> int:
    """Wipe what the hourly pass must compute again; forget some stored hashes."""
    async with sessions() as session:
        window = [
            int(rid)
            for (rid,) in (
                await core(
                    session,
                    sql_text(
                        "SELECT id FROM official_reply "
                        "WHERE sent_at >= :since AND appeal_id IS NOT NULL"
                    ),
                    {"since": since},
                )
            ).all()
        ]
        for rid in window:
            await core(
                session,
                sql_text(
                    "UPDATE official_reply SET quality_score = -1, quality_parts = NULL, "
                    "is_template = NULL, is_formal = NULL WHERE id = :rid"
                ),
                {"rid": rid},
            )
            await core(
                session,
                sql_text(
                    "UPDATE appeal SET quality_score = -1, answer_templated = NULL, "
                    "first_quality_score = -1, first_answer_templated = NULL "
                    "WHERE first_reply_id = :rid OR final_reply_id = :rid"
                ),
                {"rid": rid},
            )
        await core(
            session, sql_text("UPDATE official_reply SET template_hash = NULL WHERE id % 7 = 0")
        )
        await session.commit()
        return len(window)


async def test_hourly_window_scores_as_the_full_pass(
    engine: AsyncEngine, sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short fuzzy window, so that replies before the lookback decide near-duplicates in it.
    monkeypatch.setattr(quality, "BATCH_WINDOW", 8)
    await _fixture(sessions)
    async with sessions() as session:
        await quality.score_replies(session)
        await session.commit()
    full = await _state(sessions)
    flagged = [row for row in full["replies"] if row[3]]
    assert len(flagged) > 50 and len(flagged) < len(full["replies"]) - 50
    for cut in (timedelta(days=2), timedelta(days=4, hours=7), timedelta(days=6, hours=20)):
        since = START + cut
        wiped = await _scramble(sessions, since)
        assert wiped > 20
        assert await _state(sessions) != full
        async with sessions() as session:
            scored = await quality.score_replies(session, since=since)
            await session.commit()
        assert scored > 20
        now = await _state(sessions)
        for part in ("replies", "appeals"):
            differing = [(a, b) for a, b in zip(now[part], full[part], strict=True) if a != b]
            assert not differing, (since, part, differing[:3])
    async with sessions() as session:
        rows = await core(session, sql_text("SELECT text, template_hash FROM official_reply"))
        assert all(stored == template_hash(text) for text, stored in rows.all())


async def test_a_far_identical_text_and_an_edit_are_seen(sessions: SessionFactory) -> None:
    """Identical texts count across the page's whole history, near-duplicates only within the
    window of earlier replies; an ORM edit of the text rewrites the hash."""
    async with sessions() as session:
        page, thread = await _page_and_thread(session, "-1001")
        replies = []
        texts = [TEMPLATES[0], *(f"Уникальный ответ {n} " + "жэ" * n for n in range(30))]
        texts += [TEMPLATES[0], TEMPLATES[1] + " 1"]
        for number, text in enumerate(texts):
            received = START + timedelta(hours=number)
            appeal = Appeal(
                page_id=page.id,
                thread_id=thread.id,
                received_at=received,
                sla_deadline=received + timedelta(hours=8),
            )
            session.add(appeal)
            await session.flush()
            reply = OfficialReply(
                page_id=page.id,
                thread_id=thread.id,
                external_id=str(number),
                author_role="page",
                text=text,
                sent_at=received + timedelta(minutes=5),
                appeal_id=appeal.id,
            )
            session.add(reply)
            replies.append(reply)
        await session.flush()
        replies[0].text = TEMPLATES[1]  # edited: now a near-duplicate of the last one, far away
        await session.commit()
        since = replies[-2].sent_at
        assert await quality.score_replies(session, since=since) == 2
        await session.commit()
        assert replies[0].template_hash == template_hash(TEMPLATES[1])
        last_two = [reply.is_template for reply in replies[-2:]]
    # TEMPLATES[0] was the first reply's text before the edit only: no other appeal has it now.
    # The last reply is a near-duplicate of the edited first one, 32 replies back: before the
    # window, within the 1 000 earlier replies compared.
    assert last_two == [False, True]
