"""The reply quality checklist: points, left-out parts, template detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.services import quality
from bot.services.quality import Judged, score_parts, similar, template_key
from bot.text import ReplyContent

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def content(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fix what the text module reads from a reply: an action and a date, addressed."""
    monkeypatch.setattr(
        quality.text_analysis,
        "reply_content",
        lambda text: ReplyContent(True, True, False, False, True),
    )


def test_unrated_reply_leaves_rating_out() -> None:
    score, parts = score_parts(
        "текст", is_interim=False, is_template=False, sent_at=SENT, judged=Judged()
    )
    # (25 + 15 + 15 + 10 + 15) / 90, the rating part left out.
    assert score == 88.9
    assert parts["concrete"] == {
        "ok": True,
        "points": 15,
        "max": 25,
        "action": True,
        "date": True,
        "body": False,
        "contact": False,
    }
    assert parts["rating"] == {"ok": None, "points": 0.0, "max": 0.0}


def test_template_interim_reopened_and_rated() -> None:
    judged = Judged(rating=0, rated_at=SENT + timedelta(hours=1), reopened_at=SENT + timedelta(1))
    score, parts = score_parts(
        "текст", is_interim=True, is_template=True, sent_at=SENT, judged=judged
    )
    # Only concrete (15) and addressing (10) earn points, out of all 100.
    assert score == 25.0
    assert [name for name, part in parts.items() if part["ok"] is False] == [
        "not_template",
        "not_interim",
        "not_reopened",
        "rating",
    ]
    # A re-open before this reply is not this reply's fault; unknown template is left out.
    earlier = Judged(reopened_at=SENT - timedelta(hours=1))
    score, parts = score_parts(
        "текст", is_interim=False, is_template=None, sent_at=SENT, judged=earlier
    )
    assert parts["not_reopened"]["ok"] is True and parts["not_template"]["max"] == 0
    assert score == round(100 * 55 / 65, 1)


def test_near_duplicates() -> None:
    first = template_key("Здравствуйте, Анна! Ваше обращение передано в управляющую компанию №5.")
    second = template_key("Здравствуйте, Олег! Ваше обращение передано в управляющую компанию №7.")
    assert first.startswith("здравствуйте анна ваше")
    assert similar(first, second)
    assert not similar(first, template_key("Подрядчик засыпал яму, ремонт выполнен 5 ноября."))
    assert similar(template_key("Спасибо!"), template_key("спасибо"))
    assert not similar(template_key("Спасибо, Анна"), template_key("Спасибо, Олег"))
