"""The intake benchmark script runs end to end (a smoke test; figures are not asserted)."""

from __future__ import annotations

import pytest

from bot.bench import bench_intake, build_updates


def test_updates_are_new_comments_and_channel_replies() -> None:
    updates = build_updates(60, first_id=100)
    assert [u.update_id for u in updates] == list(range(100, 160))
    assert len({u.message.message_id for u in updates if u.message}) == 60
    replies = [u for u in updates if u.message and u.message.sender_chat is not None]
    assert replies and all(u.message and u.message.reply_to_message for u in replies)


@pytest.mark.e2e  # SQLite and the intake writer process
async def test_bench_reports_both_rates_and_the_machine() -> None:
    result = await bench_intake(40)
    assert result["updates"] == 40
    assert result["real_handlers_sqlite_per_s"] > 0 and result["noop_handler_per_s"] > 0
    expected = result["real_handlers_sqlite_per_s"] / result["noop_handler_per_s"]
    assert abs(result["ratio"] - expected) < 0.01
    assert "cores" in result["machine"]
