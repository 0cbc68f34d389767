"""TEMPORARY stand-in for storage/pages.py of branch `structure` (replaced at the merge)."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Page


async def all_pages(session: AsyncSession) -> list[Page]:
    return list((await session.exec(select(Page).order_by(col(Page.id)))).all())
