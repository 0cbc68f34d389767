"""Addresses in the web dashboard, for links from chat cards, digests and messages."""

from __future__ import annotations


def appeal_url(public_url: str | None, appeal_id: int) -> str | None:
    """The appeal's timeline in the dashboard (`WEB_PUBLIC_URL`); None when it has no address."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/appeals/{appeal_id}"
