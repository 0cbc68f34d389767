"""Export of appeals and per-page figures: XLSX for people, CSV for other tools.

Every timestamp is written in the page's own time zone as a real spreadsheet date-time with a
Russian format; the status is the one at the moment of export (docs/METRICS.md). The CSV is what
Russian Excel opens by double click: UTF-8 with BOM, `;` between fields, decimal commas.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.logsafe import scrub
from bot.services import final_stage
from bot.services.cards import page_title
from bot.services.health_export import add_health_sheet
from bot.services.policy import PageDefaults, page_calendar
from bot.services.report_text import (
    PeriodError,
    join_dashes,
    last_days,
    local_bounds,
    period_days,
    period_text,
)
from bot.services.reports import build_report
from bot.text import TOPIC_TITLES_RU
from storage.models import Appeal, CitizenMessage, Decision, OfficialReply, Page

logger = logging.getLogger(__name__)

DATETIME_FORMAT = "DD.MM.YYYY HH:MM"
HOURS_FORMAT = "0.0"
SHARE_FORMAT = "0%"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

STATUS_RU = {
    "answered_in_time": "отвечено в срок",
    "answered_late": "отвечено с опозданием",
    "overdue": "просрочено",
    "pending": "ожидает ответа",
    "excluded": "не обращение",
}
PLATFORM_RU = ru.PLATFORMS

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


class ExportError(ValueError):
    """The period cannot be understood; the message is for a press officer, in Russian."""


# -- periods -----------------------------------------------------------------------------------


_WEEK_RE = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)
PERIOD_HELP = (
    "Не понимаю период. Как выгрузить:\n"
    "/export — последние 7 дней\n"
    "/export неделя — текущая неделя (пн–вс)\n"
    "/export месяц — текущий месяц\n"
    "/export 01.11-15.11 — за даты (включительно)\n"
    "/export 2026-W45 — неделя по номеру"
)


def parse_period(text: str, now: datetime, timezone: str) -> tuple[datetime, datetime, str]:
    """The period of `/export`: the words and dates of /stats (`report_text.period_days`),
    nothing for the last 7 days, or an ISO week `2026-W46`.

    Returns [since, until) in aware UTC and a Russian label of the period.
    """
    today = now.astimezone(ZoneInfo(timezone)).date()
    word = join_dashes(text).strip().lower()
    days: tuple[date, date] | None
    if not word:
        days = last_days(today)
    elif match := _WEEK_RE.match(word):
        try:
            monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
        except ValueError:
            raise ExportError(f"Нет такой недели: {text.strip()}.") from None
        days = monday, monday + timedelta(days=7)
    else:
        try:
            days = period_days(word, today)
        except PeriodError as error:
            raise ExportError(f"{error}\n\n{PERIOD_HELP}") from None
        if days is None:
            raise ExportError(PERIOD_HELP)
    since, until = local_bounds(days, timezone)
    return since, until, period_text(since, until, timezone)


# -- rows --------------------------------------------------------------------------------------


@dataclass
class AppealRow:
    """One appeal as exported: values ready for a cell (datetimes naive, in local time)."""

    values: dict[str, Any]
    quality_parts: dict[str, Any]


APPEAL_COLUMNS: list[tuple[str, str, float]] = [
    # key, Russian header, column width
    ("id", "№", 7),
    ("page", "Страница", 28),
    ("platform", "Платформа", 11),
    ("topic", "Тема", 20),
    ("urgent", "Срочное", 9),
    ("received_at", "Поступило", 17),
    ("deadline", "Срок ответа", 17),
    ("first_response_at", "Первый ответ", 17),
    ("final_response_at", "Итоговый ответ", 17),
    ("answered_offline_at", "Ответ вне соцсети", 17),
    ("status", "Статус", 22),
    ("frt_h", "Время до ответа, ч", 12),
    ("frt_work_h", "Рабочих часов до ответа", 12),
    ("taken_by", "В работе у", 20),
    ("taken_at", "Взято в работу", 17),
    ("excluded_by", "«Не обращение»: кто решил", 22),
    ("citizen", "Автор", 20),
    ("text", "Текст обращения", 60),
    ("messages", "Сообщений", 10),
    ("reply", "Ответ", 60),
    ("interim", "Промежуточный ответ", 12),
    ("quality", "Качество ответа (0–100)", 12),
    ("rating", "Оценка гражданина", 12),
    ("reopened", "Вернулся недовольным", 12),
    ("final_deadline", "Срок ответа по существу", 17),
    ("final_status", "Ответ по существу", 22),
    ("formal", "Отписка", 9),
    ("deleted_by_page", "Удалено страницей", 12),
    ("link", "Ссылка", 45),
]
DATETIME_KEYS = {
    "received_at",
    "deadline",
    "first_response_at",
    "final_response_at",
    "answered_offline_at",
    "taken_at",
    "final_deadline",
}
FINAL_STATUS_RU = {
    final_stage.IN_TIME: "дан в срок",
    final_stage.LATE: "дан с опозданием",
    final_stage.OVERDUE: "просрочен",
    final_stage.PENDING: "срок не вышел",
}


# «Не обращение: кто решил» of an appeal the model in use no longer takes for one.
MODEL_EXCLUDED = "модель (otklik reclassify)"


def status_at(appeal: Appeal, at: datetime) -> str:
    """The appeal's status at `at` (docs/METRICS.md); answered elsewhere counts from that moment."""
    if appeal.excluded:
        return "excluded"
    moments = [
        m
        for m in (appeal.first_response_at, appeal.answered_offline_at)
        if m is not None and m <= at
    ]
    if moments:
        return "answered_in_time" if min(moments) <= appeal.sla_deadline else "answered_late"
    return "overdue" if appeal.sla_deadline < at else "pending"


