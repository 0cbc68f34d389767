"""Telegram sandbox world: bots, chats, users, messages and the lookups over them."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.failures import FailureSchedule
from bot.sandbox.telegram.model import (
    FailureAnswer,
    JsonDict,
    MessageKey,
    SandboxApiError,
    SentMessage,
    _bad_request,
    _BotAccount,
    _ChatState,
    _utc_now,
)

logger = logging.getLogger(__name__)


class TelegramWorld:
    """The sandbox's state; the layers above add updates, sending, the Bot API and control."""

    def __init__(self) -> None:
        """Create an empty sandbox; call start() to serve it."""
        self.now: Callable[[], datetime] = _utc_now
        self.sent: list[SentMessage] = []
        self.edits: list[SentMessage] = []
        self.deleted: list[tuple[int, int]] = []
        self.calls: list[tuple[str, JsonDict]] = []
        self.callback_answers: list[JsonDict] = []
        self._bots: dict[str, _BotAccount] = {}
        self._default_token: str | None = None
        self._chats: dict[int, JsonDict] = {}
        self._chat_state: dict[int, _ChatState] = {}
        self._users: dict[int, JsonDict] = {}
        self._messages: dict[MessageKey, JsonDict] = {}
        self._bot_authored: dict[MessageKey, int] = {}
        self._last_message_id: dict[tuple[str, int], int] = {}
        self._business_connections: dict[str, JsonDict] = {}
        self._business_chats: dict[tuple[str, int], JsonDict] = {}
        self._callback_ids: set[str] = set()
        self._failures: FailureSchedule[FailureAnswer] = FailureSchedule()
        self._update_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._callback_seq = itertools.count(1)
        self._sent_changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._base_url = ""

    # ------------------------------------------------------------------ world setup

    def add_bot(self, token: str, user_id: int, username: str, first_name: str = "Otklik") -> None:
        """Register a bot token; the first one becomes the default for inject_*()."""
        user = {
            "id": user_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": True,
            "has_main_web_app": False,
        }
        self._bots[token] = _BotAccount(token=token, user=user)
        self._users[user_id] = {k: user[k] for k in ("id", "is_bot", "first_name", "username")}
        if self._default_token is None:
            self._default_token = token

    def add_chat(self, chat: JsonDict) -> JsonDict:
        """Register (or replace) a chat: channel, supergroup, group or private user."""
        if "id" not in chat or "type" not in chat:
            raise ValueError("a chat needs 'id' and 'type'")
        stored = copy.deepcopy(chat)
        self._chats[int(stored["id"])] = stored
        self._chat_state.setdefault(int(stored["id"]), _ChatState())
        if stored["type"] == "private":
            user = {"id": stored["id"], "is_bot": False, "first_name": stored.get("first_name", "")}
            for key in ("last_name", "username", "language_code"):
                if key in stored:
                    user[key] = stored[key]
            self._users.setdefault(int(stored["id"]), user)
        return stored

    def add_user(self, user: JsonDict) -> JsonDict:
        """Register a user and their private chat with the bot (as if they pressed Start)."""
        self._users[int(user["id"])] = copy.deepcopy(user)
        if int(user["id"]) not in self._chats:
            self.add_chat(self.private_chat(user))
        return self._users[int(user["id"])]

    def set_admins(
        self, chat_id: int, admins: Iterable[JsonDict], bot_is_admin: bool = True
    ) -> None:
        """Set a chat's administrators (user dicts or ChatMember dicts)."""
        chat = self._require_chat(chat_id)
        state = self._chat_state[int(chat["id"])]
        state.admins = []
        for admin in admins:
            if "status" in admin and "user" in admin:
                member = copy.deepcopy(admin)
            else:
                member = self._admin_member(admin, chat)
            self._users.setdefault(int(member["user"]["id"]), member["user"])
            state.admins.append(member)
        state.bot_is_admin = bot_is_admin

    def block_chat(self, chat_id: int, blocked: bool = True) -> None:
        """Make sends to a private chat fail with 403 as if the user blocked the bot."""
        self._chat_state[int(self._require_chat(chat_id)["id"])].blocked = blocked

    @staticmethod
    def make_user(
        user_id: int,
        first_name: str,
        username: str | None = None,
        last_name: str | None = None,
        *,
        is_bot: bool = False,
    ) -> JsonDict:
        """Build a User dict."""
        user: JsonDict = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        return user

    @staticmethod
    def private_chat(user: JsonDict) -> JsonDict:
        """Build the private Chat dict of a user."""
        chat: JsonDict = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        return chat

    # ------------------------------------------------------------------ lookups

    def _account(self, bot_id: int | None) -> _BotAccount:
        """Return a bot account by id (the first registered one by default)."""
        if bot_id is None:
            if self._default_token is None:
                raise RuntimeError("no bot registered; call add_bot() first")
            return self._bots[self._default_token]
        for account in self._bots.values():
            if account.bot_id == bot_id:
                return account
        raise KeyError(f"no bot with id {bot_id}")

    @staticmethod
    def _bot_public(account: _BotAccount) -> JsonDict:
        """Return the bot as it appears in `from`."""
        return {key: account.user[key] for key in ("id", "is_bot", "first_name", "username")}

    def _find_chat(self, chat_id: Any) -> JsonDict | None:
        """Look a chat up by numeric id or @username."""
        if isinstance(chat_id, str):
            if chat_id.startswith("@"):
                name = chat_id[1:].lower()
                for chat in self._chats.values():
                    if str(chat.get("username", "")).lower() == name:
                        return chat
                return None
            try:
                chat_id = int(chat_id)
            except ValueError:
                return None
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            return None
        return self._chats.get(chat_id)

    def _require_chat(self, chat_id: Any) -> JsonDict:
        """Return a registered chat or raise Telegram's 'chat not found'."""
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        chat = self._find_chat(chat_id)
        if chat is None:
            raise _bad_request("chat not found")
        self._chat_state.setdefault(int(chat["id"]), _ChatState())
        return chat

    def _chat_for_send(self, params: JsonDict, *, check_block: bool = True) -> JsonDict:
        """Return the target chat of a send (or a business chat), honouring blocks."""
        bc_id = params.get("business_connection_id")
        if bc_id:
            try:
                business_chat = self._business_chats.get((str(bc_id), int(params["chat_id"])))
            except (KeyError, TypeError, ValueError):
                business_chat = None
            if business_chat is None:
                raise _bad_request("chat not found")
            return business_chat
        chat = self._require_chat(params.get("chat_id"))
        if check_block and self._chat_state[int(chat["id"])].blocked:
            raise SandboxApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _chat_for_message(self, chat: JsonDict | int) -> JsonDict:
        """Accept a chat dict (registering it if new) or a registered chat id."""
        if isinstance(chat, dict):
            known = self._chats.get(int(chat["id"]))
            if known is not None:
                return known
            if chat.get("type") == "private":
                # A business chat or a first contact: do not grant the bot a private chat yet.
                return copy.deepcopy(chat)
            return self.add_chat(chat)
        found = self._chats.get(int(chat))
        if found is None:
            raise ValueError(f"chat {chat} is not registered")
        return found

    def _admin_member(self, user: JsonDict, chat: JsonDict) -> JsonDict:
        """Build ChatMemberAdministrator with typical press-office rights."""
        is_channel = chat.get("type") == "channel"
        return {
            "status": "administrator",
            "user": copy.deepcopy(user),
            "can_be_edited": False,
            "is_anonymous": False,
            "can_manage_chat": True,
            "can_delete_messages": True,
            "can_manage_video_chats": True,
            "can_restrict_members": not is_channel,
            "can_promote_members": False,
            "can_change_info": True,
            "can_invite_users": True,
            "can_post_stories": False,
            "can_edit_stories": False,
            "can_delete_stories": False,
            "can_send_welcome_messages": False,
            **(
                {"can_post_messages": True, "can_edit_messages": True}
                if is_channel
                else {"can_pin_messages": True}
            ),
        }

    def _member(self, user: JsonDict, status: str, chat: JsonDict) -> JsonDict:
        """Build a ChatMember of a simple status."""
        if status == "administrator":
            return self._admin_member(user, chat)
        if status == "creator":
            return {"status": "creator", "user": copy.deepcopy(user), "is_anonymous": False}
        if status == "kicked":
            return {"status": "kicked", "user": copy.deepcopy(user), "until_date": 0}
        if status in {"member", "left"}:
            return {"status": status, "user": copy.deepcopy(user)}
        raise ValueError(f"unsupported member status {status!r}")

    @staticmethod
    def _commands_key(scope: Any, language_code: str) -> str:
        """Key the command lists by scope and language, as Telegram does."""
        scope_dict = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps(scope_dict, sort_keys=True) + "|" + language_code

    def _wake(self, account: _BotAccount) -> None:
        """Wake everyone waiting on this bot's queue."""
        account.wakeup.set()
        account.wakeup = asyncio.Event()

    def _notify_sent(self) -> None:
        """Wake wait_for_sent()/wait_for_call() waiters."""
        self._sent_changed.set()
        self._sent_changed = asyncio.Event()
