"""Quality of official replies, 0–100: a documented checklist (docs/METRICS.md, "Quality").

| part                | points | passes when                                                    |
|---------------------|--------|----------------------------------------------------------------|
| `not_template`      | 25     | no near-duplicate of it answers a different appeal of the page |
| `not_interim`       | 15     | it is not an interim-only acknowledgement                      |
| `concrete`          | 25     | action 10, date 5, responsible body 5, contact 5 (summed)      |
| `addresses_citizen` | 10     | it addresses the citizen (greeting, name, «Вы»)                |
| `not_reopened`      | 15     | the citizen did not come back dissatisfied after it            |
| `rating`            | 10     | the citizen rated the answer 👍 (only when a rating was given) |

The score is 100 × earned / available, where a part that cannot be judged (no rating given,
template check not run yet) is left out of both. Every part is stored in
`OfficialReply.quality_parts` so a supervisor sees why a reply scored low; the appeal carries
the score of its closing answer (the first final reply, else the first interim one) and of
its first reply (`first_quality_score`, what a report counts while the final is after its `at`).

When scoring happens: ingest scores each linked reply at once (`score_reply_on_ingest`),
including a template check against the page's recent replies; `rescore_appeal` refreshes an
appeal's replies when a rating or a re-open arrives; `score_replies` rescores a page in one
batch (imports, nightly) with the same rules and a longer template window.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import and_, bindparam, or_, select, update
from sqlmodel import col
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import text as text_analysis
from bot.clock import utc_now
from storage.db import Db, as_utc
from storage.engine import core
from storage.models import Appeal, OfficialReply, table_of
from storage.templates import key_hash, template_hash, template_key

logger = logging.getLogger(__name__)

POINTS: dict[str, float] = {
    "not_template": 25,
    "not_interim": 15,
    "concrete": 25,
    "addresses_citizen": 10,
    "not_reopened": 15,
    "rating": 10,
}
CONCRETE_POINTS: dict[str, float] = {"action": 10, "date": 5, "body": 5, "contact": 5}

# Near-duplicate threshold: rapidfuzz normalised Indel similarity (0..100) of normalised texts.
TEMPLATE_SIMILARITY = 90.0
# Shorter normalised texts count as templates only when identical (fuzzy ratios of short
# strings jump by tens of points per letter).
TEMPLATE_MIN_FUZZY_LENGTH = 30
# How many earlier replies of the page a reply is compared with (fuzzy); identical texts are
# found across the whole batch through a hash.
INGEST_WINDOW = 200
BATCH_WINDOW = 1000

R = table_of(OfficialReply).c
A = table_of(Appeal).c


def similar(first: str, second: str) -> bool:
    """Whether two normalised texts are near-duplicates."""
    if not first or not second:
        return False
    if first == second:
        return True
    if min(len(first), len(second)) < TEMPLATE_MIN_FUZZY_LENGTH:
        return False
    return fuzz.ratio(first, second, score_cutoff=TEMPLATE_SIMILARITY) > 0


@dataclass(frozen=True, slots=True)
class Judged:
    """What the citizen's side says about the answers of one appeal."""

    rating: int | None = None
    rated_at: datetime | None = None
    reopened_at: datetime | None = None


def score_parts(
    text: str,
    *,
    is_interim: bool,
    is_template: bool | None,
    sent_at: datetime,
    judged: Judged,
) -> tuple[float, dict[str, Any]]:
    """The score 0..100 and its parts for one reply."""
    content = text_analysis.reply_content(text)
    named = {
        "action": content.names_action,
        "date": content.names_date,
        "body": content.names_body,
        "contact": content.names_contact,
    }
    concrete = sum(CONCRETE_POINTS[name] for name, ok in named.items() if ok)
    reopened = judged.reopened_at is not None and judged.reopened_at > sent_at
    rated = judged.rating is not None and (judged.rated_at is None or judged.rated_at >= sent_at)
    checks: dict[str, bool | None] = {
        "not_template": None if is_template is None else not is_template,
        "not_interim": not is_interim,
        "concrete": concrete > 0,
        "addresses_citizen": content.addresses_citizen,
        "not_reopened": not reopened,
        "rating": (judged.rating == 1) if rated else None,
    }
    parts: dict[str, Any] = {}
    earned = available = 0.0
    for name, ok in checks.items():
        maximum = 0.0 if ok is None else POINTS[name]
        points = concrete if name == "concrete" else (maximum if ok else 0.0)
        parts[name] = {"ok": ok, "points": points, "max": maximum}
        earned += points
        available += maximum
    parts["concrete"].update(named)
    score = round(100.0 * earned / available, 1) if available else 0.0
    return score, parts


