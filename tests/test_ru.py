"""Russian plural forms and number, duration and date formatting."""

from __future__ import annotations

from datetime import date

import pytest

from bot import ru

FORMS = ("обращение", "обращения", "обращений")


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "обращений"),
        (1, "обращение"),
        (2, "обращения"),
        (4, "обращения"),
        (5, "обращений"),
        (11, "обращений"),
        (12, "обращений"),
        (14, "обращений"),
        (21, "обращение"),
        (22, "обращения"),
        (25, "обращений"),
        (101, "обращение"),
        (111, "обращений"),
        (1002, "обращения"),
    ],
)
def test_plural(n: int, expected: str) -> None:
    assert ru.plural(n, *FORMS) == expected


def test_quantity_and_numbers() -> None:
    assert ru.quantity(1, *FORMS) == "1\u00a0обращение"
    assert ru.quantity(3, *FORMS) == "3\u00a0обращения"
    assert ru.quantity(1234, *FORMS) == "1\u202f234\u00a0обращения"
    assert ru.number(1234567.25, 2) == "1\u202f234\u202f567,25"
    assert ru.number(62.5, 1) == "62,5"
    assert ru.number(70.0, 1) == "70"
    assert ru.percent(0.625) == "62,5\u00a0%"
    assert ru.percent(None) == "—"


def test_negative_numbers_use_the_minus_sign_and_never_minus_zero() -> None:
    assert ru.number(-3) == "\u22123"
    assert ru.number(-1234.5, 1) == "\u22121\u202f234,5"
    assert ru.number(-0.04, 1) == "0"
    assert ru.number(-0.4) == "0"
    assert ru.percent(-0.0004) == "0\u00a0%"
    assert "-" not in ru.number(-7.25, 2)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "—"),
        (0, "0\u00a0мин"),
        (20, "меньше\u00a0минуты"),
        (45 * 60, "45\u00a0мин"),
        (3 * 3600 + 17 * 60, "3\u00a0ч\u00a017\u00a0мин"),
        (2 * 3600, "2\u00a0ч"),
        (49 * 3600, "2\u00a0дня\u00a01\u00a0ч"),
        (3 * 86400, "3\u00a0дня"),
        (86400 + 17 * 3600, "1\u00a0день\u00a017\u00a0ч"),
        (5 * 86400, "5\u00a0дней"),
        (21 * 86400, "21\u00a0день"),
        (-60, "0\u00a0мин"),
        (-2 * 86400, "0\u00a0мин"),
    ],
)
def test_duration(seconds: float | None, expected: str) -> None:
    assert ru.duration(seconds) == expected


def test_dates() -> None:
    assert ru.date_short(date(2026, 11, 26)) == "26.11.2026"
    assert ru.date_long(date(2026, 11, 26)) == "26\u00a0ноября"
    assert ru.date_long(date(2026, 5, 1), with_year=True) == "1\u00a0мая 2026\u00a0г."


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (1, "1\u00a0дня"),
        (2, "2\u00a0дней"),
        (5, "5\u00a0дней"),
        (11, "11\u00a0дней"),
        (21, "21\u00a0дня"),
    ],
)
def test_duration_after_ne_dolshe(days: int, expected: str) -> None:
    """«не дольше 1 дня 3 ч», «не дольше 2 дней»: the genitive after a comparative."""
    assert ru.duration(days * 86400, genitive=True) == expected
