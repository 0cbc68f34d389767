"""Queries the services use. Plain functions over one session; the caller commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import utc_now
from bot.events import PageRef, ThreadRef
from storage.models import (
    Appeal,
    CitizenMessage,
    IntakeCursor,
    OfficialReply,
    Page,
    RawUpdate,
    Relay,
    Staff,
    Thread,
)


async def get_page(session: AsyncSession, platform: str, external_id: str) -> Page | None:
    result = await session.exec(
        select(Page).where(Page.platform == platform, Page.external_id == external_id)
    )
    return result.first()


async def ensure_page(session: AsyncSession, ref: PageRef) -> Page:
    """The page for `ref`, created on first sight; a newer title or username is kept."""
    page = await get_page(session, ref.platform.value, ref.external_id)
    if page is None:
        page = Page(
            platform=ref.platform.value,
            external_id=ref.external_id,
            kind=ref.kind.value,
            title=ref.title,
            username=ref.username,
            linked_chat_id=ref.linked_chat_id,
        )
        session.add(page)
        await session.flush()
        return page
    if ref.title and page.title != ref.title:
        page.title = ref.title
    if ref.username and page.username != ref.username:
        page.username = ref.username
    if ref.linked_chat_id and page.linked_chat_id != ref.linked_chat_id:
        page.linked_chat_id = ref.linked_chat_id
    return page


async def ensure_thread(session: AsyncSession, page_id: int, ref: ThreadRef) -> Thread:
    result = await session.exec(
        select(Thread).where(Thread.page_id == page_id, Thread.external_id == ref.external_id)
    )
    thread = result.first()
    if thread is None:
        thread = Thread(
            page_id=page_id, external_id=ref.external_id, kind=ref.kind.value, title=ref.title
        )
        session.add(thread)
        await session.flush()
    elif ref.title and not thread.title:
        thread.title = ref.title
    return thread


async def find_citizen_message(
    session: AsyncSession, page_id: int, external_id: str
) -> CitizenMessage | None:
    result = await session.exec(
        select(CitizenMessage).where(
            CitizenMessage.page_id == page_id, CitizenMessage.external_id == external_id
        )
    )
    return result.first()


async def find_official_reply(
    session: AsyncSession, page_id: int, external_id: str
) -> OfficialReply | None:
    result = await session.exec(
        select(OfficialReply).where(
            OfficialReply.page_id == page_id, OfficialReply.external_id == external_id
        )
    )
    return result.first()


async def find_message(
    session: AsyncSession, page_id: int, external_id: str
) -> CitizenMessage | OfficialReply | None:
    """A stored message of either side by its platform id."""
    return await find_citizen_message(session, page_id, external_id) or await find_official_reply(
        session, page_id, external_id
    )


async def open_appeal_of(
    session: AsyncSession, thread_id: int, citizen_id: str, before: datetime
) -> Appeal | None:
    """The citizen's latest appeal in the thread still unanswered at `before`."""
    result = await session.exec(
        select(Appeal)
        .where(
            Appeal.thread_id == thread_id,
            Appeal.citizen_id == citizen_id,
            col(Appeal.excluded).is_(False),
            Appeal.received_at <= before,
            or_(col(Appeal.first_response_at).is_(None), col(Appeal.first_response_at) > before),
        )
        .order_by(col(Appeal.received_at).desc())
        .limit(1)
    )
    return result.first()


async def last_answered_appeal_of(
    session: AsyncSession, thread_id: int, citizen_id: str, before: datetime
) -> Appeal | None:
    """The citizen's latest appeal in the thread that had been answered by `before`."""
    result = await session.exec(
        select(Appeal)
        .where(
            Appeal.thread_id == thread_id,
            Appeal.citizen_id == citizen_id,
            col(Appeal.first_response_at) <= before,
        )
        .order_by(col(Appeal.received_at).desc())
        .limit(1)
    )
    return result.first()