def is_formal_reply(text: str, *, is_interim: bool, is_template: bool | None) -> bool | None:
    """«Отписка» (docs/METRICS.md): a final reply that names no concrete action,
    date or responsible body and is a template or only redirects the citizen elsewhere.

    An interim reply is never one (it is not final). None: not a redirect and the template
    check has not run yet.
    """
    if is_interim or not text.strip():
        return False
    content = text_analysis.reply_content(text)
    if content.names_action or content.names_date or content.names_body:
        return False
    if text_analysis.is_redirect(text):
        return True
    return is_template


def _closing_reply_id(appeal: Appeal) -> int | None:
    return appeal.final_reply_id or appeal.first_reply_id


# -- at ingest ----------------------------------------------------------------------------------


async def _recent_texts(
    session: AsyncSession, reply: OfficialReply, limit: int
) -> list[tuple[int, int, str]]:
    """(id, appeal_id, template key) of the page's latest replies to other appeals."""
    rows = await core(
        session,
        select(R.id, R.appeal_id, R.text)
        .where(
            R.page_id == reply.page_id,
            R.id != reply.id,
            R.appeal_id.is_not(None),
            R.appeal_id != reply.appeal_id,
        )
        .order_by(R.sent_at.desc())
        .limit(limit),
    )
    return [(int(rid), int(aid), template_key(text or "")) for rid, aid, text in rows.all()]


def _find_duplicates(key: str, candidates: Sequence[tuple[int, int, str]]) -> list[int]:
    """Ids of candidates that are near-duplicates of `key`."""
    if not key:
        return []
    found = [rid for rid, _, other in candidates if other == key]
    if len(key) >= TEMPLATE_MIN_FUZZY_LENGTH:
        matches = process.extract(
            key,
            {rid: other for rid, _, other in candidates if len(other) >= TEMPLATE_MIN_FUZZY_LENGTH},
            scorer=fuzz.ratio,
            score_cutoff=TEMPLATE_SIMILARITY,
            limit=None,
        )
        found += [rid for _, _, rid in matches]
    return sorted(set(found))


async def _judged(session: AsyncSession, appeal_id: int | None) -> Judged:
    if appeal_id is None:
        return Judged()
    appeal = await session.get(Appeal, appeal_id)
    if appeal is None:
        return Judged()
    return Judged(appeal.rating, appeal.rated_at, appeal.reopened_at)


async def _score_reply(session: AsyncSession, reply: OfficialReply) -> None:
    reply.quality_score, reply.quality_parts = score_parts(
        reply.text,
        is_interim=reply.is_interim,
        is_template=reply.is_template,
        sent_at=reply.sent_at,
        judged=await _judged(session, reply.appeal_id),
    )
    reply.is_formal = is_formal_reply(
        reply.text, is_interim=reply.is_interim, is_template=reply.is_template
    )
    reply.scored_at = utc_now()


async def _refresh_appeals_of(session: AsyncSession, reply_ids: Iterable[int]) -> None:
    """Copy the closing answer's score to the appeals that answer is closing."""
    ids = list(reply_ids)
    if not ids:
        return
    appeals = await session.exec(
        orm_select(Appeal).where(
            or_(col(Appeal.first_reply_id).in_(ids), col(Appeal.final_reply_id).in_(ids))
        )
    )
    for appeal in appeals.all():
        closing_id = _closing_reply_id(appeal)
        closing = await session.get(OfficialReply, closing_id) if closing_id else None
        appeal.quality_score = closing.quality_score if closing else None
        appeal.answer_templated = closing.is_template if closing else None
        first_id = appeal.first_reply_id
        first = await session.get(OfficialReply, first_id) if first_id else None
        appeal.first_quality_score = first.quality_score if first else None
        appeal.first_answer_templated = first.is_template if first else None


async def score_reply_on_ingest(session: AsyncSession, reply: OfficialReply) -> None:
    """Score a newly linked reply, checking it against the page's recent replies for templates."""
    if reply.id is None or reply.appeal_id is None:
        return
    key = template_key(reply.text)
    duplicates = _find_duplicates(key, await _recent_texts(session, reply, INGEST_WINDOW))
    reply.is_template = bool(duplicates)
    await _score_reply(session, reply)
    changed = [reply.id]
    for other_id in duplicates:
        other = await session.get(OfficialReply, other_id)
        if other is not None and other.is_template is not True:
            other.is_template = True
            await _score_reply(session, other)
            changed.append(other_id)
    await session.flush()
    await _refresh_appeals_of(session, changed)
    await session.flush()


