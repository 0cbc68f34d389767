"""Template keys of official replies: the text as compared for templates, and its stored hash.

`bot/services/quality.py` judges templates on `template_key`; `official_reply.template_hash`
holds `template_hash(text)` so that «another reply of this page with the same normalised text»
is one index lookup (migration 0011) instead of a read of the page's whole history. Whoever
writes a reply's text writes its hash too (ingest, edits, the ORM flush in storage/models.py);
if the normalisation ever changes, a migration must refill the column.
"""

from __future__ import annotations

import hashlib
import re

_NON_WORD_RE = re.compile(r"[\W\d_]+", re.UNICODE)


def template_key(text: str) -> str:
    """The text as compared for templates: lower case, ё→е, no digits or punctuation."""
    return " ".join(_NON_WORD_RE.sub(" ", text.lower().replace("ё", "е")).split())


def key_hash(key: str) -> int:
    """A signed 64-bit hash of a template key (BLAKE2b), fit for a BIGINT column."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def template_hash(text: str | None) -> int:
    """The stored hash of a reply's text: `key_hash(template_key(text))`."""
    return key_hash(template_key(text or ""))
