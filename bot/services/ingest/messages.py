"""New messages: a citizen's becomes an appeal, joins one or stays a comment; an official's answers.

A citizen message is classified (bot/text/) and becomes a new appeal, joins the citizen's open
appeal in the thread (a follow-up), re-opens the appeal it answers (a dissatisfied return), or
stays a comment. An official message (by the page or staff) is linked to the appeals it answers
— up its reply chain, or every unanswered appeal of a conversation — and moves their clocks
(clock.py). Replies may come before the message they answer (backfill, imports, out-of-order
delivery): they wait unlinked and are linked when it arrives. The quality of a reply is scored
here from its own text only; the template check across replies is the batch
`quality.score_replies`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot import text as text_analysis
from bot.clock import utc_now
from bot.events import AuthorRole, MessageEvent
from bot.services import quality
from bot.services.ingest import reading as read
from bot.services.ingest.clock import Reply, apply_reply, make_urgent, reopen
from bot.services.ingest.reading import TextReading
from bot.services.ingest.result import Decided, IngestResult, Outcome
from bot.services.policy import PageDefaults, final_deadline, sla_deadline
from storage import repositories as repo
from storage.db import Db, insert_row
from storage.models import Appeal, CitizenMessage, OfficialReply, Page
from storage.repositories import AppealRow
from storage.templates import template_hash

logger = logging.getLogger(__name__)

# How far up a reply chain we look for the appeal an official message answers.
MAX_CHAIN = 25


def _message_columns(event: MessageEvent, page_id: int, thread_id: int) -> dict[str, object]:
    """The columns a citizen message and an official reply both take from the event."""
    return {
        "page_id": page_id,
        "thread_id": thread_id,
        "external_id": event.message_id,
        "author_id": event.author_id,
        "author_name": event.author_name,
        "content_kind": event.content_kind,
        "text": event.text,
        "sent_at": event.sent_at,
        "reply_to_external_id": event.reply_to_id,
        "link": event.link,
    }


class NewMessages:
    """Decides new citizen and official messages (and promotes stored ones to appeals)."""

    def __init__(self, defaults: PageDefaults) -> None:
        self.defaults = defaults

    def decide(self, db: Db, event: MessageEvent, reading: TextReading | None = None) -> Decided:
        """A new message: a citizen's (an appeal, a follow-up, a re-open, a comment) or official.

        `reading`: its text read ahead (reading.py); used only if this process's model made it.
        """
        page = repo.ensure_page_row(db, event.page)
        assert page.id is not None
        if repo.message_by_key(db, page.id, event.message_id) is not None:
            return Decided(IngestResult(Outcome.DUPLICATE, page.id))
        reading = read.current(reading)
        if self._is_official(db, event, page):
            return Decided(self._official(db, event, page, reading))
        return self._citizen(db, event, page, reading)

    def _is_official(self, db: Db, event: MessageEvent, page: Page) -> bool:
        if event.author_role in (AuthorRole.PAGE, AuthorRole.OPERATOR):
            return True
        if event.author_id is None:
            return False
        assert page.id is not None
        return repo.writes_officially(db, page.platform, event.author_id, page.id)

    def _citizen(
        self, db: Db, event: MessageEvent, page: Page, reading: TextReading | None
    ) -> Decided:
        assert page.id is not None
        thread_id = repo.ensure_thread_row(db, page.id, event.thread)
        verdict = read.verdict(event, reading)
        message: dict[str, object] = {
            **_message_columns(event, page.id, thread_id),
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
            return Decided(
                IngestResult(Outcome.FOLLOW_UP, page.id, (open_appeal.id,), message_row_id),
                (open_appeal.id,) if linked else (),
            )

        rescore: tuple[int, ...] = ()
        if event.author_id is not None and read.dissatisfied(event, reading):
            answered = repo.last_answered_row(db, thread_id, event.author_id, event.sent_at)
            if answered is not None:
                # «Reopen» (docs/METRICS.md sec. 2a): the return goes back to the appeal it answers
                # (its final stage waits for a new final reply), not to a new appeal.
                message["is_reopen"] = True
                message["appeal_id"] = answered.id
                message_row_id = repo.insert_row(db, CitizenMessage, message)
                answered.set("messages_count", answered["messages_count"] + 1)
                reopen(answered, event.sent_at, page, self.defaults)
                repo.save_appeal(db, answered)
                return Decided(
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
            return Decided(IngestResult(Outcome.COMMENT, page.id, (), message_row_id), rescore)

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
        return Decided(IngestResult(Outcome.APPEAL, page.id, (appeal_id,), message_row_id), rescore)

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
            if apply_reply(appeal, Reply(reply_id, sent_at, is_interim), page, self.defaults):
                db.update(OfficialReply, reply_id, {"appeal_id": appeal.id})
                linked = True
        return linked

    def _join(self, appeal: AppealRow, verdict: text_analysis.Classification, page: Page) -> None:
        appeal.set("messages_count", appeal["messages_count"] + 1)
        if appeal["topic"] == "other" and verdict.is_appeal and verdict.topic:
            appeal.set("topic", verdict.topic)
        if verdict.urgent and not appeal["urgent"]:
            make_urgent(appeal, page, self.defaults)

    def _official(
        self, db: Db, event: MessageEvent, page: Page, reading: TextReading | None
    ) -> IngestResult:
        assert page.id is not None
        thread_id = repo.ensure_thread_row(db, page.id, event.thread)
        staff_role = {AuthorRole.PAGE: "page", AuthorRole.OPERATOR: "operator"}
        is_interim = read.interim(event, reading)
        reply_id = insert_row(
            db,
            OfficialReply,
            {
                **_message_columns(event, page.id, thread_id),
                "author_role": staff_role.get(event.author_role, "staff"),
                "is_interim": is_interim,
                "template_hash": template_hash(event.text),
            },
        )
        assert reply_id is not None
        reply = Reply(reply_id, event.sent_at, is_interim)

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
        linked = [appeal for appeal in appeals if apply_reply(appeal, reply, page, self.defaults)]
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
