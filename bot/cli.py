"""The `otklik` command line (README.md lists the commands); each imports its module lazily."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import sys
from collections.abc import Sequence

from bot import logru
from bot.argparse_ru import RussianArgumentParser, integer

logger = logging.getLogger(__name__)


SINCE_HELP = "начало периода: 02.11.2026, 02.11 или 2026-11-02 (дата — с 00:00 местного времени)"
UNTIL_HELP = "конец периода, не включая: 09.11.2026, 09.11 или 2026-11-09"


def build_parser() -> argparse.ArgumentParser:
    """The `otklik` parser; help and errors in Russian (bot/argparse_ru.py)."""
    parser = RussianArgumentParser(
        prog="otklik",
        description="Отклик: как быстро и как хорошо официальные страницы отвечают жителям.",
        epilog="Справка по команде: otklik КОМАНДА --help. Руководство: docs/GUIDE_RU.md",
    )
    parser.add_argument(
        "--env-file", default=".env", help="файл настроек (по умолчанию .env)", metavar="ФАЙЛ"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="КОМАНДА", title="команды"
    )

    commands.add_parser(
        "run", help="запустить приём сообщений Telegram и ВКонтакте, напоминания и сводки"
    )

    demo = commands.add_parser(
        "demo", help="весь трекер на встроенных песочницах, с примером данных"
    )
    demo.add_argument(
        "--serve", action="store_true", help="оставить песочницы работать для знакомства"
    )
    demo.add_argument(
        "--days",
        type=integer,
        default=10,
        help="сколько дней имитировать (по умолчанию 10)",
        metavar="ДНИ",
    )
    demo.add_argument(
        "--database", default=None, help="адрес базы (по умолчанию временный файл)", metavar="URL"
    )

    stats = commands.add_parser("stats", help="отчёт /stats из базы")
    stats.add_argument("--since", required=True, help=SINCE_HELP, metavar="ДАТА")
    stats.add_argument("--until", required=True, help=UNTIL_HELP, metavar="ДАТА")
    stats.add_argument(
        "--at", default=None, help="момент отчёта (по умолчанию сейчас)", metavar="ДАТА"
    )
    stats.add_argument(
        "--page", type=integer, default=None, help="номер одной страницы", metavar="ID"
    )
    stats.add_argument("--json", action="store_true", help="вывести JSON (поля — docs/METRICS.md)")

    digest = commands.add_parser("digest", help="еженедельная сводка")
    digest.add_argument(
        "--week",
        default=None,
        help="неделя ISO (2026-W46) или дата внутри неё (02.11.2026); по умолчанию прошлая",
        metavar="НЕДЕЛЯ",
    )
    digest.add_argument("--send", action="store_true", help="отправить в чаты DIGEST_CHAT_IDS")

    export = commands.add_parser("export", help="обращения и показатели страниц в XLSX или CSV")
    export.add_argument("--since", required=True, help=SINCE_HELP, metavar="ДАТА")
    export.add_argument("--until", required=True, help=UNTIL_HELP, metavar="ДАТА")
    export.add_argument(
        "--format", choices=("xlsx", "csv"), default="xlsx", help="xlsx (по умолчанию) или csv"
    )
    export.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="ФАЙЛ",
        help="куда записать (по умолчанию otklik_НАЧАЛО_КОНЕЦ.xlsx в текущей папке)",
    )

    imports = commands.add_parser("import", help="загрузить историю из файла выгрузки")
    import_kinds = imports.add_subparsers(
        dest="source", required=True, metavar="ИСТОЧНИК", title="источники"
    )
    tg_export = import_kinds.add_parser(
        "telegram-export", help="выгрузка Telegram Desktop (result.json)"
    )
    tg_export.add_argument("file", metavar="ФАЙЛ", help="result.json из Telegram Desktop")
    tg_export.add_argument(
        "--staff", default="", help="id официальных аккаунтов через запятую", metavar="ID,..."
    )

    backfill = commands.add_parser("backfill", help="загрузить прошлый период с платформы")
    backfill_kinds = backfill.add_subparsers(
        dest="source", required=True, metavar="ИСТОЧНИК", title="источники"
    )
    vk = backfill_kinds.add_parser("vk", help="посты и комментарии сообщества или стены ВКонтакте")
    vk.add_argument(
        "--group",
        required=True,
        type=integer,
        help="id сообщества (или владельца стены)",
        metavar="ID",
    )
    vk.add_argument(
        "--since", required=True, help="с какой даты: 01.10.2026 или 2026-10-01", metavar="ДАТА"
    )

    commands.add_parser("classify", help="строки JSON {text} на входе → классификация на выходе")
    corrections = commands.add_parser(
        "corrections", help="исправления пресс-службы как размеченные строки JSON"
    )
    corrections.add_argument(
        "--output", "-o", default=None, help="файл (по умолчанию вывод на экран)", metavar="ФАЙЛ"
    )
    commands.add_parser(
        "train", help="обучить местную модель классификатора на исправлениях (рядом с базой)"
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
    bench = commands.add_parser("bench", help="замеры производительности")
    bench.add_argument(
        "suite",
        nargs="?",
        choices=["faults"],
        help="faults: обновления через живые процессы `otklik run` под kill -9, отключением базы "
        "и сбоями API (нужен PostgreSQL на 127.0.0.1:5432)",
    )
    bench.add_argument(
        "--updates",
        type=int,
        default=300,
        help="комментариев на каждый путь (bench faults; по умолчанию 300)",
    )
    bench.add_argument(
        "--outage",
        type=float,
        default=10.0,
        help="на сколько секунд отключается PostgreSQL (по умолчанию 10)",
    )
    web = commands.add_parser(
        "web", help="веб-панель отдельно от остального (otklik run тоже её показывает)"
    )
    web.add_argument(
        "--listen",
        default=None,
        help="адрес и порт (по умолчанию WEB_LISTEN, иначе 127.0.0.1:8081)",
        metavar="ХОСТ:ПОРТ",
    )
    return parser


# The system's own texts for these are English; what an administrator should read instead.
_OS_ERRORS_RU = {
    errno.ENOENT: "нет такого файла или папки",
    errno.EACCES: "нет прав доступа",
    errno.EPERM: "действие не разрешено",
    errno.EISDIR: "это папка, а не файл",
    errno.ENOTDIR: "часть пути — не папка",
    errno.ENOSPC: "на диске нет места",
    errno.EROFS: "диск только для чтения",
    errno.ECONNREFUSED: "сервер не принимает соединения",
    errno.ETIMEDOUT: "сервер не ответил вовремя",
    errno.EHOSTUNREACH: "сервер недоступен",
}


def os_error_ru(error: OSError) -> str:
    """«нет такого файла или папки: /x/y.xlsx» for an OSError; its own text when unknown."""
    reason = _OS_ERRORS_RU.get(error.errno) if error.errno is not None else None
    if reason is None:
        return str(error)
    return f"{reason}: {error.filename}" if error.filename else reason


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
    logru.install()  # aiogram's polling and outage lines in Russian (bot/logru.py)


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
            f"otklik: ошибка в настройках ({args.env_file} или переменные окружения): {error}",
            file=sys.stderr,
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
        print(f"otklik: {os_error_ru(error)}", file=sys.stderr)
        code = 2
    raise SystemExit(code)
