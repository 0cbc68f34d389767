"""The weekly digest: Monday 09:00 local time to DIGEST_CHAT_IDS, and `otklik digest`.

It shows the maturity index and its parts with the change against the week before, one line
per page, the slowest answers, the appeals still overdue (with links), the topics and a chart
of the week by day. Figures are as known at the digest moment (Monday 09:00 after the week);
the week before is shown as it was known at its own digest moment.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.app import AppContext
from bot.config import Settings
from bot.ru import MONTHS_GENITIVE, NBSP
from bot.services import reminder_log, reports, shares
from bot.services.health_text import digest_section
from bot.services.notify import MAX_CAPTION, DeliveryError, Notifier
from bot.services.reminders import (
    RETRY_BASE,
    RETRY_MAX,
    TickReport,
    appeals_count,
    format_duration,
    may_send_now,
    page_title,
)
from bot.services.reports import DigestFigures
from bot.services.worktime import calendar_for
from bot.text import TOPIC_TITLES_RU
from storage.models import Appeal, Page, ReminderLog

logger = logging.getLogger(__name__)

__all__ = ["appeals_count"]

DIGEST = "digest"
DIGEST_CHART = "digest_chart"
DIGEST_AT = time(9, 0)  # Monday, local time
SLOWEST = 5
OVERDUE_LISTED = 10
PAGES_LISTED = 15
_WEEK_RE = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Week:
    """An ISO week."""

    year: int
    number: int

    @property
    def key(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def previous(self) -> Week:
        year, number, _ = (self.monday - timedelta(days=7)).isocalendar()
        return Week(year, number)

    def bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """[Monday 00:00, next Monday 00:00) local, in UTC."""
        zone = ZoneInfo(timezone)
        start = datetime.combine(self.monday, time(0, 0), tzinfo=zone)
        end = datetime.combine(self.monday + timedelta(days=7), time(0, 0), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def digest_moment(self, timezone: str) -> datetime:
        """When this week's digest is due: the next Monday at 09:00 local."""
        zone = ZoneInfo(timezone)
        moment = datetime.combine(self.monday + timedelta(days=7), DIGEST_AT, tzinfo=zone)
        return moment.astimezone(UTC)

    def label(self) -> str:
        """«9–15 ноября 2026», «28 декабря 2026 – 3 января 2027»."""
        first, last = self.monday, self.monday + timedelta(days=6)
        if first.year != last.year:
            return (
                f"{first.day} {MONTHS_GENITIVE[first.month - 1]} {first.year} – "
                f"{last.day} {MONTHS_GENITIVE[last.month - 1]} {last.year}"
            )
        if first.month != last.month:
            return (
                f"{first.day} {MONTHS_GENITIVE[first.month - 1]} – "
                f"{last.day} {MONTHS_GENITIVE[last.month - 1]} {last.year}"
            )
        return f"{first.day}–{last.day} {MONTHS_GENITIVE[last.month - 1]} {last.year}"


def week_of(moment: datetime, timezone: str) -> Week:
    year, number, _ = moment.astimezone(ZoneInfo(timezone)).isocalendar()
    return Week(year, number)


def parse_week(text: str | None, now: datetime, timezone: str) -> Week:
    """`2026-W46` (or `2026W46`); empty means the last full week before `now`."""
    if not text or not text.strip():
        return week_of(now, timezone).previous()
    match = _WEEK_RE.match(text)
    if match is None:
        raise ValueError(f"not an ISO week: {text!r} (expected YYYY-Www)")
    week = Week(int(match[1]), int(match[2]))
    week.monday  # noqa: B018 - raises ValueError for a week the year does not have
    return week


# -- building ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    """A built digest: HTML text, the chart and what they were computed from."""

    week: Week
    text: str
    chart_png: bytes
    chart_caption: str
    report: dict[str, Any]
    previous: dict[str, Any]


def _percent(share: float | None) -> str:
    """«80 %» with a no-break space, as in /stats."""
    return ru.percent(share, 0)


def _change(current: float | None, previous: float | None, *, share: bool) -> str:
    """«▲ +3 п. п.», «▼ −2», «без изменений» against the week before."""
    if current is None or previous is None:
        return "(на прошлой неделе не было данных)" if current is not None else ""
    delta = (current - previous) * (100 if share else 1)
    delta = round(delta)
    unit = f"{NBSP}п.{NBSP}п." if share else ""
    if delta == 0:
        return "— без изменений"
    arrow = "▲" if delta > 0 else "▼"
    sign = "+" if delta > 0 else "−"
    return f"{arrow} {sign}{ru.number(abs(delta))}{unit}"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{ru.number(value)} из 100"


