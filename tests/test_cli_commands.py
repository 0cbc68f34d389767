"""The `otklik` commands as a user runs them: stats on an empty database, classify, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).parents[1]
DESIGN_FIELDS = {
    "appeals",
    "answered",
    "unanswered",
    "answered_share",
    "answered_in_time",
    "answered_late",
    "overdue",
    "pending",
    "within_sla_share",
    "frt_median_s",
    "frt_p90_s",
    "frt_median_work_s",
    "quality_mean",
    "templated_share",
    "deleted_by_page",
    "csat",
    "maturity_index",
}


def otklik(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{cwd}/otklik.db")
    return subprocess.run(
        [sys.executable, "-m", "bot", "--env-file", str(cwd / "none.env"), *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stats_json_on_an_empty_database_is_zeros_and_nulls(tmp_path: Path) -> None:
    done = otklik(
        "stats",
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-09",
        "--at",
        "2026-11-09T12:00+03:00",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) >= {"since", "until", "at", "total", "pages"}
    # A bare date is local midnight in the configured zone (Moscow by default).
    assert datetime.fromisoformat(report["since"]) == datetime(2026, 11, 1, 21, 0, tzinfo=UTC)
    assert datetime.fromisoformat(report["at"]) == datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
    assert report["pages"] == []
    total = report["total"]
    assert set(total) >= DESIGN_FIELDS
    assert total["appeals"] == 0 and total["answered"] == 0 and total["overdue"] == 0
    for share in (
        "answered_share",
        "within_sla_share",
        "frt_median_s",
        "frt_p90_s",
        "csat",
        "quality_mean",
        "maturity_index",
    ):
        assert total[share] is None, share


def test_stats_text_is_russian(tmp_path: Path) -> None:
    done = otklik("stats", "--since", "2026-11-02", "--until", "2026-11-09", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "обращени" in done.stdout


def test_stats_rejects_a_bad_date_with_a_clear_error(tmp_path: Path) -> None:
    done = otklik("stats", "--since", "вчера", "--until", "2026-11-09", cwd=tmp_path)
    assert done.returncode == 2
    assert "ISO 8601" in done.stderr
    assert "Traceback" not in done.stderr


def test_classify_reads_json_lines_and_keeps_order(tmp_path: Path) -> None:
    lines = [
        {"text": "Когда починят дорогу на улице Ленина? Одни ямы"},
        {"text": "Спасибо за работу!"},
        "not json",
        {"text": "Прорвало трубу в подвале, заливает квартиры, нет воды"},
    ]
    stdin = (
        "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines)
        + "\n"
    )
    done = otklik("classify", cwd=tmp_path, stdin=stdin)
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == 4
    assert set(out[0]) == {"is_appeal", "topic", "urgent", "confidence"}
    assert (out[0]["is_appeal"], out[0]["topic"], out[0]["urgent"]) == (True, "roads", False)
    assert 0.5 <= out[0]["confidence"] <= 1 and 0.5 <= out[1]["confidence"] <= 1
    assert out[1]["is_appeal"] is False
    assert "error" in out[2]
    assert out[3]["is_appeal"] is True and out[3]["urgent"] is True


def test_help_lists_every_design_command(tmp_path: Path) -> None:
    done = otklik("--help", cwd=tmp_path)
    assert done.returncode == 0
    for command in (
        "run",
        "demo",
        "stats",
        "digest",
        "import",
        "backfill",
        "classify",
        "corrections",
        "train",
        "bench",
    ):
        assert command in done.stdout


def test_classify_skips_blank_lines_and_vk_voice_is_an_appeal(tmp_path: Path) -> None:
    stdin = '{"text": "Спасибо!"}\n\n{"text": "", "kind": "audio_message"}\n\n'
    done = otklik("classify", cwd=tmp_path, stdin=stdin)
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == 2
    assert out[1]["is_appeal"] is True


def test_stats_for_an_unknown_page_names_the_known_ones(tmp_path: Path) -> None:
    done = otklik(
        "stats", "--since", "2026-11-02", "--until", "2026-11-09", "--page", "99", cwd=tmp_path
    )
    assert done.returncode == 2
    assert "страницы 99 нет" in done.stderr and "Traceback" not in done.stderr


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    done = otklik(
        "export",
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-09",
        "-o",
        str(tmp_path / "missing" / "x.xlsx"),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "нет такого файла или папки" in done.stderr and "Traceback" not in done.stderr
