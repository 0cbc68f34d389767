"""`otklik reclassify`: re-decide stored citizen messages with the model in use.

After `otklik train` (or a new built-in model) the stored decisions were made by another model.
This walks the citizen messages of a period and decides them again, the way the ingest path
would decide them today:

- a message that is no appeal and now is one becomes an appeal through the one appeal writer
  (`IngestService.promote`), received at its own date;
- an appeal none of whose messages is an appeal any more stops counting: it is `excluded`, as
  after «Не обращение», but with no `decision` row — the model decided, not a person, and a
  later model may bring it back (its id, replies and reminders stay as they were);
- an appeal's topic and urgency follow its messages as on intake (the first message's topic, or
  the first follow-up's when that is «other»; urgent if any message is), and the SLA deadline
  follows the urgency.

Whatever a person decided stays: an appeal or message with any `decision` row («Не обращение»,
/topic, «Это обращение», «Взять в работу», «Ответили вне соцсети» …) is left exactly as it is.
The same model twice changes nothing. Appeals are written through the ORM (or the appeal
writer), so the report rollups are marked stale as by every other writer (storage/rollup.py).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot import text as text_analysis
from bot.services import quality
from bot.services.ingest import IngestService
from bot.services.policy import PageDefaults, sla_deadline
from storage import repositories as repo
from storage.models import Appeal, CitizenMessage, Decision, Page, ReminderLog

logger = logging.getLogger(__name__)

# Messages decided per transaction: an interrupted run keeps what it did, a new run goes on.
CHUNK = 500


@dataclass
class ReclassifySummary:
    """What a run changed, in counts for the Russian report."""

    model_version: str
    checked: int = 0  # citizen messages of the period
    became_appeals: int = 0
    stopped_appeals: int = 0
    topic_changed: int = 0
    urgency_changed: int = 0
    kept_by_people: int = 0  # the model would decide otherwise; a person's decision stays

    @property
    def changed(self) -> int:
        """Decisions changed (a message can count once per kind of change)."""
        return (
            self.became_appeals + self.stopped_appeals + self.topic_changed + self.urgency_changed
        )

    def report_ru(self) -> str:
        """The summary a person reads after `otklik reclassify`."""
        messages = ru.quantity(self.checked, "сообщение", "сообщения", "сообщений")
        lines = [f"Пересмотрено {messages} граждан моделью {self.model_version}."]
        if not self.changed:
            lines.append("Решения без изменений.")
        if self.became_appeals:
            n = self.became_appeals
            lines.append(
                f"{ru.quantity(n, 'сообщение', 'сообщения', 'сообщений')} "
                f"{ru.plural(n, 'стало', 'стали', 'стали')} "
                f"{ru.plural(n, 'обращением', 'обращениями', 'обращениями')}."
            )
        if self.stopped_appeals:
            n = self.stopped_appeals
            lines.append(
                f"{ru.quantity(n, 'обращение', 'обращения', 'обращений')} "
                f"{ru.plural(n, 'перестало', 'перестали', 'перестали')} считаться "
                f"{ru.plural(n, 'обращением', 'обращениями', 'обращениями')}."
            )
        for count, what in ((self.topic_changed, "тема"), (self.urgency_changed, "срочность")):
            if count:
                appeals = ru.plural(count, "обращения", "обращений", "обращений")
                lines.append(f"У {ru.number(count)}{ru.NBSP}{appeals} сменилась {what}.")
        if self.kept_by_people:
            n = self.kept_by_people
            decisions = ru.quantity(n, "решение", "решения", "решений")
            kept = ru.plural(n, "сохранено", "сохранены", "сохранено")
            lines.append(f"{decisions} людей {kept}, хотя модель решила бы иначе.")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Verdict:
    is_appeal: bool
    topic: str
    urgent: bool


class Reclassifier:
    """Re-decides the citizen messages of a period inside one session (commits per chunk)."""

    def __init__(self, session: AsyncSession, defaults: PageDefaults) -> None:
        self.session = session
        self.defaults = defaults
        self.summary = ReclassifySummary(text_analysis.model_version())
        self._pages: dict[int, Page] = {}

    async def run(
        self,
        since: datetime,
        until: datetime,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReclassifySummary:
        ids = (
            await self.session.exec(
                select(CitizenMessage.id)
                .where(CitizenMessage.sent_at >= since, CitizenMessage.sent_at < until)
                .order_by(col(CitizenMessage.sent_at), col(CitizenMessage.id))
            )
        ).all()
        decided_appeals, decided_messages = await self._person_decisions()
        total = len(ids)
        if progress is not None:
            progress(0, total)
        for start in range(0, total, CHUNK):
            chunk = [row_id for row_id in ids[start : start + CHUNK] if row_id is not None]
            await self._chunk(chunk, decided_appeals, decided_messages)
            await self.session.commit()
            self.summary.checked += len(chunk)
            if progress is not None:
                progress(self.summary.checked, total)
        return self.summary

    async def _person_decisions(self) -> tuple[set[int], set[int]]:
        """Appeals and messages a person decided anything about."""
        rows = (
            await self.session.exec(select(Decision.appeal_id, Decision.citizen_message_id))
        ).all()
        appeals = {appeal for appeal, _ in rows if appeal is not None}
        messages = {message for _, message in rows if message is not None}
        return appeals, messages

    async def _chunk(
        self, ids: Sequence[int], decided_appeals: set[int], decided_messages: set[int]
    ) -> None:
        messages = (
            await self.session.exec(
                select(CitizenMessage)
                .where(col(CitizenMessage.id).in_(ids))
                .order_by(col(CitizenMessage.sent_at), col(CitizenMessage.id))
            )
        ).all()
        appeal_ids = {m.appeal_id for m in messages if m.appeal_id is not None}
        appeals = {
            appeal.id: appeal
            for appeal in (
                await self.session.exec(select(Appeal).where(col(Appeal.id).in_(appeal_ids)))
            ).all()
        }
        members: dict[int, list[CitizenMessage]] = defaultdict(list)
        for member in (
            await self.session.exec(
                select(CitizenMessage)
                .where(col(CitizenMessage.appeal_id).in_(appeal_ids))
                .order_by(col(CitizenMessage.sent_at), col(CitizenMessage.id))
            )
        ).all():
            assert member.appeal_id is not None
            members[member.appeal_id].append(member)
        for message in messages:
            if message.appeal_id is None:
                await self._comment(message, message.id in decided_messages)
                continue
            appeal = appeals.get(message.appeal_id)
            group = members[message.appeal_id]
            first_id = (appeal.first_message_id if appeal else None) or group[0].id
            if appeal is None or message.id != first_id:
                continue  # a follow-up: decided with its appeal's first message
            kept = appeal.id in decided_appeals or any(m.id in decided_messages for m in group)
            await self._appeal(appeal, group, kept)

    # -- one message that is no appeal ---------------------------------------------------------

    async def _comment(self, message: CitizenMessage, kept: bool) -> None:
        assert message.id is not None
        verdict = text_analysis.classify(message.text, message.content_kind)
        if kept:
            # «Не обращение» under «Возможно, обращение»: the person said so.
            self.summary.kept_by_people += verdict.is_appeal
            return
        _store(message, verdict, doubtful=text_analysis.is_doubtful(verdict))
        if not verdict.is_appeal:
            return
        appeal_id, rescore = await repo.run_in_transaction(
            self.session,
            partial(
                IngestService(None, self.defaults).promote,
                message_row_id=message.id,
                topic=verdict.topic,
                urgent=verdict.urgent,
            ),
        )
        if appeal_id is not None:
            self.summary.became_appeals += 1
        for rescored in rescore:
            await repo.run_in_transaction(
                self.session, partial(quality.rescore_appeal, appeal_id=rescored)
            )

    # -- an appeal and its messages ------------------------------------------------------------

    async def _appeal(self, appeal: Appeal, group: list[CitizenMessage], kept: bool) -> None:
        verdicts = [text_analysis.classify(m.text, m.content_kind) for m in group]
        wanted = _appeal_verdict(verdicts)
        is_appeal = not appeal.excluded
        if kept:
            differs = wanted.is_appeal != is_appeal or (
                wanted.is_appeal
                and (wanted.topic != appeal.topic or wanted.urgent != appeal.urgent)
            )
            self.summary.kept_by_people += differs
            return
        for message, verdict in zip(group, verdicts, strict=True):
            _store(message, verdict, doubtful=False)
        if wanted.is_appeal != is_appeal:
            appeal.excluded = not wanted.is_appeal
            if wanted.is_appeal:
                self.summary.became_appeals += 1
            else:
                self.summary.stopped_appeals += 1
                await self._cancel_reminders(appeal)
        if not wanted.is_appeal:
            return
        if wanted.topic != appeal.topic and not appeal.topic_corrected:
            appeal.topic = wanted.topic
            self.summary.topic_changed += 1
        if wanted.urgent != appeal.urgent:
            page = await self._page(appeal.page_id)
            hours, deadline = sla_deadline(page, appeal.received_at, wanted.urgent, self.defaults)
            appeal.urgent, appeal.sla_hours, appeal.sla_deadline = wanted.urgent, hours, deadline
            self.summary.urgency_changed += 1
        self.session.add(appeal)

    async def _cancel_reminders(self, appeal: Appeal) -> None:
        """Reminders not sent yet about an appeal that is none will not go out."""
        pending = await self.session.exec(
            select(ReminderLog).where(
                ReminderLog.appeal_id == appeal.id, ReminderLog.status == "pending"
            )
        )
        for row in pending.all():
            row.status = "cancelled"

    async def _page(self, page_id: int) -> Page:
        page = self._pages.get(page_id)
        if page is None:
            page = await self.session.get(Page, page_id)
            assert page is not None
            self._pages[page_id] = page
        return page


def _appeal_verdict(verdicts: Sequence[text_analysis.Classification]) -> _Verdict:
    """An appeal's decision from its messages' verdicts, as the ingest path builds it."""
    first = verdicts[0]
    topic = first.topic if first.is_appeal else "other"
    for verdict in verdicts[1:]:
        if topic == "other" and verdict.is_appeal and verdict.topic:
            topic = verdict.topic
    return _Verdict(
        is_appeal=any(v.is_appeal for v in verdicts),
        topic=topic or "other",
        urgent=any(v.urgent for v in verdicts),
    )


def _store(message: CitizenMessage, verdict: text_analysis.Classification, doubtful: bool) -> None:
    """The model's own verdict on the message (set only where it differs: idempotent)."""
    values = {
        "is_appeal": verdict.is_appeal,
        "topic": verdict.topic,
        "urgent": verdict.urgent,
        "confidence": verdict.confidence,
        "model_version": text_analysis.model_version(),
        "doubtful": doubtful,
    }
    for name, value in values.items():
        if getattr(message, name) != value:
            setattr(message, name, value)


async def reclassify(
    session: AsyncSession,
    defaults: PageDefaults,
    since: datetime,
    until: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> ReclassifySummary:
    """Re-decide the citizen messages sent in [since, until) with the model in use."""
    return await Reclassifier(session, defaults).run(since, until, progress)
