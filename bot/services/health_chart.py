"""The page-health chart: subscribers and posts per week; views per post by content kind."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot

from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bot import ru
from bot.services.health import HealthWeek, PageHealth
from bot.services.health_text import KIND_NAMES

POSTS_COLOR = "#1f4e99"
SUBSCRIBERS_COLOR = "#2e9e5b"
VIDEO_COLOR = "#d64545"
OTHER_COLOR = "#b8c2cc"


def views_by_kind(pages: Iterable[PageHealth]) -> dict[str, float]:
    """Mean views at 72 h per content kind over the pages (weighted by measured posts)."""
    totals: dict[str, tuple[int, float]] = {}
    for health in pages:
        for kind, (count, mean) in health.views_by_kind.items():
            before_count, before_sum = totals.get(kind, (0, 0.0))
            totals[kind] = (before_count + count, before_sum + count * mean)
    return {kind: total / count for kind, (count, total) in sorted(totals.items()) if count}


def health_chart_png(weeks: Sequence[HealthWeek], kinds: dict[str, float], title: str) -> bytes:
    """Two panels: posts (bars) and subscribers (line) per week; views per post by kind."""
    figure: Figure = plt.figure(figsize=(10, 7.2), dpi=110)
    try:
        grid = figure.add_gridspec(2, 1, height_ratios=(3, 2), hspace=0.55)
        rhythm = figure.add_subplot(grid[0])
        labels = [ru.date_short(week.start) for week in weeks]
        rhythm.bar(labels, [week.posts for week in weeks], color=POSTS_COLOR, label="Постов")
        rhythm.set_ylabel("Постов за неделю")
        rhythm.set_title("Публикации и подписчики по неделям (неделя с понедельника)")
        known = [(label, w.subscribers) for label, w in zip(labels, weeks, strict=True)]
        known_points = [(label, value) for label, value in known if value is not None]
        if known_points:
            line = rhythm.twinx()
            line.plot(
                [label for label, _ in known_points],
                [value for _, value in known_points],
                color=SUBSCRIBERS_COLOR,
                marker="o",
            )
            line.set_ylabel("Подписчиков", color=SUBSCRIBERS_COLOR)
            line.yaxis.set_major_formatter(FuncFormatter(lambda value, _: ru.number(value)))
        else:
            rhythm.text(
                0.99, 0.95, "подписчики: нет данных", ha="right", transform=rhythm.transAxes
            )
        reach = figure.add_subplot(grid[1])
        if kinds:
            names = [KIND_NAMES.get(kind, kind) for kind in kinds]
            colors = [VIDEO_COLOR if k in ("video", "clip") else OTHER_COLOR for k in kinds]
            reach.bar(names, list(kinds.values()), color=colors)
            reach.yaxis.set_major_formatter(FuncFormatter(lambda value, _: ru.number(value)))
        else:
            reach.text(0.5, 0.5, "просмотры: нет данных", ha="center", transform=reach.transAxes)
        reach.set_title("Просмотров на пост через 72 часа по типу публикации")
        figure.suptitle(title, fontsize=13, fontweight="bold")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(figure)
