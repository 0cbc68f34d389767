"""`otklik bench`'s dashboard line: Russian, with the target's verdict and both page counts."""

from __future__ import annotations

from typing import Any

from handlers.web.bench import TARGET_MS, summary_line


def _result(median: float, pages: int = 20) -> dict[str, Any]:
    return {
        "appeals": 1_000_000,
        "pages": pages,
        "overview_first_ms": 441.7,
        "overview_median_ms": median,
        "overview_cpu_median_ms": 290.4,
        "target_ms": TARGET_MS,
        "target_met": median <= TARGET_MS,
        "load_average_1min": 1.71,
        "many_pages": 1_000,
        "with_1000_pages": {
            "overview_first_ms": 3065.1,
            "overview_median_ms": 2313.4,
            "overview_cpu_median_ms": 2304.8,
        },
    }


def test_line_says_whether_the_target_is_met() -> None:
    met = summary_line(_result(296.5))
    met = met.replace("\u202f", " ").replace("\u00a0", " ")  # the separators of bot/ru.py
    assert "1 000 000 обращений" in met
    assert "20 страниц —" in met and "1 000 страниц —" in met
    assert "цель ≤ 300 мс выполнена" in met and "первый запрос 442 мс" in met
    missed = summary_line(_result(301.0)).replace("\u00a0", " ")
    assert "цель ≤ 300 мс не выполнена" in missed


def test_line_uses_plural_forms() -> None:
    assert "21\u00a0страница —" in summary_line(_result(200.0, pages=21))
    assert "22\u00a0страницы —" in summary_line(_result(200.0, pages=22))
    assert "25\u00a0страниц —" in summary_line(_result(200.0, pages=25))
