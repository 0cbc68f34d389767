"""Importing a Telegram Desktop export through the ingest path, then the report over it."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.importers import telegram_export
from bot.importers.telegram_export import (
    ExportFormatError,
    ExportReader,
    import_telegram_export,
    message_text,
)
from bot.services.intake import Intake
from bot.services.policy import PageDefaults
from bot.services.reports import build_report
from storage.engine import SessionFactory
from storage.models import Appeal, CitizenMessage, OfficialReply, Page

MSK = ZoneInfo("Europe/Moscow")
CHANNEL = "channel1000000001"
GROUP_KEY = "-1001000000002"


def unix(day: int, hour: int, minute: int = 0) -> str:
    return str(int(datetime(2026, 11, day, hour, minute, tzinfo=MSK).timestamp()))


def message(number: int, day: int, hour: int, minute: int = 0, **fields: Any) -> dict[str, Any]:
    moment = datetime(2026, 11, day, hour, minute, tzinfo=MSK)
    return {
        "id": number,
        "type": "message",
        "date": moment.replace(tzinfo=None).isoformat(),
        "date_unixtime": unix(day, hour, minute),
        "text_entities": [],
        **fields,
    }


def export() -> dict[str, Any]:
    citizen = {"from": "Иван Петров", "from_id": "user5001"}
    return {
        "name": "Администрация города — обсуждение",
        "type": "public_supergroup",
        "id": 1000000002,
        "messages": [
            {
                "id": 1,
                "type": "service",
                "date": "2026-11-01T09:00:00",
                "date_unixtime": unix(1, 9),
                "actor": "Администрация города",
                "actor_id": CHANNEL,
                "action": "migrate_from_group",
                "text": "",
                "text_entities": [],
            },
            message(
                10,
                2,
                9,
                **{"from": "Администрация города", "from_id": CHANNEL},
                forwarded_from="Администрация города",
                text=["График вывоза мусора ", {"type": "bold", "text": "на ноябрь"}],
            ),
            message(
                11,
                2,
                10,
                **citizen,
                reply_to_message_id=10,
                text="Когда уберут мусор во дворе на улице Ленина 5? Неделю не вывозят.",
            ),
            message(12, 2, 10, 30, **citizen, reply_to_message_id=11, text="Алло, ответьте!"),
            message(
                13,
                2,
                12,
                **{"from": "Администрация города", "from_id": CHANNEL},
                reply_to_message_id=12,
                text=[
                    "Здравствуйте, Иван! Мусор вывезут до 4 ноября, график на ",
                    {"type": "link", "text": "сайте"},
                    ".",
                ],
            ),
            message(
                14,
                3,
                15,
                **{"from": "Ольга", "from_id": "user5002"},
                reply_to_message_id=10,
                photo="photos/photo_1.jpg",
                width=800,
                height=600,
                text="Прошу отремонтировать яму на дороге у школы №3.",
            ),
            message(
                15,
                5,
                16,
                **{"from": "Сергей из пресс-службы", "from_id": "user5099"},
                reply_to_message_id=14,
                text="Здравствуйте! Подрядчик засыпал яму 5 ноября, ремонт выполнен.",
                reactions=[
                    {
                        "type": "emoji",
                        "count": 1,
                        "emoji": "👍",
                        "recent": [
                            {"from": "Ольга", "from_id": "user5002", "date": "2026-11-05T14:00:00"}
                        ],
                    }
                ],
            ),
            message(
                16,
                6,
                10,
                **{"from": "Анна", "from_id": "user5003"},
                reply_to_message_id=10,
                text="Спасибо!",
            ),
            message(
                17,
                13,
                11,
                **{"from": "Пётр", "from_id": "user5004"},
                reply_to_message_id=10,
                text="Почему не горит освещение на улице Садовой?",
            ),
            message(
                18,
                13,
                11,
                30,
                **{"from": "Марина", "from_id": "user5005"},
                media_type="sticker",
                file="stickers/sticker.webp",
                sticker_emoji="👍",
                text="",
            ),
        ],
    }


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    path = tmp_path / "result.json"
    # Telegram Desktop writes indented JSON with non-ASCII as is.
    path.write_text(json.dumps(export(), ensure_ascii=False, indent=1), encoding="utf-8")
    return path


async def test_import_then_report(
    engine: AsyncEngine,
    sessions: SessionFactory,
    export_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tiny chunks: every message object straddles reads at least once.
    monkeypatch.setattr(telegram_export, "CHUNK_CHARS", 97)
    defaults = PageDefaults()
    intake = Intake.for_database(engine, sessions, defaults)  # SQLite: the writer too
    try:
        summary = await import_telegram_export(intake, str(export_file), ["5099"], progress=False)
        again = await import_telegram_export(intake, str(export_file), ["5099"], progress=False)
    finally:
        await intake.close()
    assert summary.page is not None
    assert (summary.page.external_id, summary.page.linked_chat_id) == ("-1001000000001", GROUP_KEY)
    assert summary.messages == 8 and summary.skipped == 1 and summary.outcomes["post"] == 1
    assert summary.outcomes["appeal"] == 3 and summary.outcomes["follow_up"] == 1
    assert summary.outcomes["reply"] == 2 and summary.outcomes["comment"] == 2

    assert again.outcomes["duplicate"] == 8

    async with sessions() as session:
        [page] = (await session.exec(select(Page))).all()
        assert page.title == "Администрация города"
        first = (
            await session.exec(
                select(CitizenMessage).where(CitizenMessage.external_id == f"{GROUP_KEY}:11")
            )
        ).one()
        assert first.link == "https://t.me/c/1000000002/11?thread=10"
        assert first.sent_at == datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
        photo = (
            await session.exec(
                select(CitizenMessage).where(CitizenMessage.external_id == f"{GROUP_KEY}:14")
            )
        ).one()
        assert photo.content_kind == "photo"
        replies = (await session.exec(select(OfficialReply).order_by(OfficialReply.id))).all()
        assert [r.author_role for r in replies] == ["page", "staff"]
        assert replies[0].text.endswith("на сайте.")
        assert all(r.quality_score is not None for r in replies)
        appeals = (await session.exec(select(Appeal).order_by(Appeal.id))).all()
        assert [a.messages_count for a in appeals] == [2, 1, 1]
        assert appeals[1].rating == 1
        report = await build_report(
            session,
            since=datetime(2026, 11, 2, tzinfo=MSK),
            until=datetime(2026, 11, 16, tzinfo=MSK),
            at=datetime(2026, 11, 13, 12, tzinfo=MSK),
            defaults=defaults,
        )
    total = report.to_json()["total"]
    expected = {
        "appeals": 3,
        "answered": 2,
        "answered_in_time": 1,  # 2 h on Monday
        "answered_late": 1,  # Tue 15:00 → Thu 16:00, due Thu 14:00 (Wed 04.11 is a holiday)
        "pending": 1,
        "overdue": 0,
        "frt_median_s": 91800.0,  # (7200 + 176400) / 2
        "frt_p90_s": 159480.0,  # (7200·1 + 176400·9) / 10
        "frt_median_work_s": 21600.0,  # (7200 + 36000) / 2
        "csat": 1.0,
    }
    assert {key: total[key] for key in expected} == expected


def test_reader_streams_and_rejects() -> None:
    data = json.dumps({"name": "x", "id": 5, "messages": [{"id": 1}, {"id": 2, "text": "]"}]})
    reader = ExportReader(io.StringIO(data))
    assert reader.read_header() == {"name": "x", "id": 5}
    assert [item["id"] for item in reader.messages()] == [1, 2]
    with pytest.raises(ExportFormatError):
        ExportReader(io.StringIO('{"name": "x"}')).read_header()
    broken = ExportReader(io.StringIO('{"id": 1, "messages": [{"id": 1}, {"id": '))
    broken.read_header()
    with pytest.raises(ExportFormatError):
        list(broken.messages())
    assert message_text({"text": ["a ", {"type": "bold", "text": "b"}]}) == "a b"
