"""The export's «Здоровье страниц» sheet, from the report's `health` objects (stats --json)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.services.health_text import NO_DATA

SHARE = "0.0%"
HEALTH_COLUMNS: list[tuple[str, str, float, str | None]] = [
    # key in a page's `health`, header, width, number format
    ("subscribers", "Подписчики", 12, "#,##0"),
    ("subscribers_change", "Изменение за период", 12, "+#,##0;−#,##0;0"),
    ("penetration", "Проникновение", 12, "0.00%"),
    ("posts", "Постов", 9, "0"),
    ("posts_per_week", "Постов в неделю", 11, "0.0"),
    ("posts_per_week_norm", "Норма в неделю", 11, "0.0"),
    ("longest_silence_days", "Самое долгое молчание, дн.", 12, "0.0"),
    ("video_share", "Доля видео", 10, SHARE),
    ("text_length_mean", "Средняя длина текста, знаков", 12, "0"),
    ("views_per_post", "Просмотров на пост (72 ч)", 12, "#,##0"),
    ("reach_rate", "Охват (просмотры ÷ подписчики)", 12, "0.0%"),
    ("er", "ER", 9, "0.00%"),
    ("err", "ERR", 9, "0.00%"),
    ("comments_open_share", "Комментарии открыты", 12, SHARE),
    ("health_index", "Индекс здоровья (0–100)", 12, "0.0"),
]


def add_health_sheet(
    book: Any,
    report_json: dict[str, Any],
    header: Callable[[Any, Sequence[str], Sequence[float]], None],
) -> None:
    """A sheet with one row per page that has health figures; unknown cells say «нет данных»."""
    pages = [page for page in report_json.get("pages", []) if page.get("health")]
    if not pages:
        return
    sheet = book.create_sheet("Здоровье страниц")
    headers = ["Страница", *(h for _, h, _, _ in HEALTH_COLUMNS), "Чего не хватает"]
    widths = [30, *(w for _, _, w, _ in HEALTH_COLUMNS), 60]
    header(sheet, headers, widths)
    for page in pages:
        health = page["health"]
        values = [health.get(key) for key, _, _, _ in HEALTH_COLUMNS]
        sheet.append(
            [
                page.get("title") or str(page.get("page_id")),
                *(NO_DATA if value is None else value for value in values),
                "; ".join(health.get("missing") or []),
            ]
        )
        row = sheet.max_row
        for index, (_, _, _, number_format) in enumerate(HEALTH_COLUMNS, 2):
            cell = sheet.cell(row=row, column=index)
            if number_format is not None and cell.value != NO_DATA:
                cell.number_format = number_format
