"""Russian formatting for what press officers read: plural forms, numbers, durations, dates."""

from __future__ import annotations

import math
from datetime import date, datetime

NBSP = "\u00a0"  # between a number and its unit, and as the thousands separator
NNBSP = "\u202f"  # narrow no-break space: thousands separator in long numbers (ГОСТ 8.417 style)
MINUS = "\u2212"  # the typographic minus, not the hyphen

MONTHS_GENITIVE = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)

PLATFORMS = {"telegram": "Telegram", "vk": "ВКонтакте"}


def platform(name: str) -> str:
    """«Telegram», «ВКонтакте»: the platform as a press officer calls it."""
    return PLATFORMS.get(name, name)


def plural(n: int, one: str, few: str, many: str) -> str:
    """The form of a noun for `n`: plural(1, "обращение", "обращения", "обращений")."""
    n = abs(int(n))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def quantity(n: int, one: str, few: str, many: str) -> str:
    """«1 обращение», «3 обращения», «1 234 обращения»."""
    return f"{number(n)}{NBSP}{plural(n, one, few, many)}"


def number(value: float, digits: int = 0) -> str:
    """12345.6 → «12 345,6», −3 → «−3»: narrow no-break thousands, decimal comma, true minus."""
    if not math.isfinite(value):
        return "—"
    text = f"{abs(value):,.{digits}f}"
    integer, _, fraction = text.partition(".")
    integer = integer.replace(",", NNBSP)
    fraction = fraction.rstrip("0")
    shown = f"{integer},{fraction}" if fraction else integer
    # A value that rounds to zero has no sign: «0», never «−0».
    if value < 0 and (fraction or integer.strip("0" + NNBSP)):
        return MINUS + shown
    return shown


def percent(share: float | None, digits: int = 1) -> str:
    """0.625 → «62,5 %»; None → «—»."""
    if share is None:
        return "—"
    return f"{number(share * 100, digits)}{NBSP}%"


def duration(seconds: float | None, *, genitive: bool = False) -> str:
    """11820 → «3 ч 17 мин»; days for long waits: «2 дня 4 ч», «1 день», «5 дней»; None → «—».

    Negative → «0 мин». Days are whole words with their plural form: the abbreviation «дн» read
    as «1 дн 17 ч» in a sentence (issue 12). `genitive` after «не дольше»: «1 дня», «2 дней».
    """
    if seconds is None:
        return "—"
    # A wait cannot be negative: clock skew between platforms must not show «−1 дн 23 ч».
    seconds = max(seconds, 0.0)
    total_minutes = round(seconds / 60)
    if seconds > 0 and total_minutes == 0:
        return f"меньше{NBSP}минуты"
    days, rest = divmod(total_minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        if genitive:
            singular = days % 10 == 1 and days % 100 != 11
            whole = f"{number(days)}{NBSP}{'дня' if singular else 'дней'}"
        else:
            whole = quantity(days, "день", "дня", "дней")
        return f"{whole}{NBSP}{hours}{NBSP}ч" if hours else whole
    if hours:
        return f"{hours}{NBSP}ч{NBSP}{minutes}{NBSP}мин" if minutes else f"{hours}{NBSP}ч"
    return f"{minutes}{NBSP}мин"


def working_duration(seconds: float | None) -> str:
    """Working time in hours, never days: «63 ч», «4 ч 30 мин» (a working day is no 24 h)."""
    if seconds is None:
        return "—"
    minutes = round(max(seconds, 0.0) / 60)
    hours, rest = divmod(minutes, 60)
    if hours >= 24:
        return f"{number(hours)}{NBSP}ч{NBSP}{rest}{NBSP}мин" if rest else f"{number(hours)}{NBSP}ч"
    return duration(seconds)


def date_short(day: date | datetime) -> str:
    """«26.11.2026»."""
    return f"{day.day:02d}.{day.month:02d}.{day.year}"


def date_long(day: date | datetime, with_year: bool = False) -> str:
    """«26 ноября» (or «26 ноября 2026 г.»)."""
    text = f"{day.day}{NBSP}{MONTHS_GENITIVE[day.month - 1]}"
    return f"{text} {day.year}{NBSP}г." if with_year else text


def time_short(moment: datetime) -> str:
    """«09:05»."""
    return f"{moment.hour:02d}:{moment.minute:02d}"
