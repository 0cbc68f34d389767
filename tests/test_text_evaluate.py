"""bot.text.evaluate: the figures and confusion tables the lead runs on the blind set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bot.text.evaluate import FIGURES, evaluate_file

ROOT = Path(__file__).parents[1]

LINES = [
    {
        "text": "Когда починят дорогу на Ленина? Сплошные ямы",
        "is_appeal": True,
        "topic": "roads",
        "urgent": False,
    },
    {
        "text": "Сильно пахнет газом в подъезде дома 4, помогите",
        "is_appeal": True,
        "topic": "housing",
        "urgent": True,
    },
    {
        "text": "Спасибо за праздник, было здорово!",
        "is_appeal": False,
        "topic": None,
        "urgent": False,
    },
    {"text": "Продам гараж недорого, звоните", "is_appeal": False, "topic": None, "urgent": False},
]


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in LINES)
        + "not json\n",  # a bad line is skipped (logged), not fatal
        encoding="utf-8",
    )
    return path


def test_evaluate_file_gives_the_five_figures_and_confusion_tables(tmp_path: Path) -> None:
    report = evaluate_file(_write(tmp_path))
    assert (report["texts"], report["appeals"], report["urgent"]) == (4, 2, 1)
    assert set(FIGURES) <= set(report)
    assert report["appeal_accuracy"] == 1.0 and report["appeal_recall"] == 1.0
    assert report["topic_accuracy"] == 1.0
    assert report["urgent_recall"] == 1.0 and report["urgent_precision"] == 1.0
    appeal = report["confusion"]["appeal"]
    assert appeal == {"true": {"true": 2, "false": 0}, "false": {"true": 0, "false": 2}}
    topic = report["confusion"]["topic"]
    assert topic["roads"]["roads"] == 1 and topic["housing"]["housing"] == 1
    assert sum(sum(row.values()) for row in topic.values()) == 2
    assert report["confusion"]["urgent"]["true"]["true"] == 1


def test_evaluate_command_prints_figures_and_tables(tmp_path: Path) -> None:
    path = _write(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bot.text.evaluate", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "4 texts, 2 appeals, 1 urgent" in done.stdout
    assert "appeal_accuracy 1.0" in done.stdout and "urgent_precision 1.0" in done.stdout
    assert "truth \\ predicted" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "bot.text.evaluate", str(tmp_path / "none.jsonl")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr
