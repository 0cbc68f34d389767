"""Checking a VK community before its first message: the token is there and has the rights.

Bots Long Poll needs the community token's «manage» right (groups.getLongPollServer and its
settings); community messages need «messages». `groups.getTokenPermissions` tells which rights
the token has, `groups.getById` the community's name.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.app import AppContext
from bot.services.page_check import PageCheck
from handlers.vk.client import VkCallError, VkTransportError, call, make_vk_session
from handlers.vk.page import VkPage

# Rights Otklik needs, and why, in the words of VK's own settings page.
NEEDED_RIGHTS = {
    "manage": "«Управление сообществом» — без него не работает Bots Long Poll: комментарии "
    "и события сообщества не придут",
    "messages": "«Сообщения сообщества» — без него не видно личных сообщений сообществу",
}
TOKEN_HOWTO = (
    "Ключ создают в сообществе: Управление → Работа с API → Ключи доступа, с правами "
    "«Управление сообществом» и «Сообщения сообщества»"
)


def parse_group(text: str) -> int | None:
    """«12345», «-12345», «club12345», «public12345» → 12345; None otherwise."""
    value = text.strip().lower().removeprefix("https://vk.com/").removeprefix("vk.com/")
    for prefix in ("club", "public", "event"):
        value = value.removeprefix(prefix)
    value = value.lstrip("-")
    return int(value) if value.isdigit() and 0 < int(value) < 2**53 else None


async def check_community(app: AppContext, group_id: int) -> tuple[PageCheck, VkPage | None]:
    """The community's check and, when the token works, the page to register."""
    check = PageCheck("vk", title=f"сообщество {group_id}")
    token = app.settings.vk_group_tokens.get(group_id)
    if token is None:
        check.found = False
        check.missing.append(
            f"В VK_GROUP_TOKENS (.env) нет ключа сообщества {group_id}. {TOKEN_HOWTO}; "
            f"добавьте {group_id}:ключ и перезапустите Отклик."
        )
        return check, None
    vk = make_vk_session(
        token.get_secret_value(), api_server=app.settings.VK_API_SERVER, rps_delay=0.05
    )
    try:
        groups: Any = await asyncio.to_thread(call, vk, "groups.getById", group_id=group_id)
        rights: Any = await asyncio.to_thread(
            call, vk, "groups.getTokenPermissions", group_id=group_id
        )
    except VkTransportError:
        check.found = False
        check.missing.append("ВКонтакте сейчас недоступен; повторите /page add позже.")
        return check, None
    except VkCallError as error:
        check.found = False
        reason = (
            "ключ сообщества недействителен или отозван"
            if error.code == 5
            else f"ВКонтакте ответил ошибкой {error.code}"
        )
        check.missing.append(f"{reason}. {TOKEN_HOWTO}.")
        return check, None
    listed = groups.get("groups") if isinstance(groups, dict) else groups
    info = listed[0] if listed else {}
    page = VkPage(-group_id, info.get("name"), info.get("screen_name"))
    check.title = page.title or check.title
    granted = {str(p.get("name")) for p in (rights or {}).get("permissions", [])}
    for name, why in NEEDED_RIGHTS.items():
        if name in granted:
            check.ok.append(why.split(" — ")[0] + " — есть")
        else:
            check.missing.append(f"у ключа нет права {why}.")
    return check, page
