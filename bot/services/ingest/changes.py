"""Changes to known messages: edits, deletions, restores, reactions and ratings.

An edit changes the text (an interim reply edited into a final one closes its appeals, and the
reverse reopens the final clock); a deletion is recorded with who deleted it (by the page is a
quality signal), never erased; a citizen's reaction to the answer to their own appeal, or a
rating, is their rating, and a 👎 re-opens the appeal (clock.py). Every change to a message we
never stored is skipped and said in the log.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot import text as text_analysis
from bot.events import DeleteEvent, Deleter, EditEvent, RatingEvent, ReactionEvent, RestoreEvent
from bot.services.ingest.clock import reopen
from bot.services.ingest.result import Decided, IngestResult, Outcome
from bot.services.policy import PageDefaults
from storage import repositories as repo
from storage.db import Db
from storage.models import CitizenMessage, OfficialReply, Page
from storage.templates import template_hash

logger = logging.getLogger(__name__)

POSITIVE_REACTIONS = frozenset({"👍", "❤", "❤️", "🔥", "👏", "🙏", "🥰", "😍", "💯", "🤝", "⚡"})
NEGATIVE_REACTIONS = frozenset({"👎", "😡", "🤬", "💩", "🤮", "😢", "🤡", "😭"})


class KnownMessageChanges:
    """Decides changes to messages stored before (edits, deletions, reactions, ratings)."""

    def __init__(self, defaults: PageDefaults) -> None:
        self.defaults = defaults

    def _known(
        self, db: Db, event: EditEvent | DeleteEvent | RestoreEvent | ReactionEvent
    ) -> tuple[Page | None, repo.StoredMessage | None]:
        page = repo.page_row(db, event.page.platform.value, event.page.external_id)
        if page is None or page.id is None:
            return None, None
        return page, repo.message_by_key(db, page.id, event.message_id)

    def edit(self, db: Db, event: EditEvent) -> Decided:
        page, message = self._known(db, event)
        if message is None:
            logger.info("правка неизвестного сообщения %r пропущена", event.message_id)
            return Decided(
                IngestResult(Outcome.SKIPPED, page.id if page else None, note="unknown message")
            )
        if message.edited_at is not None and message.edited_at >= event.edited_at:
            return Decided(IngestResult(Outcome.DUPLICATE, message.page_id))
        changes: dict[str, object] = {"text": event.text, "edited_at": event.edited_at}
        rescore: tuple[int, ...] = ()
        if message.side == "official":
            is_interim = text_analysis.is_interim(event.text)
            changes["is_interim"] = is_interim
            changes["template_hash"] = template_hash(event.text)
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
        return Decided(IngestResult(Outcome.EDIT, message.page_id, (), message.id), rescore)

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

    def delete(self, db: Db, event: DeleteEvent) -> IngestResult:
        page, message = self._known(db, event)
        if message is None:
            logger.info("удаление неизвестного сообщения %r пропущено", event.message_id)
            return IngestResult(Outcome.SKIPPED, page.id if page else None, note="unknown message")
        if message.deleted_at is not None:
            return IngestResult(Outcome.DUPLICATE, message.page_id)
        deleted_by = deleted_by_whom(event, message)
        db.update(
            _MODELS[message.side],
            message.id,
            {"deleted_at": event.deleted_at, "deleted_by": deleted_by.value},
        )
        if deleted_by is Deleter.PAGE:
            self._mark_deleted_by_page(db, message, True)
        return IngestResult(Outcome.DELETE, message.page_id, (), message.id)

    def restore(self, db: Db, event: RestoreEvent) -> IngestResult:
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

    def reaction(self, db: Db, event: ReactionEvent) -> Decided:
        page, message = self._known(db, event)
        if page is None or page.id is None or event.user_id is None:
            return Decided(
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
                        reopen(appeal, event.reacted_at, page, self.defaults)
                    repo.save_appeal(db, appeal)
                    rescore = (appeal.id,)
        return Decided(IngestResult(Outcome.REACTION, page.id), rescore)

    def rating(self, db: Db, event: RatingEvent) -> Decided:
        page = repo.page_row(db, event.page.platform.value, event.page.external_id)
        if page is None or page.id is None:
            return Decided(IngestResult(Outcome.SKIPPED, note="rating on an unknown page"))
        reply = repo.message_by_key(db, page.id, event.reply_message_id, official_only=True)
        if reply is None or reply.appeal_id is None:
            return Decided(
                IngestResult(Outcome.SKIPPED, page.id, note="rating of an unknown reply")
            )
        appeal = repo.appeal_row(db, reply.appeal_id)
        if appeal is None:
            return Decided(
                IngestResult(Outcome.SKIPPED, page.id, note="rating of an unknown appeal")
            )
        appeal.set("rating", 1 if event.positive else 0)
        appeal.set("rated_at", event.rated_at)
        if not event.positive:
            reopen(appeal, event.rated_at, page, self.defaults)
        repo.save_appeal(db, appeal)
        return Decided(IngestResult(Outcome.RATING, page.id, (appeal.id,)), (appeal.id,))


def deleted_by_whom(event: DeleteEvent, message: repo.StoredMessage) -> Deleter:
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
