"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium against
`otklik web` in its own process, on a database filled through the real ingest path.

It signs in through a login link, checks that the overview shows the numbers of
`otklik stats --json` for the same period, filters the appeals list, opens an appeal's
timeline, and saves screenshots under test-artefacts/ (gitignored). `make test` installs
chromium and chromium-driver when it runs as root; without them these tests are skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_engine
from test_stats import load_scenario

from bot import ru
from bot.clock import utc_now
from bot.services import web_access
from storage.engine import session_factory
from storage.migrate import upgrade

pytest.importorskip("selenium")
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = ROOT / "test-artefacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
TOKEN = "123456:TEST-token-never-logged"
SUPERVISOR = 7001
SINCE, UNTIL, LAST_DAY = "2026-11-02", "2026-11-16", "2026-11-15"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (make test installs them as root)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "VK_", "WEB_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database,
        TELEGRAM_BOT_TOKEN=TOKEN,
        SUPERVISOR_IDS=str(SUPERVISOR),
    )
    return env


async def _fill(database: str) -> str:
    """The two-week scenario of test_stats.py; returns a login link token for the supervisor."""
    engine = await make_engine(database)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        await load_scenario(sessions)
        async with sessions() as session:
            token = await web_access.issue_login_token(session, SUPERVISOR, utc_now())
            await session.commit()
    finally:
        await engine.dispose()
    return token


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`otklik web` on a free port over a filled database, with a fresh login token."""
    database = f"sqlite+aiosqlite:///{tmp_path}/otklik.db"
    token = asyncio.run(_fill(database))
    port = _free_port()
    log = (tmp_path / "web.log").open("w")  # a file, not a pipe: nothing can fill up and block
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "--env-file",
            str(tmp_path / "none.env"),
            "web",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        env=_env(database),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "Панель Отклика" in line, (tmp_path / "web.log").read_text()
        yield {
            "base": f"http://127.0.0.1:{port}",
            "token": token,
            "env": _env(database),
            "cwd": tmp_path,
        }
    finally:
        server.terminate()
        assert server.wait(timeout=20) == 0  # SIGTERM stops `otklik web` cleanly
        log.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
        "--lang=ru-RU",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER or ""), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _stats_json(served: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "--env-file",
            str(served["cwd"] / "none.env"),
            "stats",
            "--since",
            SINCE,
            "--until",
            UNTIL,
            "--json",
        ],
        cwd=served["cwd"],
        env=served["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _spaced(text: str) -> str:
    """The browser reports no-break spaces as plain ones."""
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


def _field(driver: Any, scope: str, name: str) -> str:
    element = driver.find_element(By.CSS_SELECTOR, f'{scope} [data-field="{name}"]')
    return _spaced(str(element.text))


def _shot(driver: Any, name: str) -> Path:
    ARTEFACTS.mkdir(exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_supervisor_signs_in_and_sees_the_stats_figures(
    served: dict[str, Any], browser: Any
) -> None:
    base = served["base"]
    browser.get(f"{base}/")
    assert "Вход в панель Отклика" in browser.page_source  # anonymous: the sign-in page
    browser.get(f"{base}/login/{served['token']}")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "total"))
    browser.get(f"{base}/?from={SINCE}&to={LAST_DAY}")
    stats = _stats_json(served)
    total = stats["total"]
    assert _field(browser, "#total", "appeals") == _spaced(ru.number(total["appeals"]))
    assert _field(browser, "#total", "answered") == _spaced(ru.number(total["answered"]))
    assert _field(browser, "#total", "overdue") == _spaced(ru.number(total["overdue"]))
    assert _field(browser, "#total", "answered_share") == _spaced(
        ru.percent(total["answered_share"])
    )
    assert _field(browser, "#total", "within_sla_share") == _spaced(
        ru.percent(total["within_sla_share"])
    )
    assert _field(browser, "#total", "maturity_index") == _spaced(
        ru.number(total["maturity_index"], 1)
    )
    assert _field(browser, "#total", "frt_median_s") == _spaced(ru.duration(total["frt_median_s"]))
    [page] = stats["pages"]
    row = f'tr[data-page-id="{page["page_id"]}"]'
    assert _field(browser, row, "appeals") == _spaced(ru.number(page["appeals"]))
    assert _field(browser, row, "overdue") == _spaced(ru.number(page["overdue"]))
    _shot(browser, "overview")

    # The appeals list, filtered by status through the select (the page's own script submits).
    browser.find_element(By.LINK_TEXT, "Обращения").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "appeal-filter"))
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("просрочено")
    WebDriverWait(browser, 20).until(lambda d: "status=overdue" in d.current_url)
    found = browser.find_element(By.ID, "found-total")
    assert found.get_attribute("data-total") == str(total["overdue"])
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-appeal-id]")
    assert len(rows) == total["overdue"]
    _shot(browser, "appeals-overdue")

    # One appeal's timeline.
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "timeline"))
    timeline = browser.find_element(By.ID, "timeline").text
    assert "Поступило обращение" in timeline and "Срок первого ответа" in timeline
    assert browser.find_element(By.ID, "appeal-status").text == "просрочено"
    _shot(browser, "appeal-timeline")

    # The page view, three clicks from the overview: trend chart and overdue appeals.
    browser.get(f"{base}/?from={SINCE}&to={LAST_DAY}&sort=frt")
    browser.find_element(By.CSS_SELECTOR, f"{row} a").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "overdue"))
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    _shot(browser, "page")

    # The link is used up: another browser session cannot use it again.
    browser.delete_all_cookies()
    browser.get(f"{base}/login/{served['token']}")
    assert "недействительна" in browser.page_source


def test_mini_app_signs_in_from_telegrams_launch_parameters(
    served: dict[str, Any], browser: Any
) -> None:
    """Telegram opens the Mini App with its signed initData in the URL fragment; the page's
    script posts it to /auth/telegram and reloads signed in. Forged data leaves it out."""
    from urllib.parse import urlencode

    from test_web_access import telegram_init_data

    base = served["base"]
    forged = telegram_init_data(SUPERVISOR, token="654321:OTHER-bot-token", auth_date=utc_now())
    browser.get(f"{base}/#" + urlencode({"tgWebAppData": forged, "tgWebAppVersion": "8.0"}))
    WebDriverWait(browser, 20).until(
        lambda d: "не подтвердил" in d.find_element(By.ID, "miniapp-status").text
    )
    assert not browser.find_elements(By.ID, "total")
    genuine = telegram_init_data(SUPERVISOR, token=TOKEN, auth_date=utc_now())
    browser.get(f"{base}/?from={SINCE}&to={LAST_DAY}#" + urlencode({"tgWebAppData": genuine}))
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "total"))
    assert "#" not in browser.current_url  # the signed data does not stay in the address
    _shot(browser, "mini-app")
