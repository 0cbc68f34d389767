"""The dashboard over HTTP (aiohttp's real server and client): sign-in by link and by Mini App,
401 for everyone else, roles on every request, the figures of the report use case, lists,
timeline and export. The browser tests are in test_web_browser.py."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import make_settings
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from test_stats import AT, DEFAULTS, load_scenario
from test_web_access import TOKEN, telegram_init_data

from bot.app import AppContext
from bot.clock import SimulatedClock, utc_now
from bot.events import AuthorRole, MessageEvent, PageKind, PageRef, Platform, ThreadKind, ThreadRef
from bot.services import reports, roles, web_access
from bot.services.ingest import IngestService
from handlers.web.server import mount
from storage.models import Page

SUPERVISOR = 7001
OPERATOR = 7002  # of the second page only, which has its own press chat
STRANGER = 7003
PERIOD = {"from": "2026-11-02", "to": "2026-11-15"}
TRANSPORT = PageRef(
    Platform.TELEGRAM, "-1005", PageKind.TG_CHANNEL, "Минтранс области", "transport", "-1006"
)


async def _transport_page(app: AppContext) -> int:
    """A second page with its own press chat and one overdue appeal about a bus route."""
    async with app.sessions() as session:
        ingest = IngestService(session, DEFAULTS)
        await ingest.handle(
            MessageEvent(
                page=TRANSPORT,
                thread=ThreadRef("post:1", ThreadKind.COMMENTS),
                message_id="-1006:1",
                sent_at=datetime(2026, 11, 10, 7, 0, tzinfo=UTC),
                author_role=AuthorRole.PERSON,
                author_id="c900",
                author_name="Житель 900",
                text="Почему автобус 23 не ходит по расписанию? Ждём по часу на остановке.",
            )
        )
        await session.commit()
        found = (await session.exec(select(Page).where(Page.title == TRANSPORT.title))).one()
        assert found.id is not None
        transport = found.id
        found.press_chat_id = -100777
        await roles.register_operator(session, OPERATOR, "Ольга", transport)
        await session.commit()
    return transport


@pytest.fixture
async def context(sqlite_engine: AsyncEngine) -> AppContext:
    settings = make_settings(
        TELEGRAM_BOT_TOKEN=TOKEN,
        SUPERVISOR_IDS=str(SUPERVISOR),
        PRESS_CHAT_ID=-100500,
        WEB_PUBLIC_URL="http://127.0.0.1:8081",
    )
    app = AppContext.create(settings, sqlite_engine, clock=SimulatedClock(AT))
    await load_scenario(app.sessions)
    app.transport_page = await _transport_page(app)  # type: ignore[attr-defined]
    return app


@pytest.fixture
async def client(context: AppContext) -> AsyncIterator[TestClient[Any, Any]]:
    application = web.Application()
    mount(application, context)
    # As in production (web/server.py): no access log, a login link's path is a secret.
    server = TestServer(application)
    await server.start_server(access_log=None)
    async with TestClient(server) as running:
        yield running


async def _login(client: TestClient[Any, Any], app: AppContext, user_id: int) -> None:
    async with app.sessions() as session:
        token = await web_access.issue_login_token(session, user_id, utc_now())
        await session.commit()
    response = await client.get(f"/login/{token}", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/"


def _plain(html: str) -> str:
    text = re.sub(r"<[^>]+>", " ", html)
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


ROUTES = ["/", "/appeals", "/appeals/1", "/pages/1", "/operators", "/export.csv", "/export.xlsx"]


@pytest.mark.parametrize("path", ROUTES)
async def test_anonymous_gets_401_and_the_signin_page(
    client: TestClient[Any, Any], path: str
) -> None:
    response = await client.get(path, params=PERIOD)
    body = await response.text()
    assert response.status == 401
    assert "Вход в панель Отклика" in body and "/web" in body
    assert "Администрация города" not in body and "обращени" not in body.split("<main>")[0]


async def test_login_link_opens_a_session_once(
    client: TestClient[Any, Any], context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    async with context.sessions() as session:
        token = await web_access.issue_login_token(session, SUPERVISOR, utc_now())
        await session.commit()
    caplog.set_level(logging.INFO)
    first = await client.get(f"/login/{token}", allow_redirects=False)
    assert first.status == 302
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert (await client.get("/", params=PERIOD)).status == 200
    client.session.cookie_jar.clear()
    again = await client.get(f"/login/{token}", allow_redirects=False)
    assert again.status == 401 and "недействительна" in await again.text()
    assert (await client.get("/")).status == 401
    assert "ссылка для входа уже использована" in caplog.text
    assert token not in caplog.text and TOKEN not in caplog.text


async def test_session_cookie_is_secure_behind_https(
    client: TestClient[Any, Any], context: AppContext
) -> None:
    async with context.sessions() as session:
        token = await web_access.issue_login_token(session, SUPERVISOR, utc_now())
        await session.commit()
    response = await client.get(
        f"/login/{token}", allow_redirects=False, headers={"X-Forwarded-Proto": "https"}
    )
    cookie = response.headers["Set-Cookie"]
    # SameSite=None lets Telegram's web clients send it from the Mini App's frame.
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=None" in cookie


async def test_expired_link_and_stranger_get_401(
    client: TestClient[Any, Any], context: AppContext
) -> None:
    async with context.sessions() as session:
        old = await web_access.issue_login_token(
            session, SUPERVISOR, utc_now() - timedelta(minutes=11)
        )
        stranger = await web_access.issue_login_token(session, STRANGER, utc_now())
        await session.commit()
    assert (await client.get(f"/login/{old}", allow_redirects=False)).status == 401
    assert (await client.get(f"/login/{stranger}", allow_redirects=False)).status == 401
    # A session cookie signed with another key is nobody's.
    client.session.cookie_jar.update_cookies(
        {web_access.SESSION_COOKIE: web_access.session_value(SUPERVISOR, "1:other", utc_now())}
    )
    assert (await client.get("/")).status == 401


async def test_mini_app_signs_in_with_telegrams_signature(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    forged = telegram_init_data(SUPERVISOR, token="654321:OTHER-bot-token")
    refused = await client.post("/auth/telegram", data={"initData": forged})
    assert refused.status == 401 and "Set-Cookie" not in refused.headers
    expired = telegram_init_data(SUPERVISOR, auth_date=utc_now() - timedelta(hours=2))
    assert (await client.post("/auth/telegram", data={"initData": expired})).status == 401
    assert (await client.post("/auth/telegram", data={})).status == 401
    genuine = telegram_init_data(SUPERVISOR, auth_date=utc_now() - timedelta(minutes=1))
    accepted = await client.post("/auth/telegram", data={"initData": genuine})
    assert accepted.status == 200 and (await accepted.json()) == {"ok": True}
    assert (await client.get("/", params=PERIOD)).status == 200
    replayed = await client.post("/auth/telegram", data={"initData": genuine})
    assert replayed.status == 401
    assert "подпись initData не совпадает" in caplog.text and "повтор" in caplog.text
    assert forged.split("hash=")[1] not in caplog.text


def _cells(html: str, field: str) -> list[str]:
    pattern = rf'data-field="{field}"[^>]*>(.*?)</(?:td|span)>'
    return [_plain(cell) for cell in re.findall(pattern, html, re.S)]


async def test_overview_shows_the_reports_figures(
    client: TestClient[Any, Any], context: AppContext
) -> None:
    await _login(client, context, SUPERVISOR)
    response = await client.get("/", params=PERIOD)
    html = await response.text()
    assert response.status == 200
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    async with context.sessions() as session:
        report = await reports.build_report(
            session,
            since=datetime(2026, 11, 1, 21, tzinfo=UTC),
            until=datetime(2026, 11, 15, 21, tzinfo=UTC),
            at=AT,
            defaults=context.defaults,
        )
    total = report.to_json()["total"]
    assert _cells(html, "appeals")[0] == str(total["appeals"]) == "9"
    assert _cells(html, "overdue")[0] == str(total["overdue"])
    assert _cells(html, "answered")[0] == str(total["answered"])
    # Both pages, the most mature first; no URL or script from outside the server.
    assert html.index("Администрация города") < html.index("Минтранс области")
    assert not re.search(r'(src|href)="(https?:)?//', html)


async def test_operator_sees_only_their_press_chats_pages(
    client: TestClient[Any, Any], context: AppContext
) -> None:
    await _login(client, context, OPERATOR)
    transport = context.transport_page  # type: ignore[attr-defined]
    html = await (await client.get("/", params=PERIOD)).text()
    assert "Минтранс области" in html and "Администрация города" not in html
    assert _cells(html, "appeals")[0] == "1"  # the total is over their pages only
    listed = await (await client.get("/appeals", params=PERIOD)).text()
    assert "автобус 23" in listed and "Ленина" not in listed
    city = next(p for p in (1, 2) if p != transport)
    assert (await client.get(f"/pages/{city}", params=PERIOD)).status == 404
    assert (await client.get(f"/pages/{transport}", params=PERIOD)).status == 200
    assert (await client.get("/appeals/1")).status == 404
    exported = await (await client.get("/export.csv", params=PERIOD)).read()
    rows = list(csv.reader(io.StringIO(exported.decode("utf-8-sig")), delimiter=";"))
    # The CSV is the compact appeals table: the operator's one appeal, of their page only.
    assert len(rows) == 2 and rows[1][1] == "Минтранс области"
    # Asking for another press chat's page by id gives nothing of it, not even its figures.
    other = await client.get("/export.xlsx", params={**PERIOD, "page": str(city)})
    book = load_workbook(io.BytesIO(await other.read()))
    cells = [str(c.value) for sheet in book for row in sheet.iter_rows() for c in row]
    assert not any("Администрация" in cell or "Ленина" in cell for cell in cells)
    listed = await (await client.get("/appeals", params={**PERIOD, "page": str(city)})).text()
    assert 'data-total="0"' in listed


async def test_list_filters_timeline_and_export(
    client: TestClient[Any, Any], context: AppContext
) -> None:
    await _login(client, context, SUPERVISOR)
    overdue = await (await client.get("/appeals", params={**PERIOD, "status": "overdue"})).text()
    assert 'data-total="2"' in overdue  # the city's A5 and the bus route
    urgent = await (
        await client.get("/appeals", params={**PERIOD, "status": "overdue", "urgent": "yes"})
    ).text()
    assert 'data-total="1"' in urgent
    [appeal_id] = re.findall(r'data-appeal-id="(\d+)"', urgent)
    searched = await (await client.get("/appeals", params={**PERIOD, "q": "МУСОР"})).text()
    assert 'data-total="1"' in searched and "мусор" in searched
    timeline = await (await client.get(f"/appeals/{appeal_id}")).text()
    assert "Поступило обращение" in timeline and "Срок первого ответа" in timeline
    assert "просрочено" in timeline
    answered = await (await client.get("/appeals", params={**PERIOD, "q": "площадку"})).text()
    [late_id] = re.findall(r'data-appeal-id="(\d+)"', answered)
    story = _plain(await (await client.get(f"/appeals/{late_id}")).text())
    assert "Ещё сообщение гражданина" in story and "Ответ (итоговый)" in story
    assert "Гражданин вернулся недовольным Ничего не решено" in story  # the return of 06.11
    assert "Назван срок" in story  # the reply's quality checklist
    exported = await client.get("/export.csv", params={**PERIOD, "status": "overdue"})
    assert exported.status == 200
    assert exported.headers["Content-Disposition"].endswith('.csv"')
    rows = list(csv.reader(io.StringIO((await exported.read()).decode("utf-8-sig")), delimiter=";"))
    assert len(rows) == 3 and all("просрочено" in row for row in rows[1:])
    xlsx = await client.get("/export.xlsx", params=PERIOD)
    assert xlsx.status == 200 and (await xlsx.read())[:2] == b"PK"
    page = await client.get(f"/pages/{context.transport_page}", params=PERIOD)  # type: ignore[attr-defined]
    body = await page.text()
    assert "<svg" in body and "Просрочены сейчас" in body and "автобус 23" in body
    transport = context.transport_page  # type: ignore[attr-defined]
    city = next(p for p in (1, 2) if p != transport)
    slowest = _plain(await (await client.get(f"/pages/{city}", params=PERIOD)).text())
    # The slowest answer of the period comes first: A3, 49 hours (reports.slowest_answered).
    assert slowest.split("Дольше всего ждали ответа")[1].split("ждали")[1].startswith(" 2 дня 1 ч")


async def test_overview_sorts_and_filters_pages(
    client: TestClient[Any, Any], context: AppContext
) -> None:
    await _login(client, context, SUPERVISOR)

    async def order(**params: str) -> list[str]:
        html = await (await client.get("/", params={**PERIOD, **params})).text()
        return re.findall(r'<tr data-page-id="\d+">\s*<td><a [^>]*>([^<]+)</a>', html)

    city, transport = "Администрация города", "Минтранс области"
    assert await order(sort="appeals", dir="asc") == [transport, city]
    assert await order(sort="appeals", dir="desc") == [city, transport]
    # A page without an answered appeal has no median: last, whichever the direction.
    assert await order(sort="frt", dir="asc") == [city, transport]
    assert await order(sort="frt", dir="desc") == [city, transport]
    assert await order(q="МИНТРАНС") == [transport]  # case-insensitive, Cyrillic too
    assert await order(platform="vk") == []
    assert await order(sort="nonsense") == [city, transport]  # the index, highest first


async def test_overview_is_paged_on_the_server(
    client: TestClient[Any, Any], context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One screen of rows at a time, in the chosen order, with links to the others."""
    from handlers.web import views

    monkeypatch.setattr(views, "OVERVIEW_PER_PAGE", 1)  # two pages, so two screens
    await _login(client, context, SUPERVISOR)

    async def screen(**params: str) -> tuple[list[str], str]:
        html = await (await client.get("/", params={**PERIOD, "sort": "appeals", **params})).text()
        return re.findall(r'<tr data-page-id="\d+">\s*<td><a [^>]*>([^<]+)</a>', html), html

    city, transport = "Администрация города", "Минтранс области"
    first, html = await screen()
    assert first == [city]
    assert "страница 1 из 2" in _plain(html) and "строки 1–1 из 2" in _plain(html)
    assert 'rel="next"' in html and "p=2" in html and "sort=appeals" in html
    second, html = await screen(p="2")
    assert second == [transport] and "страница 2 из 2" in _plain(html)
    assert (await screen(p="9"))[0] == [transport]  # past the end: the last screen
    assert (await screen(p="x"))[0] == [city]
    # The totals are every page's, whichever screen is shown.
    total = re.search(r'data-field="appeals">([^<]+)<', html)
    first_html = (await screen())[1]
    assert total and total.group(1) == re.search(
        r'data-field="appeals">([^<]+)<', first_html
    ).group(1)  # type: ignore[union-attr]


