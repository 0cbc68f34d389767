"""Typed settings, read once from the environment and `.env` (.env.example explains each)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import cached_property

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

TELEGRAM_DEFAULT_SERVER = "https://api.telegram.org"
VK_DEFAULT_SERVER = "https://api.vk.ru"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///otklik.db"


class SettingsError(ValueError):
    """A setting is present but malformed; the message names the setting, never its secret."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DATABASE_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
# A Bot API token is the bot's numeric id, a colon and a secret (what @BotFather gives).
_TOKEN_RE = re.compile(r"^\d+:[\w-]+$")


@dataclass(frozen=True, slots=True)
class PageDefaults:
    """The defaults a page falls back to (docs/METRICS.md, .env.example); `bot.app.defaults_from`.

    Here, beside the settings they come from, so that the app context (bot/app.py) needs no
    service; bot/services/policy.py applies them.
    """

    timezone: str = "Europe/Moscow"
    work_hours: str = "09:00-18:00"
    shorten_preholiday: bool = False
    sla_hours: float = 8.0
    sla_urgent_hours: float = 4.0
    # Page health (bot/services/health.py): REGION_AUDIENCE and POSTS_PER_WEEK_NORM.
    region_audience: int | None = None
    posts_per_week_norm: float = 3.0
    # WEB_PUBLIC_URL: chat cards link to the appeal in the dashboard (bot/services/web_links.py).
    dashboard_url: str | None = None
    final_answer_days: int = 7
    final_answer_urgent_days: int = 1


