"""The /stats report as Russian text, for the chat and for `otklik stats` in a terminal."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot import ru
from bot.services import shares
from bot.services.figures import Figures, StatsReport
from bot.services.health_text import compact_line, page_block
from bot.services.maturity import MaturityWeights
from bot.text import TOPIC_TITLES_RU

APPEALS = ("обращение", "обращения", "обращений")
ANSWERS = ("ответ", "ответа", "ответов")
DAYS_SHOWN_PAGES = 15  # more pages than this are summarised as "и ещё N"

_RANGE_RE = re.compile(
    r"^(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?\s*[-–—]\s*(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?$"
)
_DAY_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})(?:\.(\d{2,4}))?$")
# «01.11 – 15.11» with spaces around the dash is one period.
_SPACED_DASH_RE = re.compile(r"(\d)\s*[-–—]\s*(\d)")
LAST_DAYS = 7  # the period when none is given: the last 7 days with today
MAX_WRAPPED_DAYS = 92  # «ДД.ММ-ДД.ММ» without years spans a new year only if this short


class PeriodError(ValueError):
    """A period word that looks like dates but is not; the message is for a person, in Russian."""


def join_dashes(text: str) -> str:
    """«01.11 – 15.11» → «01.11-15.11», so that a period is one word."""
    return _SPACED_DASH_RE.sub(r"\1-\2", text)


def _year(text: str | None, default: int) -> int:
    if text is None:
        return default
    value = int(text)
    return value + 2000 if value < 100 else value


def period_days(word: str, today: date) -> tuple[date, date] | None:
    """[first day, day after the last) of a period word, the same for /stats and /export.

    «неделя» is the current Monday–Sunday week, «месяц» the current calendar month, then
    «сегодня», «вчера», «ДД.ММ-ДД.ММ[.ГГГГ]» and «ДД.ММ[.ГГГГ]»; None if `word` is no period.
    """
    word = word.strip().lower()
    if word in ("неделя", "неделю", "week"):
        monday = today - timedelta(days=today.weekday())
        return monday, monday + timedelta(days=7)
    if word in ("месяц", "month"):
        first = today.replace(day=1)
        return first, (first + timedelta(days=32)).replace(day=1)
    if word in ("сегодня", "today"):
        return today, today + timedelta(days=1)
    if word in ("вчера", "yesterday"):
        return today - timedelta(days=1), today
    if match := _RANGE_RE.match(word):
        day1, month1, year1, day2, month2, year2 = match.groups()
        try:
            second_year = _year(year2, today.year)
            first = date(_year(year1, second_year), int(month1), int(day1))
            last = date(second_year, int(month2), int(day2))
        except ValueError:
            raise PeriodError(f"Не понимаю даты «{word}».") from None
        if last < first and year1 is None and first.month > last.month:
            # 20.12-10.01 spans the new year; 11.11-01.11 is a typo, not a year-long period.
            wrapped = first.replace(year=first.year - 1)
            if (last - wrapped).days <= MAX_WRAPPED_DAYS:
                first = wrapped
        if last < first:
            raise PeriodError(
                f"Конец периода ({ru.date_short(last)}) раньше начала ({ru.date_short(first)}). "
                f"Укажите даты по порядку, например {_ordered_example(first, last)}."
            )
        return first, last + timedelta(days=1)
    if match := _DAY_RE.match(word):
        try:
            day = date(_year(match[3], today.year), int(match[2]), int(match[1]))
        except ValueError:
            raise PeriodError(f"Не понимаю дату «{word}».") from None
        return day, day + timedelta(days=1)
    return None


def _ordered_example(first: date, last: date) -> str:
    """«01.11-11.11»: the two dates of a reversed period in order."""
    return f"{last.day:02d}.{last.month:02d}-{first.day:02d}.{first.month:02d}"


def last_days(today: date) -> tuple[date, date]:
    """The default period: the last LAST_DAYS days, today included."""
    return today - timedelta(days=LAST_DAYS - 1), today + timedelta(days=1)


def local_bounds(days: tuple[date, date], timezone: str) -> tuple[datetime, datetime]:
    """[first day, day after the last) as local midnights, in aware UTC."""
    zone = ZoneInfo(timezone)
    since, until = (datetime.combine(day, time(0), zone).astimezone(UTC) for day in days)
    return since, until


def period_text(since: datetime, until: datetime, timezone: str) -> str:
    """«02.11.2026 – 15.11.2026» for whole local days, with times otherwise."""
    zone = ZoneInfo(timezone)
    start, end = since.astimezone(zone), until.astimezone(zone)
    if start.time() == time(0) and end.time() == time(0):
        last = (end - timedelta(days=1)).date()
        if last == start.date():
            return ru.date_short(start)
        return f"{ru.date_short(start)} – {ru.date_short(last)}"
    return (
        f"{ru.date_short(start)} {ru.time_short(start)} – {ru.date_short(end)} {ru.time_short(end)}"
    )


def _figures_lines(figures: Figures, weights: MaturityWeights) -> list[str]:
    lines = [f"Всего: {ru.quantity(figures.appeals, *APPEALS)}"]
    if not figures.appeals:
        return lines
    answered = (
        f"• ответили: {shares.answered(figures)}"
        f" — в срок {ru.number(figures.answered_in_time)},"
        f" с опозданием {ru.number(figures.answered_late)}"
    )
    lines.append(answered)
    if figures.answered_offline:
        lines.append(f"  из них вне соцсети: {ru.number(figures.answered_offline)}")
    lines.append(
        f"• без ответа: {ru.number(figures.unanswered)} — просрочено {ru.number(figures.overdue)},"
        f" срок ещё не вышел {ru.number(figures.pending)}"
    )
    lines.append(f"• ответили в срок: {shares.in_time(figures)}")
    lines.extend(_final_lines(figures))
    if figures.replied:
        lines.append(
            f"• первый ответ: медиана {ru.duration(figures.frt_median_s)}"
            f" (рабочего времени {ru.working_duration(figures.frt_median_work_s)}),"
            f" 90\u00a0% ответов — не дольше {ru.duration(figures.frt_p90_s, genitive=True)}"
        )
    if figures.quality_mean is not None:
        lines.append(
            f"• качество ответов: {ru.number(figures.quality_mean, 1)} из 100,"
            f" шаблонных {shares.templated(figures)}"
        )
    if figures.rated:
        lines.append(f"• довольны ответом: {shares.csat(figures)}")
    if figures.deleted_by_page:
        lines.append(f"• удалено страницей: {ru.quantity(figures.deleted_by_page, *APPEALS)}")
    maturity = figures.maturity(weights)
    if maturity is not None:
        lines.append(f"• индекс цифровой зрелости: {ru.number(maturity, 1)} из 100")
    if figures.topics:
        top = sorted(figures.topics.items(), key=lambda item: (-item[1], item[0]))[:5]
        lines.append(
            "Темы: "
            + ", ".join(f"{TOPIC_TITLES_RU.get(topic, topic)} — {count}" for topic, count in top)
        )
    return lines


def _final_lines(figures: Figures) -> list[str]:
    """The final-answer stage: counts, the share with its base, «отписки», re-opens."""
    staged = figures.final_expired + figures.final_pending
    if not staged:
        return []
    lines = [
        f"• ответ по существу: дали {ru.number(figures.final_answered)}"
        f" — в срок {ru.number(figures.final_in_time)},"
        f" с опозданием {ru.number(figures.final_late)};"
        f" просрочено {ru.number(figures.final_overdue)},"
        f" срок ещё не вышел {ru.number(figures.final_pending)}",
        f"• ответ по существу в срок: {shares.final_in_time(figures)}",
    ]
    if figures.formal_replies:
        lines.append(f"• похожи на отписку: {ru.quantity(figures.formal_replies, *ANSWERS)}")
    if figures.reopened:
        lines.append(f"• вернулись недовольными: {ru.quantity(figures.reopened, *APPEALS)}")
    return lines


def _index(value: float | None) -> str:
    return "—" if value is None else ru.number(value, 1)


def format_stats(report: StatsReport, timezone: str) -> str:
    """The report in Russian, plain text (fits a Telegram message)."""
    zone = ZoneInfo(timezone)
    at = report.at.astimezone(zone)
    lines = [
        f"Статистика за {period_text(report.since, report.until, timezone)}",
        f"по состоянию на {ru.date_short(at)} {ru.time_short(at)}",
        "",
        *_figures_lines(report.total, report.weights),
    ]
    if len(report.pages) > 1:
        lines += ["", "По страницам:"]
        for page in report.pages[:DAYS_SHOWN_PAGES]:
            figures = page.figures
            title = page.title or f"страница {page.page_id}"
            lines.append(
                f"— {title}: {ru.quantity(figures.appeals, *APPEALS)},"
                f" ответили {shares.answered(figures)},"
                f" в срок {shares.in_time(figures)},"
                f" медиана {ru.duration(figures.frt_median_s)},"
                f" индекс {_index(figures.maturity(report.weights))}"
            )
        hidden = len(report.pages) - DAYS_SHOWN_PAGES
        if hidden > 0:
            lines.append(f"… и ещё {ru.quantity(hidden, 'страница', 'страницы', 'страниц')}")
    elif len(report.pages) == 1 and report.pages[0].title:
        lines.insert(2, f"Страница: {report.pages[0].title}")
    lines += _health_lines(report)
    return "\n".join(lines)


def _health_lines(report: StatsReport) -> list[str]:
    """The «Страница» block (one page) or one health line per page (several)."""
    followed = [page for page in report.pages if page.health is not None]
    if not followed:
        return []
    if len(followed) == 1:
        health = followed[0].health
        assert health is not None
        return ["", *page_block(health, escape=False)]
    lines = ["", "Страницы: подписчики, публикации, охват"]
    for page in followed[:DAYS_SHOWN_PAGES]:
        assert page.health is not None
        lines.append(compact_line(page.title or f"страница {page.page_id}", page.health))
    return lines
