"""The /stats chart: daily in time / late / overdue bars with the FRT median; the FRT spread."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot

from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot import ru
from bot.services.figures import FRT_BINS_H, DayRow

COLORS = {
    "in_time": "#2e9e5b",
    "late": "#f0a030",
    "overdue": "#d64545",
    "pending": "#b8c2cc",
    "median": "#1f4e99",
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


def stats_chart_png(series: Sequence[DayRow], title: str) -> bytes:
    """A PNG with two panels: the days of the period and the distribution of FRT."""
    figure: Figure = plt.figure(figsize=(10, 7.2), dpi=110)
    try:
        grid = figure.add_gridspec(2, 1, height_ratios=(3, 2), hspace=0.55)
        days = figure.add_subplot(grid[0])
        spread = figure.add_subplot(grid[1])
        _days_panel(days, series)
        _spread_panel(spread, series)
        figure.suptitle(title, fontsize=13, fontweight="bold")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def _days_panel(axes: plt.Axes, series: Sequence[DayRow]) -> None:
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
    medians = [math.nan if row.frt_median_s is None else row.frt_median_s / 3600 for row in series]
    if any(not math.isnan(value) for value in medians):
        line_axes = axes.twinx()
        # NaN days break the line: a median is only drawn between days that have one.
        (line,) = line_axes.plot(
            positions,
            medians,
            color=COLORS["median"],
            marker="o",
            linewidth=2,
            label="медиана первого ответа, ч",
        )
        line_axes.set_ylabel("медиана первого ответа, ч", color=COLORS["median"])
        highest = max(value for value in medians if not math.isnan(value))
        line_axes.set_ylim(0, max(highest * 1.45, 1))
        line_axes.tick_params(axis="y", colors=COLORS["median"])
        handles.append(line)
        labels.append(line.get_label())
    axes.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9, ncols=3)
    top = max(bottom) if bottom else 0
    axes.set_ylim(0, max(top * 1.35, 1))


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
