"""Roles: admins and supervisors from .env and staff rows, operators per page."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.roles import Role, is_admin, is_supervisor, register_operator, role_of, set_role
from storage.engine import session_factory
from storage.models import Page
from tests.conftest import make_settings


async def test_roles(sqlite_engine: AsyncEngine) -> None:
    settings = make_settings(ADMIN_IDS="1", SUPERVISOR_IDS="2")
    async with session_factory(sqlite_engine)() as session:
        page = Page(platform="telegram", external_id="-100", kind="tg_channel")
        other = Page(platform="telegram", external_id="-200", kind="tg_channel")
        session.add_all([page, other])
        await session.flush()
        assert await role_of(session, settings, 1) == Role.ADMIN
        assert await role_of(session, settings, 2) == Role.SUPERVISOR
        assert await role_of(session, settings, 3) == Role.NONE
        assert await is_admin(session, settings, 1) and not await is_admin(session, settings, 2)

        await register_operator(session, 3, "Анна", page.id)
        assert await role_of(session, settings, 3, page_id=page.id) == Role.OPERATOR
        assert await role_of(session, settings, 3, page_id=other.id) == Role.NONE
        assert not await is_supervisor(session, settings, 3)

        # A supervisor registered as an operator on a button press stays a supervisor.
        await set_role(session, 4, "supervisor")
        await register_operator(session, 4, "Ольга", None)
        assert await role_of(session, settings, 4) == Role.SUPERVISOR
        await set_role(session, 4, "none")
        assert await role_of(session, settings, 4, page_id=page.id) == Role.NONE
