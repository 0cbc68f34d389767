"""Appeal cards: what a reminder or a summary says about one appeal, kept true after it is sent.

A card is computed for a moment (`at`): the working time left, who took the appeal, whether and
when it was answered (first reaction and final answer), «Не обращение», a re-open. Every card
sent is recorded in `sent_card` (chat, message, appeal, kind) with the state it showed; when the
appeal changes, `refresh_cards` renders the message again and edits it in place (a button press
does so at once, the scheduler's tick catches changes made by the intake). A message holds at
most `PER_MESSAGE` cards and stays under Telegram's text limit, so a long list is split only
between cards and every card has its buttons.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.services.final_stage import FinalStage, final_stage, stage_at
from bot.services.notify import MAX_TEXT, Button
from bot.services.policy import PageDefaults, page_calendar
from bot.services.web_links import appeal_url
from bot.text import TOPIC_TITLES_RU
from storage.models import Appeal, CitizenMessage, OfficialReply, Page, Thread

logger = logging.getLogger(__name__)

# At most this many cards (three buttons each) per message; more go in further messages.
PER_MESSAGE = 8
EXCERPT = 180
# «Не обращение» can be undone with «Вернуть» for this long.
UNDO_FOR = timedelta(days=1)
# Sent cards are kept up to date this long after they went out.
LIVE_FOR = timedelta(days=14)
# Kinds of the summary pages (the daily summary and /overdue).
OVERDUE = "overdue"

# Decisions from the buttons: callback data `ap:<code>:<appeal id>` (bot/services/decisions.py).
CALLBACK_PREFIX = "ap"
# «Ещё» under a summary page: `ov:<appeal id>`, the last card shown (pages go oldest first).
MORE_PREFIX = "ov"

_CONTENT_KINDS_RU = {
    "photo": "фото",
    "voice": "голосовое сообщение",
    "audio_message": "голосовое сообщение",
    "video": "видео",
    "video_note": "видеосообщение",
    "animation": "GIF-анимация",
    "sticker": "стикер",
    "graffiti": "граффити",
    "document": "файл",
    "doc": "документ",
    "audio": "аудио",
    "poll": "опрос",
    "link": "ссылка",
    "wall": "запись со стены",
    "wall_reply": "комментарий",
    "location": "геопозиция",
    "venue": "место на карте",
    "contact": "контакт",
    "story": "история",
    "market": "товар",
    "gift": "подарок",
}
_WEEKDAYS_RU = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")
_PAGE_KINDS_RU = {
    "tg_channel": "канал в Telegram",
    "tg_group": "группа в Telegram",
    "tg_bot": "бот в Telegram",
    "tg_business": "аккаунт в Telegram",
    "vk_group": "сообщество ВКонтакте",
    "vk_wall": "страница ВКонтакте",
}
_LINK_LABELS = {
    "conversation": "Открыть переписку",
    "board": "Открыть обсуждение",
    "comments": "Открыть комментарий",
}
# The first line of a reminder about one appeal, by the reminder's kind.
HEADERS = {
    "urgent": "🚨 Срочное обращение",
    "half_sla": "⏳ Прошла половина срока ответа",
    "deadline": "⏰ Срок ответа истёк",
    "final_half": "⏳ Прошла половина срока ответа по существу",
    "final_deadline": "⌛ Истёк срок ответа по существу",
    "reopened": "↩️ Житель недоволен ответом",
}


@dataclass(frozen=True, slots=True)
class AppealCard:
    """Everything a card says about one appeal at the moment `at` it was computed for."""

    appeal_id: int
    at: datetime
    page_title: str
    platform: str
    topic: str
    urgent: bool
    received_at: datetime
    deadline: datetime
    excerpt: str
    citizen_name: str | None
    link: str | None
    link_label: str
    taken_by: str | None
    taken_at: datetime | None
    timezone: str
    working_left_s: float  # working seconds from `at` to the deadline
    answered_at: datetime | None = None  # the first reaction, if known at `at`
    answered_offline: bool = False
    answer_link: str | None = None
    final: FinalStage | None = None
    final_left_s: float = 0.0  # working seconds from `at` to the final deadline
    excluded_at: datetime | None = None  # «Не обращение», if so
    shown: str = ""  # `card_state` of the appeal at `at`
    web_link: str | None = None  # the appeal in the web dashboard

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def undo_open(self) -> bool:
        """«Вернуть» is still offered."""
        return self.excluded_at is not None and self.at < self.excluded_at + UNDO_FOR

    @property
    def needs_work(self) -> bool:
        """Not excluded and either stage still waits (the buttons are shown)."""
        if self.excluded_at is not None:
            return False
        return not self.answered or (self.final is not None and not self.final.answered)

    def state(self) -> str:
        return self.shown


def card_state(appeal: Appeal, at: datetime) -> str:
    """What a card of `appeal` shows at `at` apart from the clock, from the appeal row alone.

    A change means its messages are edited; computed for every live card on every tick, so it
    reads nothing else (the final reply's id stands for its «отписка» label).
    """
    known = [
        moment
        for moment in (appeal.first_response_at, appeal.answered_offline_at)
        if moment is not None and moment <= at
    ]
    stage = stage_at(appeal, at)
    undo = appeal.excluded and appeal.excluded_at is not None and at < appeal.excluded_at + UNDO_FOR
    parts = (
        appeal.taken_by or "",
        _iso(min(known) if known else None),
        _iso(stage.answered_at) if stage else "",
        str(appeal.reanswer_reply_id if stage and stage.reopened_at else appeal.final_reply_id),
        _iso(stage.reopened_at) if stage else "",
        "excluded" if appeal.excluded else "",
        "undo" if undo else "",
        appeal.topic,
    )
    return "|".join(parts)[:512]


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


async def load_card(
    session: AsyncSession, appeal: Appeal, page: Page, defaults: PageDefaults, at: datetime
) -> AppealCard:
    """The card of `appeal` as known at `at` (time left counted from `at`, not from receipt)."""
    assert appeal.id is not None
    message = (
        await session.get(CitizenMessage, appeal.first_message_id)
        if appeal.first_message_id
        else None
    )
    thread = await session.get(Thread, appeal.thread_id)
    calendar = page_calendar(page, defaults)
    answered_at = None
    answer_link = None
    offline = False
    if appeal.first_response_at is not None and appeal.first_response_at <= at:
        answered_at = appeal.first_response_at
        reply = await session.get(OfficialReply, appeal.first_reply_id or 0)
        answer_link = reply.link if reply is not None else None
    offline_at = appeal.answered_offline_at
    if (
        offline_at is not None
        and offline_at <= at
        and (answered_at is None or offline_at < answered_at)
    ):
        answered_at, answer_link, offline = offline_at, None, True
    final = await final_stage(session, appeal, at)
    return AppealCard(
        appeal_id=appeal.id,
        at=at,
        page_title=page_title(page),
        platform=page.platform,
        topic=appeal.topic,
        urgent=appeal.urgent,
        received_at=appeal.received_at,
        deadline=appeal.sla_deadline,
        excerpt=_excerpt(message),
        citizen_name=appeal.citizen_name,
        link=appeal.link or (message.link if message else None),
        link_label=_LINK_LABELS.get(thread.kind if thread else "", "Открыть"),
        taken_by=appeal.taken_by,
        taken_at=appeal.taken_at,
        timezone=calendar.schedule.timezone,
        working_left_s=calendar.working_seconds(at, appeal.sla_deadline),
        answered_at=answered_at,
        answered_offline=offline,
        answer_link=answer_link,
        final=final,
        final_left_s=calendar.working_seconds(at, final.deadline) if final else 0.0,
        excluded_at=(appeal.excluded_at or appeal.received_at) if appeal.excluded else None,
        shown=card_state(appeal, at),
        web_link=appeal_url(defaults.dashboard_url, appeal.id),
    )


async def load_cards(
    session: AsyncSession, appeal_ids: Iterable[int], defaults: PageDefaults, at: datetime
) -> dict[int, AppealCard]:
    """Cards of the given appeals (missing ones left out)."""
    cards: dict[int, AppealCard] = {}
    pages: dict[int, Page | None] = {}
    for appeal_id in dict.fromkeys(appeal_ids):
        appeal = await session.get(Appeal, appeal_id)
        if appeal is None:
            continue
        if appeal.page_id not in pages:
            pages[appeal.page_id] = await session.get(Page, appeal.page_id)
        page = pages[appeal.page_id]
        if page is not None:
            cards[appeal_id] = await load_card(session, appeal, page, defaults, at)
    return cards


def page_title(page: Page) -> str:
    """The page's name for a press officer: its title, @username or «канал в Telegram −100…»."""
    if page.title or page.username:
        return page.title or page.username or ""
    kind = _PAGE_KINDS_RU.get(page.kind) or f"страница {ru.platform(page.platform)}"
    return f"{kind} {page.external_id}"


def content_kind_ru(kind: str) -> str:
    """«фото», «голосовое сообщение»: never a raw platform type."""
    return _CONTENT_KINDS_RU.get(kind, "вложение")


def _excerpt(message: CitizenMessage | None) -> str:
    if message is None:
        return ""
    text = " ".join(message.text.split())
    if not text:
        return f"[{content_kind_ru(message.content_kind)}]"
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1].rstrip() + "…"


