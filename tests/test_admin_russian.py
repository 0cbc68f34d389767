"""Russian for administrators: dates, time zones by city, settings errors, CLI help and errors."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import make_settings

from bot.cli import build_parser, main
from bot.config import SettingsError, load_settings
from bot.progress import progress_bar
from bot.timeparse import (
    CITY_ZONES,
    TimeFormatError,
    TimeZoneError,
    parse_time,
    resolve_timezone,
)

ROOT = Path(__file__).parents[1]
NOW = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)
ENGLISH_ARGPARSE = ("usage:", "error:", "required", "options", "show this help")


@pytest.mark.parametrize(
    "text",
    ["02.11.2026", "02.11", "2.11.26", "2.11.2026", "2026-11-02", " 02.11.2026 "],
)
def test_russian_and_iso_dates_are_the_same_local_midnight(text: str) -> None:
    assert parse_time(text, "Europe/Moscow", now=NOW) == datetime(2026, 11, 1, 21, tzinfo=UTC)


def test_russian_date_with_time_is_local() -> None:
    moment = parse_time("02.11.2026 09:30", "Asia/Vladivostok", now=NOW)
    assert moment == datetime(2026, 11, 1, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["31.02.2026", "32.11", "02.13.2026", "вчера", "2.11.2026 25:00"])
def test_impossible_or_unknown_dates_are_refused_in_russian(text: str) -> None:
    with pytest.raises(TimeFormatError) as caught:
        parse_time(text, "Europe/Moscow", now=NOW)
    message = str(caught.value)
    assert "дат" in message and "«" in message
    assert "is not" not in message


# Russia's eleven zones, UTC+2 … UTC+12, by the city an administrator would name.
ELEVEN_ZONES = {
    "Калининград": 2,
    "Москва": 3,
    "Самара": 4,
    "Екатеринбург": 5,
    "Омск": 6,
    "Новосибирск": 7,
    "Красноярск": 7,
    "Иркутск": 8,
    "Якутск": 9,
    "Владивосток": 10,
    "Магадан": 11,
    "Петропавловск-Камчатский": 12,
}


@pytest.mark.parametrize(("city", "offset"), ELEVEN_ZONES.items())
def test_eleven_russian_zones_by_city(city: str, offset: int) -> None:
    zone = resolve_timezone(city)
    assert zone == resolve_timezone(city.upper()) == resolve_timezone(f"  {city.lower()} ")
    local_noon = parse_time("02.11.2026 12:00", zone, now=NOW)
    assert local_noon == datetime(2026, 11, 2, 12 - offset, tzinfo=UTC)


def test_every_city_maps_to_a_real_zone_and_iana_names_pass_through() -> None:
    for city in CITY_ZONES:
        assert resolve_timezone(resolve_timezone(city)) == CITY_ZONES[city]
    assert resolve_timezone("Asia/Vladivostok") == "Asia/Vladivostok"
    with pytest.raises(TimeZoneError, match="Владивосток"):
        resolve_timezone("Марс")


def _load(tmp_path: Path, text: str) -> object:
    env = tmp_path / "settings.env"
    env.write_text(text, encoding="utf-8")
    return load_settings(str(env))


def test_timezone_setting_accepts_a_city(tmp_path: Path) -> None:
    settings = _load(tmp_path, "TIMEZONE=Владивосток\n")
    assert settings.TIMEZONE == "Asia/Vladivostok"  # type: ignore[attr-defined]
    assert make_settings(TIMEZONE="Калининград").TIMEZONE == "Europe/Kaliningrad"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("SLA_HOURS=abc", "SLA_HOURS: ожидается число, например 8 или 4.5, указано «abc»"),
        ("SLA_URGENT_HOURS=0", "SLA_URGENT_HOURS: ожидается число больше 0, указано «0»"),
        ("PRESS_CHAT_ID=чат", "PRESS_CHAT_ID: ожидается целое число, например 12, указано «чат»"),
        ("SHORTEN_PREHOLIDAY=может", "SHORTEN_PREHOLIDAY: ожидается true или false"),
        ("TIMEZONE=Mars/Base", "TIMEZONE: неизвестный часовой пояс «Mars/Base»"),
        ("WORK_HOURS=9-18", "WORK_HOURS: рабочее время: ожидается интервал вида 09:00-18:00"),
        ("WORK_HOURS=18:00-09:00", "начало должно быть раньше конца"),
        ("ADMIN_IDS=@ivan", "ADMIN_IDS: «@ivan» — не числовой id"),
        ("LOG_LEVEL=LOUD", "LOG_LEVEL: ожидается одно из DEBUG"),
        ("WEBHOOK_LISTEN=abc", "WEBHOOK_LISTEN: ожидается адрес и порт"),
        ("TELEGRAM_BOT_TOKEN=secret-value-x", "TELEGRAM_BOT_TOKEN: не похоже на токен"),
        ("VK_GROUP_TOKENS=vk1.a.secret-value-x", "VK_GROUP_TOKENS: запись 1"),
        ("DATABASE_URL=mysql://u:secret-value-x@h/db", "DATABASE_URL: ожидается адрес базы"),
    ],
)
def test_settings_errors_are_russian_name_the_setting_and_hide_secrets(
    tmp_path: Path, line: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, line + "\n")
    message = str(caught.value)
    assert expected in message
    assert "Input should" not in message and "Value error" not in message
    assert "secret-value-x" not in message


def otklik(*args: str, cwd: Path, env_text: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{cwd}/otklik.db")
    (cwd / "settings.env").write_text(env_text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "bot", "--env-file", str(cwd / "settings.env"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["stats"],
        ["export"],
        ["digest"],
        ["demo"],
        ["import", "telegram-export"],
        ["backfill", "vk"],
        ["corrections"],
    ],
)
def test_help_of_every_command_is_russian(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*argv, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("использование: otklik")
    assert "показать эту справку и выйти" in text
    for english in ENGLISH_ARGPARSE:
        assert english not in text, english
    # Every option's own help is Russian too: no line of help is only Latin words.
    for line in text.splitlines():
        words = line.split()
        if len(words) > 2 and not line.lstrip().startswith(("-", "[", "использование", "otklik")):
            assert any("а" <= ch <= "я" for ch in line.lower()), line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["stats"], "otklik stats: ошибка: не указаны обязательные аргументы: --since, --until"),
        (["stats", "--since", "1", "--until", "2", "--page", "x"], "--page: ожидается целое"),
        (["frobnicate"], "otklik: ошибка: КОМАНДА: недопустимое значение 'frobnicate'"),
        (["stats", "--since"], "--since: после параметра нужно значение"),
        (["classify", "--extra"], "otklik: ошибка: непонятные аргументы: --extra"),
    ],
)
def test_argument_errors_are_russian(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "usage:" not in err and "error:" not in err


def test_stats_accepts_russian_dates_like_iso_ones(tmp_path: Path) -> None:
    russian = otklik("stats", "--since", "02.11.2026", "--until", "9.11.26", "--json", cwd=tmp_path)
    iso = otklik("stats", "--since", "2026-11-02", "--until", "2026-11-09", "--json", cwd=tmp_path)
    assert russian.returncode == 0, russian.stderr
    assert russian.stdout.split('"at"')[0] == iso.stdout.split('"at"')[0]
    assert '"since": "2026-11-01T21:00:00+00:00"' in russian.stdout


def test_stats_with_a_city_time_zone(tmp_path: Path) -> None:
    done = otklik(
        "stats", "--since", "02.11.2026", "--until", "03.11.2026", "--json",
        cwd=tmp_path, env_text="TIMEZONE=Владивосток\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"since": "2026-11-01T14:00:00+00:00"' in done.stdout


def test_reversed_period_and_bad_settings_are_clear_russian_errors(tmp_path: Path) -> None:
    reversed_period = otklik(
        "stats", "--since", "11.11.2026", "--until", "01.11.2026", cwd=tmp_path
    )
    assert reversed_period.returncode == 2
    assert "конец периода (--until 01.11.2026) должен быть позже начала" in reversed_period.stderr
    bad = otklik("stats", "--since", "01.11", "--until", "02.11", cwd=tmp_path,
                 env_text="SLA_HOURS=восемь\n")  # fmt: skip
    assert bad.returncode == 2
    assert "otklik: ошибка в настройках" in bad.stderr
    assert "SLA_HOURS: ожидается число" in bad.stderr
    run = otklik("run", cwd=tmp_path)
    assert run.returncode == 2 and "не настроен ни один источник" in run.stderr
    for done in (reversed_period, bad, run):
        assert "Traceback" not in done.stderr


def test_log_lines_never_cut_through_a_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    """With the bar on, a log record is written above it on its own line, never inside it."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(handler)
    try:
        with progress_bar(total=3, desc="Импорт", unit="пост", mininterval=0) as bar:
            for step in range(3):
                bar.update(1)
                logging.getLogger("bot.test").warning("строка журнала %d", step)
    finally:
        root.removeHandler(handler)
    err = capsys.readouterr().err
    # Each log line stands alone: it starts a line and holds no part of the bar.
    log_lines = [part for part in err.replace("\r", "\n").split("\n") if "строка журнала" in part]
    assert len(log_lines) == 3
    for line in log_lines:
        assert line.startswith("WARNING строка журнала"), repr(line)
        assert "Импорт" not in line and "%|" not in line


