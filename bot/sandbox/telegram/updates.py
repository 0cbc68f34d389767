"""Telegram sandbox updates: building incoming messages, queueing and delivering updates."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import aiohttp

from bot.sandbox.telegram.model import (
    CHANNEL_BOT_USER,
    DEFAULT_EXCLUDED_UPDATES,
    GROUP_ANONYMOUS_BOT_USER,
    MESSAGE_KINDS,
    TELEGRAM_SERVICE_USER,
    JsonDict,
    SentMessage,
    _BotAccount,
    _ChatState,
    _public_chat,
    _reaction,
    _unix,
    _update_type,
    _without_reply,
)
from bot.sandbox.telegram.world import TelegramWorld

logger = logging.getLogger(__name__)


class TelegramUpdates(TelegramWorld):
    """What citizens and staff do (inject_*) and how the queued updates reach the bot."""

    # ------------------------------------------------------------------ building updates

    def make_message(
        self,
        chat: JsonDict | int,
        from_user: JsonDict | None = None,
        text: str | None = None,
        *,
        sender_chat: JsonDict | int | None = None,
        reply_to: JsonDict | int | None = None,
        message_thread_id: int | None = None,
        is_automatic_forward: bool = False,
        date: datetime | int | None = None,
        business_connection_id: str | None = None,
        kind: str = "text",
        message_id: int | None = None,
        forward_origin: JsonDict | None = None,
    ) -> JsonDict:
        """Build and store a realistic incoming Message dict (not queued)."""
        if kind not in MESSAGE_KINDS:
            raise ValueError(f"unknown message kind {kind!r}")
        chat_dict = self._chat_for_message(chat)
        chat_id = int(chat_dict["id"])
        bc_id = business_connection_id or ""
        if message_id is None:
            message_id = self._next_message_id(bc_id, chat_id)
        else:
            key = (bc_id, chat_id)
            self._last_message_id[key] = max(self._last_message_id.get(key, 0), message_id)
        sender = self._chat_for_message(sender_chat) if sender_chat is not None else None
        if sender is None and chat_dict["type"] == "channel":
            sender = chat_dict  # channel posts are signed by the channel itself
        message: JsonDict = {
            "message_id": message_id,
            "date": _unix(date, self.now),
            "chat": _public_chat(chat_dict),
        }
        author = self._default_author(chat_dict, from_user, sender, is_automatic_forward)
        if author is not None:
            message["from"] = copy.deepcopy(author)
            if not author.get("is_bot") and author["id"] not in (TELEGRAM_SERVICE_USER["id"],):
                self._users.setdefault(int(author["id"]), copy.deepcopy(author))
        if sender is not None:
            message["sender_chat"] = _public_chat(sender)
        if business_connection_id:
            message["business_connection_id"] = business_connection_id
        if is_automatic_forward:
            message["is_automatic_forward"] = True
        if forward_origin is not None:
            message["forward_origin"] = copy.deepcopy(forward_origin)
        replied = self._lookup_reply(bc_id, chat_id, reply_to)
        thread_id = message_thread_id
        if replied is not None:
            message["reply_to_message"] = _without_reply(replied)
            if thread_id is None:
                thread_id = self._inherited_thread(chat_dict, replied)
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat_dict.get("is_forum"):
                message["is_topic_message"] = True
        message.update(self._content(kind, text))
        if chat_dict["type"] == "private" and author is not None and not business_connection_id:
            # A user writing to the bot has a private chat it can answer in.
            self._chats.setdefault(chat_id, chat_dict)
            self._chat_state.setdefault(chat_id, _ChatState())
        if business_connection_id:
            self._business_chats[(bc_id, chat_id)] = _public_chat(chat_dict)
        self._messages[(bc_id, chat_id, message_id)] = message
        return copy.deepcopy(message)

    def inject_update(self, update: JsonDict, *, bot_id: int | None = None) -> int:
        """Queue an update for the bot (assigning a monotonic update_id) and wake pollers."""
        account = self._account(bot_id)
        queued = copy.deepcopy(update)
        queued["update_id"] = next(self._update_ids)
        account.updates.append(queued)
        self._wake(account)
        logger.debug("Queued %r update %r", _update_type(queued), queued["update_id"])
        return int(queued["update_id"])

    def inject_message(
        self,
        chat: JsonDict | int,
        from_user: JsonDict | None = None,
        text: str | None = None,
        *,
        bot_id: int | None = None,
        **kwargs: Any,
    ) -> JsonDict:
        """Build a message (see make_message), queue it, return it with its update_id."""
        message = self.make_message(chat, from_user, text, **kwargs)
        if message.get("business_connection_id"):
            update_type = "business_message"
        elif message["chat"]["type"] == "channel":
            update_type = "channel_post"
        else:
            update_type = "message"
        update_id = self.inject_update({update_type: message}, bot_id=bot_id)
        return {**message, "update_id": update_id}

    def inject_channel_post(
        self,
        channel: JsonDict | int,
        text: str | None = None,
        *,
        date: datetime | int | None = None,
        kind: str = "text",
        bot_id: int | None = None,
    ) -> tuple[JsonDict, JsonDict | None]:
        """Publish a channel post; also queue its automatic forward into the linked group."""
        channel_dict = self._require_chat(channel if isinstance(channel, int) else channel["id"])
        post = self.inject_message(channel_dict, None, text, date=date, kind=kind, bot_id=bot_id)
        post.pop("update_id", None)
        forward = self._auto_forward(channel_dict, post)
        if forward is None:
            return post, None
        update_id = self.inject_update({"message": forward}, bot_id=bot_id)
        return post, {**forward, "update_id": update_id}

    def inject_edited_message(
        self,
        message: JsonDict,
        text: str,
        *,
        edit_date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Edit a stored message's text (or caption) and queue the matching edited_* update."""
        bc_id = message.get("business_connection_id") or ""
        key = (bc_id, int(message["chat"]["id"]), int(message["message_id"]))
        current = copy.deepcopy(self._messages.get(key, message))
        current.pop("update_id", None)
        if "text" in current or not any(k in current for k in ("photo", "video", "document")):
            current["text"] = text
        else:
            current["caption"] = text
        current["edit_date"] = _unix(edit_date, self.now)
        self._messages[key] = current
        if bc_id:
            update_type = "edited_business_message"
        elif current["chat"]["type"] == "channel":
            update_type = "edited_channel_post"
        else:
            update_type = "edited_message"
        update_id = self.inject_update({update_type: current}, bot_id=bot_id)
        return {**copy.deepcopy(current), "update_id": update_id}

    def inject_business_connection(
        self,
        connection_id: str,
        user: JsonDict,
        *,
        user_chat_id: int | None = None,
        is_enabled: bool = True,
        can_reply: bool = True,
        date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Connect (or disconnect) a business account to the bot and queue the update."""
        connection: JsonDict = {
            "id": connection_id,
            "user": copy.deepcopy(user),
            "user_chat_id": user_chat_id if user_chat_id is not None else user["id"],
            "date": _unix(date, self.now),
            "is_enabled": is_enabled,
            "rights": {"can_reply": can_reply, "can_read_messages": True},
        }
        self._business_connections[connection_id] = connection
        self._users.setdefault(int(user["id"]), copy.deepcopy(user))
        update_id = self.inject_update({"business_connection": connection}, bot_id=bot_id)
        return {**copy.deepcopy(connection), "update_id": update_id}

    def inject_business_message(
        self,
        chat: JsonDict | int,
        from_user: JsonDict,
        text: str | None = None,
        *,
        business_connection_id: str,
        bot_id: int | None = None,
        **kwargs: Any,
    ) -> JsonDict:
        """Queue a business_message in a connected account's private chat."""
        if business_connection_id not in self._business_connections:
            raise ValueError(f"unknown business connection {business_connection_id!r}")
        return self.inject_message(
            chat,
            from_user,
            text,
            business_connection_id=business_connection_id,
            bot_id=bot_id,
            **kwargs,
        )

    def inject_deleted_business_messages(
        self,
        business_connection_id: str,
        chat: JsonDict | int,
        message_ids: Iterable[int],
        *,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue deleted_business_messages; the messages leave the store."""
        chat_dict = self._chat_for_message(chat)
        ids = [int(item) for item in message_ids]
        for message_id in ids:
            self._messages.pop((business_connection_id, int(chat_dict["id"]), message_id), None)
        payload = {
            "business_connection_id": business_connection_id,
            "chat": _public_chat(chat_dict),
            "message_ids": ids,
        }
        update_id = self.inject_update({"deleted_business_messages": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    def inject_message_reaction(
        self,
        chat: JsonDict | int,
        message_id: int,
        user: JsonDict | None = None,
        *,
        actor_chat: JsonDict | int | None = None,
        new_reaction: Iterable[str | JsonDict] = ("👍",),
        old_reaction: Iterable[str | JsonDict] = (),
        date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue a message_reaction update (a user's or an anonymous chat's reaction)."""
        chat_dict = self._chat_for_message(chat)
        payload: JsonDict = {
            "chat": _public_chat(chat_dict),
            "message_id": message_id,
            "date": _unix(date, self.now),
            "old_reaction": [_reaction(item) for item in old_reaction],
            "new_reaction": [_reaction(item) for item in new_reaction],
        }
        if user is not None:
            payload["user"] = copy.deepcopy(user)
        if actor_chat is not None:
            payload["actor_chat"] = _public_chat(self._chat_for_message(actor_chat))
        update_id = self.inject_update({"message_reaction": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    def inject_callback_query(
        self,
        from_user: JsonDict,
        message: JsonDict | SentMessage,
        data: str,
        *,
        callback_id: str | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue a button press on a bot message (its current, edited state)."""
        source = message.message if isinstance(message, SentMessage) else message
        bc_id = source.get("business_connection_id") or ""
        key = (bc_id, int(source["chat"]["id"]), int(source["message_id"]))
        current = copy.deepcopy(self._messages.get(key, source))
        current.pop("update_id", None)
        query_id = callback_id or f"cbq-{next(self._callback_seq)}"
        self._callback_ids.add(query_id)
        payload = {
            "id": query_id,
            "from": copy.deepcopy(from_user),
            "message": current,
            "chat_instance": f"ci{abs(int(current['chat']['id']))}",
            "data": data,
        }
        self._users.setdefault(int(from_user["id"]), copy.deepcopy(from_user))
        update_id = self.inject_update({"callback_query": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    def inject_my_chat_member(
        self,
        chat: JsonDict | int,
        new_status: str = "administrator",
        *,
        old_status: str = "left",
        from_user: JsonDict | None = None,
        date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue my_chat_member: the bot was added, promoted or removed in a chat."""
        chat_dict = self._chat_for_message(chat)
        account = self._account(bot_id)
        state = self._chat_state.setdefault(int(chat_dict["id"]), _ChatState())
        actor = from_user
        if actor is None:
            actor = state.admins[0]["user"] if state.admins else self.make_user(1, "Admin")
        payload = {
            "chat": _public_chat(chat_dict),
            "from": copy.deepcopy(actor),
            "date": _unix(date, self.now),
            "old_chat_member": self._member(account.user, old_status, chat_dict),
            "new_chat_member": self._member(account.user, new_status, chat_dict),
        }
        state.bot_is_admin = new_status == "administrator"
        update_id = self.inject_update({"my_chat_member": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    def _auto_forward(self, channel: JsonDict, post: JsonDict) -> JsonDict | None:
        """Store the automatic forward of a channel post in its linked discussion group."""
        linked = channel.get("linked_chat_id")
        if linked is None or int(linked) not in self._chats:
            return None
        content = self._copyable_content(post)
        forward = self.make_message(
            int(linked),
            None,
            None,
            sender_chat=channel,
            is_automatic_forward=True,
            date=post["date"],
            forward_origin={
                "type": "channel",
                "date": post["date"],
                "chat": _public_chat(channel),
                "message_id": post["message_id"],
            },
        )
        forward.pop("text", None)
        forward.update(content)
        self._messages[("", int(linked), int(forward["message_id"]))] = forward
        return copy.deepcopy(forward)

    @staticmethod
    def _copyable_content(source: JsonDict) -> JsonDict:
        """Return the content fields of a message (text or media with caption)."""
        keys = ("text", "entities", "photo", "document", "voice", "video", "sticker", "caption")
        return {key: copy.deepcopy(source[key]) for key in keys if key in source}

    def _lookup_reply(
        self, bc_id: str, chat_id: int, reply_to: JsonDict | int | None
    ) -> JsonDict | None:
        """Resolve make_message(reply_to=...) given as a message dict or a message_id."""
        if reply_to is None:
            return None
        if isinstance(reply_to, dict):
            key = (bc_id, chat_id, int(reply_to["message_id"]))
            stored = self._messages.get(key, reply_to)
            return {k: v for k, v in stored.items() if k != "update_id"}
        found = self._messages.get((bc_id, chat_id, int(reply_to)))
        if found is None:
            raise ValueError(f"message {reply_to} not found in chat {chat_id}")
        return found

    @staticmethod
    def _inherited_thread(chat: JsonDict, replied: JsonDict) -> int | None:
        """Return the thread a reply lands in (comment threads of discussion groups)."""
        if chat.get("type") != "supergroup":
            return None
        if replied.get("message_thread_id") is not None:
            return int(replied["message_thread_id"])
        if replied.get("is_automatic_forward"):
            return int(replied["message_id"])
        return None

    def _default_author(
        self,
        chat: JsonDict,
        from_user: JsonDict | None,
        sender_chat: JsonDict | None,
        is_automatic_forward: bool,
    ) -> JsonDict | None:
        """Pick `from` for an incoming message the way Telegram fills it."""
        if from_user is not None:
            return from_user
        if is_automatic_forward:
            return TELEGRAM_SERVICE_USER
        if sender_chat is not None and chat["type"] != "channel":
            if int(sender_chat["id"]) == int(chat["id"]):
                return GROUP_ANONYMOUS_BOT_USER
            return CHANNEL_BOT_USER
        if chat["type"] == "channel":
            return None
        if chat["type"] == "private":
            return self._users.get(int(chat["id"])) or self.make_user(
                int(chat["id"]), str(chat.get("first_name", "User"))
            )
        raise ValueError("from_user or sender_chat is required for group messages")

    def _content(self, kind: str, text: str | None) -> JsonDict:
        """Build the content fields of an incoming message of a given kind."""
        if kind == "text":
            return {"text": text if text is not None else ""}
        number = next(self._file_ids)
        file_id, unique = f"sandbox-in-{kind}-{number}", f"ui{number}"
        content: JsonDict
        if kind == "photo":
            content = {
                "photo": [
                    {"file_id": file_id, "file_unique_id": unique, "width": 1280, "height": 960}
                ]
            }
        elif kind == "voice":
            content = {
                "voice": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "duration": 7,
                    "mime_type": "audio/ogg",
                }
            }
        elif kind == "video":
            content = {
                "video": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "width": 1280,
                    "height": 720,
                    "duration": 12,
                }
            }
        elif kind == "video_note":
            content = {
                "video_note": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "length": 240,
                    "duration": 9,
                }
            }
            text = None  # a video note has no caption
        elif kind == "poll":
            return {
                "poll": {
                    "id": str(number),
                    "question": text or "Опрос",
                    "options": [
                        {"persistent_id": "1", "text": "Да", "voter_count": 0},
                        {"persistent_id": "2", "text": "Нет", "voter_count": 0},
                    ],
                    "total_voter_count": 0,
                    "is_closed": False,
                    "is_anonymous": True,
                    "type": "regular",
                    "allows_multiple_answers": False,
                    "allows_revoting": False,
                    "members_only": False,
                }
            }
        elif kind == "document":
            content = {
                "document": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "file_name": "document.pdf",
                    "mime_type": "application/pdf",
                }
            }
        else:
            return {
                "sticker": {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "emoji": text or "👍",
                }
            }
        if text:
            content["caption"] = text
        return content

    def _next_message_id(self, bc_id: str, chat_id: int) -> int:
        """Return the next message_id in a chat (ids grow per chat)."""
        key = (bc_id, chat_id)
        self._last_message_id[key] = self._last_message_id.get(key, 0) + 1
        return self._last_message_id[key]

    # ------------------------------------------------------------------ delivery

    def _remember_allowed_updates(self, account: _BotAccount, allowed: Any) -> None:
        """Apply allowed_updates: absent keeps the previous setting, [] means the default."""
        if allowed is None:
            return
        if isinstance(allowed, str):
            allowed = [allowed]
        account.last_allowed_updates = [str(item) for item in allowed]
        account.allowed_updates = account.last_allowed_updates

    def _is_allowed(self, account: _BotAccount, update: JsonDict) -> bool:
        """Tell whether an update type is delivered under the bot's allowed_updates."""
        update_type = _update_type(update)
        if account.allowed_updates:
            return update_type in account.allowed_updates
        return update_type not in DEFAULT_EXCLUDED_UPDATES

    def _deliverable(self, account: _BotAccount, limit: int) -> list[JsonDict]:
        """Drop updates the bot did not subscribe to and return the next batch."""
        kept = []
        for update in account.updates:
            if self._is_allowed(account, update):
                kept.append(update)
            else:
                logger.debug(
                    "Dropping %r update %r: not in allowed_updates",
                    _update_type(update),
                    update["update_id"],
                )
        account.updates = kept
        return copy.deepcopy(kept[:limit])

    @staticmethod
    def _confirm(account: _BotAccount, offset: int) -> None:
        """Forget updates below offset (negative: keep only the last -offset ones)."""
        if offset > 0:
            account.updates = [u for u in account.updates if u["update_id"] >= offset]
            account.confirmed_offset = max(account.confirmed_offset, offset)
        elif offset < 0:
            account.updates = account.updates[offset:]

    async def _deliver_webhook(self, account: _BotAccount) -> None:
        """POST queued updates to the bot's webhook one by one, retrying on failure."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        client = self._client
        while account.webhook_url and not self._closing:
            batch = self._deliverable(account, 1)
            if not batch:
                await account.wakeup.wait()
                continue
            update = batch[0]
            headers = {}
            if account.webhook_secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = account.webhook_secret
            try:
                async with client.post(
                    account.webhook_url,
                    json=update,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as response:
                    delivered = 200 <= response.status < 300
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivered, status = False, 0
                logger.info("Webhook delivery failed: %r", type(exc).__name__)
            if delivered:
                self._confirm(account, int(update["update_id"]) + 1)
                self._wake(account)
                continue
            logger.info("Webhook answered %r; retrying update %r", status, update["update_id"])
            await asyncio.sleep(0.2)