def local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def format_moment(moment: datetime, timezone: str, now: datetime | None = None) -> str:
    """«сегодня в 10:15», «вт 03.11 в 09:30» in the page's time zone."""
    at = local(moment, timezone)
    if now is not None and local(now, timezone).date() == at.date():
        return f"сегодня в {at:%H:%M}"
    return f"{_WEEKDAYS_RU[at.weekday()]} {at:%d.%m} в {at:%H:%M}"


def format_duration(seconds: float) -> str:
    """«2 ч 15 мин», «1 дн 3 ч», «40 мин»: the one Russian duration format (bot.ru)."""
    return ru.duration(max(seconds, 0.0))


def reminder_header(count: int) -> str:
    """«🔔 Напоминание: 2 обращения ждут ответа» above the cards of several appeals."""
    waits = ru.plural(count, "ждёт", "ждут", "ждут")
    return f"<b>🔔 Напоминание: {appeals_count(count)} {waits} ответа</b>"


def format_working(seconds: float) -> str:
    """Working time in hours, never days («63 ч», «4 ч 30 мин»): a working day is no 24 h."""
    return ru.working_duration(seconds)


def appeals_count(n: int) -> str:
    return ru.quantity(n, "обращение", "обращения", "обращений")


# -- rendering ---------------------------------------------------------------------------------