def _yes(flag: bool) -> str:
    return "да" if flag else ""


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    if moment is None:
        return None
    # Spreadsheets have no time zones: a naive local time is what a press officer reads.
    return moment.astimezone(zone).replace(tzinfo=None)


async def appeal_rows(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    defaults: PageDefaults,
    page_id: int | None = None,
) -> list[AppealRow]:
    """Appeals received in [since, until), oldest first, with their replies and decisions."""
    query = select(Appeal).where(Appeal.received_at >= since, Appeal.received_at < until)
    if page_id is not None:
        query = query.where(Appeal.page_id == page_id)
    appeals = (await session.exec(query.order_by(col(Appeal.received_at), col(Appeal.id)))).all()
    return await rows_of(session, appeals, at=at, defaults=defaults)


async def rows_of(
    session: AsyncSession, appeals: Sequence[Appeal], *, at: datetime, defaults: PageDefaults
) -> list[AppealRow]:
    """The given appeals as export rows, in their order, with their replies and decisions."""
    pages: dict[int, Page] = {}
    rows: list[AppealRow] = []
    for appeal in appeals:
        assert appeal.id is not None
        if appeal.page_id not in pages:
            found = await session.get(Page, appeal.page_id)
            assert found is not None
            pages[appeal.page_id] = found
        page = pages[appeal.page_id]
        zone = ZoneInfo(page_calendar(page, defaults).schedule.timezone)
        message = (
            await session.get(CitizenMessage, appeal.first_message_id)
            if appeal.first_message_id
            else None
        )
        reply_id = appeal.final_reply_id or appeal.first_reply_id
        reply = await session.get(OfficialReply, reply_id) if reply_id else None
        if reply is not None and reply.sent_at > at:
            reply = None
        excluded_by = None
        if appeal.excluded:
            decision = (
                await session.exec(
                    select(Decision)
                    .where(Decision.appeal_id == appeal.id, Decision.action == "not_appeal")
                    .order_by(col(Decision.decided_at).desc())
                )
            ).first()
            if decision is not None:
                excluded_by = decision.actor_name or decision.actor_id
            else:  # no person decided: `otklik reclassify` (bot/services/reclassify.py)
                excluded_by = MODEL_EXCLUDED
        answered = [
            m for m in (appeal.first_response_at, appeal.answered_offline_at) if m and m <= at
        ]
        frt = (min(answered) - appeal.received_at).total_seconds() if answered else None
        frt_work = (
            page_calendar(page, defaults).working_seconds(appeal.received_at, min(answered))
            if answered
            else None
        )
        stage = await final_stage.final_stage(session, appeal, at)
        values: dict[str, Any] = {
            "id": appeal.id,
            "page": page_title(page),
            "platform": PLATFORM_RU.get(page.platform, page.platform),
            "topic": TOPIC_TITLES_RU.get(appeal.topic, appeal.topic),
            "urgent": _yes(appeal.urgent),
            "received_at": _local(appeal.received_at, zone),
            "deadline": _local(appeal.sla_deadline, zone),
            "first_response_at": _local(_known(appeal.first_response_at, at), zone),
            "final_response_at": _local(_known(appeal.final_response_at, at), zone),
            "answered_offline_at": _local(_known(appeal.answered_offline_at, at), zone),
            "status": STATUS_RU[status_at(appeal, at)],
            "final_deadline": _local(stage.deadline, zone) if stage else None,
            "final_status": (
                None
                if stage is None or appeal.excluded
                else FINAL_STATUS_RU[stage.status]
                + (" (после возврата)" if stage.reopened_at is not None else "")
            ),
            "formal": _yes(stage is not None and stage.formal),
            "frt_h": round(frt / 3600, 2) if frt is not None else None,
            "frt_work_h": round(frt_work / 3600, 2) if frt_work is not None else None,
            "taken_by": appeal.taken_by,
            "taken_at": _local(appeal.taken_at, zone),
            "excluded_by": excluded_by,
            "citizen": citizen_label(page.platform, appeal.citizen_name, appeal.citizen_id),
            "text": message.text if message else None,
            "messages": appeal.messages_count,
            "reply": reply.text if reply else None,
            "interim": _yes(reply.is_interim) if reply else None,
            "quality": reply.quality_score if reply and reply.quality_score is not None else None,
            "rating": {1: "доволен", 0: "недоволен"}.get(appeal.rating)
            if appeal.rating is not None
            else None,
            "reopened": _yes(appeal.reopened_at is not None and appeal.reopened_at <= at),
            "deleted_by_page": _yes(appeal.deleted_by_page),
            "link": appeal.link or (message.link if message else None),
        }
        if values["quality"] is None and appeal.quality_score is not None:
            values["quality"] = appeal.quality_score
        parts = flatten_parts(reply.quality_parts or {}) if reply else {}
        # Citizens' and officials' texts go out as a file: no secret in it (bot/logsafe.py).
        values = {k: scrub(v) if isinstance(v, str) else v for k, v in values.items()}
        rows.append(AppealRow(values, parts))
    return rows