def rescore_appeal(db: Db, appeal_id: int) -> None:
    """Rescore the replies of one appeal after a rating or a re-open (templates unchanged).

    On the intake's plain connection, inside the caller's transaction: a rating is folded into
    the scores in the transaction that stores it (issue 16 item 7), so a crash after the commit,
    or a redelivery taken as a duplicate, can no longer leave it out of the reply's quality.
    """
    found = db.row(
        "SELECT rating, rated_at, reopened_at FROM appeal WHERE id = :appeal", {"appeal": appeal_id}
    )
    if found is None:
        return
    judged = Judged(found[0], as_utc(found[1]), as_utc(found[2]))
    now = utc_now()
    replies = db.rows(
        "SELECT id, text, is_interim, is_template, sent_at FROM official_reply "
        "WHERE appeal_id = :appeal ORDER BY id",
        {"appeal": appeal_id},
    )
    for reply_id, text, is_interim, is_template, sent_at in replies:
        score, parts = score_parts(
            text or "",
            is_interim=bool(is_interim),
            is_template=None if is_template is None else bool(is_template),
            sent_at=as_utc(sent_at) or now,
            judged=judged,
        )
        db.update(
            OfficialReply,
            int(reply_id),
            {"quality_score": score, "quality_parts": parts, "scored_at": now},
        )
    for reply_id, *_rest in replies:
        _refresh_appeal_rows(db, int(reply_id))


def _refresh_appeal_rows(db: Db, reply_id: int) -> None:
    """Copy the closing answer's score to the appeals `reply_id` answers (plain connection)."""
    appeals = db.rows(
        "SELECT id, page_id, received_at, first_reply_id, final_reply_id FROM appeal "
        "WHERE first_reply_id = :reply OR final_reply_id = :reply",
        {"reply": reply_id},
    )
    for appeal_id, page_id, received_at, first_id, final_id in appeals:
        closing = _score_row(db, final_id or first_id)
        first = _score_row(db, first_id)
        db.update(
            Appeal,
            int(appeal_id),
            {
                "quality_score": closing[0],
                "answer_templated": closing[1],
                "first_quality_score": first[0],
                "first_answer_templated": first[1],
            },
        )
        received = as_utc(received_at)
        if received is not None:
            db.touch_appeal(int(page_id), received)


def _score_row(db: Db, reply_id: int | None) -> tuple[float | None, bool | None]:
    found = (
        db.row(
            "SELECT quality_score, is_template FROM official_reply WHERE id = :reply",
            {"reply": reply_id},
        )
        if reply_id is not None
        else None
    )
    if found is None:
        return None, None
    return found[0], None if found[1] is None else bool(found[1])


# -- batch --------------------------------------------------------------------------------------


def _template_flags(
    rows: Sequence[tuple[int, int | None, str]], window: int, seed: int = 0
) -> dict[int, bool]:
    """Template flag of every reply that answers an appeal: near-duplicates across appeals.

    The first `seed` rows are only compared with (their own flags are not judged): the replies
    before a rescored window.
    """
    flags = {rid: False for rid, appeal_id, _ in rows if appeal_id is not None}
    by_key: dict[str, list[tuple[int, int]]] = {}
    recent: deque[tuple[int, int, str]] = deque(maxlen=window)
    for number, (rid, appeal_id, text) in enumerate(rows):
        if appeal_id is None:
            continue
        key = template_key(text)
        if not key:
            continue
        if number < seed:
            by_key.setdefault(key, []).append((rid, appeal_id))
            if len(key) >= TEMPLATE_MIN_FUZZY_LENGTH:
                recent.append((rid, appeal_id, key))
            continue
        same = by_key.setdefault(key, [])
        if any(other_appeal != appeal_id for _, other_appeal in same):
            flags[rid] = True
            for other_id, other_appeal in same:
                if other_appeal != appeal_id:
                    flags[other_id] = True
        same.append((rid, appeal_id))
        if len(key) >= TEMPLATE_MIN_FUZZY_LENGTH:
            candidates = [c for c in recent if c[1] != appeal_id and c[2] != key]
            for other_id in _find_duplicates(key, candidates):
                flags[rid] = flags[other_id] = True
            recent.append((rid, appeal_id, key))
    return flags


