"""Plain-SQL rows of the intake use case (bot/services/intake.py), in the caller's transaction.

Over `storage.repositories.Db`, so that they run alike in the intake writer process and through
an ORM session, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.clock import utc_now
from storage.db import Db


def claim_raw_update(
    db: Db,
    source: str,
    update_key: str,
    update_type: str | None,
    payload: dict[str, Any] | str,
    *,
    status: str = "done",
    note: str | None = None,
) -> int | None:
    """Store an incoming update once, or take back one whose processing failed before.

    Its id to process it (new, or stored as "failed" earlier: a redelivery is processed
    again); None if it was stored and processed before (nothing to do).
    """
    row = db.row(
        "INSERT INTO raw_update "
        "(source, update_key, update_type, payload, status, note, recorded_at) "
        f"VALUES (:source, :key, :type, {db.json_param('payload')}, :status, :note, :now) "
        "ON CONFLICT (source, update_key) DO UPDATE SET status = excluded.status, "
        "note = excluded.note WHERE raw_update.status = 'failed' RETURNING id",
        {
            "source": source,
            "key": update_key,
            "type": update_type,
            "payload": payload,
            "status": status,
            "note": note,
            "now": utc_now(),
        },
    )
    return None if row is None else int(row[0])


def set_cursor_row(db: Db, source: str, value: str) -> None:
    """Set an intake cursor (a VK long-poll ts)."""
    db.run(
        "INSERT INTO intake_cursor (source, value, updated_at) VALUES (:source, :value, :now) "
        "ON CONFLICT (source) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        {"source": source, "value": value, "now": utc_now()},
    )


def raise_cursor_row(db: Db, source: str, value: int) -> None:
    """Set a numeric intake cursor to `value` unless it is at or past it already."""
    db.run(
        "INSERT INTO intake_cursor (source, value, updated_at) VALUES (:source, :value, :now) "
        "ON CONFLICT (source) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at "
        "WHERE CAST(intake_cursor.value AS BIGINT) < CAST(excluded.value AS BIGINT)",
        {"source": source, "value": str(value), "now": utc_now()},
    )


def active_thread_ids(
    db: Db, platform: str, page_external_id: str, prefix: str, since: datetime
) -> list[str]:
    """External ids (`prefix`…) of the page's threads with a message sent at or after `since`."""
    found = db.rows(
        "SELECT t.external_id FROM thread t JOIN page p ON p.id = t.page_id "
        "WHERE p.platform = :platform AND p.external_id = :page AND t.external_id LIKE :prefix "
        "AND (EXISTS (SELECT 1 FROM citizen_message m WHERE m.thread_id = t.id "
        "AND m.sent_at >= :since) OR EXISTS (SELECT 1 FROM official_reply r "
        "WHERE r.thread_id = t.id AND r.sent_at >= :since)) ORDER BY t.id",
        {"platform": platform, "page": page_external_id, "prefix": f"{prefix}%", "since": since},
    )
    return [str(row[0]) for row in found]
