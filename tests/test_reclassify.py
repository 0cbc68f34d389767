"""`otklik reclassify` on SQLite and PostgreSQL: the model decides again, people's stay."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.services import doubtful
from bot.services.corrections import correct_topic
from bot.services.decisions import NOT_APPEAL, apply_decision
from bot.services.export import MODEL_EXCLUDED, appeal_rows
from bot.services.ingest import IngestService
from bot.services.policy import sla_deadline
from bot.services.reclassify import ReclassifySummary, reclassify
from bot.services.reports import build_report
from bot.text import MODEL_ENV, classify, model_version, train_local, use_local_model
from bot.timeparse import TimeFormatError, parse_time
from storage import repositories as repo
from storage.engine import create_engine
from storage.migrate import upgrade
from storage.models import Appeal, CitizenMessage, Decision, Page
from tests.conftest import make_settings
from tests.test_doubtful import CANDIDATES
from tests.test_reminders import HEATING, ROADS, WASTE, citizen_event, msk

ROOT = Path(__file__).parents[1]
THANKS = "Спасибо большое за новости!"
SINCE, UNTIL = msk(11, 2, 0), msk(11, 3, 0)


@pytest.fixture(scope="module")
def region_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A local model trained on corrections that make doubted remarks appeals; those texts."""
    doubted = [text for text in CANDIDATES if not classify(text).is_appeal]
    path = tmp_path_factory.mktemp("model") / "otklik.model.json"
    train_local([{"text": t, "is_appeal": True, "topic": "other"} for t in doubted], path)
    assert use_local_model(path) is None
    learnt = [text for text in doubted if classify(text).is_appeal]
    assert use_local_model(None) is None
    assert len(learnt) >= 2, "the local model learnt too few corrections for this test"
    return path, learnt


@pytest.fixture(autouse=True)
def builtin_model() -> Iterator[None]:
    """Every test starts and ends with the built-in model (the choice is process-wide)."""
    assert use_local_model(None) is None
    yield
    assert use_local_model(None) is None
    assert MODEL_ENV not in os.environ


@pytest.fixture
def app(engine: AsyncEngine) -> AppContext:
    return AppContext.create(make_settings(), engine, SimulatedClock(msk(11, 3, 12)))


async def _ingest(app: AppContext, *events: Any) -> list[int]:
    """Message row ids."""
    ids = []
    async with app.sessions() as session:
        service = IngestService(session, app.defaults)
        for event in events:
            result = await service.handle(event)
            assert result.message_row_id is not None
            ids.append(result.message_row_id)
        await session.commit()
    return ids


async def _message(app: AppContext, message_id: int) -> tuple[CitizenMessage, Appeal | None]:
    async with app.sessions() as session:
        message = await session.get(CitizenMessage, message_id)
        assert message is not None
        appeal = await session.get(Appeal, message.appeal_id) if message.appeal_id else None
    return message, appeal


async def _run(app: AppContext) -> ReclassifySummary:
    steps: list[tuple[int, int]] = []
    async with app.sessions() as session:
        summary = await reclassify(
            session, app.defaults, SINCE, UNTIL, lambda done, total: steps.append((done, total))
        )
    assert steps[0] == (0, summary.checked) and steps[-1] == (summary.checked, summary.checked)
    return summary


async def _figures(app: AppContext) -> dict[str, Any]:
    async with app.sessions() as session:
        report = await build_report(
            session, since=SINCE, until=UNTIL, at=msk(11, 3, 12), defaults=app.defaults
        )
        await session.commit()
    return report.to_json()["total"]