async def score_replies(
    session: AsyncSession, *, page_id: int | None = None, since: datetime | None = None
) -> int:
    """(Re)score every reply linked to an appeal (of a page, sent since `since`); returns how many.

    Template detection looks at all of the page's replies (identical texts) and the previous
    `BATCH_WINDOW` replies (near-duplicates), including replies before `since`. Without `since`
    (imports) the page's replies are read in full; with it (the hourly scheduler) only the
    replies since `since` and the `BATCH_WINDOW` long-text ones before them are read, identical
    texts elsewhere in the page's history are found through `official_reply.template_hash`, and
    the flags and scores are the same as the full pass gives for those replies.
    """
    page_query = select(R.page_id).distinct()
    if page_id is not None:
        page_query = page_query.where(R.page_id == page_id)
    page_ids = [int(pid) for (pid,) in (await core(session, page_query)).all()]
    if since is not None:
        await _hash_missing(session)
    scored = 0
    now = utc_now()
    for pid in page_ids:
        if since is None:
            data = await _page_rows(session, pid)
            flags = _template_flags([(row[0], row[1], row[2] or "") for row in data], BATCH_WINDOW)
        else:
            data, identical = await _window_rows(session, pid, since)
            if not data:
                continue
            earlier = await _earlier_fuzzy_rows(session, pid, since, BATCH_WINDOW)
            flags = _template_flags(
                [*earlier, *((row[0], row[1], row[2] or "") for row in data)],
                BATCH_WINDOW,
                seed=len(earlier),
            )
            for rid in identical:
                flags[rid] = True
        params: list[dict[str, Any]] = []
        for rid, _, text, sent_at, is_interim, rating, rated_at, reopened_at in data:
            if since is not None and sent_at < since:
                continue
            score, parts = score_parts(
                text or "",
                is_interim=bool(is_interim),
                is_template=flags.get(rid, False),
                sent_at=sent_at,
                judged=Judged(rating, rated_at, reopened_at),
            )
            params.append(
                {
                    "rid": rid,
                    "quality_score": score,
                    "quality_parts": parts,
                    "is_template": flags.get(rid, False),
                    "is_formal": is_formal_reply(
                        text or "", is_interim=bool(is_interim), is_template=flags.get(rid, False)
                    ),
                    "scored_at": now,
                }
            )
        if not params:
            continue
        await _update_by_id(session, OfficialReply, params, "rid")
        scored += len(params)
        if since is None:
            await _copy_to_appeals(session, pid)
        else:
            await _copy_to_appeals(session, pid, [row["rid"] for row in params])
    await session.flush()
    logger.info("качество ответов пересчитано: ответов — %d, страниц — %d", scored, len(page_ids))
    return scored


def _scored_columns() -> tuple[Any, ...]:
    return (R.id, R.appeal_id, R.text, R.sent_at, R.is_interim, A.rating, A.rated_at, A.reopened_at)


async def _page_rows(session: AsyncSession, page_id: int) -> Sequence[Any]:
    """Every linked reply of the page with what scoring needs, oldest first."""
    rows = await core(
        session,
        select(*_scored_columns())
        .join(table_of(Appeal), A.id == R.appeal_id)
        .where(R.page_id == page_id)
        .order_by(R.sent_at, R.id),
    )
    return rows.all()


async def _window_rows(
    session: AsyncSession, page_id: int, since: datetime
) -> tuple[list[Any], set[int]]:
    """The page's linked replies sent since `since`, oldest first, and the ids of those whose
    normalised text is that of another linked reply of the page answering a different appeal
    (at any time: through `template_hash` and `ix_official_reply_template`)."""
    other = table_of(OfficialReply).alias("same_text")
    other_appeal = table_of(Appeal).alias("same_text_appeal")

    def same_text(different: Any) -> Any:
        # A range on the index's last column: the unlinked replies (NULL, first) are skipped.
        return (
            select(other.c.id)
            .join(other_appeal, other_appeal.c.id == other.c.appeal_id)
            .where(
                other.c.template_hash == R.template_hash,
                other.c.page_id == R.page_id,
                different,
            )
            .exists()
        )

    identical = and_(
        R.template_hash != _EMPTY_KEY_HASH,  # an empty text is never a template
        or_(same_text(other.c.appeal_id < R.appeal_id), same_text(other.c.appeal_id > R.appeal_id)),
    )
    rows = await core(
        session,
        select(*_scored_columns(), identical.label("identical"))
        .join(table_of(Appeal), A.id == R.appeal_id)
        .where(R.page_id == page_id, R.sent_at >= since)
        .order_by(R.sent_at, R.id),
    )
    data: list[Any] = []
    same: set[int] = set()
    for *row, has_identical in rows.all():
        data.append(tuple(row))
        # An empty normalised text is never a template (`_template_flags`).
        if has_identical and template_key(row[2] or ""):
            same.add(int(row[0]))
    return data, same


