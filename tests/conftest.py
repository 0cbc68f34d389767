"""Shared fixtures: SQLite and PostgreSQL databases, the app context, fixed dates."""

from __future__ import annotations

import ast
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import Pool

from bot.app import AppContext
from bot.config import Settings
from storage.engine import SessionFactory, create_engine, session_factory
from storage.migrate import upgrade

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_URL = f"postgresql+asyncpg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"

# Monday 2026-11-02 10:00 Moscow: a plain working day used as "now" by many tests.
MONDAY_10_MSK = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """In CI PostgreSQL must be there (fail); on a laptop without it, skip with the reason."""
    if _postgres_reachable():
        return
    reason = f"PostgreSQL is not reachable on {POSTGRES_HOST}:{POSTGRES_PORT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}, and CI=true requires the PostgreSQL storage tests to run")
    pytest.skip(reason)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema in the PostgreSQL `test` db."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/otklik.db"  # type: ignore[str-bytes-safe]
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}?schema={schema}"


def _split_schema(url: str) -> tuple[str, str | None]:
    if "?schema=" in url:
        base, schema = url.split("?schema=", 1)
        return base, schema
    return url, None


async def make_engine(url: str) -> AsyncEngine:
    """An engine for `url`; a `?schema=` suffix (PostgreSQL) creates that schema and uses it."""
    base, schema = _split_schema(url)
    if schema is None:
        return create_engine(base)
    admin = create_async_engine(base)
    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    return create_engine(base, connect_args={"server_settings": {"search_path": schema}})


async def drop_engine(url: str, engine: AsyncEngine) -> None:
    await engine.dispose()
    base, schema = _split_schema(url)
    if schema is None:
        return
    admin = create_async_engine(base)
    async with admin.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await admin.dispose()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database (both backends)."""
    eng = await make_engine(db_url)
    await upgrade(eng)
    yield eng
    await drop_engine(db_url, eng)


@pytest.fixture
async def sqlite_engine(tmp_path: object) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite database only (for tests that are not about storage)."""
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path}/otklik.db")  # type: ignore[str-bytes-safe]
    await upgrade(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> SessionFactory:
    return session_factory(engine)


def make_settings(**overrides: object) -> Settings:
    """Settings that ignore any `.env` on the developer's machine."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def app(sqlite_engine: AsyncEngine, settings: Settings) -> AppContext:
    return AppContext.create(settings, sqlite_engine)


# Test tiers (markers unit / integration / e2e), assigned by what a test uses, so that a new test
# needs no marker and every test still runs in `make test`; `make test-fast` runs `-m unit`.
# A test that builds its database or sandbox itself (not through these fixtures) carries its
# tier explicitly; `_unit_tier_guard` fails a "unit" test that opens a database connection.
_DATABASE_FIXTURES = frozenset(
    {"db_url", "engine", "sqlite_engine", "sessions", "app", "database", "store"}
)
# `world`: the Telegram sandbox, a database and the notifier (tests/test_reminders.py make_world).
_E2E_FIXTURES = frozenset({"world"})
_E2E_MODULE_NAMES = frozenset({"TelegramSandbox", "VkSandbox", "subprocess", "setup_sandbox"})
_TIERS = ("unit", "integration", "e2e")


def _tier(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    names = set(vars(module)) if module is not None else set()
    fixtures = set(getattr(item, "fixturenames", ()))
    if (
        names & _E2E_MODULE_NAMES
        or fixtures & _E2E_FIXTURES
        or any("sandbox" in name for name in fixtures)
    ):
        return "e2e"
    if _DATABASE_FIXTURES & fixtures:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier unless it carries one already."""
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in _TIERS):
            item.add_marker(_tier(item))


@pytest.fixture(autouse=True)
def _unit_tier_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """A unit test opens no database: if it does, its tier is wrong (mark it integration)."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    opened: list[object] = []

    def on_connect(dbapi_connection: object, record: object) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Pool, "connect", on_connect)
    if opened:
        pytest.fail(
            f"{request.node.nodeid} is in the unit tier but opened {len(opened)} database "
            "connection(s): mark it integration (tests/conftest.py, test tiers)"
        )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """`-m unit` does not import a test module that holds no unit test (see `_no_unit_test`).

    Importing every module costs more than running the unit tier (aiogram's types alone take
    seconds); a module is left out only when its source shows that each of its tests is
    integration or e2e by the rules of `_tier`, so the unit tests run are the same.
    """
    if config.getoption("markexpr", "") != "unit":
        return None
    if not (collection_path.name.startswith("test_") and collection_path.suffix == ".py"):
        return None
    return True if _no_unit_test(collection_path) else None


def _marks(decorators: list[ast.expr]) -> set[str]:
    """The tiers that these decorators (or a `pytestmark` value) mark explicitly."""
    found = set()
    for decorator in decorators:
        source = ast.unparse(decorator)
        found |= {tier for tier in _TIERS if f"mark.{tier}" in source}
    return found


def _no_unit_test(path: Path) -> bool:
    """Whether, by its source alone, every test of the module is integration or e2e."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    module_names: set[str] = set()
    module_marks: set[str] = set()
    tests: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        statement = pending.pop()
        if isinstance(statement, ast.Import | ast.ImportFrom):
            module_names |= {(a.asname or a.name).split(".")[0] for a in statement.names}
        elif isinstance(statement, ast.If | ast.Try):
            pending += [*statement.body, *statement.orelse]
            if isinstance(statement, ast.Try):
                pending += statement.finalbody
                for handler in statement.handlers:
                    pending += handler.body
        elif isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark"
            for target in statement.targets
        ):
            module_marks |= _marks([statement.value])
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            if statement.name.startswith("test"):
                tests.append(statement)
        elif isinstance(statement, ast.ClassDef) and statement.name.startswith("Test"):
            tests += [
                method
                for method in statement.body
                if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef)
                and method.name.startswith("test")
            ]
    if any(name.startswith("test") for name in module_names):
        return False  # imported test functions are collected here too: not worth guessing
    if module_names & _E2E_MODULE_NAMES:
        return True
    for test in tests:
        marks = _marks(test.decorator_list)
        if "unit" in marks or "unit" in module_marks:
            return False
        if marks or module_marks:
            continue
        arguments = test.args
        params = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
        if not (
            params & (_DATABASE_FIXTURES | _E2E_FIXTURES)
            or any("sandbox" in name for name in params)
        ):
            return False
    return True