def _index_lines(total: dict[str, Any], before: dict[str, Any]) -> list[str]:
    index = total.get("maturity_index")
    lines = [
        f"<b>Индекс цифровой зрелости: {_score(index)}</b> "
        + _change(index, before.get("maturity_index"), share=False)
    ]
    figures = shares.from_json(total)
    # Every share with its base, worded as in /stats (bot/services/shares.py).
    parts: tuple[tuple[str, str, bool, str], ...] = (
        ("ответили", "answered_share", True, shares.answered(figures)),
        ("ответили в срок", "within_sla_share", True, shares.in_time(figures)),
        ("качество ответов", "quality_mean", False, _score(total.get("quality_mean"))),
        ("довольны ответом", "csat", True, shares.csat(figures)),
    )
    if figures.final_expired or figures.final_pending:
        parts += (
            (
                "ответ по существу в срок",
                "final_within_deadline_share",
                True,
                shares.final_in_time(figures),
            ),
        )
    for label, key, is_share, shown in parts:
        if key == "csat" and not figures.rated:
            continue
        lines.append(
            f"• {label}: {shown} " + _change(total.get(key), before.get(key), share=is_share)
        )
    formal = total.get("formal_replies") or 0
    if formal:
        lines.append(f"• похожи на отписку: {ru.quantity(formal, 'ответ', 'ответа', 'ответов')}")
    reopened = total.get("reopened") or 0
    if reopened:
        lines.append(f"• вернулись недовольными: {appeals_count(reopened)}")
    return [line.rstrip() for line in lines]


def _summary_line(total: dict[str, Any], before: dict[str, Any]) -> str:
    appeals = total.get("appeals", 0)
    text = (
        f"Поступило {appeals_count(appeals)}"
        f" (неделей раньше — {ru.number(before.get('appeals') or 0)})"
    )
    if not appeals:
        return text + "."
    text += f", ответили на {ru.number(total.get('answered') or 0)}"
    offline = total.get("answered_offline") or 0
    if offline:
        text += f" (из них {ru.number(offline)} вне соцсети)"
    text += (
        f", просрочено {ru.number(total.get('overdue') or 0)},"
        f" ждут ответа {ru.number(total.get('pending') or 0)}."
    )
    if total.get("frt_median_s") is not None:
        text += (
            f"\nПервый ответ: в среднем (медиана) через {format_duration(total['frt_median_s'])}"
        )
        if total.get("frt_median_work_s") is not None:
            text += f", рабочего времени — {ru.working_duration(total['frt_median_work_s'])}"
        if total.get("frt_p90_s") is not None:
            p90 = ru.duration(total["frt_p90_s"], genitive=True)
            text += f"; 90{NBSP}% ответов — не дольше {p90}"
        text += "."
    return text


def _page_lines(pages: list[dict[str, Any]], before: dict[int, dict[str, Any]]) -> list[str]:
    ordered = sorted(pages, key=lambda p: (-(p.get("appeals") or 0), p.get("title") or ""))
    lines = ["<b>По страницам</b>"]
    for page in ordered[:PAGES_LISTED]:
        previous = before.get(page["page_id"], {})
        index = page.get("maturity_index")
        change = _change(index, previous.get("maturity_index"), share=False)
        change = change if change.startswith(("▲", "▼")) else ""
        title = html.escape(page.get("title") or f"страница {page['page_id']}")
        figures = shares.from_json(page)
        line = (
            f"• <b>{title}</b>: {appeals_count(page.get('appeals', 0))},"
            f" ответили {shares.answered(figures)}, "
            f"в срок {shares.in_time(figures)}, индекс {_score(index)} {change}"
        )
        lines.append(line.rstrip())
    rest = len(ordered) - PAGES_LISTED
    if rest > 0:
        pages_word = ru.quantity(rest, "страница", "страницы", "страниц")
        lines.append(f"…и ещё {pages_word} — в выгрузке /export.")
    return lines


def _link(url: str | None, label: str = "открыть") -> str:
    if not url:
        return ""
    return f' · <a href="{html.escape(url, quote=True)}">{label}</a>'


