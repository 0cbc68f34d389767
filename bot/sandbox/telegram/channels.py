"""Telegram sandbox, page health: channel member counts, reaction counts, views, the preview.

The layer above `control`. The Bot API has no views: Telegram shows them only on a public
channel's web preview, `https://t.me/s/<username>` — served here at `/s/<username>` in the
markup Telegram uses (`tgme_widget_message` blocks with `data-post` and
`tgme_widget_message_views`), 20 posts a page, older ones with `?before=<id>`.
`preview_layout = "changed"` serves the same posts in another markup, as when Telegram
redesigns the page; `ban_bot` makes the channel refuse the bot (403), as when it is removed.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.sandbox.telegram.control import TelegramControl
from bot.sandbox.telegram.model import (
    JsonDict,
    SandboxApiError,
    _BotAccount,
    _public_chat,
    _reaction,
    _unix,
)

PREVIEW_PAGE_SIZE = 20


class TelegramChannels(TelegramControl):
    """Channels whose subscribers, reactions and views change over simulated days."""

    preview_layout = "current"

    # ------------------------------------------------------------------ control

    def set_member_count(self, chat_id: int, count: int) -> None:
        self._require_chat(chat_id)["member_count"] = count

    def ban_bot(self, chat_id: int, banned: bool = True) -> None:
        """The channel removed the bot: calls about it answer 403."""
        banned_ids: set[int] = self.__dict__.setdefault("_banned_chats", set())
        (banned_ids.add if banned else banned_ids.discard)(int(chat_id))

    def set_views(self, chat_id: int, message_id: int, views: int) -> None:
        """A post's views as the public preview shows them."""
        views_of: dict[tuple[int, int], int] = self.__dict__.setdefault("_views", {})
        views_of[(int(chat_id), int(message_id))] = views

    def channel_posts(self, chat_id: int) -> list[JsonDict]:
        """The channel's posts, oldest first (copies)."""
        return [dict(post) for post in self._channel_posts(int(chat_id))]

    def inject_reaction_count(
        self,
        chat: JsonDict | int,
        message_id: int,
        counts: dict[str, int],
        *,
        date: datetime | int | None = None,
        bot_id: int | None = None,
    ) -> JsonDict:
        """Queue a message_reaction_count update (a channel's anonymous reactions)."""
        chat_dict = self._chat_for_message(chat)
        payload: JsonDict = {
            "chat": _public_chat(chat_dict),
            "message_id": message_id,
            "date": _unix(date, self.now),
            "reactions": [
                {"type": _reaction(emoji), "total_count": total} for emoji, total in counts.items()
            ],
        }
        update_id = self.inject_update({"message_reaction_count": payload}, bot_id=bot_id)
        return {**payload, "update_id": update_id}

    # ------------------------------------------------------------------ Bot API

    async def _api_get_chat_member_count(
        self, account: _BotAccount, params: JsonDict, uploads: Any
    ) -> int:
        chat = self._require_chat(params.get("chat_id"))
        if int(chat["id"]) in self.__dict__.get("_banned_chats", set()):
            raise SandboxApiError(403, "Forbidden: bot was kicked from the channel chat")
        return await super()._api_get_chat_member_count(account, params, uploads)

    # ------------------------------------------------------------------ the web preview

    def _add_preview_routes(self, app: web.Application) -> None:
        app.router.add_get("/s/{username}", self._serve_preview)

    async def _serve_preview(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        channel = next(
            (
                chat
                for chat in self._chats.values()
                if chat.get("type") == "channel" and chat.get("username") == username
            ),
            None,
        )
        if channel is None:
            # t.me answers a private or unknown channel with its own page, without posts.
            return web.Response(
                text="<html><body>tgme_page</body></html>", content_type="text/html"
            )
        before = request.query.get("before")
        posts = self._channel_posts(int(channel["id"]))
        if before is not None and before.isdigit():
            posts = [post for post in posts if post["message_id"] < int(before)]
        shown = posts[-PREVIEW_PAGE_SIZE:]
        return web.Response(
            text=self._preview_html(username, shown), content_type="text/html", charset="utf-8"
        )

    def _channel_posts(self, chat_id: int) -> list[JsonDict]:
        posts = [
            message
            for (bc_id, message_chat, _), message in self._messages.items()
            if not bc_id and message_chat == chat_id
        ]
        return sorted(posts, key=lambda message: int(message["message_id"]))

    def _preview_html(self, username: str, posts: Iterable[JsonDict]) -> str:
        views_of: dict[tuple[int, int], int] = self.__dict__.get("_views", {})
        blocks = []
        for post in posts:
            chat_id, message_id = int(post["chat"]["id"]), int(post["message_id"])
            views = views_of.get((chat_id, message_id))
            shown = "" if views is None else _short_count(views)
            text = html.escape(str(post.get("text") or post.get("caption") or ""))
            if self.preview_layout == "changed":
                blocks.append(
                    f'<article class="post-card" data-id="{message_id}">'
                    f'<p>{text}</p><footer><b class="eye">{shown}</b></footer></article>'
                )
                continue
            views_span = (
                f'<span class="tgme_widget_message_views">{shown}</span>'
                if views is not None
                else ""
            )
            blocks.append(
                '<div class="tgme_widget_message_wrap js-widget_message_wrap">'
                f'<div class="tgme_widget_message js-widget_message" '
                f'data-post="{username}/{message_id}">'
                f'<div class="tgme_widget_message_text js-message_text">{text}</div>'
                '<div class="tgme_widget_message_footer compact js-message_footer">'
                f'<div class="tgme_widget_message_info short js-message_info">{views_span}'
                '<span class="tgme_widget_message_meta">'
                f'<a class="tgme_widget_message_date" href="https://t.me/{username}/{message_id}">'
                "</a></span></div></div></div></div>"
            )
        return (
            '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
            f'<section class="tgme_channel_history js-message_history">{"".join(blocks)}</section>'
            "</body></html>"
        )


def _short_count(views: int) -> str:
    """Views as the preview prints them: 950, 1.2K, 3.4M."""
    if views >= 1_000_000:
        return f"{views / 1_000_000:.1f}M".replace(".0M", "M")
    if views >= 1_000:
        return f"{views / 1_000:.1f}K".replace(".0K", "K")
    return str(views)
