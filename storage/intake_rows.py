"""Plain-SQL writes of the intake use case (bot/services/intake.py), in the caller's transaction.

Over `storage.repositories.Db`, so that they run alike in the intake writer process and through
an ORM session, on SQLite and PostgreSQL.
"""

from __future__ import annotations

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
