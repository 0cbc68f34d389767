"""The export's files: the XLSX a supervisor reads and the CSV other tools read.

The workbook opens on «Сводка» (the report's figures per page and in total, every share with
its base worded as bot/services/shares.py words it), then «Обращения» (a compact table: one row
per appeal, a clickable link, overdue rows highlighted), «Подробности» (the remaining columns of
each appeal) and «Здоровье страниц» (bot/services/health_export.py). The CSV holds the compact
appeals table only: UTF-8 with BOM, `;` between fields, decimal commas (Russian Excel).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from bot import ru
from bot.services import shares
from bot.services.health_export import add_health_sheet

DATETIME_FORMAT = "DD.MM.YYYY HH:MM"
HOURS_FORMAT = "0.0"
SHARE_FORMAT = "0%"
LINK_TEXT = "Открыть"

SUMMARY_SHEET = "Сводка"
APPEALS_SHEET = "Обращения"
DETAILS_SHEET = "Подробности"

# Russian names of the reply quality checklist (`OfficialReply.quality_parts`, see
# bot.services.quality); a part without a name here keeps its own, so a new check still shows.
QUALITY_PARTS_RU = {
    "not_template": "Не шаблон",
    "not_interim": "Не промежуточный",
    "concrete": "Конкретика, баллы",
    "concrete.action": "Названо действие",
    "concrete.date": "Назван срок",
    "concrete.body": "Назван ответственный",
    "concrete.contact": "Указан контакт",
    "addresses_citizen": "Обращение к гражданину",
    "not_reopened": "Не вернулся недовольным",
    "rating": "Оценка гражданина",
}


@dataclass
class AppealRow:
    """One appeal as exported: values ready for a cell (datetimes naive, in local time)."""

    values: dict[str, Any]
    quality_parts: dict[str, Any]

    @property
    def overdue(self) -> bool:
        """Unanswered past a deadline at the moment of export (first reaction or final answer)."""
        return self.values.get("status") == "просрочено" or str(
            self.values.get("final_status") or ""
        ).startswith("просрочен")


# key, Russian header, minimal width: what a supervisor scans, in the order of the work.
COMPACT_COLUMNS: list[tuple[str, str, float]] = [
    ("id", "№", 7),
    ("page", "Страница", 24),
    ("received_at", "Поступило", 17),
    ("topic", "Тема", 18),
    ("urgent", "Срочное", 9),
    ("status", "Статус", 22),
    ("first_response_at", "Первый ответ", 17),
    ("final_response_at", "Итоговый ответ", 17),
    ("formal", "Отписка", 9),
    ("taken_by", "Оператор", 18),
    ("citizen", "Автор", 22),
    ("link", "Ссылка", 10),
]
# The rest of an appeal, after its № (and the page, to read a row alone).
DETAIL_COLUMNS: list[tuple[str, str, float]] = [
    ("id", "№", 7),
    ("page", "Страница", 24),
    ("platform", "Платформа", 12),
    ("deadline", "Срок ответа", 17),
    ("answered_offline_at", "Ответ вне соцсети", 17),
    ("frt_h", "Время до ответа, ч", 12),
    ("frt_work_h", "Рабочих часов до ответа", 12),
    ("taken_at", "Взято в работу", 17),
    ("excluded_by", "«Не обращение»: кто решил", 22),
    ("text", "Текст обращения", 60),
    ("messages", "Сообщений", 11),
    ("reply", "Ответ", 60),
    ("interim", "Промежуточный ответ", 14),
    ("quality", "Качество ответа (0–100)", 12),
    ("rating", "Оценка гражданина", 12),
    ("reopened", "Вернулся недовольным", 14),
    ("final_deadline", "Срок ответа по существу", 17),
    ("final_status", "Ответ по существу", 22),
    ("deleted_by_page", "Удалено страницей", 12),
]
APPEAL_COLUMNS = COMPACT_COLUMNS + [c for c in DETAIL_COLUMNS if c[0] not in ("id", "page")]
DATETIME_KEYS = {
    "received_at",
    "deadline",
    "first_response_at",
    "final_response_at",
    "answered_offline_at",
    "taken_at",
    "final_deadline",
}
HOURS_KEYS = {"frt_h", "frt_work_h"}
LONG_TEXT_KEYS = {"text", "reply"}


def quality_columns(rows: Sequence[AppealRow]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        for key in row.quality_parts:
            keys.setdefault(key, None)
    return list(keys)


# -- summary -----------------------------------------------------------------------------------


def _hours(item: dict[str, Any], key: str) -> float | None:
    seconds = item.get(key)
    return round(seconds / 3600, 2) if isinstance(seconds, int | float) else None


def _percent(share: Any) -> str:
    return ru.percent(share) if isinstance(share, int | float) else "—"


SUMMARY_COLUMNS: list[tuple[str, float, str | None, Callable[[dict[str, Any]], Any]]] = [
    # header, minimal width, number format, value of a page's (or the total's) JSON figures
    ("Страница", 28, None, lambda item: item.get("title")),
    ("Платформа", 12, None, lambda item: ru.PLATFORMS.get(item.get("platform") or "", "")),
    ("Обращений", 12, "0", lambda item: item.get("appeals")),
    ("Ответили", 26, None, lambda item: shares.answered(shares.from_json(item))),
    ("Первый ответ в срок", 32, None, lambda item: shares.in_time(shares.from_json(item))),
    ("С опозданием", 13, "0", lambda item: item.get("answered_late")),
    ("Просрочено", 12, "0", lambda item: item.get("overdue")),
    ("Ожидают ответа", 12, "0", lambda item: item.get("pending")),
    ("Из них ответили вне соцсети", 14, "0", lambda item: item.get("answered_offline")),
    ("Ответ по существу дан", 13, "0", lambda item: item.get("final_answered")),
    (
        "Ответ по существу в срок",
        32,
        None,
        lambda item: shares.final_in_time(shares.from_json(item)),
    ),
    ("Ответ по существу просрочен", 14, "0", lambda item: item.get("final_overdue")),
    ("Похожи на отписку", 12, "0", lambda item: item.get("formal_replies")),
    ("Вернулись недовольными", 14, "0", lambda item: item.get("reopened")),
    ("Медиана первого ответа, ч", 13, HOURS_FORMAT, lambda i: _hours(i, "frt_median_s")),
    ("Медиана, рабочих ч", 13, HOURS_FORMAT, lambda i: _hours(i, "frt_median_work_s")),
    (f"90{ru.NBSP}% ответов не дольше, ч", 13, HOURS_FORMAT, lambda i: _hours(i, "frt_p90_s")),
    ("Качество ответов (0–100)", 13, "0", lambda item: item.get("quality_mean")),
    (
        "Доля шаблонных (из оценённых ответов)",
        14,
        None,
        lambda item: _percent(item.get("templated_share")),
    ),
    ("Удовлетворённость", 22, None, lambda item: shares.csat(shares.from_json(item))),
    ("Удалено страницей", 12, "0", lambda item: item.get("deleted_by_page")),
    ("Индекс зрелости (0–100)", 13, "0", lambda item: item.get("maturity_index")),
]


# -- XLSX --------------------------------------------------------------------------------------

_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="305496")
_HEADER_ALIGN = Alignment(wrap_text=True, vertical="center", horizontal="center")
_WRAP = Alignment(wrap_text=True, vertical="top")
_LINK_FONT = Font(color="0563C1", underline="single")
OVERDUE_FILL = PatternFill("solid", fgColor="FCE4E4")
_LINE_HEIGHT = 15.0


def header_width(header: str, width: float) -> float:
    """At least the longest word of `header` and two characters of margin: no word is broken."""
    return max(width, max((len(word) for word in header.split()), default=0) + 2)


def write_header(sheet: Any, headers: Sequence[str], widths: Sequence[float]) -> None:
    """Bold wrapped headers in widths their words fit, the header frozen, an autofilter."""
    sheet.append(list(headers))
    lines = 1
    for index, (header, width) in enumerate(zip(headers, widths, strict=True), 1):
        cell = sheet.cell(row=1, column=index)
        cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
        fitted = header_width(header, width)
        sheet.column_dimensions[get_column_letter(index)].width = fitted
        lines = max(lines, math.ceil(len(header) / max(fitted - 2, 1)))
    sheet.row_dimensions[1].height = _LINE_HEIGHT * (lines + 1)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(headers))}1"


def _format_row(sheet: Any, keys: Sequence[str], row: AppealRow) -> None:
    number = sheet.max_row
    for index, key in enumerate(keys, 1):
        cell = sheet.cell(row=number, column=index)
        if key in DATETIME_KEYS:
            cell.number_format = DATETIME_FORMAT
        elif key in HOURS_KEYS:
            cell.number_format = HOURS_FORMAT
        elif key in LONG_TEXT_KEYS:
            cell.alignment = _WRAP
        elif key == "link" and row.values.get("link"):
            cell.value = LINK_TEXT
            cell.hyperlink = str(row.values["link"])
            cell.font = _LINK_FONT
        if row.overdue:
            cell.fill = OVERDUE_FILL


def _appeal_sheet(
    sheet: Any,
    rows: Sequence[AppealRow],
    columns: Sequence[tuple[str, str, float]],
    parts: Sequence[str] = (),
) -> None:
    headers = [header for _, header, _ in columns]
    headers += [f"Качество: {QUALITY_PARTS_RU.get(part, part)}" for part in parts]
    write_header(sheet, headers, [width for _, _, width in columns] + [14] * len(parts))
    keys = [key for key, _, _ in columns]
    for row in rows:
        sheet.append(
            [row.values.get(key) for key in keys] + [row.quality_parts.get(part) for part in parts]
        )
        _format_row(sheet, keys, row)


def _summary_sheet(sheet: Any, report_json: dict[str, Any], period_label: str) -> None:
    write_header(sheet, [c[0] for c in SUMMARY_COLUMNS], [c[1] for c in SUMMARY_COLUMNS])
    items = list(report_json.get("pages", []))
    items.append({**report_json.get("total", {}), "title": "Всего", "platform": None})
    for item in items:
        sheet.append([value(item) for _, _, _, value in SUMMARY_COLUMNS])
        for index, (_, _, number_format, _) in enumerate(SUMMARY_COLUMNS, 1):
            if number_format is not None:
                sheet.cell(row=sheet.max_row, column=index).number_format = number_format
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    note = sheet.max_row + 2
    sheet.cell(row=note, column=1, value=f"Период: {period_label}")
    sheet.cell(
        row=note + 1, column=1, value="Время — местное время страницы; статус — на момент выгрузки."
    )
    sheet.cell(
        row=note + 2,
        column=1,
        value="Строки обращений, просроченных на момент выгрузки, выделены цветом.",
    )


def build_xlsx(rows: Sequence[AppealRow], report_json: dict[str, Any], period_label: str) -> bytes:
    """The workbook: «Сводка», «Обращения», «Подробности» and «Здоровье страниц» (if any)."""
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = SUMMARY_SHEET
    _summary_sheet(summary, report_json, period_label)
    _appeal_sheet(book.create_sheet(APPEALS_SHEET), rows, COMPACT_COLUMNS)
    _appeal_sheet(book.create_sheet(DETAILS_SHEET), rows, DETAIL_COLUMNS, quality_columns(rows))
    add_health_sheet(book, report_json, write_header)  # «Здоровье страниц» (page health)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# -- CSV ---------------------------------------------------------------------------------------


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%d.%m.%Y %H:%M}"
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, float):
        return f"{value:g}".replace(".", ",")  # Russian Excel reads decimal commas
    return str(value)


def build_csv(rows: Sequence[AppealRow]) -> bytes:
    """The compact appeals table as CSV for Russian Excel: UTF-8 with BOM, `;`-separated."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([header for _, header, _ in COMPACT_COLUMNS])
    for row in rows:
        writer.writerow([_csv_value(row.values.get(key)) for key, _, _ in COMPACT_COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")