async def test_the_model_decides_again_and_people_keep_their_decisions(
    app: AppContext, region_model: tuple[Path, list[str]]
) -> None:
    model_path, (learnt, learnt_too, *_) = region_model
    assert classify(ROADS).topic != "other" and not classify(WASTE).urgent
    assert not classify(THANKS).is_appeal
    roads_variant = ROADS.replace("Ленина", "Мира")
    roads, waste, thanks, doubted, refused, person_no, person_topic = await _ingest(
        app,
        citizen_event(msk(11, 2, 10), ROADS, "501", 1),
        citizen_event(msk(11, 2, 10, 5), WASTE, "502", 2),
        citizen_event(msk(11, 2, 10, 10), THANKS, "503", 3),
        citizen_event(msk(11, 2, 10, 15), learnt, "504", 4),
        citizen_event(msk(11, 2, 10, 20), learnt_too, "505", 5),
        citizen_event(msk(11, 2, 10, 25), roads_variant, "506", 6),
        citizen_event(msk(11, 2, 10, 30), roads_variant.replace("Мира", "Садовой"), "507", 7),
    )
    at = msk(11, 2, 12)
    async with app.sessions() as session:
        # What an older model had decided: another topic, an urgency, an appeal of a thanks.
        roads_message = await session.get(CitizenMessage, roads)
        waste_message = await session.get(CitizenMessage, waste)
        assert roads_message is not None and waste_message is not None
        roads_appeal = await session.get(Appeal, roads_message.appeal_id)
        waste_appeal = await session.get(Appeal, waste_message.appeal_id)
        assert roads_appeal is not None and waste_appeal is not None
        roads_appeal.topic = roads_message.topic = "other"
        page = await session.get(Page, waste_appeal.page_id)
        hours, deadline = sla_deadline(page, waste_appeal.received_at, True, app.defaults)
        waste_appeal.urgent = waste_message.urgent = True
        waste_appeal.sla_hours, waste_appeal.sla_deadline = hours, deadline
        for message in (roads_message, waste_message):
            message.model_version = "builtin-older"
        await repo.run_in_transaction(
            session,
            partial(
                IngestService(None, app.defaults).promote,
                message_row_id=thanks,
                topic="other",
                urgent=False,
            ),
        )
        # People's decisions: «Не обращение» under «Возможно, обращение» and under a reminder,
        # and a topic set by hand.
        refused_message = await session.get(CitizenMessage, refused)
        assert refused_message is not None
        await doubtful.decide(
            session,
            refused_message,
            False,
            actor_id="7",
            actor_name="Анна",
            at=at,
            defaults=app.defaults,
        )
        no_message = await session.get(CitizenMessage, person_no)
        topic_message = await session.get(CitizenMessage, person_topic)
        assert no_message is not None and topic_message is not None
        no_appeal = await session.get(Appeal, no_message.appeal_id)
        topic_appeal = await session.get(Appeal, topic_message.appeal_id)
        assert no_appeal is not None and topic_appeal is not None
        await apply_decision(session, no_appeal, NOT_APPEAL, actor_id="7", actor_name="Анна", at=at)
        await correct_topic(
            session, topic_appeal, "ecology", actor_id="7", actor_name="Анна", at=at
        )
        await session.commit()
        decisions_before = len((await session.exec(select(Decision))).all())
    before = await _figures(app)
    assert before["appeals"] == 4  # roads, waste, thanks, the one with the topic by hand

    assert use_local_model(model_path) is None
    summary = await _run(app)
    assert summary.model_version == model_version() and summary.model_version.startswith("local")
    assert (
        summary.checked,
        summary.became_appeals,
        summary.stopped_appeals,
        summary.topic_changed,
        summary.urgency_changed,
        summary.kept_by_people,
    ) == (7, 1, 1, 1, 1, 3)
    text = summary.report_ru()
    assert "Пересмотрено 7\u00a0сообщений граждан моделью local-" in text
    assert "1\u00a0сообщение стало обращением." in text
    assert "1\u00a0обращение перестало считаться обращением." in text
    assert "У 1\u00a0обращения сменилась тема." in text
    assert "У 1\u00a0обращения сменилась срочность." in text
    assert "3\u00a0решения людей сохранены, хотя модель решила бы иначе." in text

    message, appeal = await _message(app, doubted)
    assert appeal is not None and not appeal.excluded and message.is_appeal
    assert appeal.received_at == message.sent_at == msk(11, 2, 10, 15)
    assert message.model_version == model_version() and not message.doubtful
    _, appeal = await _message(app, thanks)
    assert appeal is not None and appeal.excluded  # the model's, not a person's
    _, appeal = await _message(app, roads)
    assert appeal is not None and appeal.topic == classify(ROADS).topic
    _, appeal = await _message(app, waste)
    assert appeal is not None and not appeal.urgent and appeal.sla_hours == 8
    assert appeal.sla_deadline == msk(11, 3, 9, 5)  # 8 working hours from Monday 10:05
    # People's decisions are as they were.
    message, appeal = await _message(app, refused)
    assert appeal is None and message.model_version != model_version()
    _, appeal = await _message(app, person_no)
    assert appeal is not None and appeal.excluded
    _, appeal = await _message(app, person_topic)
    assert appeal is not None and appeal.topic == "ecology" and not appeal.excluded
    async with app.sessions() as session:
        assert len((await session.exec(select(Decision))).all()) == decisions_before

    async with app.sessions() as session:  # the export says who excluded what
        exported = await appeal_rows(
            session, since=SINCE, until=UNTIL, at=msk(11, 3, 12), defaults=app.defaults
        )
    excluded = {row.values["text"]: row.values["excluded_by"] for row in exported}
    assert excluded[THANKS] == MODEL_EXCLUDED and excluded[roads_variant] == "Анна"
    assert excluded[learnt] is None

    after = await _figures(app)  # the report's pre-aggregated days follow
    assert after["appeals"] == 4  # the thanks left, the learnt remark came in
    topics = [classify(ROADS).topic, classify(WASTE).topic, "ecology", classify(learnt).topic]
    assert after["topics"] == dict(Counter(topics))

    again = await _run(app)
    assert again.changed == 0 and again.kept_by_people == 3
    assert "Решения без изменений." in again.report_ru()
    assert await _figures(app) == after

    # Back to the built-in model: the learnt remark is no appeal again, nothing else moves.
    assert use_local_model(None) is None
    back = await _run(app)
    assert (back.became_appeals, back.stopped_appeals, back.topic_changed) == (0, 1, 0)
    _, appeal = await _message(app, doubted)
    assert appeal is not None and appeal.excluded
    assert (await _figures(app))["appeals"] == 3


