"""The one ingest path: every normalised event is decided and stored here.

This is where an appeal is decided: a citizen message becomes an appeal, joins an open one, or
stays a plain comment; an official message is linked to the appeals it answers and sets their
first and final response times. Nothing here knows Telegram or VK. Time is always the platform's
`date` carried by the event; the wall clock is never used for metrics.

Every source reaches this through the intake use case (bot/services/intake.py), which stores
the raw update once, applies the one policy for redeliveries and failures, and commits. The
decision runs as synchronous code over plain SQL (`storage.repositories.Db`) in that
transaction: on SQLite in one trip to the database thread per event, which is what lets the
intake keep up with thousands of updates a second (docs/BENCHMARKS.md). The quality of a reply
is scored here from its own text only; the template check across replies is the batch
`quality.score_replies`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial

from sqlmodel.ext.asyncio.session import AsyncSession

from bot import text as text_analysis
from bot.clock import utc_now
from bot.events import (
    AuthorRole,
    DeleteEvent,
    Deleter,
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
from bot.services.policy import PageDefaults, final_deadline, response_seconds, sla_deadline
from storage import repositories as repo
from storage.db import Db, insert_row, run_in_transaction
from storage.models import Appeal, CitizenMessage, OfficialReply, Page
from storage.repositories import AppealRow

logger = logging.getLogger(__name__)

# How far up a reply chain we look for the appeal an official message answers.
MAX_CHAIN = 25
POSITIVE_REACTIONS = frozenset({"👍", "❤", "❤️", "🔥", "👏", "🙏", "🥰", "😍", "💯", "🤝", "⚡"})
NEGATIVE_REACTIONS = frozenset({"👎", "😡", "🤬", "💩", "🤮", "😢", "🤡", "😭"})


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
class _Decided:
    result: IngestResult
    rescore: tuple[int, ...] = ()  # appeals whose replies quality must rescore (rating, re-open)


class _Reply:
    """The fields of an official reply `_apply_reply` needs."""

    __slots__ = ("id", "is_interim", "sent_at")

    def __init__(self, reply_id: int, sent_at: datetime, is_interim: bool) -> None:
        self.id, self.sent_at, self.is_interim = reply_id, sent_at, is_interim


class IngestService:
    """Decides and stores normalised events inside the caller's session (the caller commits)."""

    def __init__(self, session: AsyncSession | None, defaults: PageDefaults | None = None) -> None:
        self.session = session  # None: only `decide` is used (the intake writer's thread)
        self.defaults = defaults or PageDefaults()

    async def handle(self, event: Event) -> IngestResult:
        assert self.session is not None, "IngestService.handle needs a session"
        decided = await run_in_transaction(self.session, partial(self._decide_scored, event))
        return decided.result

    def _decide_scored(self, event: Event, db: Db) -> _Decided:
        decided = self._decide(event, db)
        for appeal_id in decided.rescore:
            quality.rescore_appeal(db, appeal_id)  # a rating, a re-open: in the same transaction
        return decided

    def decide(self, db: Db, event: Event) -> tuple[IngestResult, tuple[int, ...]]:
        """Decide and store `event` synchronously on `db` (storage/writer.py's thread).

        Returns the result and the appeals whose replies `quality.rescore_appeal` must rescore
        in the same transaction (a rating, a re-open, a newly linked reply).
        """
        decided = self._decide(event, db)
        return decided.result, decided.rescore

    def _decide(self, event: Event, db: Db) -> _Decided:
        match event:
            case MessageEvent():
                return self._message(db, event)
            case EditEvent():
                return self._edit(db, event)
            case DeleteEvent():
                return _Decided(self._delete(db, event))
            case RestoreEvent():
                return _Decided(self._restore(db, event))
            case ReactionEvent():
                return self._reaction(db, event)
            case RatingEvent():
                return self._rating(db, event)
            case PostEvent():
                page_id, written = posts.record_post(db, event)
                return _Decided(
                    IngestResult(Outcome.POST if written else Outcome.DUPLICATE, page_id)
                )
            case PostCountersEvent():
                page_id, written = posts.record_counters(db, event)
                return _Decided(
                    IngestResult(Outcome.COUNTERS if written else Outcome.SKIPPED, page_id)
                )
            case SubscribersEvent():
                return _Decided(
                    IngestResult(Outcome.SUBSCRIBERS, posts.record_subscribers(db, event))
                )
        raise TypeError(f"unknown event {type(event).__name__}")  # pragma: no cover

    # -- new messages -------------------------------------------------------------------------

    def _message(self, db: Db, event: MessageEvent) -> _Decided:
        page = repo.ensure_page_row(db, event.page)
        assert page.id is not None
        if repo.message_by_key(db, page.id, event.message_id) is not None:
            return _Decided(IngestResult(Outcome.DUPLICATE, page.id))
        if self._is_official(db, event, page):
            return _Decided(self._official(db, event, page))
        return self._citizen(db, event, page)

    def _is_official(self, db: Db, event: MessageEvent, page: Page) -> bool:
        if event.author_role in (AuthorRole.PAGE, AuthorRole.OPERATOR):
            return True
        if event.author_id is None:
            return False
        assert page.id is not None
        return repo.writes_officially(db, page.platform, event.author_id, page.id)

    def _citizen(self, db: Db, event: MessageEvent, page: Page) -> _Decided:
        assert page.id is not None
        thread_id = repo.ensure_thread_row(db, page.id, event.thread)
        verdict = text_analysis.classify(event.text, event.content_kind)
        message: dict[str, object] = {
            "page_id": page.id,
            "thread_id": thread_id,
            "external_id": event.message_id,
            "author_id": event.author_id,
            "author_name": event.author_name,
            "content_kind": event.content_kind,
            "text": event.text,
            "sent_at": event.sent_at,
            "reply_to_external_id": event.reply_to_id,
            "link": event.link,
            "is_appeal": verdict.is_appeal,
            "topic": verdict.topic,
            "urgent": verdict.urgent,
            "confidence": verdict.confidence,
            "model_version": text_analysis.model_version(),
        }
        open_appeal = None
        if event.author_id is not None:
            open_appeal = repo.open_appeal_row(db, thread_id, event.author_id, event.sent_at)
        if open_appeal is not None:
            # docs/METRICS.md: a second message while the first is unanswered joins that appeal.
            message["appeal_id"] = open_appeal.id
            message_row_id = insert_row(db, CitizenMessage, message)
            self._join(open_appeal, verdict, page)
            linked = self._link_waiting(db, page, open_appeal, event.message_id)
            repo.save_appeal(db, open_appeal)
            return _Decided(
                IngestResult(Outcome.FOLLOW_UP, page.id, (open_appeal.id,), message_row_id),
                (open_appeal.id,) if linked else (),
            )

        rescore: tuple[int, ...] = ()
        if event.author_id is not None and text_analysis.is_dissatisfied(event.text):
            answered = repo.last_answered_row(db, thread_id, event.author_id, event.sent_at)
            if answered is not None:
                # «Reopen» (docs/METRICS.md sec. 2a): the return goes back to the appeal it answers
                # (its final stage waits for a new final reply), not to a new appeal.
                message["is_reopen"] = True
                message["appeal_id"] = answered.id
                message_row_id = repo.insert_row(db, CitizenMessage, message)
                answered.set("messages_count", answered["messages_count"] + 1)
                self._reopen(answered, event.sent_at, page)
                repo.save_appeal(db, answered)
                return _Decided(
                    IngestResult(Outcome.REOPEN, page.id, (answered.id,), message_row_id),
                    (answered.id,),
                )

        if not verdict.is_appeal:
            # Probably not an appeal, not sure: the press chat is asked (bot/services/doubtful).
            message["doubtful"] = text_analysis.is_doubtful(verdict)
            message_row_id = insert_row(db, CitizenMessage, message)
            if event.reply_to_id is not None and repo.waiting_reply_rows(
                db, page.id, event.message_id
            ):
                # Replies to this comment came first: they answer the appeal up its chain.
                target, _ = self._appeal_up_the_chain(db, page.id, event.reply_to_id)
                if target is not None and self._link_waiting(db, page, target, event.message_id):
                    repo.save_appeal(db, target)
                    rescore = tuple(dict.fromkeys((*rescore, target.id)))
            return _Decided(IngestResult(Outcome.COMMENT, page.id, (), message_row_id), rescore)

        appeal_id = self._new_appeal(
            db,
            page,
            thread_id,
            citizen_id=event.author_id,
            citizen_name=event.author_name,
            received_at=event.sent_at,
            topic=verdict.topic,
            urgent=verdict.urgent,
            link=event.link,
        )
        message["appeal_id"] = appeal_id
        message_row_id = insert_row(db, CitizenMessage, message)
        assert message_row_id is not None
        # Only this column changes (no index, no derived column), unless replies were waiting.
        db.update(Appeal, appeal_id, {"first_message_id": message_row_id})
        if self._link_new(db, page, appeal_id, event.message_id):
            rescore = (*rescore, appeal_id)
        return _Decided(
            IngestResult(Outcome.APPEAL, page.id, (appeal_id,), message_row_id), rescore
        )

    def _new_appeal(
        self,
        db: Db,
        page: Page,
        thread_id: int,
        *,
        citizen_id: str | None,
        citizen_name: str | None,
        received_at: datetime,
        topic: str,
        urgent: bool,
        link: str | None,
        first_message_id: int | None = None,
    ) -> int:
        """Insert a new appeal received at `received_at` with its SLA deadline; its id."""
        assert page.id is not None
        hours, deadline = sla_deadline(page, received_at, urgent, self.defaults)
        values: dict[str, object] = {
            "page_id": page.id,
            "thread_id": thread_id,
            "citizen_id": citizen_id,
            "citizen_name": citizen_name,
            "received_at": received_at,
            "topic": topic,
            "urgent": urgent,
            "sla_hours": hours,
            "sla_deadline": deadline,
            "final_deadline": final_deadline(page, received_at, urgent, self.defaults),
            "link": link,
        }
        if first_message_id is not None:
            values["first_message_id"] = first_message_id
        values |= repo.derived_appeal_columns(values)
        appeal_id = repo.insert_row(db, Appeal, values)
        assert appeal_id is not None
        db.touch_appeal(page.id, received_at)
        return appeal_id

    def _link_new(self, db: Db, page: Page, appeal_id: int, external_id: str) -> bool:
        """A new appeal takes the replies stored before its message; any linked?"""
        assert page.id is not None
        waiting = repo.waiting_reply_rows(db, page.id, external_id)
        if not waiting:
            return False
        appeal = repo.appeal_row(db, appeal_id)
        assert appeal is not None
        linked = self._link_waiting(db, page, appeal, external_id, waiting)
        repo.save_appeal(db, appeal)
        return linked

    def promote(
        self, db: Db, message_row_id: int, topic: str, urgent: bool
    ) -> tuple[int | None, tuple[int, ...]]:
        """Make a stored citizen message that is no appeal into a new appeal (one writer).

        A person's «Это обращение» and `otklik reclassify` come here. The appeal is received at
        the message's own date, so its SLA clock is right even if part of it is used up;
        replies to the message stored meanwhile answer it. Returns the appeal id (None if the
        message is unknown or belongs to an appeal already) and the appeals to rescore.
        """
        message = repo.citizen_message_row(db, message_row_id, for_update=True)
        if message is None or message.appeal_id is not None:
            return None, ()
        page = repo.page_by_id_row(db, message.page_id)
        assert page is not None
        appeal_id = self._new_appeal(
            db,
            page,
            message.thread_id,
            citizen_id=message.author_id,
            citizen_name=message.author_name,
            received_at=message.sent_at,
            topic=topic,
            urgent=urgent,
            link=message.link,
            first_message_id=message_row_id,
        )
        db.update(
            CitizenMessage,
            message_row_id,
            {
                "appeal_id": appeal_id,
                "is_appeal": True,
                "topic": topic,
                "urgent": urgent,
                "doubtful": False,
            },
        )
        linked = self._link_new(db, page, appeal_id, message.external_id)
        return appeal_id, (appeal_id,) if linked else ()

    def _link_waiting(
        self,
        db: Db,
        page: Page,
        appeal: AppealRow,
        external_id: str,
        waiting: list[tuple[int, datetime, bool]] | None = None,
    ) -> bool:
        """Link replies stored before the message `external_id` they reply to; any linked?

        Replies can arrive before the message they answer (backfill, imports, out-of-order
        delivery); they are scored once linked (the caller rescores the appeal). `waiting`:
        those replies, if the caller has read them already.
        """
        assert page.id is not None
        if waiting is None:
            waiting = repo.waiting_reply_rows(db, page.id, external_id)
        linked = False
        for reply_id, sent_at, is_interim in waiting:
            if self._apply_reply(appeal, _Reply(reply_id, sent_at, is_interim), page):
                db.update(OfficialReply, reply_id, {"appeal_id": appeal.id})
                linked = True
        return linked

    def _join(self, appeal: AppealRow, verdict: text_analysis.Classification, page: Page) -> None:
        appeal.set("messages_count", appeal["messages_count"] + 1)
        if appeal["topic"] == "other" and verdict.is_appeal and verdict.topic:
            appeal.set("topic", verdict.topic)
        if verdict.urgent and not appeal["urgent"]:
            # The follow-up says it is urgent: the stricter SLA applies from the start.
            hours, deadline = sla_deadline(page, appeal["received_at"], True, self.defaults)
            appeal.set("urgent", True)
            appeal.set("sla_hours", hours)
            appeal.set("sla_deadline", deadline)
            final = final_deadline(page, appeal["received_at"], True, self.defaults)
            appeal.set("final_deadline", final)

    def _official(self, db: Db, event: MessageEvent, page: Page) -> IngestResult:
        assert page.id is not None
        thread_id = repo.ensure_thread_row(db, page.id, event.thread)
        staff_role = {AuthorRole.PAGE: "page", AuthorRole.OPERATOR: "operator"}
        is_interim = text_analysis.is_interim(event.text)
        reply_id = insert_row(
            db,
            OfficialReply,
            {
                "page_id": page.id,
                "thread_id": thread_id,
                "external_id": event.message_id,
                "author_role": staff_role.get(event.author_role, "staff"),
                "author_id": event.author_id,
                "author_name": event.author_name,
                "content_kind": event.content_kind,
                "text": event.text,
                "sent_at": event.sent_at,
                "reply_to_external_id": event.reply_to_id,
                "link": event.link,
                "is_interim": is_interim,
            },
        )
        assert reply_id is not None
        reply = _Reply(reply_id, event.sent_at, is_interim)

        appeals: list[AppealRow] = []
        if event.reply_to_id is not None:
            target, seen_first = self._appeal_up_the_chain(db, page.id, event.reply_to_id)
            if target is not None:
                appeals.append(target)
            elif not seen_first:
                logger.info(
                    "официальный ответ %r отвечает на сообщение %r, которого нет в базе; "
                    "сохранён без связи",
                    event.message_id,
                    event.reply_to_id,
                )
        if event.answers_conversation:
            # docs/METRICS.md: in a conversation the next outgoing message answers every unanswered
            # appeal before it, also when it quotes one (the relay and VK replies always quote);
            # the quoted one stays first, so the reply is filed under it.
            known = {appeal.id for appeal in appeals}
            appeals += [
                appeal
                for appeal in repo.unfinished_rows(db, thread_id, event.sent_at)
                if appeal.id not in known
            ]
        linked = [appeal for appeal in appeals if self._apply_reply(appeal, reply, page)]
        if not linked:
            return IngestResult(Outcome.OFFICIAL, page.id, (), reply_id)
        # Only the reply's own checklist parts here; whether it is a template of other replies
        # is judged by the batch `quality.score_replies` (left out of the score until then).
        first = linked[0]
        score, parts = quality.score_parts(
            event.text,
            is_interim=is_interim,
            is_template=None,
            sent_at=event.sent_at,
            judged=quality.Judged(first["rating"], first["rated_at"], first["reopened_at"]),
        )
        db.update(
            OfficialReply,
            reply_id,
            {
                "appeal_id": first.id,
                "quality_score": score,
                "quality_parts": parts,
                "is_formal": quality.is_formal_reply(
                    event.text, is_interim=is_interim, is_template=None
                ),
                "scored_at": utc_now(),
            },
        )
        for appeal in linked:
            if (appeal["final_reply_id"] or appeal["first_reply_id"]) == reply_id:
                appeal.set("quality_score", score)
                appeal.set("answer_templated", None)
            if appeal["first_reply_id"] == reply_id:
                appeal.set("first_quality_score", score)
                appeal.set("first_answer_templated", None)
            repo.save_appeal(db, appeal)
        return IngestResult(Outcome.REPLY, page.id, tuple(a.id for a in linked), reply_id)

    def _appeal_up_the_chain(
        self, db: Db, page_id: int, external_id: str
    ) -> tuple[AppealRow | None, bool]:
        """The first appeal up the reply_to links from `external_id`; and whether it is known."""
        seen: set[str] = set()
        current: str | None = external_id
        while current is not None and current not in seen and len(seen) < MAX_CHAIN:
            message = repo.message_by_key(db, page_id, current)
            if message is None:
                return None, bool(seen)
            seen.add(current)
            if message.appeal_id is not None:
                return repo.appeal_row(db, message.appeal_id), True
            current = message.reply_to_external_id
        return None, True

    def _apply_reply(self, appeal: AppealRow, reply: _Reply, page: Page) -> bool:
        """Set the appeal's first/final response from `reply`; False if it cannot answer it."""
        if appeal["excluded"] or reply.sent_at < appeal["received_at"]:
            return False
        first_response_at = appeal["first_response_at"]
        if first_response_at is None or reply.sent_at < first_response_at:
            frt_s, frt_work_s = response_seconds(
                page, appeal["received_at"], reply.sent_at, self.defaults
            )
            appeal.set("first_response_at", reply.sent_at)
            appeal.set("first_reply_id", reply.id)
            appeal.set("frt_s", frt_s)
            appeal.set("frt_work_s", frt_work_s)
        final_response_at = appeal["final_response_at"]
        if not reply.is_interim and (
            final_response_at is None or reply.sent_at < final_response_at
        ):
            appeal.set("final_response_at", reply.sent_at)
            appeal.set("final_reply_id", reply.id)
        reopened, reanswered = appeal["reopened_at"], appeal["reanswered_at"]
        if (
            not reply.is_interim
            and appeal["reopen_deadline"] is not None
            and reopened is not None
            and reply.sent_at >= reopened
            and (reanswered is None or reply.sent_at < reanswered)
        ):
            # The new final answer after a re-open.
            appeal.set("reanswered_at", reply.sent_at)
            appeal.set("reanswer_reply_id", reply.id)
        return True

    def _reopen(self, appeal: AppealRow, at: datetime, page: Page) -> None:
        """A 👎 or a dissatisfied return at `at`: the appeal goes back to work.

        `reopened_at` (a quality signal) is the first such moment. If the appeal had its final
        answer by then, the final stage starts again: a new deadline counted from `at`, and the
        next final reply is awaited (`reanswered_at`). An appeal with only an interim answer is
        still in work; its final deadline stays.
        """
        reopened = appeal["reopened_at"]
        if reopened is not None and reopened <= at:
            return
        appeal.set("reopened_at", at)
        finals = [
            moment
            for moment in (appeal["final_response_at"], appeal["answered_offline_at"])
            if moment is not None and moment <= at
        ]
        if finals:
            deadline = final_deadline(page, at, appeal["urgent"], self.defaults)
            appeal.set("reopen_deadline", deadline)
            appeal.set("reanswered_at", None)
            appeal.set("reanswer_reply_id", None)

    # -- changes to known messages ------------------------------------------------------------

    def _known(
        self, db: Db, event: EditEvent | DeleteEvent | RestoreEvent | ReactionEvent
    ) -> tuple[Page | None, repo.StoredMessage | None]:
        page = repo.page_row(db, event.page.platform.value, event.page.external_id)
        if page is None or page.id is None:
            return None, None
        return page, repo.message_by_key(db, page.id, event.message_id)

    def _edit(self, db: Db, event: EditEvent) -> _Decided:
        page, message = self._known(db, event)
        if message is None:
            logger.info("правка неизвестного сообщения %r пропущена", event.message_id)
            return _Decided(
                IngestResult(Outcome.SKIPPED, page.id if page else None, note="unknown message")
            )
        if message.edited_at is not None and message.edited_at >= event.edited_at:
            return _Decided(IngestResult(Outcome.DUPLICATE, message.page_id))
        changes: dict[str, object] = {"text": event.text, "edited_at": event.edited_at}
        rescore: tuple[int, ...] = ()
        if message.side == "official":
            is_interim = text_analysis.is_interim(event.text)
            changes["is_interim"] = is_interim
            state = repo.reply_state(db, message.id)
            db.update(OfficialReply, message.id, changes)
            if state is not None and state[2] != is_interim:
                # An interim reply edited into a final one closes its appeals (and the reverse
                # reopens the final clock): the first final answer is found again.
                rescore = self._refinalise(db, message, state[0], state[1], is_interim)
            if message.appeal_id is not None:
                rescore = tuple(dict.fromkeys((message.appeal_id, *rescore)))
        else:
            db.update(CitizenMessage, message.id, changes)
        return _Decided(IngestResult(Outcome.EDIT, message.page_id, (), message.id), rescore)

    def _refinalise(
        self,
        db: Db,
        reply: repo.StoredMessage,
        thread_id: int,
        sent_at: datetime,
        is_interim: bool,
    ) -> tuple[int, ...]:
        """Recompute the final answer of the appeals an edited reply answers; their ids."""
        changed: list[int] = []
        for appeal in repo.answered_by_rows(db, thread_id, reply.id, reply.appeal_id):
            received = appeal["received_at"]
            candidates = []
            found = repo.first_final_reply_row(db, appeal.id, received)
            if found is not None:
                candidates.append(found)
            current = appeal["final_reply_id"]
            if current is not None and current != reply.id:
                candidates.append((current, appeal["final_response_at"]))
            if not is_interim and sent_at >= received:
                candidates.append((reply.id, sent_at))
            final_id, final_at = min(candidates, key=lambda c: (c[1], c[0]), default=(None, None))
            appeal.set("final_reply_id", final_id)
            appeal.set("final_response_at", final_at)
            if appeal.changes:
                repo.save_appeal(db, appeal)
                changed.append(appeal.id)
        return tuple(changed)

    def _delete(self, db: Db, event: DeleteEvent) -> IngestResult:
        page, message = self._known(db, event)
        if message is None:
            logger.info("удаление неизвестного сообщения %r пропущено", event.message_id)
            return IngestResult(Outcome.SKIPPED, page.id if page else None, note="unknown message")
        if message.deleted_at is not None:
            return IngestResult(Outcome.DUPLICATE, message.page_id)
        deleted_by = _deleted_by(event, message)
        db.update(
            _MODELS[message.side],
            message.id,
            {"deleted_at": event.deleted_at, "deleted_by": deleted_by.value},
        )
        if deleted_by is Deleter.PAGE:
            self._mark_deleted_by_page(db, message, True)
        return IngestResult(Outcome.DELETE, message.page_id, (), message.id)

    def _restore(self, db: Db, event: RestoreEvent) -> IngestResult:
        page, message = self._known(db, event)
        if message is None:
            return IngestResult(Outcome.SKIPPED, page.id if page else None, note="unknown message")
        db.update(_MODELS[message.side], message.id, {"deleted_at": None, "deleted_by": None})
        self._mark_deleted_by_page(db, message, False)
        return IngestResult(Outcome.RESTORE, message.page_id, (), message.id)

    def _mark_deleted_by_page(self, db: Db, message: repo.StoredMessage, deleted: bool) -> None:
        """The appeal records that the page deleted the citizen's first message (or restored it)."""
        if message.side != "citizen" or message.appeal_id is None:
            return
        appeal = repo.appeal_row(db, message.appeal_id)
        if appeal is not None and appeal["first_message_id"] == message.id:
            appeal.set("deleted_by_page", deleted)
            repo.save_appeal(db, appeal)

    def _reaction(self, db: Db, event: ReactionEvent) -> _Decided:
        page, message = self._known(db, event)
        if page is None or page.id is None or event.user_id is None:
            return _Decided(
                IngestResult(Outcome.SKIPPED, note="reaction on an unknown page or anonymous")
            )
        for emoji in event.added:
            repo.upsert_reaction(
                db, page.id, event.message_id, event.user_id, emoji, event.reacted_at
            )
        for emoji in event.removed:
            repo.remove_reaction(
                db, page.id, event.message_id, event.user_id, emoji, event.reacted_at
            )
        # A citizen's reaction to the official answer to their own appeal is their rating.
        rescore: tuple[int, ...] = ()
        if message is not None and message.side == "official" and message.appeal_id is not None:
            appeal = repo.appeal_row(db, message.appeal_id)
            if appeal is not None and appeal["citizen_id"] == event.user_id:
                rating = None
                if any(e in POSITIVE_REACTIONS for e in event.added):
                    rating = 1
                elif any(e in NEGATIVE_REACTIONS for e in event.added):
                    rating = 0
                if rating is not None:
                    appeal.set("rating", rating)
                    appeal.set("rated_at", event.reacted_at)
                    if rating == 0:
                        self._reopen(appeal, event.reacted_at, page)
                    repo.save_appeal(db, appeal)
                    rescore = (appeal.id,)
        return _Decided(IngestResult(Outcome.REACTION, page.id), rescore)

    def _rating(self, db: Db, event: RatingEvent) -> _Decided:
        page = repo.page_row(db, event.page.platform.value, event.page.external_id)
        if page is None or page.id is None:
            return _Decided(IngestResult(Outcome.SKIPPED, note="rating on an unknown page"))
        reply = repo.message_by_key(db, page.id, event.reply_message_id, official_only=True)
        if reply is None or reply.appeal_id is None:
            return _Decided(
                IngestResult(Outcome.SKIPPED, page.id, note="rating of an unknown reply")
            )
        appeal = repo.appeal_row(db, reply.appeal_id)
        if appeal is None:
            return _Decided(
                IngestResult(Outcome.SKIPPED, page.id, note="rating of an unknown appeal")
            )
        appeal.set("rating", 1 if event.positive else 0)
        appeal.set("rated_at", event.rated_at)
        if not event.positive:
            self._reopen(appeal, event.rated_at, page)
        repo.save_appeal(db, appeal)
        return _Decided(IngestResult(Outcome.RATING, page.id, (appeal.id,)), (appeal.id,))


def _deleted_by(event: DeleteEvent, message: repo.StoredMessage) -> Deleter:
    """Who deleted a message, where the platform names the deleter but not their side.

    Only a message's author or the page's managers can delete it: the author deleting a
    citizen's message is the citizen; anybody else is the page.
    """
    if event.deleted_by is not Deleter.UNKNOWN:
        return event.deleted_by
    if event.deleter_id is None or message.author_id is None:
        return Deleter.UNKNOWN
    if event.deleter_id != message.author_id:
        return Deleter.PAGE
    return Deleter.CITIZEN if message.side == "citizen" else Deleter.UNKNOWN


_MODELS: dict[str, type[CitizenMessage] | type[OfficialReply]] = {
    "citizen": CitizenMessage,
    "official": OfficialReply,
}
