"""Look-ups of pages for commands and reports (handlers ask here instead of writing SQL)."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.ids import row_id
from storage.models import Page


async def all_pages(session: AsyncSession) -> list[Page]:
    """Every page, in the order they were registered."""
    return list((await session.exec(select(Page).order_by(col(Page.id)))).all())


async def report_pages(session: AsyncSession, page_id: int | None = None) -> list[Page]:
    """The pages a report covers: one page by id, or all of them."""
    query = select(Page).order_by(col(Page.id))
    if page_id is not None:
        query = query.where(Page.id == page_id)
    return list((await session.exec(query)).all())


async def active_page_ids(session: AsyncSession) -> list[int]:
    """Ids of the pages being monitored (not switched off)."""
    pages = (await session.exec(select(Page).where(col(Page.is_active)))).all()
    return [page.id for page in pages if page.id]


async def press_chat_ids(session: AsyncSession) -> set[int]:
    """Chats bound to a page with /bind."""
    chats = (
        await session.exec(select(Page.press_chat_id).where(col(Page.press_chat_id).is_not(None)))
    ).all()
    return {chat for chat in chats if chat is not None}


async def find_pages(session: AsyncSession, query: str) -> list[Page]:
    """Pages matching an id or a part of the title.

    The title is compared case-insensitively; SQLite's lower() only folds ASCII, so Cyrillic
    titles are compared in Python when the database finds nothing.
    """
    if query.isdigit():
        number = row_id(query)  # None: a number no page can have
        page = await session.get(Page, number) if number is not None else None
        return [page] if page is not None else []
    result = await session.exec(
        select(Page)
        .where(func.lower(col(Page.title)).contains(query.lower()))
        .order_by(col(Page.id))
    )
    found = list(result.all())
    if not found:
        found = [
            p for p in await all_pages(session) if p.title and query.lower() in p.title.lower()
        ]
    return found
