"""Press-office corrections win over the classifier and become corpus lines."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from bot.app import AppContext
from bot.services.corrections import UnknownTopic, corpus_lines, correct_topic, topic_code
from bot.services.decisions import NOT_APPEAL, apply_decision
from bot.services.ingest import IngestService
from bot.services.reports import build_report
from storage.models import Appeal, Decision
from tests.conftest import MONDAY_10_MSK
from tests.factories import citizen, hours


def test_topic_names_in_russian_and_codes() -> None:
    assert topic_code("дороги") == "roads"
    assert topic_code("ЖКХ") == "housing"
    assert topic_code("благоустр") == "amenities"
    assert topic_code("waste") == "waste"
    with pytest.raises(UnknownTopic, match="Темы: ЖКХ"):
        topic_code("погода")


async def test_corrections_change_metrics_and_export_as_corpus(app: AppContext) -> None:
    async with app.sessions() as session:
        service = IngestService(session, app.defaults)
        first = await service.handle(citizen(MONDAY_10_MSK, "Во дворе не убирают снег уже неделю"))
        second = await service.handle(
            citizen(MONDAY_10_MSK, "Когда откроют новую школу на Садовой?", author="77")
        )
        await session.commit()
    first_id, second_id = first.appeal_ids[0], second.appeal_ids[0]
    at = MONDAY_10_MSK + hours(1)
    async with app.sessions() as session:
        appeal = await session.get(Appeal, first_id)
        assert appeal is not None
        result = await correct_topic(
            session, appeal, "housing", actor_id="9", actor_name="Мария", at=at
        )
        assert result.changed and "«ЖКХ»" in result.message
        again = await correct_topic(
            session, appeal, "housing", actor_id="9", actor_name="Мария", at=at
        )
        assert not again.changed
        other = await session.get(Appeal, second_id)
        assert other is not None
        await apply_decision(session, other, NOT_APPEAL, actor_id="9", actor_name="Мария", at=at)
        await session.commit()

    async with app.sessions() as session:
        report = await build_report(
            session,
            since=MONDAY_10_MSK - hours(1),
            until=MONDAY_10_MSK + hours(24),
            at=at + hours(1),
            defaults=app.defaults,
        )
        decisions = (await session.exec(select(Decision))).all()
        lines = [json.loads(line) for line in await corpus_lines(session)]
    figures = report.to_json()["total"]
    assert figures["appeals"] == 1  # «не обращение» leaves every metric
    assert figures["topics"] == {"housing": 1}  # the correction wins over the classifier
    assert {(d.action, d.actor_name) for d in decisions} == {
        ("topic", "Мария"),
        ("not_appeal", "Мария"),
    }
    assert {(line["text"], line["is_appeal"], line["topic"]) for line in lines} == {
        ("Во дворе не убирают снег уже неделю", True, "housing"),
        ("Когда откроют новую школу на Садовой?", False, None),
    }
