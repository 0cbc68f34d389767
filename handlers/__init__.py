"""Platform adapters. Telegram routers are collected here with their chat-type filters."""

from __future__ import annotations

from aiogram import Router

from bot.app import AppContext
from handlers.telegram.filters import ChatType, DiscussionChat, InPressChat, LooksLikeCommand
from handlers.telegram.unit import open_sessions

__all__ = ["setup_telegram_routers"]


def setup_telegram_routers(app: AppContext) -> list[Router]:
    """All Telegram routers, each behind the filter of the chats it serves.

    Only a message that looks like a command enters the command routers, so that supervisors'
    and operators' commands are never taken as appeals while a plain comment passes by them with
    one check. The press, private and discussion routers serve disjoint chats; the discussion
    router comes first because group comments are most of the traffic; the dispatcher includes
    these routers directly (each level of nesting costs every update). Every filter here is a
    coroutine: aiogram runs a synchronous filter (a magic `F` filter too) in a thread pool.
    """
    from handlers.telegram import (
        business,
        channel,
        discussion,
        doubtful,
        membership,
        onboarding,
        press,
        pressoffice,
        private,
        service,
        supervisors,
        web,
    )

    commands = Router(name="commands")
    commands.message.filter(LooksLikeCommand())
    commands.include_routers(
        service.create_router(),
        supervisors.create_router(app),
        pressoffice.create_router(app),
        doubtful.create_router(),
        onboarding.create_router(app),  # after pressoffice: its startup loads the press chats
        web.create_router(app),
    )
    group_router = discussion.create_router()
    group_router.message.filter(DiscussionChat(app))
    group_router.edited_message.filter(DiscussionChat(app))
    group_router.message_reaction.filter(DiscussionChat(app))
    press_router = press.create_router()
    press_router.message.filter(InPressChat(app))
    private_router = private.create_router()
    private_router.message.filter(ChatType("private"))
    # Every handler but the discussion group's gets the update's session (middlewares.py).
    for router in (commands, press_router, private_router):
        open_sessions(router)
    return [
        commands,
        group_router,
        press_router,
        private_router,
        open_sessions(membership.create_router()),
        open_sessions(business.create_router()),
        channel.create_router(),  # a channel's own posts: submitted like comments
    ]
