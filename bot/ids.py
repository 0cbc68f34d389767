"""Numbers people type or buttons carry, as database ids: never an OverflowError.

`/topic 99999999999999999999` or a forged callback `ap:take:99999999999999999999` is a number no
row can have; SQLite and PostgreSQL refuse to compare with it (OverflowError, DataError), so it
is read as "no such row" before it reaches a query.
"""

from __future__ import annotations

MAX_ID = 2**63 - 1  # BIGINT / SQLite INTEGER


def row_id(text: str) -> int | None:
    """`text` as a row id (1 … 2**63-1), or None if it is not one."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None
