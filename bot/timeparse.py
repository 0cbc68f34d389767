"""Parsing the times and time zones people type.

Dates: ISO 8601 (`2026-11-02`, `2026-11-02T09:00+03:00`) or the Russian way (`02.11.2026`,
`02.11` in the current year, `2.11.26`, optionally followed by a time: `02.11.2026 09:00`). A
bare date means 00:00 local time. Time zones: an IANA name (`Asia/Vladivostok`) or a Russian
city (`Владивосток`): every one of Russia's eleven zones has its cities here (docs/SETUP.md sec. 4).
Error messages are for administrators and in Russian.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class TimeFormatError(ValueError):
    """The text is neither an ISO 8601 nor a Russian date or date-time."""


class TimeZoneError(ValueError):
    """The text is neither an IANA time zone nor a Russian city we know."""


# Russia's eleven time zones, each with the cities people name it by (lower case, ё as е).
CITY_ZONES: dict[str, str] = {
    "калининград": "Europe/Kaliningrad",  # UTC+2
    "москва": "Europe/Moscow",  # UTC+3
    "санкт-петербург": "Europe/Moscow",
    "петербург": "Europe/Moscow",
    "спб": "Europe/Moscow",
    "нижний новгород": "Europe/Moscow",
    "казань": "Europe/Moscow",
    "ростов-на-дону": "Europe/Moscow",
    "краснодар": "Europe/Moscow",
    "воронеж": "Europe/Moscow",
    "волгоград": "Europe/Volgograd",  # UTC+3, its own IANA zone
    "киров": "Europe/Kirov",  # UTC+3, its own IANA zone
    "самара": "Europe/Samara",  # UTC+4
    "ижевск": "Europe/Samara",
    "астрахань": "Europe/Astrakhan",
    "саратов": "Europe/Saratov",
    "ульяновск": "Europe/Ulyanovsk",
    "екатеринбург": "Asia/Yekaterinburg",  # UTC+5
    "челябинск": "Asia/Yekaterinburg",
    "пермь": "Asia/Yekaterinburg",
    "тюмень": "Asia/Yekaterinburg",
    "уфа": "Asia/Yekaterinburg",
    "оренбург": "Asia/Yekaterinburg",
    "омск": "Asia/Omsk",  # UTC+6
    "новосибирск": "Asia/Novosibirsk",  # UTC+7
    "барнаул": "Asia/Barnaul",
    "томск": "Asia/Tomsk",
    "кемерово": "Asia/Novokuznetsk",
    "новокузнецк": "Asia/Novokuznetsk",
    "красноярск": "Asia/Krasnoyarsk",
    "абакан": "Asia/Krasnoyarsk",
    "кызыл": "Asia/Krasnoyarsk",
    "иркутск": "Asia/Irkutsk",  # UTC+8
    "улан-удэ": "Asia/Irkutsk",
    "якутск": "Asia/Yakutsk",  # UTC+9
    "чита": "Asia/Chita",
    "благовещенск": "Asia/Yakutsk",
    "владивосток": "Asia/Vladivostok",  # UTC+10
    "хабаровск": "Asia/Vladivostok",
    "магадан": "Asia/Magadan",  # UTC+11
    "южно-сахалинск": "Asia/Sakhalin",
    "среднеколымск": "Asia/Srednekolymsk",
    "петропавловск-камчатский": "Asia/Kamchatka",  # UTC+12
    "камчатка": "Asia/Kamchatka",
    "анадырь": "Asia/Anadyr",
}
EXAMPLE_ZONES = "Europe/Moscow, Asia/Vladivostok, Москва, Владивосток, Калининград"

_RU_DATE_RE = re.compile(
    r"^(?P<day>\d{1,2})\.(?P<month>\d{1,2})(?:\.(?P<year>\d{2}|\d{4}))?"
    r"(?:[ T]+(?P<hour>\d{1,2}):(?P<minute>\d{2}))?$"
)
FORMATS_HINT = "например 02.11.2026, 02.11, 2.11.26, 02.11.2026 09:00 или 2026-11-02"


def _city_key(text: str) -> str:
    return " ".join(text.strip().lower().replace("ё", "е").split()).replace(" - ", "-")


def resolve_timezone(text: str) -> str:
    """The IANA name for an IANA name or a Russian city; TimeZoneError says what is expected."""
    value = text.strip()
    city = CITY_ZONES.get(_city_key(value))
    if city is not None:
        return city
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeZoneError(
            f"неизвестный часовой пояс «{value}»: укажите название IANA или город России, "
            f"например {EXAMPLE_ZONES}"
        ) from None
    return value


def _year(text: str | None, default: int) -> int:
    if text is None:
        return default
    value = int(text)
    return value + 2000 if value < 100 else value


def parse_date_ru(text: str, today: date) -> date | None:
    """«02.11.2026», «2.11.26», «02.11» (this year) → a date; None if not written so."""
    match = _RU_DATE_RE.match(text.strip())
    if match is None or match["hour"] is not None:
        return None
    try:
        return date(_year(match["year"], today.year), int(match["month"]), int(match["day"]))
    except ValueError:
        raise TimeFormatError(f"такой даты нет: «{text.strip()}»") from None


def parse_time(text: str, timezone: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 or Russian date or date-time as aware UTC; naive times are local.

    A bare date is 00:00 in `timezone`; a Russian date without a year (`02.11`) is in the
    current year of `now` (default: the real clock) in `timezone`.
    """
    text = text.strip()
    zone = ZoneInfo(resolve_timezone(timezone))
    if match := _RU_DATE_RE.match(text):
        today = (now or datetime.now(UTC)).astimezone(zone).date()
        try:
            day = date(_year(match["year"], today.year), int(match["month"]), int(match["day"]))
            clock = time(int(match["hour"] or 0), int(match["minute"] or 0))
        except ValueError:
            raise TimeFormatError(f"такой даты или времени нет: «{text}»") from None
        return datetime.combine(day, clock, zone).astimezone(UTC)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(0, 0), zone).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TimeFormatError(
            f"не понимаю дату «{text}»: ожидается дата или дата со временем, {FORMATS_HINT} "
            "(ISO 8601: 2026-11-02T09:00+03:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
