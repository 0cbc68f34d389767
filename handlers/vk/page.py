"""The VK page an event belongs to, the translation error and VK's time (pure).

The translators (handlers/vk/translate.py for comments and messages, handlers/vk/posts.py for
the page's own posts) share these; they live here so that neither translator imports the other
back (the intake imports them from either).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.events import PageKind, PageRef, Platform


class TranslationError(ValueError):
    """A known event type without a field it must have; the raw event is kept."""


@dataclass(frozen=True, slots=True)
class VkPage:
    """What the intake knows about the page an event belongs to."""

    owner_id: int  # -group_id for a community, the user id for a personal wall
    title: str | None = None
    screen_name: str | None = None

    @property
    def is_community(self) -> bool:
        return self.owner_id < 0

    @property
    def ref(self) -> PageRef:
        if self.is_community:
            return PageRef(
                Platform.VK,
                str(-self.owner_id),
                PageKind.VK_GROUP,
                title=self.title,
                username=self.screen_name,
            )
        return PageRef(
            Platform.VK,
            str(self.owner_id),
            PageKind.VK_WALL,
            title=self.title,
            username=self.screen_name,
        )


def from_unix(value: Any) -> datetime:
    """VK's `date` (unix seconds) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TranslationError(f"date {value!r} is not a unix time")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        raise TranslationError(f"date {value!r} is not a unix time") from None
