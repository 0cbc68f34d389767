"""Typed settings, read once from the environment and `.env` (DESIGN sec. 4)."""

from __future__ import annotations

import contextlib
import re
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


def _split_ids(raw: str, name: str) -> tuple[int, ...]:
    ids: list[int] = []
    for part in raw.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ids.append(int(part))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not a numeric id") from None
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
    TIMEZONE: str = "Europe/Moscow"
    WORK_HOURS: str = "09:00-18:00"
    SHORTEN_PREHOLIDAY: bool = False
    SLA_HOURS: float = Field(default=8.0, gt=0)
    SLA_URGENT_HOURS: float = Field(default=4.0, gt=0)
    WEBHOOK_URL: str | None = None
    WEBHOOK_SECRET: SecretStr | None = None
    WEBHOOK_LISTEN: str = "127.0.0.1:8080"
    LOG_LEVEL: str = "INFO"

    @field_validator(
        "PRESS_CHAT_ID",
        "WEBHOOK_URL",
        "WEBHOOK_SECRET",
        "TELEGRAM_BOT_TOKEN",
        "VK_GROUP_TOKENS",
        "VK_SERVICE_TOKEN",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("TIMEZONE")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("LOG_LEVEL")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return value.upper()

    @field_validator("DATABASE_URL")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                "must start with sqlite+aiosqlite:/// (a file) or postgresql+asyncpg:// "
                f"(a server), e.g. {DEFAULT_DATABASE_URL}"
            )
        return value

    @model_validator(mode="after")
    def _parsed_values(self) -> Settings:
        """Fail at start, naming the setting, rather than at the first reminder or command."""
        from bot.workhours import WorkSchedule

        token = self.TELEGRAM_BOT_TOKEN
        if token is not None and not _TOKEN_RE.match(token.get_secret_value()):
            raise SettingsError(
                "TELEGRAM_BOT_TOKEN does not look like a token from @BotFather (123456:ABC…)"
            )
        try:
            WorkSchedule.parse(self.TIMEZONE, self.WORK_HOURS, self.SHORTEN_PREHOLIDAY)
        except ValueError as error:
            raise SettingsError(f"WORK_HOURS: {error}") from None
        _host, sep, port = self.WEBHOOK_LISTEN.rpartition(":")
        if not sep or not port.isdigit():
            raise SettingsError(
                f"WEBHOOK_LISTEN must look like 127.0.0.1:8080, got {self.WEBHOOK_LISTEN!r}"
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
                raise SettingsError(f"VK_GROUP_TOKENS: entry {position} is not group_id:token")
            try:
                group_id = abs(int(group.strip()))
            except ValueError:
                raise SettingsError(
                    f"VK_GROUP_TOKENS: entry {position} has a non-numeric group id"
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
        return Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as error:
        raise SettingsError(describe(error)) from None


def describe(error: ValidationError) -> str:
    """One line per bad setting, without the submitted value of a secret."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if name else message)
    return "; ".join(lines)
