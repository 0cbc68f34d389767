"""The one ingest path: every normalised event is decided and stored here.

This is where an appeal is decided: a citizen message becomes an appeal, joins an open one, or
stays a plain comment; an official message is linked to the appeals it answers and sets their
first and final response times. Nothing here knows Telegram or VK. Time is always the platform's
`date` carried by the event; the wall clock is never used for metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel.ext.asyncio.session import AsyncSession

from bot import text as text_analysis
from bot.events import (
    AuthorRole,
    DeleteEvent,
    Deleter,
    EditEvent,
    Event,
    MessageEvent,
    RatingEvent,
    ReactionEvent,
    RestoreEvent,
)
from bot.services import quality
from bot.services.policy import PageDefaults, response_seconds, sla_deadline
from storage import repositories as repo
from storage.models import Appeal, CitizenMessage, OfficialReply, Page, Reaction

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
    REPLY = "reply"  # an official reply that answered at least one appeal
    OFFICIAL = "official"  # an official message that answered nothing we know
    EDIT = "edit"
    DELETE = "delete"
    RESTORE = "restore"
    REACTION = "reaction"
    RATING = "rating"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class IngestResult:
    outcome: Outcome
    page_id: int | None = None
    appeal_ids: tuple[int, ...] = ()
    message_row_id: int | None = None
    note: str | None = None


class IngestService:
    """Decides and stores normalised events inside the caller's session (the caller commits)."""

    def __init__(self, session: AsyncSession, defaults: PageDefaults | None = None) -> None:
        self.session = session
        self.defaults = defaults or PageDefaults()

    async def handle(self, event: Event) -> IngestResult:
        match event:
            case MessageEvent():
                return await self._message(event)
            case EditEvent():
                return await self._edit(event)
            case DeleteEvent():
                return await self._delete(event)
            case RestoreEvent():
                return await self._restore(event)
            case ReactionEvent():
                return await self._reaction(event)
            case RatingEvent():
                return await self._rating(event)
        raise TypeError(f"unknown event {type(event).__name__}")  # pragma: no cover

    # -- new messages -------------------------------------------------------------------------

    async def _message(self, event: MessageEvent) -> IngestResult:
        page = await repo.ensure_page(self.session, event.page)
        assert page.id is not None
        if await repo.find_message(self.session, page.id, event.message_id) is not None:
            return IngestResult(Outcome.DUPLICATE, page.id)
        if await self._is_official(event, page):
            return await self._official(event, page)
        return await self._citizen(event, page)

    async def _is_official(self, event: MessageEvent, page: Page) -> bool:
        if event.author_role in (AuthorRole.PAGE, AuthorRole.OPERATOR):
            return True
        if event.author_id is None:
            return False
        assert page.id is not None
        return await repo.is_staff(self.session, page.platform, event.author_id, page.id)

    async def _citizen(self, event: MessageEvent, page: Page) -> IngestResult:
        assert page.id is not None
        thread = await repo.ensure_thread(self.session, page.id, event.thread)
        assert thread.id is not None
        verdict = text_analysis.classify(event.text, event.content_kind)
        message = CitizenMessage(
            page_id=page.id,
            thread_id=thread.id,
            external_id=event.message_id,
            author_id=event.author_id,
            author_name=event.author_name,
            content_kind=event.content_kind,
            text=event.text,
            sent_at=event.sent_at,
            reply_to_external_id=event.reply_to_id,
            link=event.link,
            is_appeal=verdict.is_appeal,
            topic=verdict.topic,
            urgent=verdict.urgent,
        )
        self.session.add(message)

        open_appeal = None
        if event.author_id is not None:
            open_appeal = await repo.open_appeal_of(
                self.session, thread.id, event.author_id, event.sent_at
            )
        if open_appeal is not None:
            # DESIGN sec. 2: a second message while the first is unanswered joins that appeal.
            await self._join(open_appeal, message, page)
            await self.session.flush()
            return IngestResult(
                Outcome.FOLLOW_UP, page.id, (open_appeal.id,) if open_appeal.id else (), message.id
            )

        if event.author_id is not None and text_analysis.is_dissatisfied(event.text):
            answered = await repo.last_answered_appeal_of(
                self.session, thread.id, event.author_id, event.sent_at
            )
            if answered is not None:
                message.is_reopen = True
                if answered.reopened_at is None or event.sent_at < answered.reopened_at:
                    answered.reopened_at = event.sent_at

        if not verdict.is_appeal:
            await self.session.flush()
            return IngestResult(Outcome.COMMENT, page.id, (), message.id)

        hours, deadline = sla_deadline(page, event.sent_at, verdict.urgent, self.defaults)
        appeal = Appeal(
            page_id=page.id,
            thread_id=thread.id,
            citizen_id=event.author_id,
            citizen_name=event.author_name,
            received_at=event.sent_at,
            topic=verdict.topic,
            urgent=verdict.urgent,
            sla_hours=hours,
            sla_deadline=deadline,
            link=event.link,
        )
        self.session.add(appeal)
        await self.session.flush()
        message.appeal_id = appeal.id
        appeal.first_message_id = message.id
        # Replies can arrive before the message they answer (backfill, imports): link them now.
        assert appeal.id is not None
        for reply in await repo.replies_waiting_for(self.session, page.id, event.message_id):
            self._apply_reply(appeal, reply, page)
            reply.appeal_id = appeal.id
        await self.session.flush()
        return IngestResult(Outcome.APPEAL, page.id, (appeal.id,), message.id)

    async def _join(self, appeal: Appeal, message: CitizenMessage, page: Page) -> None:
        message.appeal_id = appeal.id
        appeal.messages_count += 1
        if appeal.topic == "other" and message.is_appeal and message.topic:
            appeal.topic = message.topic
        if message.urgent and not appeal.urgent:
            # The follow-up says it is urgent: the stricter SLA applies from the start.
            appeal.urgent = True
            appeal.sla_hours, appeal.sla_deadline = sla_deadline(
                page, appeal.received_at, True, self.defaults
            )

    async def _official(self, event: MessageEvent, page: Page) -> IngestResult:
        assert page.id is not None
        thread = await repo.ensure_thread(self.session, page.id, event.thread)
        assert thread.id is not None
        staff_role = {AuthorRole.PAGE: "page", AuthorRole.OPERATOR: "operator"}
        reply = OfficialReply(
            page_id=page.id,
            thread_id=thread.id,
            external_id=event.message_id,
            author_role=staff_role.get(event.author_role, "staff"),
            author_id=event.author_id,
            author_name=event.author_name,
            content_kind=event.content_kind,
            text=event.text,
            sent_at=event.sent_at,
            reply_to_external_id=event.reply_to_id,
            link=event.link,
            is_interim=text_analysis.is_interim(event.text),
        )
        self.session.add(reply)
        await self.session.flush()

        appeals: list[Appeal] = []
        if event.reply_to_id is not None:
            target = await self._appeal_up_the_chain(page.id, event.reply_to_id)
            if target is not None:
                appeals.append(target)
            elif await repo.find_message(self.session, page.id, event.reply_to_id) is None:
                logger.info(
                    "official reply %r answers message %r we never saw; kept unlinked",
                    event.message_id,
                    event.reply_to_id,
                )
        if not appeals and event.answers_conversation:
            appeals = await repo.unfinished_appeals_in_thread(
                self.session, thread.id, event.sent_at
            )
        linked = [appeal for appeal in appeals if self._apply_reply(appeal, reply, page)]
        if linked:
            reply.appeal_id = linked[0].id
            await self.session.flush()
            # Cheap quality parts and a template check against the page's recent replies.
            await quality.score_reply_on_ingest(self.session, reply)
            return IngestResult(
                Outcome.REPLY, page.id, tuple(a.id for a in linked if a.id), reply.id
            )
        return IngestResult(Outcome.OFFICIAL, page.id, (), reply.id)

    async def _appeal_up_the_chain(self, page_id: int, external_id: str) -> Appeal | None:
        """Walk reply_to links up from `external_id` to the first message tied to an appeal."""
        seen: set[str] = set()
        current: str | None = external_id
        while current is not None and current not in seen and len(seen) < MAX_CHAIN:
            seen.add(current)
            message = await repo.find_message(self.session, page_id, current)
            if message is None:
                return None
            if message.appeal_id is not None:
                return await self.session.get(Appeal, message.appeal_id)
            current = message.reply_to_external_id
        return None

    def _apply_reply(self, appeal: Appeal, reply: OfficialReply, page: Page) -> bool:
        """Set the appeal's first/final response from `reply`; False if it cannot answer it."""
        if appeal.excluded or reply.sent_at < appeal.received_at:
            return False
        if appeal.first_response_at is None or reply.sent_at < appeal.first_response_at:
            appeal.first_response_at = reply.sent_at
            appeal.first_reply_id = reply.id
            appeal.frt_s, appeal.frt_work_s = response_seconds(
                page, appeal.received_at, reply.sent_at, self.defaults
            )
        if not reply.is_interim and (
            appeal.final_response_at is None or reply.sent_at < appeal.final_response_at
        ):
            appeal.final_response_at = reply.sent_at
            appeal.final_reply_id = reply.id
        return True

    # -- changes to known messages ------------------------------------------------------------

    async def _known(
        self, event: EditEvent | DeleteEvent | RestoreEvent | ReactionEvent
    ) -> tuple[Page | None, CitizenMessage | OfficialReply | None]:
        page = await repo.get_page(self.session, event.page.platform.value, event.page.external_id)
        if page is None or page.id is None:
            return None, None
        return page, await repo.find_message(self.session, page.id, event.message_id)

    async def _edit(self, event: EditEvent) -> IngestResult:
        page, message = await self._known(event)
        if message is None:
            logger.info("edit of unknown message %r skipped", event.message_id)
            return IngestResult(Outcome.SKIPPED, page.id if page else None, note="unknown message")
        if message.edited_at is not None and message.edited_at >= event.edited_at:
            return IngestResult(Outcome.DUPLICATE, message.page_id)
        message.text = event.text
        message.edited_at = event.edited_at
        if isinstance(message, OfficialReply):
            message.is_interim = text_analysis.is_interim(event.text)
        await self.session.flush()
        return IngestResult(Outcome.EDIT, message.page_id, (), message.id)

    async def _delete(self, event: DeleteEvent) -> IngestResult:
        page, message = await self._known(event)
        if message is None:
            logger.info("deletion of unknown message %r skipped", event.message_id)
            return IngestResult(Outcome.SKIPPED, page.id if page else None, note="unknown message")
        if message.deleted_at is not None:
            return IngestResult(Outcome.DUPLICATE, message.page_id)
        deleted_by = event.deleted_by
        if (
            deleted_by is Deleter.UNKNOWN
            and isinstance(message, CitizenMessage)
            and event.deleter_id is not None
            and event.deleter_id == message.author_id
        ):
            deleted_by = Deleter.CITIZEN
        message.deleted_at = event.deleted_at
        message.deleted_by = deleted_by.value
        if (
            isinstance(message, CitizenMessage)
            and deleted_by is Deleter.PAGE
            and message.appeal_id is not None
        ):
            appeal = await self.session.get(Appeal, message.appeal_id)
            if appeal is not None and appeal.first_message_id == message.id:
                appeal.deleted_by_page = True
        await self.session.flush()
        return IngestResult(Outcome.DELETE, message.page_id, (), message.id)

    async def _restore(self, event: RestoreEvent) -> IngestResult:
        page, message = await self._known(event)
        if message is None:
            return IngestResult(Outcome.SKIPPED, page.id if page else None, note="unknown message")
        message.deleted_at = None
        message.deleted_by = None
        if isinstance(message, CitizenMessage) and message.appeal_id is not None:
            appeal = await self.session.get(Appeal, message.appeal_id)
            if appeal is not None and appeal.first_message_id == message.id:
                appeal.deleted_by_page = False
        await self.session.flush()
        return IngestResult(Outcome.RESTORE, message.page_id, (), message.id)

    async def _reaction(self, event: ReactionEvent) -> IngestResult:
        page, message = await self._known(event)
        if page is None or page.id is None or event.user_id is None:
            return IngestResult(Outcome.SKIPPED, note="reaction on an unknown page or anonymous")
        from sqlmodel import select

        for emoji in event.added:
            found = await self.session.exec(
                select(Reaction).where(
                    Reaction.page_id == page.id,
                    Reaction.message_external_id == event.message_id,
                    Reaction.user_id == event.user_id,
                    Reaction.emoji == emoji,
                )
            )
            reaction = found.first()
            if reaction is None:
                self.session.add(
                    Reaction(
                        page_id=page.id,
                        message_external_id=event.message_id,
                        user_id=event.user_id,
                        emoji=emoji,
                        reacted_at=event.reacted_at,
                    )
                )
            else:
                reaction.removed_at = None
                reaction.reacted_at = event.reacted_at
        for emoji in event.removed:
            found = await self.session.exec(
                select(Reaction).where(
                    Reaction.page_id == page.id,
                    Reaction.message_external_id == event.message_id,
                    Reaction.user_id == event.user_id,
                    Reaction.emoji == emoji,
                )
            )
            reaction = found.first()
            if reaction is not None:
                reaction.removed_at = event.reacted_at
        # A citizen's reaction to the official answer to their own appeal is their rating.
        if isinstance(message, OfficialReply) and message.appeal_id is not None:
            appeal = await self.session.get(Appeal, message.appeal_id)
            if appeal is not None and appeal.citizen_id == event.user_id:
                if any(e in POSITIVE_REACTIONS for e in event.added):
                    appeal.rating, appeal.rated_at = 1, event.reacted_at
                elif any(e in NEGATIVE_REACTIONS for e in event.added):
                    appeal.rating, appeal.rated_at = 0, event.reacted_at
        await self.session.flush()
        return IngestResult(Outcome.REACTION, page.id)

    async def _rating(self, event: RatingEvent) -> IngestResult:
        page = await repo.get_page(self.session, event.page.platform.value, event.page.external_id)
        if page is None or page.id is None:
            return IngestResult(Outcome.SKIPPED, note="rating on an unknown page")
        reply = await repo.find_official_reply(self.session, page.id, event.reply_message_id)
        if reply is None or reply.appeal_id is None:
            return IngestResult(Outcome.SKIPPED, page.id, note="rating of an unknown reply")
        appeal = await self.session.get(Appeal, reply.appeal_id)
        if appeal is None:
            return IngestResult(Outcome.SKIPPED, page.id, note="rating of an unknown appeal")
        appeal.rating = 1 if event.positive else 0
        appeal.rated_at = event.rated_at
        await self.session.flush()
        return IngestResult(Outcome.RATING, page.id, (appeal.id,) if appeal.id else ())