def citizen_label(platform: str, name: str | None, citizen_id: str | None) -> str | None:
    """The author as a person can find them: the name, else «vk.com/id300000» or «id 123»."""
    if name:
        return name
    if not citizen_id:
        return None
    if platform == "vk":
        # A negative VK id is a community writing, not a person.
        if citizen_id.startswith("-"):
            return f"vk.com/club{citizen_id[1:]}"
        return f"vk.com/id{citizen_id}"
    return f"id {citizen_id}"


def _known(moment: datetime | None, at: datetime) -> datetime | None:
    """A moment only if it had happened by `at` (a report shows what was known then)."""
    return moment if moment is not None and moment <= at else None


def flatten_parts(parts: dict[str, Any]) -> dict[str, Any]:
    """Quality parts as cells: a check is «да»/«нет» (— when it does not apply), the concrete
    part is its points with one column per named item."""
    cells: dict[str, Any] = {}
    for name, part in parts.items():
        if not isinstance(part, dict):
            cells[name] = _cell(part)
            continue
        if name == "concrete":
            cells[name] = _cell(part.get("points"))
        else:
            cells[name] = _cell(part.get("ok"))
        for key, value in part.items():
            if key not in ("ok", "points", "max"):
                cells[f"{name}.{key}"] = _cell(value)
    return cells


def _cell(value: Any) -> Any:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, float):
        return round(value, 2)
    return value


