"""The dashboard's period: `from` and `to` are local days, both shown, as «с … по …» says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from aiohttp.test_utils import make_mocked_request

from handlers.web.views import parse_period

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 12:00 in Moscow


def test_to_is_the_last_day_included() -> None:
    period = parse_period(
        make_mocked_request("GET", "/?from=2026-11-01&to=2026-11-30"), "Europe/Moscow", NOW
    )
    assert (period.first, period.last) == (date(2026, 11, 1), date(2026, 11, 30))
    # The Moscow-time month, the same bounds as `/stats 01.11-30.11` and the report benchmark.
    assert period.since == datetime(2026, 10, 31, 21, tzinfo=UTC)
    assert period.until == datetime(2026, 11, 30, 21, tzinfo=UTC)


def test_default_is_the_last_seven_days_today_included() -> None:
    period = parse_period(make_mocked_request("GET", "/"), "Europe/Moscow", NOW)
    assert (period.first, period.last) == (date(2026, 12, 1), date(2026, 12, 7))
    assert period.until == datetime(2026, 12, 7, 21, tzinfo=UTC)
    assert period.query == {"from": "2026-12-01", "to": "2026-12-07"}


def test_one_day() -> None:
    period = parse_period(
        make_mocked_request("GET", "/?from=2026-11-05&to=2026-11-05"), "Europe/Moscow", NOW
    )
    assert period.label == "05.11.2026"
    assert period.until - period.since == timedelta(days=1)