async def test_formal_replies_filter_and_label(
    client: TestClient[Any, Any], context: AppContext
) -> None:
    """An answer that only sends the citizen elsewhere is «отписка»: listed by the filter and
    labelled in the timeline."""
    thread = ThreadRef("post:2", ThreadKind.COMMENTS)
    async with context.sessions() as session:
        ingest = IngestService(session, DEFAULTS)
        asked = await ingest.handle(
            MessageEvent(
                page=TRANSPORT,
                thread=thread,
                message_id="-1006:2",
                sent_at=datetime(2026, 11, 11, 7, 0, tzinfo=UTC),
                author_role=AuthorRole.PERSON,
                author_id="c901",
                author_name="Житель 901",
                text="Когда отремонтируют остановку на улице Гагарина? Крыша течёт.",
            )
        )
        await ingest.handle(
            MessageEvent(
                page=TRANSPORT,
                thread=thread,
                message_id="-1006:3",
                sent_at=datetime(2026, 11, 11, 8, 0, tzinfo=UTC),
                author_role=AuthorRole.PAGE,
                author_id="-1005",
                text="Рекомендуем обратиться по месту жительства.",
                reply_to_id="-1006:2",
            )
        )
        await session.commit()
    [formal_id] = asked.appeal_ids
    await _login(client, context, SUPERVISOR)
    only = await (await client.get("/appeals", params={**PERIOD, "formal": "yes"})).text()
    assert re.findall(r'data-appeal-id="(\d+)"', only) == [str(formal_id)]
    others = await (await client.get("/appeals", params={**PERIOD, "formal": "no"})).text()
    assert 'data-total="9"' in others and f'data-appeal-id="{formal_id}"' not in others
    story = _plain(await (await client.get(f"/appeals/{formal_id}")).text())
    assert "похоже на отписку" in story.lower()