def _quality_columns(rows: Sequence[AppealRow]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        for key in row.quality_parts:
            keys.setdefault(key, None)
    return list(keys)


PAGE_COLUMNS: list[tuple[str, str, float, str | None]] = [
    # key in StatsReport.to_json(), header, width, number format
    ("title", "Страница", 30, None),
    ("platform", "Платформа", 11, None),
    ("appeals", "Обращений", 11, "0"),
    ("answered", "Отвечено", 10, "0"),
    ("answered_offline", "Из них вне соцсети", 11, "0"),
    ("answered_share", "Доля отвеченных (из всех обращений)", 13, SHARE_FORMAT),
    ("answered_in_time", "Отвечено в срок", 11, "0"),
    ("answered_late", "С опозданием", 11, "0"),
    ("overdue", "Просрочено", 11, "0"),
    ("pending", "Ожидают ответа", 11, "0"),
    ("within_sla_share", "Доля в срок (из обращений с истёкшим сроком)", 13, SHARE_FORMAT),
    ("final_answered", "Ответ по существу дан", 11, "0"),
    ("final_in_time", "По существу в срок", 11, "0"),
    ("final_late", "По существу с опозданием", 11, "0"),
    ("final_overdue", "По существу просрочено", 11, "0"),
    ("final_pending", "По существу срок не вышел", 11, "0"),
    (
        "final_within_deadline_share",
        "Доля ответов по существу в срок (из обращений с истёкшим сроком)",
        15,
        SHARE_FORMAT,
    ),
    ("formal_replies", "Похожи на отписку", 11, "0"),
    ("reopened", "Вернулись недовольными", 11, "0"),
    ("frt_median_h", "Медиана первого ответа, ч", 13, HOURS_FORMAT),
    ("frt_p90_h", f"90{ru.NBSP}% ответов не дольше, ч", 13, HOURS_FORMAT),
    ("frt_median_work_h", "Медиана, рабочих ч", 13, HOURS_FORMAT),
    ("quality_mean", "Качество ответов (0–100)", 13, "0"),
    ("templated_share", "Доля шаблонных (из оценённых ответов)", 13, SHARE_FORMAT),
    ("deleted_by_page", "Удалено страницей", 11, "0"),
    ("csat", "Удовлетворённость", 13, SHARE_FORMAT),
    ("maturity_index", "Индекс зрелости (0–100)", 13, "0"),
]


def _page_values(item: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    values = dict(item)
    for key in ("frt_median", "frt_p90", "frt_median_work"):
        seconds = item.get(f"{key}_s")
        values[f"{key}_h"] = round(seconds / 3600, 2) if seconds is not None else None
    values["platform"] = PLATFORM_RU.get(item.get("platform") or "", item.get("platform"))
    if title is not None:
        values["title"] = title
    return values


# -- XLSX --------------------------------------------------------------------------------------

_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="305496")
_WRAP = Alignment(wrap_text=True, vertical="top")
_HEADER_ALIGN = Alignment(wrap_text=True, vertical="center", horizontal="center")


def _header(sheet: Any, headers: Sequence[str], widths: Sequence[float]) -> None:
    sheet.append(list(headers))
    for index, width in enumerate(widths, 1):
        cell = sheet.cell(row=1, column=index)
        cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.row_dimensions[1].height = 45
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(headers))}1"


