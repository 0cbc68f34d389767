"""Telegram sandbox outbox: the messages the bot sends and edits, as Telegram stores them."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime
from typing import Any

from bot.sandbox.telegram.model import (
    _MAX_CAPTION,
    JsonDict,
    MessageKey,
    SentMessage,
    UploadedFile,
    _as_bool,
    _as_int,
    _bad_request,
    _BotAccount,
    _html_plain_text,
    _public_chat,
    _unix,
    _without_reply,
)
from bot.sandbox.telegram.updates import TelegramUpdates

logger = logging.getLogger(__name__)


class TelegramOutbox(TelegramUpdates):
    """Store bot messages (sent, copied, forwarded, edited) and record them in `sent`/`edits`."""

    def _send_media(
        self,
        account: _BotAccount,
        params: JsonDict,
        uploads: dict[str, UploadedFile],
        kind: str,
        method: str,
    ) -> JsonDict:
        """Create a photo or document message from an upload, file_id or URL."""
        chat = self._chat_for_send(params)
        upload = uploads.get(kind)
        reference = params.get(kind)
        if upload is None and not reference:
            raise _bad_request(f"there is no {kind} in the request")
        if upload is not None and upload.size == 0:
            raise _bad_request("file must be non-empty")
        raw_caption = params.get("caption")
        caption = None
        if raw_caption is not None:
            caption = self._visible_text(str(raw_caption), params.get("parse_mode"))
            if len(caption) > _MAX_CAPTION:
                raise _bad_request("message caption is too long")
        file_number = next(self._file_ids)
        file_id = f"sandbox-{kind}-{file_number}"
        size = upload.size if upload is not None else 0
        content: JsonDict
        if kind == "photo":
            content = {
                "photo": [
                    {
                        "file_id": f"{file_id}-s",
                        "file_unique_id": f"u{file_number}s",
                        "width": 90,
                        "height": 60,
                        "file_size": max(size // 20, 1),
                    },
                    {
                        "file_id": file_id,
                        "file_unique_id": f"u{file_number}",
                        "width": 1280,
                        "height": 853,
                        "file_size": size,
                    },
                ]
            }
        else:
            filename = upload.filename if upload is not None else "document"
            content = {
                "document": {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_number}",
                    "file_name": filename,
                    "mime_type": (upload.content_type if upload else None)
                    or "application/octet-stream",
                    "file_size": size,
                }
            }
        if caption is not None:
            content["caption"] = caption
        files = [upload] if upload is not None else []
        return self._create_bot_message(
            account, chat, params, content, method, raw_text=raw_caption, files=files
        )

    def _create_bot_message(
        self,
        account: _BotAccount,
        chat: JsonDict,
        params: JsonDict,
        content: JsonDict,
        method: str,
        *,
        raw_text: str | None = None,
        files: list[UploadedFile] | None = None,
        allow_reply: bool = True,
    ) -> JsonDict:
        """Store a message the bot sent, record it in `sent`, and return it."""
        chat_id = int(chat["id"])
        bc_id = str(params.get("business_connection_id") or "")
        message: JsonDict = {"message_id": 0, "date": _unix(None, self.now)}
        message["chat"] = _public_chat(chat)
        if bc_id:
            connection = self._business_connections.get(bc_id)
            if connection is None or not connection["is_enabled"]:
                raise _bad_request("BUSINESS_CONNECTION_INVALID")
            message["from"] = copy.deepcopy(connection["user"])
            message["sender_business_bot"] = self._bot_public(account)
            message["business_connection_id"] = bc_id
        elif chat["type"] == "channel":
            message["sender_chat"] = _public_chat(chat)
        else:
            message["from"] = self._bot_public(account)
        thread_id = params.get("message_thread_id")
        reply_to_id: int | None = None
        if allow_reply:
            replied = self._reply_target(bc_id, chat_id, params)
            if replied is not None:
                reply_to_id = int(replied["message_id"])
                message["reply_to_message"] = _without_reply(replied)
                if thread_id is None:
                    thread_id = self._inherited_thread(chat, replied)
        if thread_id is not None:
            message["message_thread_id"] = int(thread_id)
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        message.update(content)
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            # Message objects only carry inline keyboards; reply keyboards stay client-side.
            message["reply_markup"] = copy.deepcopy(markup)
        message["message_id"] = self._next_message_id(bc_id, chat_id)
        key = (bc_id, chat_id, int(message["message_id"]))
        self._messages[key] = message
        self._bot_authored[key] = account.bot_id
        text = message.get("text") if raw_text is None else raw_text
        if text is None:
            text = message.get("caption")
        self.sent.append(
            SentMessage(
                method=method,
                chat_id=chat_id,
                text=text,
                message_id=int(message["message_id"]),
                date=datetime.fromtimestamp(message["date"], UTC),
                reply_markup=copy.deepcopy(markup) if isinstance(markup, dict) else None,
                reply_to_message_id=reply_to_id,
                message_thread_id=message.get("message_thread_id"),
                business_connection_id=bc_id or None,
                parse_mode=params.get("parse_mode"),
                caption=message.get("caption"),
                files=list(files or []),
                bot_id=account.bot_id,
                message=copy.deepcopy(message),
                params=copy.deepcopy(params),
            )
        )
        self._notify_sent()
        if chat["type"] == "channel":
            forward = self._auto_forward(chat, message)
            if forward is not None:
                self.inject_update({"message": forward}, bot_id=account.bot_id)
        return copy.deepcopy(message)

    def _record_edit(
        self,
        account: _BotAccount,
        key: MessageKey,
        current: JsonDict,
        params: JsonDict,
        method: str,
        raw_text: str | None,
    ) -> JsonDict:
        """Apply an edit to the store and record it in `edits`."""
        current["edit_date"] = _unix(None, self.now)
        self._messages[key] = current
        self.edits.append(
            SentMessage(
                method=method,
                chat_id=key[1],
                text=raw_text,
                message_id=key[2],
                date=datetime.fromtimestamp(current["edit_date"], UTC),
                reply_markup=copy.deepcopy(current.get("reply_markup")),
                message_thread_id=current.get("message_thread_id"),
                business_connection_id=key[0] or None,
                parse_mode=params.get("parse_mode"),
                bot_id=account.bot_id,
                message=copy.deepcopy(current),
                params=copy.deepcopy(params),
            )
        )
        self._notify_sent()
        return copy.deepcopy(current)

    def _editable(self, account: _BotAccount, params: JsonDict) -> tuple[MessageKey, JsonDict]:
        """Find a message the bot may edit."""
        if params.get("inline_message_id"):
            raise _bad_request("inline messages are not supported by the sandbox")
        chat = self._chat_for_send(params, check_block=False)
        bc_id = str(params.get("business_connection_id") or "")
        key = (bc_id, int(chat["id"]), _as_int(params.get("message_id"), 0))
        current = self._messages.get(key)
        if current is None:
            raise _bad_request("message to edit not found")
        if self._bot_authored.get(key) != account.bot_id:
            raise _bad_request("message can't be edited")
        return key, copy.deepcopy(current)

    @staticmethod
    def _set_markup(message: JsonDict, markup: JsonDict | None) -> None:
        """Set or remove a message's inline keyboard."""
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = copy.deepcopy(markup)

    def _source_message(self, params: JsonDict, missing: str) -> JsonDict:
        """Find the message copyMessage/forwardMessage refers to."""
        source_chat = self._require_chat(params.get("from_chat_id"))
        key = ("", int(source_chat["id"]), _as_int(params.get("message_id"), 0))
        found = self._messages.get(key)
        if found is None:
            raise _bad_request(missing)
        return found

    @staticmethod
    def _origin_of(source: JsonDict) -> JsonDict:
        """Build MessageOrigin for a forward of `source`."""
        origin = source.get("forward_origin")
        if origin is not None:
            return copy.deepcopy(origin)
        sender_chat = source.get("sender_chat")
        if sender_chat is not None and sender_chat.get("type") == "channel":
            return {
                "type": "channel",
                "date": source["date"],
                "chat": copy.deepcopy(sender_chat),
                "message_id": source["message_id"],
            }
        if sender_chat is not None:
            return {"type": "chat", "date": source["date"], "sender_chat": sender_chat}
        return {"type": "user", "date": source["date"], "sender_user": source.get("from", {})}

    def _reply_target(self, bc_id: str, chat_id: int, params: JsonDict) -> JsonDict | None:
        """Resolve reply_parameters / reply_to_message_id to the stored message."""
        reply = params.get("reply_parameters")
        message_id: int | None = None
        allow_missing = _as_bool(params.get("allow_sending_without_reply", False))
        if isinstance(reply, dict) and reply.get("message_id") is not None:
            message_id = int(reply["message_id"])
            allow_missing = allow_missing or _as_bool(
                reply.get("allow_sending_without_reply", False)
            )
            reply_chat = reply.get("chat_id")
            target = self._find_chat(reply_chat) if reply_chat is not None else None
            if reply_chat is not None and (target is None or int(target["id"]) != chat_id):
                # Replies into another chat are external replies; the sandbox ignores them.
                return None
        elif params.get("reply_to_message_id") is not None:
            message_id = _as_int(params.get("reply_to_message_id"), 0)
        if message_id is None:
            return None
        found = self._messages.get((bc_id, chat_id, message_id))
        if found is None and not allow_missing:
            raise _bad_request("message to be replied not found")
        return found

    @staticmethod
    def _visible_text(text: str, parse_mode: Any) -> str:
        """Return the text Telegram shows (HTML markup validated and stripped)."""
        if isinstance(parse_mode, str) and parse_mode.upper() == "HTML":
            return _html_plain_text(text)
        return text