async def test_same_model_as_the_intake_changes_nothing(app: AppContext) -> None:
    texts = [ROADS, HEATING, WASTE, THANKS, *CANDIDATES[:3]]
    events = [
        citizen_event(msk(11, 2, 9) + timedelta(minutes=n), text, str(600 + n), 100 + n)
        for n, text in enumerate(texts)
    ]
    # A follow-up joins the first appeal (same citizen, same thread, unanswered).
    events.append(citizen_event(msk(11, 2, 11), "И фонари не горят!", "600", 200))
    await _ingest(app, *events)
    figures = await _figures(app)
    summary = await _run(app)
    assert summary.checked == len(events)
    assert summary.changed == 0 and summary.kept_by_people == 0
    assert await _figures(app) == figures


def test_russian_and_iso_dates() -> None:
    assert parse_time("02.11.2026", "Europe/Moscow") == datetime(2026, 11, 1, 21, tzinfo=UTC)
    assert parse_time("2026-11-02", "Europe/Moscow") == parse_time("2.11.2026", "Europe/Moscow")
    assert parse_time("02.11.2026 09:30", "Europe/Moscow") == msk(11, 2, 9, 30)
    for bad in ("31.02.2026", "02/11/2026", "вчера"):
        with pytest.raises(TimeFormatError, match="дат"):
            parse_time(bad, "Europe/Moscow")


def _otklik(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))}
    env.pop(MODEL_ENV, None)
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/otklik.db")
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_command_with_a_missing_or_corrupt_model_file(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/otklik.db")
    await upgrade(engine)
    app = AppContext.create(make_settings(), engine)
    await _ingest(
        app,
        citizen_event(msk(11, 2, 10), ROADS, "501", 1),
        citizen_event(msk(11, 2, 11), THANKS, "502", 2),
        citizen_event(msk(11, 2, 12), HEATING, "503", 3),
        citizen_event(msk(11, 4, 12), WASTE, "504", 4),  # after --until
    )
    await engine.dispose()

    missing = _otklik(tmp_path, "reclassify", "--since", "02.11.2026", "--until", "2026-11-03")
    assert missing.returncode == 0, missing.stderr
    assert "Локальной модели нет" in missing.stderr and "встроенная модель" in missing.stderr
    assert "Пересмотрено 3\u00a0сообщения граждан моделью builtin-" in missing.stdout
    assert "Решения без изменений." in missing.stdout
    # The bar is on stderr, whole, and no log line cuts through it.
    bar = [part for part in re.split(r"[\r\n]", missing.stderr) if "Пересмотр сообщений" in part]
    assert bar and "3/3" in bar[-1]
    assert not re.search(r"\b(INFO|DEBUG)\b", missing.stderr)
    assert "Traceback" not in missing.stderr

    path = tmp_path / "otklik.model.json"
    path.write_bytes(b"{broken")
    corrupt = _otklik(tmp_path, "reclassify", "--since", "2026-11-02")
    assert corrupt.returncode == 0, corrupt.stderr
    assert "повреждён" in corrupt.stderr
    assert "встроенная модель" in corrupt.stderr
    assert "Пересмотрено 4\u00a0сообщения граждан моделью builtin-" in corrupt.stdout
    assert "Решения без изменений." in corrupt.stdout
    assert path.read_bytes() == b"{broken"  # nothing of the person's file is lost

    bad = _otklik(tmp_path, "reclassify", "--since", "32.13.2026")
    assert bad.returncode == 2 and "32.13.2026" in bad.stderr and "Traceback" not in bad.stderr
    backwards = _otklik(tmp_path, "reclassify", "--since", "03.11.2026", "--until", "02.11.2026")
    assert backwards.returncode == 2 and "позже" in backwards.stderr

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/otklik.db")
    async with AppContext.create(make_settings(), engine).sessions() as session:
        appeals = (await session.exec(select(Appeal).order_by(col(Appeal.id)))).all()
    await engine.dispose()
    assert len([a for a in appeals if not a.excluded]) == 3  # roads, heating, waste
