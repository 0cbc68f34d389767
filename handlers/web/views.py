"""The dashboard's pages: parse the query, ask the services, render a template.

Every figure comes from the report use case (bot/services/reports.py), the same as /stats and
`otklik stats --json`; lists and the timeline from bot/services/dashboard.py; files from
bot/services/export.py. Every view is `guarded`: it runs with the person's `Access` and shows
only the pages it allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import ru
from bot.ids import row_id
from bot.services import dashboard as lists
from bot.services import export as exports
from bot.services import reports
from bot.services.report_text import last_days, local_bounds
from bot.services.web_access import Access
from bot.text import TOPIC_TITLES_RU
from handlers.web.auth import guarded
from handlers.web.charts import weekly_svg
from handlers.web.context import Dashboard
from handlers.web.render import SECURITY_HEADERS, render
from storage.models import Page

# The longest period one request may ask for (a year and a day).
MAX_DAYS = 367
TREND_WEEKS = 8
EXPORT_LIMIT = 100_000
STATUS_RU = {
    "answered_in_time": "отвечено в срок",
    "answered_late": "отвечено с опозданием",
    "overdue": "просрочено",
    "pending": "ждёт ответа",
    "excluded": "не обращение",
}
# Sortable overview columns: query value -> the page JSON field.
OVERVIEW_PER_PAGE = 100  # rows of the overview's table per screen

SORTS = {
    "title": "title",
    "maturity": "maturity_index",
    "appeals": "appeals",
    "answered": "answered_share",
    "in_time": "within_sla_share",
    "overdue": "overdue",
    "frt": "frt_median_s",
    "health": "health_index",
}


@dataclass(frozen=True)
class Period:
    first: date  # local days, inclusive
    last: date
    since: datetime
    until: datetime
    problem: str | None = None

    @property
    def query(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}

    @property
    def label(self) -> str:
        if self.first == self.last:
            return ru.date_short(self.first)
        return f"{ru.date_short(self.first)} – {ru.date_short(self.last)}"


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_period(request: web.Request, timezone: str, now: datetime) -> Period:
    """`from` and `to` (local dates, both inclusive); the last 7 days as /stats by default."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    default_first, default_end = last_days(today)  # [first, day after the last)
    default_last = default_end - timedelta(days=1)
    first = _date(request.query.get("from"))
    last = _date(request.query.get("to"))
    problem = None
    if ("from" in request.query or "to" in request.query) and (first is None or last is None):
        problem = "Даты периода не разобраны, показаны последние 7 дней."
        first = last = None
    first, last = first or default_first, last or default_last
    if last < first:
        problem = "Конец периода раньше начала, показаны последние 7 дней."
        first, last = default_first, default_last
    if (last - first).days >= MAX_DAYS:
        problem = "Период длиннее года сокращён до года."
        first = last - timedelta(days=MAX_DAYS - 1)
    # `to` is the last day shown, as «по» says: the period ends at the next local midnight.
    since, until = local_bounds((first, last + timedelta(days=1)), timezone)
    return Period(first, last, since, until, problem)


def _link(path: str, params: dict[str, Any]) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "", False)}
    return f"{path}?{urlencode(clean)}" if clean else path


def _common(dashboard: Dashboard, access: Access, period: Period, **extra: Any) -> dict[str, Any]:
    return {
        "access": access,
        "period": period,
        "now": dashboard.app.clock(),
        "link": _link,
        "status_ru": STATUS_RU,
        "topics_ru": TOPIC_TITLES_RU,
        "keep": {},
        **extra,
    }


async def _report(
    session: AsyncSession,
    dashboard: Dashboard,
    access: Access,
    period: Period,
    page_id: int | None = None,
) -> dict[str, Any]:
    report = await reports.build_report(
        session,
        since=period.since,
        until=period.until,
        at=dashboard.app.clock(),
        page_id=page_id,
        page_ids=access.page_ids,  # a page asked for by id is still only one the person sees
        defaults=dashboard.app.defaults,
    )
    return report.to_json()


def _sort_value(row: dict[str, Any], key: str) -> Any:
    if key == "health_index":
        health = row.get("health") or {}
        return health.get("health_index")
    return row.get(key)


