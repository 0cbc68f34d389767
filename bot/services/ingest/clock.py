"""An appeal's clocks: what an official reply, a return or a 👎 does to them.

The first response and the final answer (docs/METRICS.md): a reply sets the first response if
it is the earliest, the final answer if it is also the earliest reply that is not interim, and
the new final answer after a re-open. A re-open starts the final stage again. These work on an
`AppealRow` in memory; the caller saves it (`repositories.save_appeal`), so one event writes an
appeal once, whichever of these it went through.
"""

from __future__ import annotations

from datetime import datetime

from bot.services.policy import PageDefaults, final_deadline, response_seconds, sla_deadline
from storage.models import Page
from storage.repositories import AppealRow


class Reply:
    """The fields of an official reply `apply_reply` needs."""

    __slots__ = ("id", "is_interim", "sent_at")

    def __init__(self, reply_id: int, sent_at: datetime, is_interim: bool) -> None:
        self.id, self.sent_at, self.is_interim = reply_id, sent_at, is_interim


def apply_reply(appeal: AppealRow, reply: Reply, page: Page, defaults: PageDefaults) -> bool:
    """Set the appeal's first/final response from `reply`; False if it cannot answer it."""
    if appeal["excluded"] or reply.sent_at < appeal["received_at"]:
        return False
    first_response_at = appeal["first_response_at"]
    if first_response_at is None or reply.sent_at < first_response_at:
        frt_s, frt_work_s = response_seconds(page, appeal["received_at"], reply.sent_at, defaults)
        appeal.set("first_response_at", reply.sent_at)
        appeal.set("first_reply_id", reply.id)
        appeal.set("frt_s", frt_s)
        appeal.set("frt_work_s", frt_work_s)
    final_response_at = appeal["final_response_at"]
    if not reply.is_interim and (final_response_at is None or reply.sent_at < final_response_at):
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


def reopen(appeal: AppealRow, at: datetime, page: Page, defaults: PageDefaults) -> None:
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
        deadline = final_deadline(page, at, appeal["urgent"], defaults)
        appeal.set("reopen_deadline", deadline)
        appeal.set("reanswered_at", None)
        appeal.set("reanswer_reply_id", None)


def make_urgent(appeal: AppealRow, page: Page, defaults: PageDefaults) -> None:
    """A follow-up says it is urgent: the stricter deadlines apply from the start."""
    hours, deadline = sla_deadline(page, appeal["received_at"], True, defaults)
    appeal.set("urgent", True)
    appeal.set("sla_hours", hours)
    appeal.set("sla_deadline", deadline)
    appeal.set("final_deadline", final_deadline(page, appeal["received_at"], True, defaults))
