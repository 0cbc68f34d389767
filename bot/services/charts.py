"""The /stats chart: daily in time / late / overdue bars with the FRT medians; the FRT spread.

The days panel marks what a supervisor needs to read it: the first-reaction SLA as a line (in
working hours, next to the working-hours median), weekends and public holidays shaded, and the
days of the period still to come hatched and left blank rather than drawn as days without
appeals.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot

from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from bot import ru
from bot.services.figures import FRT_BINS_H, DayRow
from bot.services.worktime import WorkCalendar

COLORS = {
    "in_time": "#2e9e5b",
    "late": "#f0a030",
    "overdue": "#d64545",
    "pending": "#b8c2cc",
    "median": "#1f4e99",
    "day_off": "#eceff3",
    "future": "#9aa5b1",
}


def _bin_labels() -> list[str]:
    labels: list[str] = []
    lower = 0.0
    for upper in FRT_BINS_H:
        labels.append(f"{_hours(lower)}–{_hours(upper)} ч")
        lower = upper
    labels.append(f"> {_hours(lower)} ч")
    return labels


def _hours(value: float) -> str:
    return ru.number(value, 1)


@dataclass(frozen=True)
class ChartMarks:
    """What the days panel marks besides the figures: the SLA, days off, days still to come."""

    sla_hours: float | None = None  # the first-reaction deadline, working hours
    today: date | None = None  # local; later days are left blank, not drawn as empty days
    days_off: frozenset[date] = frozenset()  # weekends and public holidays of the calendar


def chart_marks(
    series: Sequence[DayRow], calendar: WorkCalendar, *, sla_hours: float, today: date
) -> ChartMarks:
    """The marks for `series` from a page's working calendar."""
    days_off = frozenset(row.day for row in series if not calendar.is_working_day(row.day))
    return ChartMarks(sla_hours=sla_hours, today=today, days_off=days_off)


def stats_chart_png(series: Sequence[DayRow], title: str, marks: ChartMarks | None = None) -> bytes:
    """A PNG with two panels: the days of the period and the distribution of FRT."""
    figure: Figure = plt.figure(figsize=(10, 7.2), dpi=110)
    try:
        grid = figure.add_gridspec(2, 1, height_ratios=(3, 2), hspace=0.55)
        days = figure.add_subplot(grid[0])
        spread = figure.add_subplot(grid[1])
        _days_panel(days, series, marks or ChartMarks())
        _spread_panel(spread, series)
        figure.suptitle(title, fontsize=13, fontweight="bold")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def _shade_days(axes: plt.Axes, series: Sequence[DayRow], marks: ChartMarks) -> list[Patch]:
    """Grey days off, hatched days still to come; the legend entries for what was shaded."""
    legend: list[Patch] = []
    off = [i for i, row in enumerate(series) if row.day in marks.days_off]
    for index in off:
        axes.axvspan(index - 0.5, index + 0.5, color=COLORS["day_off"], zorder=0, linewidth=0)
    if off:
        legend.append(Patch(color=COLORS["day_off"], label="выходные и праздники"))
    future = [i for i, row in enumerate(series) if marks.today and row.day > marks.today]
    if future:
        axes.axvspan(
            future[0] - 0.5, future[-1] + 0.5, facecolor="none", hatch="//",
            edgecolor=COLORS["future"], linewidth=0, zorder=0,
        )  # fmt: skip
        legend.append(
            Patch(
                facecolor="none", hatch="//", edgecolor=COLORS["future"], label="ещё не наступили"
            )
        )
    return legend


def _future(row: DayRow, marks: ChartMarks) -> bool:
    return marks.today is not None and row.day > marks.today