@guarded
async def overview(
    request: web.Request, dashboard: Dashboard, session: AsyncSession, access: Access
) -> web.StreamResponse:
    """Every page the person may see with its figures: sortable and filterable."""
    settings = dashboard.app.settings
    period = parse_period(request, settings.TIMEZONE, dashboard.app.clock())
    data = await _report(session, dashboard, access, period)
    rows = data["pages"]
    search = request.query.get("q", "").strip()
    platform = request.query.get("platform", "")
    if search:
        rows = [r for r in rows if search.casefold() in (r["title"] or "").casefold()]
    if platform in ru.PLATFORMS:
        rows = [r for r in rows if r["platform"] == platform]
    sort = request.query.get("sort", "maturity")
    sort = sort if sort in SORTS else "maturity"
    descending = request.query.get("dir", "asc" if sort == "title" else "desc") == "desc"
    key = SORTS[sort]
    known = [r for r in rows if _sort_value(r, key) is not None]
    unknown = [r for r in rows if _sort_value(r, key) is None]
    known.sort(key=lambda r: _sort_value(r, key), reverse=descending)
    has_health = any(r.get("health") for r in data["pages"])
    # Paged on the server: a region of a thousand pages is a thousand rows of figures, but a
    # screen shows one page of them (the totals above are still every page's).
    ordered = known + unknown
    pages = max(1, -(-len(ordered) // OVERVIEW_PER_PAGE))
    raw = request.query.get("p", "1")
    number = min(pages, max(1, int(raw))) if raw.isdigit() and len(raw) < 7 else 1
    shown = ordered[(number - 1) * OVERVIEW_PER_PAGE : number * OVERVIEW_PER_PAGE]
    return render(
        dashboard.env,
        "overview.html",
        **_common(
            dashboard,
            access,
            period,
            total=data["total"],
            rows=shown,
            matched=len(ordered),
            number=number,
            pages=pages,
            first=(number - 1) * OVERVIEW_PER_PAGE + 1,
            listed=len(data["pages"]),
            search=search,
            platform=platform,
            sort=sort,
            descending=descending,
            has_health=has_health,
        ),
    )


async def _visible_page(session: AsyncSession, access: Access, raw: str) -> Page | None:
    number = row_id(raw)
    if number is None or not access.may_see(number):
        return None
    return await session.get(Page, number)


def _not_found(dashboard: Dashboard, access: Access, what: str) -> web.Response:
    return render(dashboard.env, "not_found.html", status=404, access=access, what=what)


@guarded
async def page_view(
    request: web.Request, dashboard: Dashboard, session: AsyncSession, access: Access
) -> web.StreamResponse:
    """One page: its figures, weekly trend, topics, slowest and overdue appeals."""
    settings = dashboard.app.settings
    now = dashboard.app.clock()
    page = await _visible_page(session, access, request.match_info["page_id"])
    if page is None or page.id is None:
        return _not_found(dashboard, access, "Страница не найдена или недоступна вам.")
    period = parse_period(request, settings.TIMEZONE, now)
    data = await _report(session, dashboard, access, period, page_id=page.id)
    figures = data["pages"][0] if data["pages"] else data["total"]
    trend_since = min(period.since, period.until - timedelta(weeks=TREND_WEEKS))
    weeks = await reports.daily_series(
        session,
        since=trend_since,
        until=period.until,
        at=now,
        page_id=page.id,
        tz=settings.TIMEZONE,
        step="week",
    )
    overdue = await reports.overdue_appeals(session, at=now, page_id=page.id, limit=20)
    slowest = await reports.slowest_answered(
        session, since=period.since, until=period.until, at=now, limit=10, page_id=page.id
    )
    topics = sorted(figures.get("topics", {}).items(), key=lambda item: (-item[1], item[0]))
    return render(
        dashboard.env,
        "page.html",
        **_common(
            dashboard,
            access,
            period,
            page=page,
            figures=figures,
            chart=weekly_svg(weeks),
            weeks=weeks,
            topics=topics,
            overdue=overdue,
            slowest=[appeal for appeal, _ in slowest],
        ),
    )


def _appeal_filter(
    request: web.Request, access: Access, period: Period, now: datetime
) -> tuple[lists.AppealFilter, dict[str, str]]:
    """The list's filters from the query, and the same as query parameters for links."""
    q = request.query
    page_id = row_id(q.get("page", "")) if q.get("page", "").isdigit() else None
    status = q.get("status") if q.get("status") in lists.STATUSES else None
    topic = q.get("topic") if q.get("topic") in TOPIC_TITLES_RU else None
    urgent = {"yes": True, "no": False}.get(q.get("urgent", ""))
    formal = {"yes": True, "no": False}.get(q.get("formal", ""))
    operator = q.get("operator", "").strip()[:128] or None
    text = q.get("q", "").strip()[:200] or None
    order = "wait" if q.get("order") == "wait" else "new"
    query = lists.AppealFilter(
        since=period.since,
        until=period.until,
        at=now,
        page_ids=access.page_ids,
        page_id=page_id,
        topic=topic,
        status=status,
        urgent=urgent,
        operator=operator,
        formal=formal,
        text=text,
        order=order,
    )
    params = {
        **period.query,
        "page": str(page_id) if page_id is not None else "",
        "status": status or "",
        "topic": topic or "",
        "urgent": q.get("urgent", "") if urgent is not None else "",
        "operator": operator or "",
        "formal": q.get("formal", "") if formal is not None else "",
        "q": text or "",
        "order": order if order != "new" else "",
    }
    return query, {k: v for k, v in params.items() if v}


async def _pages_of(session: AsyncSession, access: Access) -> list[Page]:
    from storage.pages import all_pages

    return [p for p in await all_pages(session) if p.id is not None and access.may_see(p.id)]


@guarded
async def appeals(
    request: web.Request, dashboard: Dashboard, session: AsyncSession, access: Access
) -> web.StreamResponse:
    """The appeals list with filters and text search, one server-side page at a time."""
    now = dashboard.app.clock()
    period = parse_period(request, dashboard.app.settings.TIMEZONE, now)
    query, params = _appeal_filter(request, access, period, now)
    number = request.query.get("p", "1")
    found = await lists.find_appeals(
        session, query, page=int(number) if number.isdigit() and len(number) < 7 else 1
    )
    from bot.services.reminders import page_title

    pages = [(p.id, page_title(p)) for p in await _pages_of(session, access)]
    return render(
        dashboard.env,
        "appeals.html",
        **_common(
            dashboard,
            access,
            period,
            found=found,
            params=params,
            pages=pages,
            operators=await lists.operator_names(session, access.page_ids),
            statuses=lists.STATUSES,
        ),
    )


@guarded
async def appeal_view(
    request: web.Request, dashboard: Dashboard, session: AsyncSession, access: Access
) -> web.StreamResponse:
    """One appeal's timeline."""
    number = row_id(request.match_info["appeal_id"])
    now = dashboard.app.clock()
    timeline = await lists.appeal_timeline(session, number, now) if number is not None else None
    if timeline is None or not access.may_see(timeline.appeal.page_id):
        return _not_found(dashboard, access, "Обращение не найдено или недоступно вам.")
    from bot.services.reminders import page_title

    period = parse_period(request, dashboard.app.settings.TIMEZONE, now)
    return render(
        dashboard.env,
        "appeal.html",
        **_common(
            dashboard,
            access,
            period,
            timeline=timeline,
            page_name=page_title(timeline.page),
        ),
    )


@guarded
async def operators(
    request: web.Request, dashboard: Dashboard, session: AsyncSession, access: Access
) -> web.StreamResponse:
    now = dashboard.app.clock()
    period = parse_period(request, dashboard.app.settings.TIMEZONE, now)
    rows = await lists.operators_work(
        session, since=period.since, until=period.until, page_ids=access.page_ids
    )
    return render(dashboard.env, "operators.html", **_common(dashboard, access, period, rows=rows))


@guarded
async def export(
    request: web.Request, dashboard: Dashboard, session: AsyncSession, access: Access
) -> web.StreamResponse:
    """The appeals on screen (every page of the list) as XLSX or CSV."""
    fmt = request.match_info["fmt"]
    if fmt not in ("xlsx", "csv"):
        return _not_found(dashboard, access, "Такого формата выгрузки нет.")
    now = dashboard.app.clock()
    period = parse_period(request, dashboard.app.settings.TIMEZONE, now)
    query, _ = _appeal_filter(request, access, period, now)
    chosen = await lists.matching_appeals(session, query, EXPORT_LIMIT)
    report = None
    if fmt == "xlsx":
        report = await _report(session, dashboard, access, period, page_id=query.page_id)
    exported = await exports.export_appeals(
        session,
        chosen,
        at=now,
        defaults=dashboard.app.defaults,
        fmt=fmt,
        label=period.label,
        report_json=report,
        first=period.first,
        last=period.last,
    )
    response = web.Response(
        body=exported.data,
        content_type=exports.XLSX_MIME if fmt == "xlsx" else "text/csv",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="{exported.filename}"',
        },
    )
    return response