def build_xlsx(rows: Sequence[AppealRow], report_json: dict[str, Any], period_label: str) -> bytes:
    """The workbook: «Обращения» (one row per appeal), «По страницам» (figures per page) and
    «Здоровье страниц» (page health, for the pages that have it)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Обращения"
    parts = _quality_columns(rows)
    headers = [header for _, header, _ in APPEAL_COLUMNS]
    headers += [f"Качество: {QUALITY_PARTS_RU.get(part, part)}" for part in parts]
    widths = [width for _, _, width in APPEAL_COLUMNS] + [14] * len(parts)
    _header(sheet, headers, widths)
    keys = [key for key, _, _ in APPEAL_COLUMNS]
    for row in rows:
        sheet.append(
            [row.values.get(key) for key in keys] + [row.quality_parts.get(part) for part in parts]
        )
    for index, key in enumerate(keys, 1):
        letter = get_column_letter(index)
        for cell in sheet[letter][1:]:
            if key in DATETIME_KEYS:
                cell.number_format = DATETIME_FORMAT
            elif key in ("frt_h", "frt_work_h"):
                cell.number_format = HOURS_FORMAT
            elif key in ("text", "reply"):
                cell.alignment = _WRAP
            elif key == "link" and cell.value:
                cell.hyperlink = str(cell.value)
                cell.font = Font(color="0563C1", underline="single")

    pages = book.create_sheet("По страницам")
    _header(pages, [h for _, h, _, _ in PAGE_COLUMNS], [w for _, _, w, _ in PAGE_COLUMNS])
    items = [_page_values(item) for item in report_json.get("pages", [])]
    items.append(_page_values(report_json.get("total", {}), title="Всего"))
    for item in items:
        pages.append([item.get(key) for key, _, _, _ in PAGE_COLUMNS])
    for index, (_, _, _, number_format) in enumerate(PAGE_COLUMNS, 1):
        if number_format is None:
            continue
        for cell in pages[get_column_letter(index)][1:]:
            cell.number_format = number_format
    for cell in pages[pages.max_row]:
        cell.font = Font(bold=True)
    note_row = pages.max_row + 2
    pages.cell(row=note_row, column=1, value=f"Период: {period_label}")
    pages.cell(
        row=note_row + 1,
        column=1,
        value="Время — местное время страницы; статус — на момент выгрузки.",
    )
    add_health_sheet(book, report_json, _header)  # «Здоровье страниц» (page health)
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
    """The appeals as CSV for Russian Excel: UTF-8 with BOM, `;`-separated."""
    parts = _quality_columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        [header for _, header, _ in APPEAL_COLUMNS]
        + [f"Качество: {QUALITY_PARTS_RU.get(part, part)}" for part in parts]
    )
    keys = [key for key, _, _ in APPEAL_COLUMNS]
    for row in rows:
        writer.writerow(
            [_csv_value(row.values.get(key)) for key in keys]
            + [_csv_value(row.quality_parts.get(part)) for part in parts]
        )
    return buffer.getvalue().encode("utf-8-sig")


# -- entry points ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFile:
    data: bytes
    filename: str
    appeals: int


async def build_export(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    at: datetime,
    defaults: PageDefaults,
    fmt: str = "xlsx",
    label: str | None = None,
    page_id: int | None = None,
) -> ExportFile:
    """The export of [since, until) as known at `at`, as XLSX or CSV bytes with a file name."""
    if fmt not in ("xlsx", "csv"):
        raise ValueError(f"unknown export format {fmt!r}")
    zone = ZoneInfo(defaults.timezone)
    first = since.astimezone(zone).date()
    last = (until - timedelta(microseconds=1)).astimezone(zone).date()
    label = label or period_text(since, until, defaults.timezone)
    rows = await appeal_rows(
        session, since=since, until=until, at=at, defaults=defaults, page_id=page_id
    )
    filename = f"otklik_{first:%Y-%m-%d}_{last:%Y-%m-%d}.{fmt}"
    if fmt == "csv":
        return ExportFile(build_csv(rows), filename, len(rows))
    report = await build_report(
        session, since=since, until=until, at=at, page_id=page_id, defaults=defaults
    )
    return ExportFile(build_xlsx(rows, report.to_json(), label), filename, len(rows))


async def export_appeals(
    session: AsyncSession,
    appeals: Sequence[Appeal],
    *,
    at: datetime,
    defaults: PageDefaults,
    fmt: str,
    label: str,
    report_json: dict[str, Any] | None,
    first: date,
    last: date,
) -> ExportFile:
    """Chosen appeals (the dashboard's list as filtered on screen) as XLSX or CSV bytes."""
    rows = await rows_of(session, appeals, at=at, defaults=defaults)
    filename = f"otklik_{first:%Y-%m-%d}_{last:%Y-%m-%d}.{fmt}"
    if fmt == "csv":
        return ExportFile(build_csv(rows), filename, len(rows))
    if report_json is None:
        raise ValueError("an XLSX export needs the report of its period")
    return ExportFile(build_xlsx(rows, report_json, label), filename, len(rows))
