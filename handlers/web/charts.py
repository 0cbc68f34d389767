"""Server-side SVG charts: plain markup, no script, no library, nothing from outside."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from bot import ru

WIDTH = 720
HEIGHT = 240
LEFT = 44
BOTTOM = 36
TOP = 16
# Status colours, the same order as the legend: in time, late, overdue, pending.
PARTS = (
    ("in_time", "в срок", "#2e7d32"),
    ("late", "с опозданием", "#f9a825"),
    ("overdue", "просрочено", "#c62828"),
    ("pending", "ждут ответа", "#90a4ae"),
)


def _nice_top(value: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return step * 4
    return value


def weekly_svg(rows: Sequence[Any]) -> str:
    """Stacked bars of appeals per week by status at `at`, with the legend; rows: DayRow."""
    if not rows:
        return ""
    top = _nice_top(max((row.appeals for row in rows), default=0) or 1)
    plot_w = WIDTH - LEFT - 8
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / len(rows)
    bar = max(4.0, slot * 0.6)
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 24}" '
        f'role="img" class="chart" aria-label="Обращения по неделям">'
    ]
    for tick in range(5):
        value = top * tick // 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
            f"{escape(ru.number(value))}</text>"
        )
    for index, row in enumerate(rows):
        x = LEFT + slot * index + (slot - bar) / 2
        y = TOP + plot_h
        title = [f"Неделя с {ru.date_short(row.day)}: {ru.number(row.appeals)}"]
        for name, label, colour in PARTS:
            count = int(getattr(row, name))
            if not count:
                continue
            height = plot_h * count / top
            y -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{colour}"/>'
            )
            title.append(f"{label}: {ru.number(count)}")
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP}" width="{bar:.1f}" height="{plot_h}" fill="transparent">'
            f"<title>{escape('; '.join(title))}</title></rect>"
            f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" class="axis" '
            f'text-anchor="middle">{row.day.day:02d}.{row.day.month:02d}</text>'
        )
    x = LEFT
    for _, label, colour in PARTS:
        parts.append(
            f'<rect x="{x}" y="{HEIGHT + 6}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16}" y="{HEIGHT + 16}" class="axis">{escape(label)}</text>'
        )
        x += 28 + 8 * len(label)
    parts.append("</svg>")
    return "".join(parts)
