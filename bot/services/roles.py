"""Who may do what: admins, supervisors and operators of the press office.

- **admin**: `ADMIN_IDS` in `.env`, or a `staff` row with role `admin`. Manages pages (/page,
  /bind) and can do everything a supervisor can.
- **supervisor**: `SUPERVISOR_IDS` in `.env`, or a `staff` row with role `supervisor`. Asks
  /stats, /overdue, /digest, /export and may press the reminder buttons.
- **operator**: a `staff` row with role `operator` (for one page, or every page when `page_id`
  is empty), given by an admin with `/staff operator ID`. Presses the reminder buttons.
- **open press chat** (`PRESS_CHAT_OPEN=true`, off by default): whoever presses a button under
  a reminder in the page's press chat is taken as a member of the press office and registered
  as an operator of the page on their first press (and, like every operator, their own comments
  on that page count as official replies from then on). With the setting off, a press chat
  member without a role is refused and told to ask an admin.

Roles never go down by themselves: registering an operator keeps a supervisor a supervisor.
"""

from __future__ import annotations

import logging
from enum import IntEnum

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from storage.models import OFFICIAL_ROLES, Staff

logger = logging.getLogger(__name__)

PLATFORM = "telegram"


class Role(IntEnum):
    """Roles in increasing order of rights: each includes the rights of those below."""

    NONE = 0
    OPERATOR = 1
    SUPERVISOR = 2
    ADMIN = 3


# The press-office roles among the staff roles (storage/models.py OFFICIAL_ROLES); "staff" is an
# official account of a page without press-office rights.
_STAFF_ROLES = {"operator": Role.OPERATOR, "supervisor": Role.SUPERVISOR, "admin": Role.ADMIN}
assert set(_STAFF_ROLES) | {"staff"} == set(OFFICIAL_ROLES)


def _as_int(user_id: int | str) -> int | None:
    try:
        return int(user_id)
    except (TypeError, ValueError):
        return None


async def role_of(
    session: AsyncSession,
    settings: Settings,
    user_id: int | str,
    *,
    page_id: int | None = None,
    platform: str = PLATFORM,
) -> Role:
    """The highest role of `user_id`; operator rows of other pages do not count for `page_id`."""
    numeric = _as_int(user_id)
    if numeric is not None and numeric in settings.admin_ids:
        return Role.ADMIN
    best = Role.NONE
    if numeric is not None and numeric in settings.supervisor_ids:
        best = Role.SUPERVISOR
    query = select(Staff).where(
        Staff.platform == platform,
        Staff.user_id == str(user_id),
        col(Staff.role).in_(tuple(_STAFF_ROLES)),
    )
    for staff in (await session.exec(query)).all():
        role = _STAFF_ROLES[staff.role]
        if role == Role.OPERATOR and page_id is not None and staff.page_id not in (None, page_id):
            continue  # an operator of another page
        best = max(best, role)
    return best


async def is_supervisor(session: AsyncSession, settings: Settings, user_id: int | str) -> bool:
    """Supervisors and admins."""
    return await role_of(session, settings, user_id) >= Role.SUPERVISOR


async def is_admin(session: AsyncSession, settings: Settings, user_id: int | str) -> bool:
    return await role_of(session, settings, user_id) >= Role.ADMIN


def may_join_by_pressing(settings: Settings, in_press_chat: bool) -> bool:
    """Whether a press-chat member without a role becomes an operator by pressing a button."""
    return in_press_chat and settings.PRESS_CHAT_OPEN


async def register_operator(
    session: AsyncSession,
    user_id: int | str,
    name: str | None,
    page_id: int | None,
    *,
    platform: str = PLATFORM,
) -> Staff:
    """Make `user_id` an operator of `page_id` (None: every page), keeping any higher role."""
    found = await session.exec(
        select(Staff).where(
            Staff.platform == platform,
            Staff.user_id == str(user_id),
            col(Staff.page_id).is_(None) if page_id is None else Staff.page_id == page_id,
        )
    )
    staff = found.first()
    if staff is None:
        staff = Staff(
            platform=platform, user_id=str(user_id), page_id=page_id, name=name, role="operator"
        )
        session.add(staff)
        await session.flush()
        logger.info("пользователь %r стал оператором страницы %r", user_id, page_id)
        return staff
    if staff.role == "staff":
        staff.role = "operator"  # an official account of the page now also works the queue
    if name and not staff.name:
        staff.name = name
    return staff


async def set_role(
    session: AsyncSession,
    user_id: int | str,
    role: str,
    *,
    name: str | None = None,
    page_id: int | None = None,
    platform: str = PLATFORM,
) -> Staff | None:
    """Give `user_id` a staff role (operator, supervisor, admin, staff); "none" removes it."""
    found = await session.exec(
        select(Staff).where(
            Staff.platform == platform,
            Staff.user_id == str(user_id),
            col(Staff.page_id).is_(None) if page_id is None else Staff.page_id == page_id,
        )
    )
    staff = found.first()
    if role == "none":
        if staff is not None:
            await session.delete(staff)
        return None
    if role not in OFFICIAL_ROLES:
        raise ValueError(f"unknown role {role!r}")
    if staff is None:
        staff = Staff(
            platform=platform, user_id=str(user_id), page_id=page_id, name=name, role=role
        )
        session.add(staff)
    else:
        staff.role = role
        staff.name = name or staff.name
    await session.flush()
    return staff