def _slowest_lines(slowest: list[tuple[Appeal, Page]]) -> list[str]:
    if not slowest:
        return []
    lines = ["<b>Дольше всего ждали ответа</b>"]
    for appeal, page in slowest:
        assert appeal.answered_at is not None
        waited = (appeal.answered_at - appeal.received_at).total_seconds()
        topic = TOPIC_TITLES_RU.get(appeal.topic, appeal.topic)
        offline = " (ответ вне соцсети)" if appeal.first_response_at is None else ""
        work = f", рабочих {ru.working_duration(appeal.frt_work_s)}" if appeal.frt_work_s else ""
        lines.append(
            f"• №{appeal.id} · {html.escape(page_title(page))} · {html.escape(topic)} — "
            f"{format_duration(waited)}{work}{offline}{_link(appeal.link)}"
        )
    return lines


def _overdue_lines(figures: DigestFigures, at: datetime, timezone: str) -> list[str]:
    """Every appeal still unanswered past its deadline at `at`, of any week, oldest first."""
    moment = at.astimezone(ZoneInfo(timezone))
    when = f"{ru.date_long(moment)} {ru.time_short(moment)}"
    overdue = figures.overdue
    if not overdue:
        return [f"✅ На {when} просроченных обращений без ответа нет."]
    total = figures.overdue_total
    # The summary above counts this week's appeals only; this list is of every week.
    heading = (
        f"<b>Просрочены и всё ещё без ответа на {when}: {appeals_count(total)}</b>"
        f" (за все недели; из них поступили на этой неделе — "
        f"{ru.number(figures.overdue_in_period)})"
    )
    if total > len(overdue):
        heading += f".\nПоказаны {ru.number(len(overdue))} самых давних:"
    lines = [heading]
    for item in overdue:
        topic = TOPIC_TITLES_RU.get(item.topic, item.topic)
        excerpt = " ".join(item.text.split())
        excerpt = excerpt if len(excerpt) <= 80 else excerpt[:79].rstrip() + "…"
        quote = f" «{html.escape(excerpt)}»" if excerpt else ""
        lines.append(
            f"• №{item.appeal_id} · {html.escape(item.page_title or f'страница {item.page_id}')} · "
            f"{html.escape(topic)}{quote} — просрочено на {format_duration(item.overdue_s)}"
            f"{_link(item.link)}"
        )
    return lines