def _days_panel(axes: plt.Axes, series: Sequence[DayRow], marks: ChartMarks) -> None:
    shaded = _shade_days(axes, series, marks)
    positions = list(range(len(series)))
    bottom = [0] * len(series)
    for key, label in (
        ("in_time", "ответ в срок"),
        ("late", "ответ с опозданием"),
        ("overdue", "просрочено"),
        ("pending", "срок не вышел"),
    ):
        values = [getattr(row, key) for row in series]
        if key == "pending" and not any(values):
            continue
        axes.bar(positions, values, bottom=bottom, color=COLORS[key], label=label, width=0.75)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_ylabel("обращений за день")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    step = max(1, len(series) // 16)
    axes.set_xticks(positions[::step])
    axes.set_xticklabels(
        [f"{row.day.day:02d}.{row.day.month:02d}" for row in series][::step], rotation=45
    )
    axes.set_xlim(-0.6, max(len(series) - 0.4, 0.6))
    axes.grid(axis="y", alpha=0.3)
    axes.set_title("Обращения по дням поступления и статус ответа", fontsize=11)
    handles, labels = axes.get_legend_handles_labels()
    lines = _median_lines(axes, series, marks)
    handles.extend([*lines, *shaded])
    labels.extend(str(item.get_label()) for item in (*lines, *shaded))
    axes.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9, ncols=3)
    top = max(bottom) if bottom else 0
    axes.set_ylim(0, max(top * 1.35, 1))


def _hours_of(values: Sequence[float | None]) -> list[float]:
    return [math.nan if value is None else value / 3600 for value in values]


def _median_lines(axes: plt.Axes, series: Sequence[DayRow], marks: ChartMarks) -> list[Any]:
    """The FRT medians per day (calendar and working hours) and the SLA, on a second axis."""
    calendar = _hours_of([row.frt_median_s for row in series])
    working = _hours_of([row.frt_median_work_s for row in series])
    known = [v for v in (*calendar, *working) if not math.isnan(v)]
    if not known and marks.sla_hours is None:
        return []
    positions = list(range(len(series)))
    line_axes = axes.twinx()
    drawn: list[Any] = []
    # NaN days break a line: a median is only drawn between days that have one.
    if any(not math.isnan(v) for v in calendar):
        drawn += line_axes.plot(
            positions, calendar, color=COLORS["median"], marker="o", linewidth=2,
            label="медиана первого ответа, ч",
        )  # fmt: skip
    if any(not math.isnan(v) for v in working):
        drawn += line_axes.plot(
            positions, working, color=COLORS["median"], marker=".", linewidth=1.5,
            linestyle="--", label="она же в рабочих часах",
        )  # fmt: skip
    if marks.sla_hours is not None:
        sla = ru.number(marks.sla_hours, 1)
        drawn.append(
            line_axes.axhline(
                marks.sla_hours, color=COLORS["overdue"], linestyle=":", linewidth=1.5,
                label=f"срок первого ответа: {sla} рабочих ч",
            )
        )  # fmt: skip
    line_axes.set_ylabel("часов до первого ответа", color=COLORS["median"])
    highest = max([*known, marks.sla_hours or 0.0])
    line_axes.set_ylim(0, max(highest * 1.45, 1))
    line_axes.tick_params(axis="y", colors=COLORS["median"])
    return drawn


def _spread_panel(axes: plt.Axes, series: Sequence[DayRow]) -> None:
    labels = _bin_labels()
    counts = [0] * len(labels)
    for row in series:
        for index, value in enumerate(row.frt_bins):
            counts[index] += value
    total = sum(counts)
    bars = axes.bar(range(len(labels)), counts, color=COLORS["median"], alpha=0.8, width=0.7)
    axes.set_xticks(range(len(labels)))
    axes.set_xticklabels(labels)
    axes.set_ylabel("ответов")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", alpha=0.3)
    axes.set_title("Сколько ждали первого ответа (календарное время)", fontsize=11)
    for bar, count in zip(bars, counts, strict=True):
        if count:
            share = ru.percent(count / total, 0)
            axes.annotate(
                f"{ru.number(count)} ({share})",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    axes.set_ylim(0, max(max(counts) * 1.25, 1))
    if not total:
        axes.text(0.5, 0.5, "ответов за период нет", ha="center", transform=axes.transAxes)