def card_lines(card: AppealCard, now: datetime) -> list[str]:
    """The lines of one card (HTML), struck through when it is «не обращение»."""
    tz = card.timezone
    topic = TOPIC_TITLES_RU.get(card.topic, card.topic)
    # The appeal id, not a position in the list: the buttons, the confirmation and /topic use it.
    head = (
        f"<b>№{card.appeal_id}</b> · <b>{html.escape(card.page_title)}</b> · {html.escape(topic)}"
    )
    if card.urgent:
        head += " · <b>срочное</b>"
    lines = [head]
    if card.excerpt:
        who = f" — {html.escape(card.citizen_name)}" if card.citizen_name else ""
        lines.append(f"«{html.escape(card.excerpt)}»{who}")
    timing = f"Поступило {format_moment(card.received_at, tz, now)}"
    if card.answered_at is not None:
        lines.append(timing)
        lines.append(_answer_line(card, now))
    elif card.deadline > now:
        lines.append(
            f"{timing} · срок ответа — {format_moment(card.deadline, tz, now)}"
            f" (осталось {format_working(card.working_left_s)} рабочего времени)"
        )
    else:
        lines.append(
            f"{timing} · срок истёк {format_moment(card.deadline, tz, now)}"
            f" (просрочено на {format_duration((now - card.deadline).total_seconds())})"
        )
    final = card.final
    if final is not None and final.reopened_at is not None:
        lines.append(
            f"↩️ Житель недоволен ответом ({format_moment(final.reopened_at, tz, now)})"
            + (
                f": новый ответ по существу — до {format_moment(final.deadline, tz, now)}"
                + _final_left(card, now)
                if not final.answered
                else ""
            )
        )
    if (
        final is not None
        and final.answered_at is not None
        and (final.reopened_at is not None or card.answered_at != final.answered_at)
    ):
        link = (
            f' · <a href="{html.escape(final.reply_link, quote=True)}">ответ</a>'
            if final.reply_link
            else ""
        )
        lines.append(f"✅ Ответ по существу {format_moment(final.answered_at, tz, now)}{link}")
    if final is not None and final.formal:
        lines.append("⚠️ Похоже на отписку: нет ни действия, ни срока, ни ответственного")
    links = []
    if card.link:
        links.append(f'<a href="{html.escape(card.link, quote=True)}">{card.link_label}</a>')
    if card.web_link:
        links.append(f'<a href="{html.escape(card.web_link, quote=True)}">В панели</a>')
    if links:
        lines.append(" · ".join(links))
    if card.excluded_at is None:
        if card.taken_by:
            since = f" с {format_moment(card.taken_at, tz, now)}" if card.taken_at else ""
            lines.append(f"👤 В работе: {html.escape(card.taken_by)}{since}")
        elif card.needs_work:
            lines.append("👤 Никто не взял")
        return lines
    struck = [f"<s>{line}</s>" for line in lines]
    note = f"🚫 Отмечено как «не обращение» {format_moment(card.excluded_at, tz, now)}"
    if card.undo_open:
        until = format_moment(card.excluded_at + UNDO_FOR, tz, now)
        note += f"; «Вернуть» — до {until}"
    return [*struck, note]


