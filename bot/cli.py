"""The `otklik` command line (DESIGN sec. 3). Each command imports its module lazily."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otklik",
        description="Otklik: how fast and how well official pages answer citizens.",
    )
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="start the Telegram and VK intake, reminders and digests")

    demo = commands.add_parser("demo", help="the whole tracker against built-in sandboxes")
    demo.add_argument("--serve", action="store_true", help="keep the sandboxes up to explore")
    demo.add_argument("--days", type=int, default=10, help="simulated days (default 10)")
    demo.add_argument("--database", default=None, help="database URL (default: a temporary file)")

    stats = commands.add_parser("stats", help="the /stats report from the database")
    stats.add_argument("--since", required=True, help="ISO 8601; a bare date is local midnight")
    stats.add_argument("--until", required=True, help="ISO 8601, exclusive")
    stats.add_argument("--at", default=None, help="report time (default: now)")
    stats.add_argument("--page", type=int, default=None, help="one page's id")
    stats.add_argument("--json", action="store_true", help="print the JSON object")

    digest = commands.add_parser("digest", help="the weekly digest")
    digest.add_argument("--week", default=None, help="ISO week YYYY-Www (default: last week)")
    digest.add_argument("--send", action="store_true", help="send it to DIGEST_CHAT_IDS")

    export = commands.add_parser("export", help="appeals and per-page figures as XLSX or CSV")
    export.add_argument("--since", required=True, help="ISO 8601; a bare date is local midnight")
    export.add_argument("--until", required=True, help="ISO 8601, exclusive")
    export.add_argument(
        "--format", choices=("xlsx", "csv"), default="xlsx", help="xlsx (default) or csv"
    )
    export.add_argument(
        "--output",
        "-o",
        default=None,
        help="file to write (default: otklik_SINCE_UNTIL.xlsx in the current folder)",
    )

    imports = commands.add_parser("import", help="load history from an export file")
    import_kinds = imports.add_subparsers(dest="source", required=True, metavar="SOURCE")
    tg_export = import_kinds.add_parser("telegram-export", help="Telegram Desktop result.json")
    tg_export.add_argument("file")
    tg_export.add_argument("--staff", default="", help="ids of staff accounts, comma-separated")

    backfill = commands.add_parser("backfill", help="load a past period from a platform")
    backfill_kinds = backfill.add_subparsers(dest="source", required=True, metavar="SOURCE")
    vk = backfill_kinds.add_parser("vk", help="a VK community's or wall's posts and comments")
    vk.add_argument("--group", required=True, type=int, help="community id (or wall owner id)")
    vk.add_argument("--since", required=True, help="ISO 8601 date")

    commands.add_parser("classify", help="JSON lines {text} on stdin → classification on stdout")
    corrections = commands.add_parser(
        "corrections", help="press-office corrections as labelled corpus lines (JSON lines)"
    )
    corrections.add_argument("--output", "-o", default=None, help="file (default: stdout)")
    commands.add_parser(
        "train", help="fold the corrections into a local classifier model next to the database"
    )
    reclassify = commands.add_parser(
        "reclassify",
        help="заново решить сохранённые сообщения текущей моделью (решения людей остаются)",
        description="Заново решает, какие сообщения граждан — обращения, их темы и срочность, "
        "моделью, которая сейчас в работе (локальной после otklik train или встроенной). "
        "Решения людей («Не обращение», /topic, «Это обращение» …) не меняются.",
    )
    reclassify.add_argument(
        "--since", required=True, help="с какой даты: 2026-11-02 или 02.11.2026 (включительно)"
    )
    reclassify.add_argument(
        "--until", default=None, help="по какую дату, не включая её (по умолчанию — сейчас)"
    )
    bench = commands.add_parser("bench", help="the performance benchmarks")
    bench.add_argument(
        "suite",
        nargs="?",
        choices=["faults"],
        help="faults: updates through live `otklik run` processes under kill -9, a database "
        "outage and API faults (needs PostgreSQL on 127.0.0.1:5432)",
    )
    bench.add_argument(
        "--updates", type=int, default=300, help="comments per path (bench faults; default 300)"
    )
    bench.add_argument(
        "--outage", type=float, default=10.0, help="seconds PostgreSQL is cut (default 10)"
    )
    return parser


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # HTTP client libraries log full URLs; a Bot API URL contains the token.
    # pymorphy3 announces its dictionaries at INFO; that would cut through `otklik train`'s bar.
    for noisy in ("aiohttp.access", "urllib3", "requests", "pymorphy3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Migrations run on every start; their step-by-step lines are noise unless debugging.
    # aiogram logs every handled update at INFO: one line per comment is noise in production.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("aiogram.event").setLevel(logging.WARNING)


def use_region_model(database_url: str) -> str | None:
    """Every command classifies with the region's local model when there is a usable one.

    Returns why a local model file that exists is not used (logged too), or None.
    """
    from bot.text import local_model_path, use_local_model

    return use_local_model(local_model_path(database_url))  # a bad file: never fatal


def main(argv: Sequence[str] | None = None) -> None:
    from bot import logsafe

    # Every command's output and log lines go through the secret scrubber (bot/logsafe.py):
    # exception texts can carry a token (a Bot API URL in aiohttp's TooManyRedirects).
    logsafe.guard_streams()
    args = build_parser().parse_args(argv)
    from bot.config import SettingsError, load_settings

    if args.command == "classify":
        from bot.text import classify_stream

        # classify needs no settings; with readable ones it uses the region's model.
        with contextlib.suppress(SettingsError):
            use_region_model(load_settings(args.env_file).DATABASE_URL)
        classify_stream(sys.stdin, sys.stdout)
        return
    try:
        settings = load_settings(args.env_file)
    except SettingsError as error:
        print(
            f"otklik: bad settings in {args.env_file} or the environment: {error}", file=sys.stderr
        )
        raise SystemExit(2) from None
    logsafe.register(settings.secret_values())
    configure_logging(settings.LOG_LEVEL)
    logsafe.install(())
    args.model_problem = use_region_model(settings.DATABASE_URL)
    from bot import commands

    try:
        code = asyncio.run(commands.dispatch(args, settings))
    except KeyboardInterrupt:
        code = 0
    except BrokenPipeError:  # `otklik stats --json | head`
        sys.stderr.close()
        code = 0
    except commands.CommandError as error:
        print(f"otklik: {error}", file=sys.stderr)
        code = 2
    except OSError as error:  # a file that cannot be written, a database that cannot be reached
        print(f"otklik: {error}", file=sys.stderr)
        code = 2
    raise SystemExit(code)
