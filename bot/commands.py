"""The commands behind `otklik`: each opens the database (migrating it) and calls a service."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

from bot import ru
from bot.app import AppContext
from bot.clock import utc_now
from bot.config import Settings
from bot.timeparse import TimeFormatError, parse_time
from storage import pages
from storage.engine import open_database
from storage.models import Page

if TYPE_CHECKING:
    from bot.services.digest import Digest
    from bot.text.training import TrainSummary

T = TypeVar("T")


class CommandError(Exception):
    """A command cannot do what was asked; the message says why, in plain words."""


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    handler = {
        "run": _run,
        "demo": _demo,
        "stats": _stats,
        "digest": _digest,
        "export": _export,
        "import": _import,
        "backfill": _backfill,
        "bench": _bench,
        "corrections": _corrections,
        "train": _train,
        "reclassify": _reclassify,
        "web": _web,
    }[args.command]
    try:
        return await handler(args, settings)
    except TimeFormatError as error:
        raise CommandError(str(error)) from None


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bot import logsafe, runner

    logsafe.install(runner.secrets_of(settings))
    try:
        return await runner.run(settings)
    except runner.NoSourceConfigured as error:
        raise CommandError(str(error)) from None


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.demo import run_demo

    return await run_demo(days=args.days, serve=args.serve, database_url=args.database)


async def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.report_text import format_stats
    from bot.services.reports import build_report

    since = parse_time(args.since, settings.TIMEZONE)
    until = parse_time(args.until, settings.TIMEZONE)
    at = parse_time(args.at, settings.TIMEZONE) if args.at else utc_now()
    if until <= since:
        raise CommandError(_reversed_period(args.since, args.until))
    async with open_database(settings.DATABASE_URL) as engine:
        app = AppContext.create(settings, engine)
        async with app.sessions() as session:
            if args.page is not None and await session.get(Page, args.page) is None:
                listed = await pages.all_pages(session)
                known = ", ".join(f"{p.id} ({p.title or p.external_id})" for p in listed)
                raise CommandError(f"страницы {args.page} нет; есть: {known or 'пока ни одной'}")
            report = await build_report(
                session, since=since, until=until, at=at, page_id=args.page, defaults=app.defaults
            )
            await session.commit()  # the report may have refreshed stale pre-aggregated days
    if args.json:
        json.dump(report.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_stats(report, settings.TIMEZONE))
    return 0


def _reversed_period(since: str, until: str) -> str:
    """The error for a period whose end is not after its start, in Russian."""
    return (
        f"конец периода (--until {until}) должен быть позже начала (--since {since}); "
        "--until не входит в период: за 2 ноября — --since 02.11.2026 --until 03.11.2026"
    )


async def _digest(args: argparse.Namespace, settings: Settings) -> int:
    async with open_database(settings.DATABASE_URL) as engine:
        return await print_digest(AppContext.create(settings, engine), args.week, args.send)


def _week_of_date(week: str | None, app: AppContext) -> str | None:
    """«02.11.2026» (or any date) → «2026-W45», the ISO week it falls in; other text as is."""
    if not week or "w" in week.lower():
        return week
    try:
        day = parse_time(week, app.defaults.timezone, now=app.clock())
    except TimeFormatError:
        return week
    year, number, _ = day.astimezone(ZoneInfo(app.defaults.timezone)).isocalendar()
    return f"{year}-W{number:02d}"


async def print_digest(app: AppContext, week: str | None = None, send: bool = False) -> int:
    """`otklik digest [--week YYYY-Www] [--send]`: print it, write the chart, maybe send it."""
    from bot.services.digest import build_digest, parse_week, plain_text

    try:
        chosen = parse_week(_week_of_date(week, app), app.clock(), app.defaults.timezone)
    except ValueError:
        raise CommandError(
            f"--week: ожидается неделя ISO вида 2026-W46 или дата внутри недели "
            f"(02.11.2026), указано «{week}»"
        ) from None
    async with app.sessions() as session:
        digest = await build_digest(session, app, chosen)
    print(plain_text(digest.text))
    chart_path = Path.cwd() / f"otklik-digest-{chosen.key}.png"
    await asyncio.to_thread(chart_path.write_bytes, digest.chart_png)
    print(f"\nГрафик: {chart_path}")
    if send:
        await _send_digest(app.settings, digest)
    return 0


async def _send_digest(settings: Settings, digest: Digest) -> None:
    """Send a built digest to DIGEST_CHAT_IDS through the Telegram notifier."""
    from bot.services.digest import send_digest
    from bot.services.notify import DeliveryError
    from handlers.telegram.notifier import TelegramNotifier
    from handlers.telegram.setup import make_bot

    token = settings.TELEGRAM_BOT_TOKEN
    if token is None:
        raise CommandError("--send: заполните TELEGRAM_BOT_TOKEN в .env")
    if not settings.digest_chat_ids:
        raise CommandError("--send: заполните DIGEST_CHAT_IDS в .env (id чатов для сводки)")
    bot = make_bot(token.get_secret_value(), settings.TELEGRAM_API_SERVER)
    try:
        notifier = TelegramNotifier(bot)
        for chat_id in settings.digest_chat_ids:
            try:
                await send_digest(notifier, chat_id, digest)
            except DeliveryError as error:
                raise CommandError(f"сводка не доставлена в чат {chat_id}: {error}") from None
            print(f"Отправлено в чат {chat_id}")
    finally:
        await bot.session.close()


async def _export(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_time(args.since, settings.TIMEZONE)
    until = parse_time(args.until, settings.TIMEZONE)
    async with open_database(settings.DATABASE_URL) as engine:
        app = AppContext.create(settings, engine)
        return await write_export(app, since, until, args.format, args.output)


async def write_export(
    app: AppContext, since: datetime, until: datetime, fmt: str, output: str | None
) -> int:
    """`otklik export`: write the file and print its path."""
    from bot.services.export import build_export

    if until <= since:
        raise CommandError("конец периода (--until) должен быть позже начала (--since)")
    async with app.sessions() as session:
        exported = await build_export(
            session, since=since, until=until, at=app.clock(), defaults=app.defaults, fmt=fmt
        )
    path = Path(output or exported.filename)
    await asyncio.to_thread(path.write_bytes, exported.data)
    print(f"{path}: {ru.quantity(exported.appeals, 'обращение', 'обращения', 'обращений')}")
    return 0


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    from bot.importers.telegram_export import import_command

    staff = []
    for part in filter(None, (p.strip() for p in args.staff.split(","))):
        # Exports name accounts "user123"; a bare 123 is the same account.
        number = part.removeprefix("user")
        if not number.isdigit():
            raise CommandError(
                f"--staff: «{part}» — не id пользователя Telegram (ожидается 123 или user123)"
            )
        staff.append(number)
    async with open_database(settings.DATABASE_URL) as engine:
        app = AppContext.create(settings, engine)
        return await import_command(app, args.file, staff)


async def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from handlers.vk.backfill import backfill_command

    since = parse_time(args.since, settings.TIMEZONE)
    if since > datetime.now(UTC) + timedelta(minutes=1):
        raise CommandError(f"--since: дата {args.since} ещё не наступила")
    async with open_database(settings.DATABASE_URL) as engine:
        app = AppContext.create(settings, engine)
        return await backfill_command(app, args.group, since)


async def _corrections(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.corrections import corpus_lines

    async with open_database(settings.DATABASE_URL) as engine:
        app = AppContext.create(settings, engine)
        async with app.sessions() as session:
            lines = await corpus_lines(session)
    text = "".join(f"{line}\n" for line in lines)
    if args.output:
        await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
        written = ru.quantity(len(lines), "исправление", "исправления", "исправлений")
        print(f"Записано {written}: {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.corrections import corpus_lines
    from bot.text import local_model_path, use_local_model

    path = local_model_path(settings.DATABASE_URL)
    if path is None:
        raise CommandError(
            f"для базы {settings.DATABASE_URL} нет места для файла модели "
            "(база в памяти): укажите DATABASE_URL с файлом"
        )
    async with open_database(settings.DATABASE_URL) as engine:
        app = AppContext.create(settings, engine)
        async with app.sessions() as session:
            lines = await corpus_lines(session)
    corrections = [json.loads(line) for line in lines]
    summary = await asyncio.to_thread(_train_with_progress, corrections, path)
    problem = use_local_model(path)
    if problem is not None:  # we have just written it: this is a bug, not bad input
        raise CommandError(problem)
    print(summary.report_ru())
    return 0


def _train_with_progress(corrections: list[dict[str, object]], path: Path) -> TrainSummary:
    """Run train_local under a progress bar on stderr; log records go above the bar."""
    from bot.progress import progress_bar
    from bot.text import train_local

    with progress_bar(total=1, desc="Обучение модели", unit="шаг", leave=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        return train_local(corrections, path, progress)


async def _web(args: argparse.Namespace, settings: Settings) -> int:
    """`otklik web`: the dashboard alone until SIGTERM or Ctrl-C (e.g. on a read replica)."""
    import signal

    from handlers.web.server import DEFAULT_LISTEN, DashboardServer

    listen = args.listen or settings.WEB_LISTEN or DEFAULT_LISTEN
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise CommandError(f"--listen must look like 127.0.0.1:8081, got {listen!r}")
    if settings.TELEGRAM_BOT_TOKEN is None:
        print(
            "otklik web: TELEGRAM_BOT_TOKEN is empty, so nobody can sign in "
            "(login links and the Mini App are signed with it)",
            file=sys.stderr,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_database(settings.DATABASE_URL) as engine:
        app = AppContext.create(settings, engine)
        server = DashboardServer(app, listen)
        await server.start()
        print(f"Панель Отклика: http://{host or '127.0.0.1'}:{server.bound_port}/", flush=True)
        try:
            await stop.wait()
        finally:
            await server.stop()
    return 0


async def _reclassify(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.reclassify import reclassify
    from bot.text import local_model_path, model_version

    since = parse_time(args.since, settings.TIMEZONE)
    until = parse_time(args.until, settings.TIMEZONE) if args.until else utc_now()
    if until <= since:
        raise CommandError("дата --until должна быть позже даты --since")
    path = local_model_path(settings.DATABASE_URL)
    # A local file that cannot be used was reported on start (cli.use_region_model).
    if not getattr(args, "model_problem", None) and model_version().startswith("builtin-"):
        where = f" (файла {path} нет)" if path is not None else ""
        print(f"Локальной модели нет{where}: решает встроенная модель.", file=sys.stderr)
    async with open_database(settings.DATABASE_URL) as engine:
        app = AppContext.create(settings, engine)
        async with app.sessions() as session:
            summary = await _with_progress(
                "Пересмотр сообщений",
                " сообщ.",
                lambda progress: reclassify(session, app.defaults, since, until, progress),
            )
    print(summary.report_ru())
    return 0


async def _with_progress(
    title: str, unit: str, work: Callable[[Callable[[int, int], None]], Awaitable[T]]
) -> T:
    """Await `work(progress)` under a tqdm bar on stderr; log records go through the bar."""
    import logging

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with (
        tqdm(total=0, desc=title, unit=unit, file=sys.stderr, leave=True) as bar,
        logging_redirect_tqdm(loggers=[logging.getLogger()]),
    ):

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        return await work(progress)


async def _bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.suite == "faults":
        from bot.faultbench import run_faults

        return await run_faults(args.updates, args.outage)
    from bot.benchmarks import run_all

    return await run_all()