async def _earlier_fuzzy_rows(
    session: AsyncSession, page_id: int, since: datetime, window: int
) -> list[tuple[int, int | None, str]]:
    """The last `window` linked replies of the page before `since` whose normalised text is long
    enough for the fuzzy comparison, oldest first: what `_template_flags` compares the first
    replies since `since` with."""
    found: list[tuple[int, int | None, str]] = []
    cursor: tuple[datetime, int] | None = None
    chunk = window
    while len(found) < window:
        query = (
            select(R.id, R.appeal_id, R.text, R.sent_at)
            .join(table_of(Appeal), A.id == R.appeal_id)
            .where(R.page_id == page_id, R.sent_at < since)
        )
        if cursor is not None:
            query = query.where(
                R.sent_at <= cursor[0], or_(R.sent_at < cursor[0], R.id < cursor[1])
            )
        rows = (
            await core(session, query.order_by(R.sent_at.desc(), R.id.desc()).limit(chunk))
        ).all()
        for rid, appeal_id, text, _sent_at in rows:
            if len(template_key(text or "")) >= TEMPLATE_MIN_FUZZY_LENGTH:
                found.append((int(rid), appeal_id, text or ""))
                if len(found) == window:
                    break
        if len(rows) < chunk:
            break
        cursor = (rows[-1][3], int(rows[-1][0]))
        chunk *= 2
    found.reverse()
    return found


async def _hash_missing(session: AsyncSession) -> None:
    """Give replies written without it (a writer that forgot) their `template_hash`."""
    rows = (
        await core(session, select(R.id, R.text).where(R.template_hash.is_(None)).order_by(R.id))
    ).all()
    if rows:
        params = [{"rid": rid, "template_hash": template_hash(text)} for rid, text in rows]
        await _update_by_id(session, OfficialReply, params, "rid")
        logger.info("хэш шаблона записан ответам без него: %d", len(rows))


async def _copy_to_appeals(
    session: AsyncSession, page_id: int, reply_ids: Sequence[int] | None = None
) -> None:
    """Set every appeal's quality from its closing and its first reply (one query per page).

    With `reply_ids`, only the appeals one of them opens or closes (the others' replies were
    not rescored, so what they carry stands).
    """
    if reply_ids is None:
        await _copy_rows(session, A.page_id == page_id)
        return
    for start in range(0, len(reply_ids), _IN_CHUNK):
        chunk = list(reply_ids[start : start + _IN_CHUNK])
        await _copy_rows(session, or_(A.first_reply_id.in_(chunk), A.final_reply_id.in_(chunk)))


_IN_CHUNK = 500
_EMPTY_KEY_HASH = key_hash("")


async def _copy_rows(session: AsyncSession, condition: Any) -> None:
    first = table_of(OfficialReply).alias("first_reply")
    rows = await core(
        session,
        select(A.id, R.quality_score, R.is_template, first.c.quality_score, first.c.is_template)
        .join(
            table_of(OfficialReply),
            R.id == _closing_column(),
        )
        .outerjoin(first, first.c.id == A.first_reply_id)
        .where(condition),
    )
    params = [
        {
            "aid": aid,
            "quality_score": score,
            "answer_templated": templated,
            "first_quality_score": first_score,
            "first_answer_templated": first_templated,
        }
        for aid, score, templated, first_score, first_templated in rows.all()
    ]
    if params:
        await _update_by_id(session, Appeal, params, "aid")


async def _update_by_id(
    session: AsyncSession, model: type[Any], params: list[dict[str, Any]], key: str
) -> None:
    """One executemany UPDATE of the columns in `params` by id, mirrored into loaded objects."""
    table = model.__table__
    columns: dict[str, Any] = {name: bindparam(name) for name in params[0] if name != key}
    await core(session, update(table).where(table.c.id == bindparam(key)).values(**columns), params)
    _sync_loaded(session, model, params, key)


def _sync_loaded(
    session: AsyncSession, model: type[Any], params: list[dict[str, Any]], key: str
) -> None:
    """Bring objects already loaded in the session in line with a bulk UPDATE just run.

    Expiring them instead would make the next attribute access lazy-load, which an async
    session cannot do implicitly.
    """
    by_id = {row[key]: row for row in params}
    for instance in list(session.sync_session.identity_map.values()):
        if isinstance(instance, model) and instance.id in by_id:
            for name, value in by_id[instance.id].items():
                if name != key:
                    setattr(instance, name, value)


def _closing_column() -> Any:
    from sqlalchemy import func

    return func.coalesce(A.final_reply_id, A.first_reply_id)
