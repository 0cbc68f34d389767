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
    # «Здоровье страниц»: the channel's posts are page health (issue 13).
    assert book.sheetnames == ["Обращения", "По страницам", "Здоровье страниц"]
    sheet = book["Обращения"]
    assert sheet.freeze_panes == "A2"
    headers = [cell.value for cell in sheet[1]]
    assert headers[:7] == [
        "№",
        "Страница",
        "Платформа",
        "Тема",
        "Срочное",
        "Поступило",
        "Срок ответа",
    ]
    assert "Ответ" in headers and "Статус" in headers and "Качество ответа (0–100)" in headers
    assert "Качество: Не шаблон" in headers and "Качество: Назван срок" in headers
    assert sheet.column_dimensions["R"].width == 60  # the appeal's text is readable
    rows = {
        row[0]: dict(zip(headers, row, strict=True))
        for row in sheet.iter_rows(min_row=2, values_only=True)
    }
    assert len(rows) == 6  # every appeal of the week, the excluded one too (marked)
    a2 = rows[data.ids["a2"]]
    # Local (Moscow) time as a real date-time with a Russian format.
    assert a2["Поступило"] == local(11, 2, 11)
    assert a2["Срок ответа"] == local(11, 2, 15)
    assert a2["Первый ответ"] == local(11, 3, 10)
    assert a2["Статус"] == "отвечено с опозданием" and a2["Срочное"] == "да"
    assert a2["Тема"] == "ЖКХ"
    assert a2["Рабочих часов до ответа"] == 8.0
    assert a2["Ответ"].startswith("Здравствуйте!")
    received = sheet.cell(row=2, column=headers.index("Поступило") + 1)
    assert received.number_format == "DD.MM.YYYY HH:MM"
    assert rows[data.ids["a3"]]["Статус"] == "просрочено"
    assert rows[data.ids["v1"]]["Статус"] == "отвечено в срок"
    assert rows[data.ids["v1"]]["Ответ вне соцсети"] == local(11, 5, 11)
    assert rows[data.ids["v2"]]["Статус"] == "не обращение"
    assert rows[data.ids["v2"]]["«Не обращение»: кто решил"] == "Анна Иванова"
    assert rows[data.ids["v3"]]["Платформа"] == "ВКонтакте"
    assert rows[data.ids["v3"]]["Ссылка"] == "https://vk.com/wall-123_55?reply=903"
    assert rows[data.ids["v3"]]["Качество: Назван срок"] == "да"

    pages = book["По страницам"]
    assert pages.freeze_panes == "A2"
    page_headers = [cell.value for cell in pages[1]]
    assert page_headers[:3] == ["Страница", "Платформа", "Обращений"]
    figures = {
        row[0]: dict(zip(page_headers, row, strict=True))
        for row in pages.iter_rows(min_row=2, max_row=4, values_only=True)
    }
    assert figures["Правительство области"]["Обращений"] == 3
    assert figures["Минздрав края"]["Обращений"] == 2
    assert figures["Всего"]["Обращений"] == 5
    assert figures["Всего"]["Доля отвеченных (из всех обращений)"] == 0.8
    assert figures["Всего"]["Из них вне соцсети"] == 1
    assert "90\u00a0% ответов не дольше, ч" in page_headers
    assert not any("быстрее" in str(header) for header in page_headers)
    share = pages.cell(row=2, column=page_headers.index("Доля отвеченных (из всех обращений)") + 1)
    assert share.number_format == "0%"


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
    assert rows[0][:3] == ["№", "Страница", "Платформа"]
    assert len(rows) == 7
    by_topic = {row[0]: row for row in rows[1:]}
    assert any(row[5] == "02.11.2026 11:00" for row in by_topic.values())
    assert any(row[12] == "8" for row in by_topic.values())  # working hours, decimal comma-ready