def _mentioned(path: Path, pattern: str) -> set[str]:
    return set(re.findall(pattern, path.read_text(encoding="utf-8")))


def test_russian_guide_keeps_step_with_the_english_docs() -> None:
    """Every chat command the bot handles and every CLI command is in both guides."""
    handled = set(re.findall(r'Command\("([a-z]+)"\)', _sources(ROOT / "handlers"))) | {"start"}
    chat_pattern = r"`/([a-z]+)"
    russian = _mentioned(ROOT / "docs" / "GUIDE_RU.md", chat_pattern)
    english = _mentioned(ROOT / "docs" / "SETUP.md", chat_pattern)
    assert handled <= russian, handled - russian
    assert handled <= english, handled - english
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    cli_pattern = r"`otklik ([a-z-]+)"
    assert commands <= _mentioned(ROOT / "docs" / "GUIDE_RU.md", cli_pattern)
    assert commands <= _mentioned(ROOT / "README.md", cli_pattern)


def test_page_settings_in_both_guides() -> None:
    """Every `/page ID <setting>` the chat help names is in the Russian and the English guide."""
    from handlers.telegram.pressoffice import PAGE_HELP

    settings = set(re.findall(r"/page ID ([a-z]+)", PAGE_HELP))
    assert {"final", "sla", "tz", "hours", "title", "unbind"} <= settings
    page_pattern = r"`/page \d+ ([a-z]+)"
    assert settings <= _mentioned(ROOT / "docs" / "GUIDE_RU.md", page_pattern)
    assert settings <= _mentioned(ROOT / "docs" / "SETUP.md", page_pattern)


def _sources(folder: Path) -> str:
    return "".join(path.read_text(encoding="utf-8") for path in folder.rglob("*.py"))


def test_classify_errors_are_russian() -> None:
    from io import StringIO

    from bot.text import classify_stream

    out = StringIO()
    classify_stream(StringIO('не json\n{"txt": 1}\n'), out)
    assert out.getvalue().splitlines() == [
        '{"error": "строка 1: строка — не JSON"}',
        '{"error": "строка 2: ожидается объект JSON с текстом в поле \\"text\\""}',
    ]


def test_digest_week_by_a_russian_date(tmp_path: Path) -> None:
    by_date = otklik("digest", "--week", "04.11.2026", cwd=tmp_path)
    by_week = otklik("digest", "--week", "2026-W45", cwd=tmp_path)
    assert by_date.returncode == 0, by_date.stderr
    assert by_date.stdout == by_week.stdout
    assert "otklik-digest-2026-W45.png" in by_date.stdout
    bad = otklik("digest", "--week", "неделя", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--week: ожидается неделя ISO вида 2026-W46 или дата внутри недели" in bad.stderr