def parse_listen(value: str) -> tuple[str, int]:
    """«127.0.0.1:8080» → (host, port); a clear ValueError otherwise.

    WEBHOOK_LISTEN, WEB_LISTEN and the VK Callback API's address are read with it.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"a listen address must look like 127.0.0.1:8080, got {value!r}")
    return host or "127.0.0.1", int(port)


def _split_ids(raw: str, name: str) -> tuple[int, ...]:
    ids: list[int] = []
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ids.append(int(part))
        except ValueError:
            raise SettingsError(
                f"{name}: «{part}» — не числовой id; ожидаются числа через запятую, "
                "например 123456789,987654321"
            ) from None
    return tuple(ids)


class Settings(BaseSettings):
    """Everything the service reads from `.env`; see `.env.example` for the meaning of each key."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    TELEGRAM_BOT_TOKEN: SecretStr | None = None
    TELEGRAM_API_SERVER: str = TELEGRAM_DEFAULT_SERVER
    VK_GROUP_TOKENS: SecretStr | None = None
    VK_SERVICE_TOKEN: SecretStr | None = None
    VK_WALL_OWNER_IDS: str = ""
    VK_API_SERVER: str = VK_DEFAULT_SERVER
    # After VK loses long-poll history, posts published this many days before the gap are read
    # back (besides the pinned post and posts with comments known in that window).
    VK_GAP_POST_DAYS: int = Field(default=30, ge=1, le=3650)
    DATABASE_URL: str = DEFAULT_DATABASE_URL
    ADMIN_IDS: str = ""
    SUPERVISOR_IDS: str = ""
    PRESS_CHAT_ID: int | None = None
    DIGEST_CHAT_IDS: str = ""
    PRESS_CHAT_OPEN: bool = False  # anyone in a press chat may press the reminder buttons
    TIMEZONE: str = "Europe/Moscow"
    WORK_HOURS: str = "09:00-18:00"
    SHORTEN_PREHOLIDAY: bool = False
    SLA_HOURS: float = Field(default=8.0, gt=0)
    SLA_URGENT_HOURS: float = Field(default=4.0, gt=0)
    # The final answer's deadline: the end of the N-th working day after the day of receipt.
    FINAL_ANSWER_DAYS: int = Field(default=7, ge=1, le=60)
    FINAL_ANSWER_URGENT_DAYS: int = Field(default=1, ge=1, le=60)
    WEBHOOK_URL: str | None = None
    WEBHOOK_SECRET: SecretStr | None = None
    WEBHOOK_LISTEN: str = "127.0.0.1:8080"
    # The dashboard (web/): where it listens and the address people open (links, Mini App).
    WEB_LISTEN: str | None = None
    WEB_PUBLIC_URL: str | None = None
    LOG_LEVEL: str = "INFO"
    # Page health (docs/METRICS.md): the region's internet audience for penetration (unset: no
    # penetration), the posting norm per week, and views from a public channel's web preview.
    REGION_AUDIENCE: int | None = Field(default=None, gt=0)
    POSTS_PER_WEEK_NORM: float = Field(default=3.0, gt=0)
    TELEGRAM_PREVIEW_VIEWS: bool = False

    @field_validator(
        "PRESS_CHAT_ID",
        "REGION_AUDIENCE",
        "WEBHOOK_URL",
        "WEBHOOK_SECRET",
        "TELEGRAM_BOT_TOKEN",
        "VK_GROUP_TOKENS",
        "VK_SERVICE_TOKEN",
        "WEB_LISTEN",
        "WEB_PUBLIC_URL",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("TIMEZONE")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        """An IANA name or a Russian city (`Владивосток`), kept as the IANA name."""
        from bot.timeparse import resolve_timezone

        return resolve_timezone(value)

    @field_validator("LOG_LEVEL")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"ожидается одно из {', '.join(LOG_LEVELS)}, указано «{value}»")
        return value.upper()

    @field_validator("DATABASE_URL")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                "ожидается адрес базы, начинающийся с sqlite+aiosqlite:/// (файл) или "
                f"postgresql+asyncpg:// (сервер), например {DEFAULT_DATABASE_URL}"
            )
        return value

    @model_validator(mode="after")
    def _parsed_values(self) -> Settings:
        """Fail at start, naming the setting, rather than at the first reminder or command."""
        from bot.workhours import WorkSchedule

        token = self.TELEGRAM_BOT_TOKEN
        if token is not None and not _TOKEN_RE.match(token.get_secret_value()):
            raise SettingsError(
                "TELEGRAM_BOT_TOKEN: не похоже на токен от @BotFather "
                "(ожидается число, двоеточие и ключ: 123456:ABC…)"
            )
        try:
            WorkSchedule.parse(self.TIMEZONE, self.WORK_HOURS, self.SHORTEN_PREHOLIDAY)
        except ValueError as error:
            raise SettingsError(f"WORK_HOURS: {error}") from None
        _host, sep, port = self.WEBHOOK_LISTEN.rpartition(":")
        if not sep or not port.isdigit():
            raise SettingsError(
                "WEBHOOK_LISTEN: ожидается адрес и порт, например 127.0.0.1:8080, "
                f"указано «{self.WEBHOOK_LISTEN}»"
            )
        if self.WEB_LISTEN is not None:
            _host, sep, port = self.WEB_LISTEN.rpartition(":")
            if not sep or not port.isdigit():
                raise SettingsError(
                    f"WEB_LISTEN must look like 127.0.0.1:8081, got {self.WEB_LISTEN!r}"
                )
        if self.WEB_PUBLIC_URL is not None and not re.match(
            r"^https?://[^/\s]+", self.WEB_PUBLIC_URL
        ):
            raise SettingsError(
                "WEB_PUBLIC_URL must be the dashboard's address, e.g. https://otklik.example.ru"
            )
        # Parse every list now: a bad id fails here with the setting's name.
        _ = (self.admin_ids, self.supervisor_ids, self.digest_chat_ids, self.vk_wall_owner_ids)
        _ = self.vk_group_tokens
        return self

    @cached_property
    def admin_ids(self) -> tuple[int, ...]:
        return _split_ids(self.ADMIN_IDS, "ADMIN_IDS")

    @cached_property
    def supervisor_ids(self) -> tuple[int, ...]:
        """Supervisors; admins are supervisors too."""
        return tuple(
            dict.fromkeys(_split_ids(self.SUPERVISOR_IDS, "SUPERVISOR_IDS") + self.admin_ids)
        )

    @cached_property
    def digest_chat_ids(self) -> tuple[int, ...]:
        return _split_ids(self.DIGEST_CHAT_IDS, "DIGEST_CHAT_IDS")

    @cached_property
    def vk_wall_owner_ids(self) -> tuple[int, ...]:
        return _split_ids(self.VK_WALL_OWNER_IDS, "VK_WALL_OWNER_IDS")

    @cached_property
    def vk_group_tokens(self) -> dict[int, SecretStr]:
        """`group_id:token,...` parsed; errors name the position, never the token."""
        result: dict[int, SecretStr] = {}
        if self.VK_GROUP_TOKENS is None:
            return result
        for position, part in enumerate(self.VK_GROUP_TOKENS.get_secret_value().split(","), 1):
            part = part.strip()
            if not part:
                continue
            group, sep, token = part.partition(":")
            if not sep or not token.strip():
                raise SettingsError(
                    f"VK_GROUP_TOKENS: запись {position} — не в виде id_сообщества:токен"
                )
            try:
                group_id = abs(int(group.strip()))
            except ValueError:
                raise SettingsError(
                    f"VK_GROUP_TOKENS: в записи {position} id сообщества не число"
                ) from None
            result[group_id] = SecretStr(token.strip())
        return result

    def secret_values(self) -> list[str]:
        """Every secret the settings hold: tokens, the webhook secret, the database password."""
        values = [
            s.get_secret_value()
            for s in (self.TELEGRAM_BOT_TOKEN, self.VK_SERVICE_TOKEN, self.WEBHOOK_SECRET)
            if s is not None
        ]
        values.extend(token.get_secret_value() for token in self.vk_group_tokens.values())
        with contextlib.suppress(ValueError):
            password = make_url(self.DATABASE_URL).password
            if password:
                values.append(str(password))
        return values

    @property
    def has_telegram(self) -> bool:
        return self.TELEGRAM_BOT_TOKEN is not None

    @property
    def has_vk(self) -> bool:
        return bool(self.vk_group_tokens) or (
            self.VK_SERVICE_TOKEN is not None and bool(self.vk_wall_owner_ids)
        )