def _topic_lines(topics: dict[str, int]) -> list[str]:
    if not topics:
        return []
    ordered = sorted(topics.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{TOPIC_TITLES_RU.get(topic, topic)} — {ru.number(n)}" for topic, n in ordered]
    return ["<b>Темы обращений</b>", html.escape(" · ".join(parts))]


async def build_digest(session: AsyncSession, app: AppContext, week: Week) -> Digest:
    """The digest of `week` as known at its digest moment (or now, if that is still ahead)."""
    timezone = app.defaults.timezone
    now = app.clock()
    since, until = week.bounds(timezone)
    at = min(week.digest_moment(timezone), now)
    previous = week.previous()
    prev_since, prev_until = previous.bounds(timezone)
    prev_at = min(previous.digest_moment(timezone), now)
    figures = await reports.digest_figures(
        session,
        period=(since, until, at),
        previous=(prev_since, prev_until, prev_at),
        defaults=app.defaults,
        slowest=SLOWEST,
        overdue=OVERDUE_LISTED,
    )
    report, before = figures.report, figures.previous
    total, before_total = report["total"], before["total"]
    before_pages = {page["page_id"]: page for page in before["pages"]}
    blocks = [
        [f"📊 <b>Отклик: итоги недели {week.label()}</b>"],
        _index_lines(total, before_total),
        [_summary_line(total, before_total)],
    ]
    if report["pages"]:
        blocks.append(_page_lines(report["pages"], before_pages))
        blocks.append(digest_section(report["pages"], before_pages, figures.best_post))
    blocks.append(_slowest_lines(figures.slowest))
    blocks.append(_overdue_lines(figures, at, timezone))
    blocks.append(_topic_lines(total.get("topics") or {}))
    text = "\n\n".join("\n".join(block) for block in blocks if block)
    # Imported here: matplotlib takes a while to load and the chart is needed once a week.
    from bot.services.charts import chart_marks, stats_chart_png
    from bot.services.policy import page_calendar

    title = f"Обращения за неделю {week.label()}"
    marks = chart_marks(
        figures.series,
        page_calendar(None, app.defaults),
        sla_hours=app.defaults.sla_hours,
        today=at.astimezone(ZoneInfo(timezone)).date(),
    )
    chart = stats_chart_png(figures.series, title, marks)
    caption = f"📈 {title}: по дням и по статусу ответа."[:MAX_CAPTION]
    return Digest(week, text, chart, caption, report, before)


async def send_digest(notifier: Notifier, chat_id: int, digest: Digest) -> int:
    """Send the text, then the chart; the id of the text message."""
    message_id = await notifier.send_text(chat_id, digest.text)
    await notifier.send_photo(chat_id, digest.chart_png, digest.chart_caption)
    return message_id


# -- scheduling --------------------------------------------------------------------------------


async def plan_digests(
    session: AsyncSession, settings: Settings, now: datetime, report: TickReport
) -> None:
    """From Monday 09:00 local on, last week's digest is due to every DIGEST_CHAT_IDS chat."""
    if not settings.digest_chat_ids:
        return
    week = week_of(now, settings.TIMEZONE).previous()
    due_at = week.digest_moment(settings.TIMEZONE)
    if now < due_at:
        return
    existing = (
        await session.exec(
            select(ReminderLog).where(
                col(ReminderLog.kind).in_((DIGEST, DIGEST_CHART)), ReminderLog.due_key == week.key
            )
        )
    ).all()
    have = {(row.kind, row.chat_id) for row in existing}
    for chat_id in settings.digest_chat_ids:
        for kind in (DIGEST, DIGEST_CHART):
            if (kind, chat_id) not in have:
                session.add(
                    ReminderLog(kind=kind, chat_id=chat_id, due_key=week.key, due_at=due_at)
                )
                report.planned += 1
    await session.flush()


async def deliver_digests(
    session: AsyncSession, app: AppContext, notifier: Notifier, now: datetime, report: TickReport
) -> None:
    """Send pending digest texts and charts (each retried on its own if it fails)."""
    rows = (
        await session.exec(
            select(ReminderLog)
            .where(
                col(ReminderLog.kind).in_((DIGEST, DIGEST_CHART)),
                ReminderLog.status == "pending",
                ReminderLog.due_at <= now,
            )
            .order_by(col(ReminderLog.due_at), col(ReminderLog.kind), col(ReminderLog.id))
        )
    ).all()
    calendar = calendar_for(
        app.defaults.timezone, app.defaults.work_hours, app.defaults.shorten_preholiday
    )
    built: dict[str, Digest] = {}
    for row in rows:
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            continue
        if not may_send_now(calendar, now, row.due_at, False):
            report.waiting += 1  # a Monday holiday: the next working morning
            continue
        if row.due_key not in built:
            built[row.due_key] = await build_digest(
                session, app, parse_week(row.due_key, now, app.defaults.timezone)
            )
        digest = built[row.due_key]
        # «sending» committed before the call, «sent» right after it (bot/services/reminder_log).
        text = await reminder_log.begin(session, [row], digest.text, now)
        try:
            if row.kind == DIGEST:
                row.message_id = await notifier.send_text(row.chat_id, text)
            else:  # the caption has no room for the repeat note
                row.message_id = await notifier.send_photo(
                    row.chat_id, digest.chart_png, digest.chart_caption
                )
        except DeliveryError as error:
            reminder_log.failed([row])
            row.attempts += 1
            row.last_error = str(error)[:500]
            row.next_attempt_at = now + min(RETRY_BASE * 2 ** (row.attempts - 1), RETRY_MAX)
            report.failed += 1
            report.errors.append(str(error))
            logger.error("сводка %r в чат %r не доставлена: %s", row.due_key, row.chat_id, error)
        else:
            row.status, row.sent_at, row.last_error = "sent", now, None
            row.attempts += 1
            report.sent += 1
            report.messages += 1
        await session.commit()


# -- the command line --------------------------------------------------------------------------

_TAG_RE = re.compile(r"<[^>]+>")


def plain_text(text: str) -> str:
    """The digest for a terminal: tags removed, links kept in brackets."""
    text = re.sub(r'<a href="([^"]+)">([^<]*)</a>', r"\2 [\1]", text)
    return html.unescape(_TAG_RE.sub("", text))
