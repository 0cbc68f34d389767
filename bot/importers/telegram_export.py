"""`otklik import telegram-export FILE`: a Telegram Desktop JSON export of a discussion group.

Every message becomes the same `MessageEvent` the live intake builds (handlers.telegram
.discussion), with the same keys: page = the linked channel (`from_id` "channel123" of the
auto-forwarded posts, Bot API id -100123), message id "<group chat id>:<message id>", thread
"post:<id of the auto-forwarded post>". So a message seen live and imported is stored once, and
importing the same file again changes nothing.

The file is read incrementally: the `messages` array is decoded one object at a time with
`json.JSONDecoder.raw_decode`, so memory stays bounded by one chunk plus a map of message id to
thread (a few bytes per message), whatever the size of the export.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from tqdm import tqdm

from bot.app import AppContext
from bot.events import (
    AuthorRole,
    Event,
    MessageEvent,
    PageKind,
    PageRef,
    Platform,
    ReactionEvent,
    ThreadKind,
    ThreadRef,
)
from bot.progress import progress_bar
from bot.services import roles
from bot.services.ingest import Outcome
from bot.services.intake import Intake, IntakeJob
from bot.services.quality import score_replies
from storage import repositories as repo

logger = logging.getLogger(__name__)

CHUNK_CHARS = 1 << 20
BATCH = 500  # messages per intake job (one transaction)
_MESSAGES_RE = re.compile(r'"messages"\s*:\s*\[')
_MEDIA_KINDS = {
    "sticker": "sticker",
    "voice_message": "voice",
    "video_message": "video_note",
    "video_file": "video",
    "audio_file": "audio",
    "animation": "animation",
}


class ExportFormatError(ValueError):
    """The file is not a Telegram Desktop JSON export of one chat."""


@dataclass
class ImportSummary:
    page: PageRef | None = None
    messages: int = 0
    skipped: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    scored: int = 0


# -- reading ------------------------------------------------------------------------------------


class ExportReader:
    """Streams the header fields and the `messages` array of an export file."""

    def __init__(self, stream: TextIO, progress: tqdm[Any] | None = None) -> None:
        self.stream = stream
        self.progress = progress
        self.buffer = ""
        self.decoder = json.JSONDecoder()
        self.header: dict[str, Any] = {}

    def _read(self) -> bool:
        chunk = self.stream.read(CHUNK_CHARS)
        if self.progress is not None and chunk:
            self.progress.update(len(chunk.encode("utf-8")))
        self.buffer += chunk
        return bool(chunk)

    def read_header(self) -> dict[str, Any]:
        while (match := _MESSAGES_RE.search(self.buffer)) is None:
            if not self._read():
                raise ExportFormatError(
                    "нет массива messages: это не выгрузка чата из Telegram Desktop"
                )
        prefix = self.buffer[: match.start()].rstrip().rstrip(",")
        try:
            self.header = json.loads(prefix + "}") if prefix.lstrip().startswith("{") else {}
        except json.JSONDecodeError:
            self.header = {}
        self.buffer = self.buffer[match.end() :]
        return self.header

    def messages(self) -> Iterator[dict[str, Any]]:
        position = 0
        while True:
            while True:
                while position < len(self.buffer) and self.buffer[position] in " \t\r\n,":
                    position += 1
                if position < len(self.buffer):
                    break
                self.buffer, position = "", 0
                if not self._read():
                    raise ExportFormatError("файл обрывается посреди списка сообщений")
            if self.buffer[position] == "]":
                return
            try:
                item, end = self.decoder.raw_decode(self.buffer, position)
            except json.JSONDecodeError:
                # Most likely the object continues in the next chunk.
                self.buffer, position = self.buffer[position:], 0
                if not self._read():
                    raise ExportFormatError(
                        "одно из сообщений в выгрузке — не корректный JSON"
                    ) from None
                continue
            position = end
            if position > CHUNK_CHARS:
                self.buffer, position = self.buffer[position:], 0
            if isinstance(item, dict):
                yield item


# -- translating --------------------------------------------------------------------------------


def message_text(item: dict[str, Any]) -> str:
    """Plain text of an export message: a string or a list of strings and entity objects."""
    text = item.get("text", "")
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", "")) for part in text
        )
    return ""


def content_kind(item: dict[str, Any]) -> str:
    if "photo" in item:
        return "photo"
    media = item.get("media_type")
    if isinstance(media, str):
        return _MEDIA_KINDS.get(media, media)
    if "file" in item:
        return "document"
    if "poll" in item:
        return "poll"
    return "text"


def sent_at(item: dict[str, Any]) -> datetime:
    """The message date: `date_unixtime` is UTC; `date` is the exporting computer's local time."""
    if "date_unixtime" in item:
        return datetime.fromtimestamp(int(item["date_unixtime"]), UTC)
    moment = datetime.fromisoformat(str(item["date"]))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def bot_api_id(peer: str) -> str:
    """ "channel123" → "-100123", "user5" → "5", "chat7" → "-7" (Bot API ids)."""
    for prefix, sign in (("channel", "-100"), ("chat", "-"), ("user", "")):
        if peer.startswith(prefix) and peer[len(prefix) :].isdigit():
            return f"{sign}{peer[len(prefix) :]}"
    return peer