def load_settings(env_file: str | None = ".env") -> Settings:
    """Read settings from the environment and `env_file`; SettingsError names what is wrong."""
    try:
        return Settings(_env_file=env_file)
    except ValidationError as error:
        raise SettingsError(describe(error)) from None


# pydantic's error types in the words an administrator reads (its own messages are English).
_EXPECTED_RU = {
    "int_parsing": "ожидается целое число, например 12",
    "int_from_float": "ожидается целое число, без дробной части",
    "float_parsing": "ожидается число, например 8 или 4.5",
    "bool_parsing": "ожидается true или false (также 1/0, yes/no)",
    "greater_than": "ожидается число больше {gt}",
    "greater_than_equal": "ожидается число не меньше {ge}",
    "less_than": "ожидается число меньше {lt}",
    "less_than_equal": "ожидается число не больше {le}",
    "string_type": "ожидается текст",
    "missing": "не указано",
}
# Settings whose submitted value may be shown back: no secrets, no URLs with passwords.
_SHOWN_VALUES = frozenset(
    {
        "PRESS_CHAT_ID",
        "PRESS_CHAT_OPEN",
        "SLA_HOURS",
        "SLA_URGENT_HOURS",
        "SHORTEN_PREHOLIDAY",
        "TIMEZONE",
    }
)


def describe(error: ValidationError) -> str:
    """One line per bad setting in Russian: what is expected; never the value of a secret."""
    lines = []
    for problem in error.errors(include_url=False):
        name = ".".join(str(part) for part in problem["loc"])
        template = _EXPECTED_RU.get(problem["type"])
        if template is not None:
            limits = {
                key: f"{value:g}" if isinstance(value, float) else value
                for key, value in problem.get("ctx", {}).items()
            }
            message = template.format(**limits)
            given = problem.get("input")
            if name in _SHOWN_VALUES or (
                name.endswith(("_DAYS", "_HOURS", "_NORM", "_AUDIENCE")) and "TOKEN" not in name
            ):
                message += f", указано «{given}»"
        else:
            message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if name else message)
    return "; ".join(lines)
