"""Views of a public channel's posts from its web preview, `t.me/s/<channel>`.

The Bot API has no views; the preview page shows them (rounded: «1.2K»). It is a web page, not
an API, and Telegram may change its markup at any time: a page with posts but none in the markup
we know raises `PreviewChanged`, and the refresh records a gap with the reason — never a zero.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

TELEGRAM_PREVIEW_SERVER = "https://t.me"
_COUNT = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*([KkMm]?)\s*$")


class PreviewChanged(ValueError):
    """The preview page's markup is not the one we know; its views cannot be read."""


def parse_count(shown: str) -> int | None:
    """«950» → 950, «1.2K» → 1200, «3.4M» → 3400000; None if it is not a count."""
    found = _COUNT.match(shown)
    if found is None:
        return None
    number = float(found.group(1).replace(",", "."))
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[found.group(2).lower()]
    return round(number * scale)


class _PreviewParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.views: dict[int, int | None] = {}
        self.current: int | None = None
        self.in_views = False
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        post = values.get("data-post")
        if post and "/" in post:
            number = post.rsplit("/", 1)[1]
            if number.isdigit():
                self.current = int(number)
                self.views.setdefault(self.current, None)
        classes = (values.get("class") or "").split()
        if self.current is not None and "tgme_widget_message_views" in classes:
            self.in_views, self.text = True, ""

    def handle_data(self, data: str) -> None:
        if self.in_views:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if self.in_views and tag == "span":
            self.in_views = False
            if self.current is not None:
                self.views[self.current] = parse_count(self.text)


def parse_preview(html: str) -> dict[int, int | None]:
    """Message id → views (None: the post is there, its views are not shown).

    An empty page (a private channel, no posts) is `{}`; a page with markup we do not know
    raises `PreviewChanged`.
    """
    parser = _PreviewParser()
    parser.feed(html)
    parser.close()
    if not parser.views and _looks_like_posts(html):
        raise PreviewChanged("no tgme_widget_message blocks in a page that has posts")
    return parser.views


def _looks_like_posts(html: str) -> bool:
    # The history section (or any article/post-like block) is there, but no post we know.
    return "js-message_history" in html or "<article" in html or "data-id=" in html
