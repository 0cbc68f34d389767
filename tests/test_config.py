"""Settings fail at start with the setting's name, never with a traceback or a secret."""

from __future__ import annotations

import pytest

from bot.config import SettingsError, load_settings


def _load(tmp_path: object, text: str) -> object:
    env = f"{tmp_path}/settings.env"  # type: ignore[str-bytes-safe]
    with open(env, "w", encoding="utf-8") as handle:
        handle.write(text)
    return load_settings(env)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("SLA_HOURS=abc", "SLA_HOURS"),
        ("WORK_HOURS=9-18", "WORK_HOURS"),
        ("WORK_HOURS=18:00-09:00", "WORK_HOURS"),
        ("DIGEST_CHAT_IDS=x", "DIGEST_CHAT_IDS"),
        ("ADMIN_IDS=@ivan", "ADMIN_IDS"),
        ("SUPERVISOR_IDS=12,abc", "SUPERVISOR_IDS"),
        ("VK_GROUP_TOKENS=vk1.a.very-secret-value", "VK_GROUP_TOKENS"),
        ("TELEGRAM_BOT_TOKEN=not a token", "TELEGRAM_BOT_TOKEN"),
        ("DATABASE_URL=otklik.db", "DATABASE_URL"),
        ("LOG_LEVEL=LOUD", "LOG_LEVEL"),
        ("WEBHOOK_LISTEN=abc", "WEBHOOK_LISTEN"),
        ("TIMEZONE=Mars/Base", "TIMEZONE"),
    ],
)
def test_bad_setting_is_named_and_secret_not_shown(tmp_path: object, line: str, named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, line + "\n")
    message = str(caught.value)
    assert named in message
    assert "very-secret-value" not in message
    assert "not a token" not in message


def test_good_settings_parse_lists_and_tokens(tmp_path: object) -> None:
    settings = _load(
        tmp_path,
        "TELEGRAM_BOT_TOKEN=123456:AAbbCC-dd\n"
        "VK_GROUP_TOKENS=-230000001:vk1.a.tok, 5:other\n"
        "SUPERVISOR_IDS=1, 2\nADMIN_IDS=3\nWORK_HOURS=09:00-18:00,13:00-14:00\n"
        "LOG_LEVEL=debug\nPRESS_CHAT_ID=\n",
    )
    assert settings.supervisor_ids == (1, 2, 3)  # type: ignore[attr-defined]
    assert set(settings.vk_group_tokens) == {230000001, 5}  # type: ignore[attr-defined]
    assert settings.LOG_LEVEL == "DEBUG"  # type: ignore[attr-defined]
    assert settings.PRESS_CHAT_ID is None  # type: ignore[attr-defined]