def _is_forward(item: dict[str, Any]) -> bool:
    return bool(item.get("forwarded_from")) and str(item.get("from_id", "")).startswith("channel")


def find_page(path: str, group_chat_id: str, group_title: str | None) -> PageRef:
    """The page the group belongs to: the channel of the first auto-forwarded post."""
    with open(path, encoding="utf-8") as stream:
        reader = ExportReader(stream)
        reader.read_header()
        for item in reader.messages():
            if item.get("type") == "message" and _is_forward(item):
                return PageRef(
                    Platform.TELEGRAM,
                    bot_api_id(str(item["from_id"])),
                    PageKind.TG_CHANNEL,
                    item.get("from") or item.get("forwarded_from"),
                    None,
                    group_chat_id,
                )
    return PageRef(
        Platform.TELEGRAM, group_chat_id, PageKind.TG_GROUP, group_title, None, group_chat_id
    )


class _Translator:
    """Export messages to normalised events, remembering which post thread each belongs to."""

    def __init__(self, page: PageRef, group_chat_id: str, internal_id: str) -> None:
        self.page = page
        self.group_chat_id = group_chat_id
        self.internal_id = internal_id
        self.forwards: set[int] = set()
        self.root_of: dict[int, int | None] = {}  # message id -> forwarded post id (thread)

    def key(self, message_id: int) -> str:
        return f"{self.group_chat_id}:{message_id}"

    def event(self, item: dict[str, Any]) -> MessageEvent | None:
        message_id = int(item["id"])
        reply_to = item.get("reply_to_message_id")
        reply_to = int(reply_to) if reply_to is not None else None
        if _is_forward(item):
            self.forwards.add(message_id)
            self.root_of[message_id] = message_id
            return None
        root: int | None = None
        if reply_to is not None:
            root = reply_to if reply_to in self.forwards else self.root_of.get(reply_to)
        self.root_of[message_id] = root
        peer = str(item.get("from_id", ""))
        author_id = bot_api_id(peer) if peer else None
        role = AuthorRole.PERSON
        if author_id is not None and author_id in (self.page.external_id, self.group_chat_id):
            role = AuthorRole.PAGE  # the channel itself or an anonymous group admin
        if root is not None:
            thread = ThreadRef(f"post:{root}", ThreadKind.COMMENTS)
            link = f"https://t.me/c/{self.internal_id}/{message_id}?thread={root}"
        else:
            thread = ThreadRef("chat", ThreadKind.COMMENTS, "Обсуждение вне постов")
            link = f"https://t.me/c/{self.internal_id}/{message_id}"
        return MessageEvent(
            page=self.page,
            thread=thread,
            message_id=self.key(message_id),
            sent_at=sent_at(item),
            author_role=role,
            author_id=author_id,
            author_name=item.get("from"),
            text=message_text(item),
            content_kind=content_kind(item),
            reply_to_id=(
                self.key(reply_to)
                if reply_to is not None and reply_to not in self.forwards
                else None
            ),
            link=link,
        )

    def reactions(self, item: dict[str, Any]) -> list[ReactionEvent]:
        """Reactions with their authors (exports list the recent ones per emoji)."""
        events = []
        for reaction in item.get("reactions") or ():
            emoji = reaction.get("emoji")
            if not emoji:
                continue
            for recent in reaction.get("recent") or ():
                peer = recent.get("from_id")
                if not peer:
                    continue
                moment = (
                    datetime.fromisoformat(recent["date"]).replace(tzinfo=UTC)
                    if "date" in recent
                    else sent_at(item)
                )
                events.append(
                    ReactionEvent(
                        self.page,
                        self.key(int(item["id"])),
                        bot_api_id(str(peer)),
                        moment if moment.tzinfo else moment.replace(tzinfo=UTC),
                        added=(str(emoji),),
                    )
                )
        return events


