"""What a page needs from the bot, checked when it is added or connects, told in Russian.

The platform adapters ask Telegram (getChat, getChatMember), VK (groups.getTokenPermissions)
or read a Business connection's rights and fill a `PageCheck`; this module words it the same
way for `/page add` and for the press chat's notices about pages connecting or disconnecting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot import ru


@dataclass
class PageCheck:
    """The outcome of checking one page: what works, what is missing (blocking), what is advised."""

    platform: str  # telegram, vk
    title: str | None = None
    found: bool = True  # the bot can see the page at all
    page_id: int | None = None  # set once the page is registered
    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.found and not self.missing


def check_text(check: PageCheck, *, heading: str | None = None) -> str:
    """«Страница … подключена» with ✅ lines, or what is missing with ❌ and advice with ⚠️."""
    name = f"«{check.title}»" if check.title else "страница"
    where = ru.platform(check.platform)
    where = f"{where}, №{check.page_id}" if check.page_id is not None else where
    if heading is None:
        if not check.found:
            heading = f"Не удалось подключить страницу {where}."
        elif check.ready:
            heading = f"Страница {name} ({where}) подключена, права бота в порядке."
        else:
            heading = f"Страница {name} ({where}) добавлена, но боту не хватает прав:"
    lines = [heading]
    lines.extend(f"❌ {item}" for item in check.missing)
    lines.extend(f"⚠️ {item}" for item in check.advice)
    lines.extend(f"✅ {item}" for item in check.ok)
    if check.found and check.missing:
        lines.append("Исправьте и повторите /page add — проверка займёт секунду.")
    return "\n".join(lines)