def _answer_line(card: AppealCard, now: datetime) -> str:
    tz = card.timezone
    assert card.answered_at is not None
    when = format_moment(card.answered_at, tz, now)
    if card.answered_offline:
        return f"✅ Ответили вне соцсети {when}"
    link = (
        f' · <a href="{html.escape(card.answer_link, quote=True)}">ответ</a>'
        if card.answer_link
        else ""
    )
    final = card.final
    if final is not None and not final.answered and final.reopened_at is None:
        return (
            f"💬 Промежуточный ответ {when}{link}; ответ по существу — до "
            f"{format_moment(final.deadline, tz, now)}" + _final_left(card, now)
        )
    return f"✅ Ответили {when}{link}"


def _final_left(card: AppealCard, now: datetime) -> str:
    """« (осталось 2 дн 4 ч рабочего времени)» before the final deadline, « (срок истёк)» after."""
    final = card.final
    assert final is not None
    if final.deadline <= now:
        return " (срок истёк)"
    return f" (осталось {format_working(card.final_left_s)} рабочего времени)"


def card_buttons(card: AppealCard, labelled: bool = False) -> list[list[Button]]:
    """The buttons of one card: the three decisions, «Вернуть», or none once all is done."""
    prefix = f"№{card.appeal_id} · " if labelled else ""
    if card.excluded_at is not None:
        if not card.undo_open:
            return []
        data = f"{CALLBACK_PREFIX}:back:{card.appeal_id}"
        return [[Button(f"{prefix}Вернуть", callback_data=data)]]
    if not card.needs_work:
        return []
    return appeal_buttons(card.appeal_id, labelled)


def appeal_buttons(appeal_id: int, labelled: bool = False) -> list[list[Button]]:
    """The three decision buttons of one appeal, labelled «№57 · …» when a message has several."""
    prefix = f"№{appeal_id} · " if labelled else ""
    data = f"{CALLBACK_PREFIX}:{{}}:{appeal_id}"
    return [
        [Button(f"{prefix}Взять в работу", callback_data=data.format("take"))],
        [
            Button(f"{prefix}Не обращение", callback_data=data.format("no")),
            Button(f"{prefix}Ответили вне соцсети", callback_data=data.format("off")),
        ],
    ]


@dataclass
class CardMessage:
    """One message of cards: a reminder (one or several appeals) or a page of a summary."""

    kind: str  # a reminder kind for reminders, OVERDUE for summary pages
    cards: list[tuple[str, AppealCard]]  # (the card's own kind, the card)
    header: str | None = None  # the first line (HTML); reminders about one appeal need none
    footer: str | None = None
    more_after: int | None = None  # «Ещё» under a summary page: the next one starts after this


def render_message(message: CardMessage, now: datetime) -> tuple[str, list[list[Button]]]:
    """The text and buttons of a message of cards."""
    buttons: list[list[Button]] = []
    if len(message.cards) == 1 and message.kind != OVERDUE and message.header is None:
        kind, card = message.cards[0]
        text = "\n".join(
            [f"<b>{HEADERS.get(kind, HEADERS['deadline'])}</b>", *card_lines(card, now)]
        )
        return text, card_buttons(card)
    blocks = [message.header] if message.header else []
    labelled = len(message.cards) > 1
    for kind, card in message.cards:
        lines = card_lines(card, now)
        if message.kind != OVERDUE and kind in HEADERS:
            lines[0] = f"{HEADERS[kind]}\n{lines[0]}"
        blocks.append("\n".join(lines))
        buttons.extend(card_buttons(card, labelled))
    if message.footer:
        blocks.append(message.footer)
    if message.more_after is not None:
        data = f"{MORE_PREFIX}:{message.more_after}"
        buttons.append([Button("Ещё ›", callback_data=data)])
    return "\n\n".join(blocks), buttons


def pack(
    cards: Sequence[tuple[str, AppealCard]], now: datetime, *, limit: int = PER_MESSAGE
) -> list[list[tuple[str, AppealCard]]]:
    """Cards in groups that fit one message each: at most `limit`, under the text limit."""
    groups: list[list[tuple[str, AppealCard]]] = []
    current: list[tuple[str, AppealCard]] = []
    size = 0
    # Room for a header, a footer and the stage lines.
    budget = MAX_TEXT - 600
    for item in cards:
        length = len("\n".join(card_lines(item[1], now))) + 80
        if current and (len(current) >= limit or size + length > budget):
            groups.append(current)
            current, size = [], 0
        current.append(item)
        size += length
    if current:
        groups.append(current)
    return groups
