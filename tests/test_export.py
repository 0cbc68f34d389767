"""The XLSX and CSV export of a week, loaded back to check what a person would see."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from bot.commands import write_export
from bot.services.export import ExportError, build_export, parse_period
from handlers.telegram.supervisors import parse_stats_args
from tests.test_digest import build_two_weeks, vk_comment
from tests.test_reminders import (
    HEATING,
    MSK,
    ROADS,
    WASTE,
    World,
    citizen_event,
    close_world,
    make_world,
    msk,
)


def local(month: int, day: int, hour: int) -> datetime:
    """A Moscow wall-clock time as a spreadsheet holds it (no time zone)."""
    return msk(month, day, hour).astimezone(MSK).replace(tzinfo=None)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    built = await make_world(tmp_path, msk(10, 26, 9))
    yield built
    await close_world(built)


def test_parse_period() -> None:
    now = msk(11, 9, 12)  # Monday
    since, until, label = parse_period("неделя", now, "Europe/Moscow")
    # The current Monday–Sunday week, as /stats неделя.
    assert (since, until, label) == (msk(11, 9, 0), msk(11, 16, 0), "09.11.2026 – 15.11.2026")
    assert parse_period("", now, "Europe/Moscow")[:2] == (msk(11, 3, 0), msk(11, 10, 0))
    assert parse_period("02.11-08.11", now, "Europe/Moscow")[:2] == (msk(11, 2, 0), msk(11, 9, 0))
    assert parse_period("02.11 – 08.11", now, "Europe/Moscow")[:2] == (msk(11, 2, 0), msk(11, 9, 0))
    assert parse_period("2026-W45", now, "Europe/Moscow")[:2] == (msk(11, 2, 0), msk(11, 9, 0))
    assert parse_period("месяц", now, "Europe/Moscow")[:2] == (msk(11, 1, 0), msk(12, 1, 0))
    with pytest.raises(ExportError, match="Не понимаю даты"):
        parse_period("31.02-01.03", now, "Europe/Moscow")
    with pytest.raises(ExportError, match="/export неделя — текущая неделя"):
        parse_period("позавчера", now, "Europe/Moscow")


@pytest.mark.parametrize("words", ["неделя", "месяц", "вчера", "01.11-15.11", "20.12-10.01", ""])
def test_export_and_stats_read_a_period_alike(words: str) -> None:
    now = msk(11, 13, 12)  # Friday
    request = parse_stats_args(words, now, "Europe/Moscow")
    assert parse_period(words, now, "Europe/Moscow")[:2] == (request.since, request.until)


async def test_xlsx_of_a_week(world: World, tmp_path: Path) -> None:
    data = await build_two_weeks(world)
    world.clock.set(msk(11, 9, 10))
    async with world.app.sessions() as session:
        exported = await build_export(
            session,
            since=msk(11, 2, 0),
            until=msk(11, 9, 0),
            at=world.clock(),
            defaults=world.app.defaults,
        )
    assert exported.filename == "otklik_2026-11-02_2026-11-08.xlsx"
    (tmp_path / exported.filename).write_bytes(exported.data)
    book = load_workbook(io.BytesIO(exported.data))
    # The summary first, then the compact appeals, the details and the page health (the
    # channel's posts are page health, issue 13).
    assert book.sheetnames == ["Сводка", "Обращения", "Подробности", "Здоровье страниц"]
    for name in book.sheetnames:
        _assert_readable_header(book[name])

    sheet = book["Обращения"]
    headers = [cell.value for cell in sheet[1]]
    assert headers == [
        "№",
        "Страница",
        "Поступило",
        "Тема",
        "Срочное",
        "Статус",
        "Первый ответ",
        "Итоговый ответ",
        "Отписка",
        "Оператор",
        "Автор",
        "Ссылка",
    ]
    rows = {
        row[0]: dict(zip(headers, row, strict=True))
        for row in sheet.iter_rows(min_row=2, values_only=True)
    }
    assert len(rows) == 6  # every appeal of the week, the excluded one too (marked)
    a2 = rows[data.ids["a2"]]
    # Local (Moscow) time as a real date-time with a Russian format.
    assert a2["Поступило"] == local(11, 2, 11)
    assert a2["Первый ответ"] == local(11, 3, 10)
    assert a2["Статус"] == "отвечено с опозданием" and a2["Срочное"] == "да"
    assert a2["Тема"] == "ЖКХ"
    received = sheet.cell(row=2, column=headers.index("Поступило") + 1)
    assert received.number_format == "DD.MM.YYYY HH:MM"
    assert rows[data.ids["a3"]]["Статус"] == "просрочено"
    assert rows[data.ids["v1"]]["Статус"] == "отвечено в срок"
    assert rows[data.ids["v2"]]["Статус"] == "не обращение"
    assert rows[data.ids["v1"]]["Автор"]  # the author's name, not an id
    # The link is a clickable «Открыть» leading to the comment.
    row_of = {sheet.cell(row=n, column=1).value: n for n in range(2, sheet.max_row + 1)}
    link = sheet.cell(row=row_of[data.ids["v3"]], column=headers.index("Ссылка") + 1)
    assert link.value == "Открыть"
    assert link.hyperlink is not None
    assert link.hyperlink.target == "https://vk.com/wall-123_55?reply=903"
    # The overdue appeal's row is highlighted, an answered one's is not.
    overdue = sheet.cell(row=row_of[data.ids["a3"]], column=2).fill
    assert overdue.fill_type == "solid" and overdue.fgColor.rgb.endswith("FCE4E4")
    assert sheet.cell(row=row_of[data.ids["v1"]], column=2).fill.fill_type is None

    details = book["Подробности"]
    detail_headers = [cell.value for cell in details[1]]
    assert detail_headers[:4] == ["№", "Страница", "Платформа", "Срок ответа"]
    assert "Ответ" in detail_headers and "Качество ответа (0–100)" in detail_headers
    assert "Качество: Не шаблон" in detail_headers and "Качество: Назван срок" in detail_headers
    assert not set(detail_headers[2:]) & set(headers)  # a column lives in one sheet only
    text_column = get_column_letter(detail_headers.index("Текст обращения") + 1)
    assert details.column_dimensions[text_column].width == 60  # the appeal's text is readable
    by_id = {
        row[0]: dict(zip(detail_headers, row, strict=True))
        for row in details.iter_rows(min_row=2, values_only=True)
    }
    assert by_id[data.ids["a2"]]["Срок ответа"] == local(11, 2, 15)
    assert by_id[data.ids["a2"]]["Рабочих часов до ответа"] == 8.0
    assert by_id[data.ids["a2"]]["Ответ"].startswith("Здравствуйте!")
    assert by_id[data.ids["v1"]]["Ответ вне соцсети"] == local(11, 5, 11)
    assert by_id[data.ids["v2"]]["«Не обращение»: кто решил"] == "Анна Иванова"
    assert by_id[data.ids["v3"]]["Платформа"] == "ВКонтакте"
    assert by_id[data.ids["v3"]]["Качество: Назван срок"] == "да"
    detail_rows = {details.cell(row=n, column=1).value: n for n in range(2, details.max_row + 1)}
    assert details.cell(row=detail_rows[data.ids["a3"]], column=1).fill.fill_type == "solid"

    summary = book["Сводка"]
    page_headers = [cell.value for cell in summary[1]]
    assert page_headers[:5] == [
        "Страница",
        "Платформа",
        "Обращений",
        "Ответили",
        "Первый ответ в срок",
    ]
    figures = {
        row[0]: dict(zip(page_headers, row, strict=True))
        for row in summary.iter_rows(min_row=2, max_row=4, values_only=True)
    }
    assert figures["Правительство области"]["Обращений"] == 3
    assert figures["Минздрав края"]["Обращений"] == 2
    total = figures["Всего"]
    assert total["Обращений"] == 5
    # Every share with its base, worded as in the chat (bot/services/shares.py).
    assert total["Ответили"] == "4 из 5\u00a0обращений, 80\u00a0%"
    assert total["Первый ответ в срок"].startswith(f"{total['Обращений'] - 2} из ")
    assert "с истёкшим сроком" in total["Первый ответ в срок"]
    assert total["Из них ответили вне соцсети"] == 1
    assert "90\u00a0% ответов не дольше, ч" in page_headers
    assert summary.cell(row=summary.max_row - 2, column=1).value.startswith("Период: ")


def _assert_readable_header(sheet: Worksheet) -> None:
    """Bold wrapped headers, no word wider than its column, frozen, with an autofilter."""
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{get_column_letter(sheet.max_column)}1"
    for cell in sheet[1]:
        assert cell.font.b and cell.alignment.wrap_text
        width = sheet.column_dimensions[cell.column_letter].width
        longest = max(len(word) for word in str(cell.value).split())
        assert width >= longest + 2, (sheet.title, cell.value, width)


async def test_author_without_a_name_is_findable(world: World) -> None:
    """A VK citizen without a name is a vk.com link, a Telegram one «id 123»; never a bare id."""
    events = [
        replace(vk_comment(msk(11, 2, 10), ROADS, "300000", 911), author_name=None),
        replace(citizen_event(msk(11, 2, 11), WASTE, "4242", 912), author_name=None),
        vk_comment(msk(11, 2, 12), HEATING, "300001", 913),
    ]
    ids = []
    for event in events:
        world.clock.set(event.sent_at)
        appeal_id = await world.ingest(event)
        assert appeal_id is not None
        ids.append(appeal_id)
    async with world.app.sessions() as session:
        exported = await build_export(
            session,
            since=msk(11, 2, 0),
            until=msk(11, 3, 0),
            at=world.clock(),
            defaults=world.app.defaults,
        )
    sheet = load_workbook(io.BytesIO(exported.data))["Обращения"]
    headers = [cell.value for cell in sheet[1]]
    authors = {
        row[0]: row[headers.index("Автор")] for row in sheet.iter_rows(min_row=2, values_only=True)
    }
    assert authors == {ids[0]: "vk.com/id300000", ids[1]: "id 4242", ids[2]: "Мария 300001"}


async def test_csv_for_russian_excel(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await build_two_weeks(world)
    world.clock.set(msk(11, 9, 10))
    output = tmp_path / "week.csv"
    assert await write_export(world.app, msk(11, 2, 0), msk(11, 9, 0), "csv", str(output)) == 0
    assert capsys.readouterr().out == f"{output}: 6\u00a0обращений\n"
    raw = output.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    # One table: the compact appeals sheet of the XLSX, the link as its address.
    assert rows[0] == [
        "№",
        "Страница",
        "Поступило",
        "Тема",
        "Срочное",
        "Статус",
        "Первый ответ",
        "Итоговый ответ",
        "Отписка",
        "Оператор",
        "Автор",
        "Ссылка",
    ]
    assert len(rows) == 7
    assert any(row[2] == "02.11.2026 11:00" for row in rows[1:])
    assert "https://vk.com/wall-123_55?reply=903" in [row[11] for row in rows[1:]]