# -- importing ----------------------------------------------------------------------------------


async def import_telegram_export(
    intake: Intake,
    path: str,
    staff_ids: list[str],
    *,
    progress: bool = True,
) -> ImportSummary:
    """Feed every message of the export through the intake use case; idempotent."""
    sessions = intake.sessions
    summary = ImportSummary()
    # A command-line batch job with nothing else on the loop: plain blocking file reads are
    # simpler and faster here than a thread hop per chunk.
    with open(path, encoding="utf-8") as stream:  # noqa: ASYNC230
        header = ExportReader(stream).read_header()
    if "id" not in header:
        raise ExportFormatError("в выгрузке нет id чата: выгрузите один чат в формате JSON")
    internal_id = str(header["id"])
    group_chat_id = f"-100{internal_id}"
    page = find_page(path, group_chat_id, header.get("name"))
    summary.page = page
    translator = _Translator(page, group_chat_id, internal_id)

    async with sessions() as session:
        stored = await repo.ensure_page(session, page)
        assert stored.id is not None
        page_id = stored.id
        for staff_id in staff_ids:
            await roles.set_role(
                session, staff_id, "staff", page_id=page_id, platform=Platform.TELEGRAM.value
            )
        await session.commit()

    with (
        progress_bar(
            total=os.path.getsize(path),  # noqa: ASYNC240
            unit="Б",
            unit_scale=True,
            desc="Импорт",
            enabled=progress,
        ) as bar,
        open(path, encoding="utf-8") as stream,  # noqa: ASYNC230
    ):
        reader = ExportReader(stream, bar)
        reader.read_header()
        batch: list[Event] = []
        for item in reader.messages():
            if item.get("type") != "message" or "id" not in item:
                summary.skipped += 1
                continue
            event = translator.event(item)
            if event is None:
                summary.outcomes["post"] += 1
                continue
            batch.append(event)
            batch.extend(translator.reactions(item))
            summary.messages += 1
            if summary.messages % BATCH == 0:
                await _ingest(intake, batch, summary)
                batch = []
        await _ingest(intake, batch, summary)
    async with sessions() as session:
        summary.scored = await score_replies(session, page_id=page_id)
        await session.commit()
    return summary


async def _ingest(intake: Intake, events: list[Event], summary: ImportSummary) -> None:
    """One job of imported events (no raw copy: an export is not a delivered update)."""
    if not events:
        return
    stored = await intake.deliver(IntakeJob(None, tuple(events)))
    for event, outcome in zip(events, stored.outcomes, strict=True):
        if isinstance(event, MessageEvent):
            summary.outcomes[outcome.value] += 1


def summary_lines(summary: ImportSummary) -> list[str]:
    """What the operator sees after an import, in Russian."""
    outcomes = summary.outcomes
    title = summary.page.title if summary.page and summary.page.title else "страница"
    return [
        f"Импорт: {title} (id {summary.page.external_id if summary.page else '?'})",
        f"Сообщений обработано: {summary.messages}, постов канала: {outcomes['post']},"
        f" служебных пропущено: {summary.skipped}",
        f"Новых обращений: {outcomes[Outcome.APPEAL.value]},"
        f" дополнений к обращениям: {outcomes[Outcome.FOLLOW_UP.value]},"
        f" комментариев без обращения: {outcomes[Outcome.COMMENT.value]}",
        f"Официальных ответов: {outcomes[Outcome.REPLY.value]},"
        f" прочих сообщений страницы: {outcomes[Outcome.OFFICIAL.value]},"
        f" уже были в базе: {outcomes[Outcome.DUPLICATE.value]}",
        f"Оценено ответов: {summary.scored}",
    ]


async def import_command(app: AppContext, path: str, staff_ids: list[str]) -> int:
    """The `otklik import telegram-export` command; returns the exit code."""
    if not os.path.isfile(path):  # noqa: ASYNC240
        print(f"Файл не найден: {path}", file=sys.stderr)
        return 2
    intake = Intake.for_app(app)
    try:
        summary = await import_telegram_export(intake, path, staff_ids)
    except (ExportFormatError, UnicodeDecodeError) as error:
        print(f"Не удалось прочитать выгрузку: {error}", file=sys.stderr)
        return 1
    finally:
        await intake.close()
    for line in summary_lines(summary):
        print(line)
    return 0
