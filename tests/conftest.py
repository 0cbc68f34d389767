"""Shared fixtures: SQLite and PostgreSQL databases, the app context, fixed dates."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
_DATABASE_FIXTURES = frozenset(
    {"db_url", "engine", "sqlite_engine", "sessions", "app", "database", "store"}
)
_E2E_MODULE_NAMES = frozenset({"TelegramSandbox", "VkSandbox", "subprocess", "setup_sandbox"})


def _tier(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    names = set(vars(module)) if module is not None else set()
    if names & _E2E_MODULE_NAMES or any("sandbox" in name for name in item.fixturenames):
        return "e2e"
    if _DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier unless it carries one already."""
    tiers = ("unit", "integration", "e2e")
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in tiers):
            item.add_marker(_tier(item))
