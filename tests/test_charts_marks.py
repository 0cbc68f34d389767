"""Charts a supervisor can read: the SLA line, the working-time median, days off shaded, days
still to come left blank."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from matplotlib import pyplot as plt

from bot.app import AppContext
from bot.services.charts import ChartMarks, _days_panel, chart_marks, stats_chart_png
from bot.services.figures import DayRow
from bot.services.ingest import IngestService
from bot.services.policy import page_calendar
from bot.services.series import compute_series
from tests.test_reminders import ROADS, citizen_event, msk, page_reply

WEEK = [date(2026, 11, 2) + timedelta(days=n) for n in range(7)]  # Mon 02.11 … Sun 08.11


def _row(day: date, appeals: int = 0, median_h: float | None = None) -> DayRow:
    median = None if median_h is None else median_h * 3600
    return DayRow(day, appeals, appeals, 0, 0, 0, median, (0,) * 6, median and median / 4)


def test_marks_come_from_the_production_calendar(app: AppContext) -> None:
    series = [_row(day) for day in WEEK]
    marks = chart_marks(
        series, page_calendar(None, app.defaults), sla_hours=8, today=date(2026, 11, 5)
    )
    # 4 November is Unity Day; 7 and 8 November a weekend.
    assert marks.days_off == {date(2026, 11, 4), date(2026, 11, 7), date(2026, 11, 8)}
    assert (marks.sla_hours, marks.today) == (8, date(2026, 11, 5))


def test_days_panel_shows_sla_working_median_days_off_and_future() -> None:
    series = [_row(day, 3 if day.day <= 5 else 0, 6.0 if day.day <= 5 else None) for day in WEEK]
    marks = ChartMarks(
        sla_hours=8, today=date(2026, 11, 5), days_off=frozenset({date(2026, 11, 4)})
    )
    figure = plt.figure()
    try:
        axes = figure.add_subplot()
        _days_panel(axes, series, marks)
        legend = axes.get_legend()
        assert legend is not None
        labels = [text.get_text() for text in legend.get_texts()]
        line_axes = next(other for other in figure.axes if other is not axes)
        sla_lines = [line for line in line_axes.get_lines() if "срок" in str(line.get_label())]
        working = [line for line in line_axes.get_lines() if "рабочих часах" in line.get_label()]
    finally:
        plt.close(figure)
    assert "срок первого ответа: 8 рабочих ч" in labels
    assert "она же в рабочих часах" in labels
    assert "выходные и праздники" in labels and "ещё не наступили" in labels
    [sla] = sla_lines
    assert list(sla.get_ydata()) == [8, 8]
    [work_line] = working
    assert list(work_line.get_ydata())[:4] == [1.5] * 4  # 6 h / 4, in hours (02–05.11)


def test_no_marks_no_extra_legend() -> None:
    figure = plt.figure()
    try:
        axes = figure.add_subplot()
        _days_panel(axes, [_row(day) for day in WEEK], ChartMarks())
        labels = [text.get_text() for text in axes.get_legend().get_texts()]
    finally:
        plt.close(figure)
    assert not any("срок первого ответа" in label or "выходные" in label for label in labels)
    png = stats_chart_png([_row(day) for day in WEEK], "Неделя", ChartMarks(sla_hours=8))
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("reply_hour", [10])
async def test_series_has_the_working_time_median(app: AppContext, reply_hour: int) -> None:
    async with app.sessions() as session:
        service = IngestService(session, app.defaults)
        await service.handle(citizen_event(msk(11, 2, 17), ROADS, "501", 101))
        await service.handle(page_reply(msk(11, 3, reply_hour), 101, 201))
        await session.commit()
        series = await compute_series(
            session, since=msk(11, 2, 0), until=msk(11, 3, 0), at=msk(11, 6, 12),
            tz="Europe/Moscow",
        )  # fmt: skip
    [monday] = series
    assert monday.frt_median_s == 17 * 3600  # Monday 17:00 → Tuesday 10:00
    assert monday.frt_median_work_s == 2 * 3600  # 17–18 on Monday, 9–10 on Tuesday
