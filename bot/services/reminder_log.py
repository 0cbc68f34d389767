"""The send state of a `reminder_log` row: pending → sending → sent (issue 16 item 8).

The Bot API has no idempotency key, so no design makes a message to a chat exactly-once; this
one makes the window in which a crash can double one as small as it goes and says what
happened:

* `begin` records «sending» and commits it **before** the Bot API call; the caller marks the
  row «sent» and commits right after the call returns (reminders.py, digest.py). The window
  is one Bot API call plus one commit (measured: docs/BENCHMARKS.md, "Reminder send window").
* A row found in «sending» was being sent when a process died — before the call, during it,
  or after it and before «sent» was committed. It is neither dropped nor sent again at once:
  `recover` waits until `next_attempt_at` (set to `begin`'s moment + `LEASE`, so that a send
  in flight in another worker is never taken over), then puts it back to «pending» with
  `last_error = INTERRUPTED`, logged. The next send says in the message itself that it may be
  a repeat («Повторная отправка…»), so a press office that got both knows why.
* A send that fails (`DeliveryError`) goes back to «pending» with its retry time, as before.

The contract (docs/SETUP.md, "Reminders after a crash"): **at least once**; a reminder or a
digest is sent twice only after a crash (kill -9, power loss) inside its send, and the
repeat says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ReminderLog

logger = logging.getLogger(__name__)

SENDING = "sending"
# Longer than any one send takes (the notifier's own retries and flood waits included), so
# that a row in «sending» at this age belongs to a process that died.
LEASE = timedelta(minutes=5)
INTERRUPTED = "interrupted during sending: it may have been delivered"
REPEAT_NOTE = "Повторная отправка: прошлая прервалась сбоем, это сообщение могло уже прийти."


async def begin(
    session: AsyncSession, rows: Sequence[ReminderLog], text: str, now: datetime
) -> str:
    """Record «sending» for `rows` and commit; the text to send (with a repeat note if due)."""
    repeat = any(row.last_error == INTERRUPTED for row in rows)
    for row in rows:
        row.status = SENDING
        row.next_attempt_at = now + LEASE
    await session.commit()
    return f"{REPEAT_NOTE}\n\n{text}" if repeat else text


def failed(rows: Sequence[ReminderLog]) -> None:
    """The Bot API refused or could not be reached: the rows are due again (caller commits)."""
    for row in rows:
        row.status = "pending"


async def recover(session: AsyncSession, now: datetime) -> int:
    """Rows left in «sending» past their lease are due again, marked as maybe delivered."""
    stale = (
        await session.exec(
            select(ReminderLog)
            .where(ReminderLog.status == SENDING, col(ReminderLog.next_attempt_at) <= now)
            .order_by(col(ReminderLog.id))
        )
    ).all()
    for row in stale:
        logger.warning(
            "отправка %s %r в чат %r прервалась (сбой); возможно, сообщение дошло — "
            "отправляем снова (доставка хотя бы один раз)",
            row.kind,
            row.due_key,
            row.chat_id,
        )
        row.status = "pending"
        row.last_error = INTERRUPTED
        row.next_attempt_at = now
    if stale:
        await session.commit()
    return len(stale)