async def test_operators_page_and_operator_filter(
    client: TestClient[Any, Any], context: AppContext
) -> None:
    """«Взять в работу» pressed in the chat shows on the operators' page and filters the list."""
    from bot.services.decisions import TAKE, apply_decision
    from storage.models import Appeal

    transport = context.transport_page  # type: ignore[attr-defined]
    async with context.sessions() as session:
        appeal = (await session.exec(select(Appeal).where(Appeal.page_id == transport))).one()
        city = (
            await session.exec(
                select(Appeal)
                .where(Appeal.page_id != transport, Appeal.excluded == False)  # noqa: E712
                .where(Appeal.received_at >= datetime(2026, 11, 3, tzinfo=UTC))  # type: ignore[operator]
                .limit(1)
            )
        ).one()
        for taken in (appeal, city):
            await apply_decision(
                session,
                taken,
                TAKE,
                actor_id=str(OPERATOR),
                actor_name="Ольга",
                at=datetime(2026, 11, 10, 8, 0, tzinfo=UTC),
            )
        await session.commit()
    await _login(client, context, OPERATOR)
    team = _plain(await (await client.get("/operators", params=PERIOD)).text())
    assert "Ольга 1 0 0" in team  # her page's appeals only: the city's one is not counted
    await _login(client, context, SUPERVISOR)
    team = _plain(await (await client.get("/operators", params=PERIOD)).text())
    assert "Ольга 2 0 0" in team  # taken 2, no replies of her own
    listed = await (await client.get("/appeals", params={**PERIOD, "operator": "Ольга"})).text()
    assert sorted(re.findall(r'data-appeal-id="(\d+)"', listed)) == sorted(
        [str(appeal.id), str(city.id)]
    )
    assert "в работе: Ольга" in listed
