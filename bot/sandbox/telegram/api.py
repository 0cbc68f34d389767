"""Telegram sandbox Bot API: one handler per method, answering as Telegram does."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.sandbox.telegram.model import (
    _MAX_TEXT,
    JsonDict,
    SandboxApiError,
    UploadedFile,
    _as_bool,
    _as_int,
    _bad_request,
    _BotAccount,
    _decode_param,
)
from bot.sandbox.telegram.outbox import TelegramOutbox

logger = logging.getLogger(__name__)


class TelegramApi(TelegramOutbox):
    """Serve /bot<token>/<method>: parse parameters, apply planned failures, dispatch."""

    def __init__(self) -> None:
        """Create an empty sandbox; call start() to serve it."""
        super().__init__()
        self._methods: dict[
            str, Callable[[_BotAccount, JsonDict, dict[str, UploadedFile]], Awaitable[Any]]
        ] = {
            "getme": self._api_get_me,
            "getupdates": self._api_get_updates,
            "deletewebhook": self._api_delete_webhook,
            "setwebhook": self._api_set_webhook,
            "getwebhookinfo": self._api_get_webhook_info,
            "logout": self._api_true,
            "close": self._api_true,
            "sendmessage": self._api_send_message,
            "copymessage": self._api_copy_message,
            "forwardmessage": self._api_forward_message,
            "sendphoto": self._api_send_photo,
            "senddocument": self._api_send_document,
            "editmessagetext": self._api_edit_message_text,
            "editmessagereplymarkup": self._api_edit_message_reply_markup,
            "deletemessage": self._api_delete_message,
            "answercallbackquery": self._api_answer_callback_query,
            "getchat": self._api_get_chat,
            "getchatadministrators": self._api_get_chat_administrators,
            "getchatmember": self._api_get_chat_member,
            "getchatmembercount": self._api_get_chat_member_count,
            "setmycommands": self._api_set_my_commands,
            "deletemycommands": self._api_delete_my_commands,
            "getmycommands": self._api_get_my_commands,
            "setchatmenubutton": self._api_set_chat_menu_button,
            "sendchataction": self._api_send_chat_action,
        }

    # ------------------------------------------------------------------ HTTP: Bot API

    async def _handle_api(self, request: web.Request) -> web.Response:
        """Serve one Bot API call."""
        account = self._bots.get(request.match_info["token"])
        if account is None:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        try:
            params, uploads = await self._read_params(request)
            self.calls.append((method, params))
            self._notify_sent()
            self._raise_scheduled_failure(method)
            handler = self._methods.get(method.lower())
            if handler is None:
                logger.warning("Bot API method %r is not implemented by the sandbox", method)
                raise _bad_request("method not found")
            result = await handler(account, params, uploads)
        except SandboxApiError as exc:
            if exc.error_code >= 500:
                logger.info("Sandbox answers %r with %r", method, exc.error_code)
            return web.json_response(exc.payload(), status=exc.error_code)
        except Exception:
            # A sandbox bug (or a naive clock) must surface as a JSON error, not a bare 500.
            logger.exception("Sandbox failed to serve %r", method)
            failure = SandboxApiError(500, "Internal Server Error: sandbox failure")
            return web.json_response(failure.payload(), status=500)
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> tuple[JsonDict, dict[str, UploadedFile]]:
        """Collect query, JSON, urlencoded and multipart parameters; keep file sizes."""
        raw: JsonDict = dict(request.query)
        uploads: dict[str, UploadedFile] = {}
        if request.method == "POST" and request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise _bad_request("can't parse JSON body") from exc
                if not isinstance(body, dict):
                    raise _bad_request("JSON body must be an object")
                raw.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        data = value.file.read()
                        uploads[key] = UploadedFile(
                            field=key,
                            filename=value.filename,
                            size=len(data),
                            content_type=value.content_type,
                            data=data,
                        )
                    else:
                        raw[key] = value
        params = {key: _decode_param(key, value) for key, value in raw.items()}
        # aiogram references uploads as "attach://<random key>"; name them by the parameter.
        resolved: dict[str, UploadedFile] = {}
        for key, value in params.items():
            if isinstance(value, str) and value.startswith("attach://"):
                upload = uploads.pop(value.removeprefix("attach://"), None)
                if upload is not None:
                    upload.field = key
                    resolved[key] = upload
        resolved.update(uploads)
        return params, resolved

    def _raise_scheduled_failure(self, method: str) -> None:
        """Raise the error scheduled by fail_next() for this method, if any."""
        failure = self._failures.take(method.lower())
        if failure is None:
            return
        if failure.status == 429:
            raise SandboxApiError(
                429,
                failure.description or f"Too Many Requests: retry after {failure.retry_after}",
                {"retry_after": failure.retry_after},
            )
        defaults = {
            400: "Bad Request: sandbox failure",
            403: "Forbidden: bot was kicked from the chat",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }
        raise SandboxApiError(failure.status, failure.description or defaults[failure.status])

    # ------------------------------------------------------------------ Bot API methods

    async def _api_true(self, account: _BotAccount, params: JsonDict, uploads: Any) -> bool:
        """Answer True (logOut, close)."""
        return True

    async def _api_get_me(self, account: _BotAccount, params: JsonDict, uploads: Any) -> JsonDict:
        """Return the bot's User."""
        return dict(account.user)

    async def _api_get_updates(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> list[JsonDict]:
        """Long-poll for updates with Telegram's offset/limit/timeout/allowed_updates rules."""
        if account.webhook_url:
            raise SandboxApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _as_int(params.get("offset"), 0)
        limit = min(max(_as_int(params.get("limit"), 100), 1), 100)
        timeout = max(_as_int(params.get("timeout"), 0), 0)
        self._remember_allowed_updates(account, params.get("allowed_updates"))
        self._confirm(account, offset)
        # A newer getUpdates terminates an older one, as on Telegram.
        account.poll_generation += 1
        generation = account.poll_generation
        self._wake(account)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._closing:
                return []
            if generation != account.poll_generation:
                raise SandboxApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            batch = self._deliverable(account, limit)
            if batch:
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = account.wakeup
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                pass

    async def _api_set_webhook(self, account: _BotAccount, params: JsonDict, uploads: Any) -> bool:
        """Set a webhook; the sandbox then POSTs updates to it."""
        url = str(params.get("url") or "")
        if url and not url.startswith(("http://", "https://")):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self._remember_allowed_updates(account, params.get("allowed_updates"))
        if _as_bool(params.get("drop_pending_updates", False)):
            account.updates.clear()
        account.webhook_url = url
        account.webhook_secret = params.get("secret_token") or None
        self._wake(account)
        if url and account.webhook_task is None and not self._closing:
            account.webhook_task = asyncio.create_task(self._deliver_webhook(account))
        return True

    async def _api_delete_webhook(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Remove the webhook (optionally dropping pending updates)."""
        if _as_bool(params.get("drop_pending_updates", False)):
            account.updates.clear()
        account.webhook_url = ""
        account.webhook_secret = None
        task, account.webhook_task = account.webhook_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return True

    async def _api_get_webhook_info(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Return WebhookInfo."""
        info: JsonDict = {
            "url": account.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(account.updates),
        }
        if account.allowed_updates is not None:
            info["allowed_updates"] = list(account.allowed_updates)
        return info

    async def _api_send_message(
        self, account: _BotAccount, params: JsonDict, uploads: dict[str, UploadedFile]
    ) -> JsonDict:
        """Send a text message."""
        text = params.get("text")
        if text is None or str(text).strip() == "":
            raise _bad_request("message text is empty")
        text = str(text)
        visible = self._visible_text(text, params.get("parse_mode"))
        if len(visible) > _MAX_TEXT:
            raise _bad_request("message is too long")
        chat = self._chat_for_send(params)
        message = self._create_bot_message(
            account, chat, params, {"text": visible}, "sendMessage", raw_text=text
        )
        return message

    async def _api_send_photo(
        self, account: _BotAccount, params: JsonDict, uploads: dict[str, UploadedFile]
    ) -> JsonDict:
        """Send a photo (upload, file_id or URL)."""
        return self._send_media(account, params, uploads, "photo", "sendPhoto")

    async def _api_send_document(
        self, account: _BotAccount, params: JsonDict, uploads: dict[str, UploadedFile]
    ) -> JsonDict:
        """Send a document (upload, file_id or URL)."""
        return self._send_media(account, params, uploads, "document", "sendDocument")

    async def _api_copy_message(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Copy a stored message without a link to the original; return its MessageId."""
        chat = self._chat_for_send(params)
        source = self._source_message(params, "message to copy not found")
        content = self._copyable_content(source)
        raw_caption = params.get("caption")
        if raw_caption is not None and "text" not in content:
            content["caption"] = self._visible_text(str(raw_caption), params.get("parse_mode"))
        message = self._create_bot_message(
            account,
            chat,
            params,
            content,
            "copyMessage",
            raw_text=raw_caption if raw_caption is not None else None,
        )
        return {"message_id": message["message_id"]}

    async def _api_forward_message(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Forward a stored message with its forward_origin."""
        chat = self._chat_for_send(params)
        source = self._source_message(params, "message to forward not found")
        content = self._copyable_content(source)
        content["forward_origin"] = self._origin_of(source)
        return self._create_bot_message(
            account, chat, params, content, "forwardMessage", allow_reply=False
        )

    async def _api_edit_message_text(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Edit the text of a bot message; the inline keyboard goes unless given again."""
        text = params.get("text")
        if text is None or str(text).strip() == "":
            raise _bad_request("message text is empty")
        key, current = self._editable(account, params)
        visible = self._visible_text(str(text), params.get("parse_mode"))
        if "text" not in current:
            raise _bad_request("there is no text in the message to edit")
        markup = params.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if current.get("text") == visible and current.get("reply_markup") == new_markup:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        current["text"] = visible
        self._set_markup(current, new_markup)
        return self._record_edit(account, key, current, params, "editMessageText", str(text))

    async def _api_edit_message_reply_markup(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Replace or remove the inline keyboard of a bot message."""
        key, current = self._editable(account, params)
        markup = params.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if current.get("reply_markup") == new_markup:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        self._set_markup(current, new_markup)
        return self._record_edit(
            account, key, current, params, "editMessageReplyMarkup", current.get("text")
        )

    async def _api_delete_message(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Delete a message (own ones always, others' where the bot is an admin)."""
        chat = self._require_chat(params.get("chat_id"))
        chat_id = int(chat["id"])
        message_id = _as_int(params.get("message_id"), 0)
        key = ("", chat_id, message_id)
        if key not in self._messages:
            raise _bad_request("message to delete not found")
        own = self._bot_authored.get(key) == account.bot_id
        if not own and chat["type"] != "private" and not self._chat_state[chat_id].bot_is_admin:
            raise _bad_request("message can't be deleted")
        del self._messages[key]
        self._bot_authored.pop(key, None)
        self.deleted.append((chat_id, message_id))
        return True

    async def _api_answer_callback_query(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Answer a button press once."""
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._callback_ids:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._callback_ids.discard(query_id)
        self.callback_answers.append(dict(params))
        return True

    async def _api_get_chat(self, account: _BotAccount, params: JsonDict, uploads: Any) -> JsonDict:
        """Return ChatFullInfo: the stored dict plus the fields Telegram always sends."""
        chat = copy.deepcopy(self._require_chat(params.get("chat_id")))
        chat.setdefault("accent_color_id", 0)
        chat.setdefault("max_reaction_count", 11)
        chat.setdefault(
            "accepted_gift_types",
            {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return chat

    async def _api_get_chat_administrators(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> list[JsonDict]:
        """Return the configured admins (and the bot if it is one)."""
        chat = self._require_chat(params.get("chat_id"))
        if chat["type"] == "private":
            raise _bad_request("there are no administrators in the private chat")
        state = self._chat_state[int(chat["id"])]
        admins = copy.deepcopy(state.admins)
        listed = {int(member["user"]["id"]) for member in admins}
        if state.bot_is_admin and account.bot_id not in listed:
            admins.append(self._admin_member(self._bot_public(account), chat))
        return admins

    async def _api_get_chat_member(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> JsonDict:
        """Return a member's status in a chat."""
        chat = self._require_chat(params.get("chat_id"))
        user_id = _as_int(params.get("user_id"), 0)
        state = self._chat_state[int(chat["id"])]
        for member in state.admins:
            if int(member["user"]["id"]) == user_id:
                return copy.deepcopy(member)
        if user_id == account.bot_id:
            status = "administrator" if state.bot_is_admin else "member"
            return self._member(self._bot_public(account), status, chat)
        user = self._users.get(user_id)
        if user is None:
            raise _bad_request("user not found")
        return self._member(user, "member", chat)

    async def _api_get_chat_member_count(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> int:
        """Return the chat's member_count if configured, else admins plus the bot."""
        chat = self._require_chat(params.get("chat_id"))
        if "member_count" in chat:
            return int(chat["member_count"])
        if chat["type"] == "private":
            return 2
        return len(self._chat_state[int(chat["id"])].admins) + 1

    async def _api_set_my_commands(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Store the command list for a scope and language."""
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request('parameter "commands" is required')
        scope = params.get("scope")
        if isinstance(scope, dict) and "chat_id" in scope:
            # As Telegram: a chat scope needs a chat the bot knows (a user who opened the bot).
            self._require_chat(scope["chat_id"])
        key = self._commands_key(scope, params.get("language_code") or "")
        account.commands[key] = copy.deepcopy(commands)
        return True

    async def _api_delete_my_commands(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Delete the command list for a scope and language."""
        key = self._commands_key(params.get("scope"), params.get("language_code") or "")
        account.commands.pop(key, None)
        return True

    async def _api_get_my_commands(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> list[JsonDict]:
        """Return the command list for a scope and language."""
        key = self._commands_key(params.get("scope"), params.get("language_code") or "")
        return copy.deepcopy(account.commands.get(key, []))

    async def _api_set_chat_menu_button(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Store the menu button of one private chat (or the default one without chat_id)."""
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict):
            raise _bad_request("menu_button must be a MenuButton object")
        if button.get("type") == "web_app" and not str(
            (button.get("web_app") or {}).get("url", "")
        ).startswith("https://"):
            raise _bad_request("BUTTON_URL_INVALID: Web App URLs must use HTTPS")
        account.menu_buttons[int(params.get("chat_id") or 0)] = button
        return True

    async def _api_send_chat_action(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> bool:
        """Accept a chat action ("typing") for a known chat."""
        self._chat_for_send(params)
        return True