async def unfinished_appeals_in_thread(
    session: AsyncSession, thread_id: int, until: datetime
) -> list[Appeal]:
    """Appeals in a conversation received by `until` and without a final answer then."""
    result = await session.exec(
        select(Appeal)
        .where(
            Appeal.thread_id == thread_id,
            col(Appeal.excluded).is_(False),
            Appeal.received_at <= until,
            or_(col(Appeal.final_response_at).is_(None), col(Appeal.final_response_at) > until),
        )
        .order_by(col(Appeal.received_at))
    )
    return list(result.all())


async def replies_waiting_for(
    session: AsyncSession, page_id: int, external_id: str
) -> list[OfficialReply]:
    """Official replies stored before the message they reply to arrived."""
    result = await session.exec(
        select(OfficialReply)
        .where(
            OfficialReply.page_id == page_id,
            OfficialReply.reply_to_external_id == external_id,
            col(OfficialReply.appeal_id).is_(None),
        )
        .order_by(col(OfficialReply.sent_at))
    )
    return list(result.all())


async def is_staff(session: AsyncSession, platform: str, user_id: str, page_id: int) -> bool:
    """Whether `user_id` writes officially on this page (or on every page)."""
    result = await session.exec(
        select(Staff.id).where(
            Staff.platform == platform,
            Staff.user_id == user_id,
            or_(col(Staff.page_id).is_(None), Staff.page_id == page_id),
            col(Staff.role).in_(("staff", "operator", "admin")),
        )
    )
    return result.first() is not None


async def add_staff(
    session: AsyncSession,
    platform: str,
    user_id: str,
    *,
    page_id: int | None = None,
    name: str | None = None,
    role: str = "staff",
) -> Staff:
    result = await session.exec(
        select(Staff).where(
            Staff.platform == platform,
            Staff.user_id == user_id,
            col(Staff.page_id).is_(None) if page_id is None else Staff.page_id == page_id,
        )
    )
    staff = result.first()
    if staff is None:
        staff = Staff(platform=platform, user_id=user_id, page_id=page_id, name=name, role=role)
        session.add(staff)
        await session.flush()
    else:
        staff.role = role
        staff.name = name or staff.name
    return staff


async def record_raw_update(
    session: AsyncSession,
    source: str,
    update_key: str,
    update_type: str | None,
    payload: dict[str, Any],
) -> RawUpdate | None:
    """Store an incoming update once; None if it was stored before (a redelivery)."""
    result = await session.exec(
        select(RawUpdate.id).where(RawUpdate.source == source, RawUpdate.update_key == update_key)
    )
    if result.first() is not None:
        return None
    raw = RawUpdate(source=source, update_key=update_key, update_type=update_type, payload=payload)
    session.add(raw)
    await session.flush()
    return raw


async def get_cursor(session: AsyncSession, source: str) -> str | None:
    cursor = await session.get(IntakeCursor, source)
    return cursor.value if cursor else None


async def set_cursor(session: AsyncSession, source: str, value: str) -> None:
    cursor = await session.get(IntakeCursor, source)
    if cursor is None:
        session.add(IntakeCursor(source=source, value=value))
    else:
        cursor.value = value
        cursor.updated_at = utc_now()


async def save_relay(
    session: AsyncSession,
    page_id: int,
    press_chat_id: int,
    press_message_id: int,
    citizen_chat_id: int,
    citizen_message_id: int,
) -> None:
    session.add(
        Relay(
            page_id=page_id,
            press_chat_id=press_chat_id,
            press_message_id=press_message_id,
            citizen_chat_id=citizen_chat_id,
            citizen_message_id=citizen_message_id,
        )
    )
    await session.flush()


async def find_relay(
    session: AsyncSession, press_chat_id: int, press_message_id: int
) -> Relay | None:
    result = await session.exec(
        select(Relay).where(
            Relay.press_chat_id == press_chat_id, Relay.press_message_id == press_message_id
        )
    )
    return result.first()
