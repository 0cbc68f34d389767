"""The planned-failure schedule both sandboxes use (bot/sandbox/failures.py)."""

from __future__ import annotations

from bot.sandbox.failures import FailureSchedule


def test_a_plan_is_used_up_by_the_calls_it_matches() -> None:
    schedule: FailureSchedule[int] = FailureSchedule()
    schedule.plan("wall.get", 6, times=2)
    assert schedule.take("users.get") is None
    assert [schedule.take("wall.get") for _ in range(3)] == [6, 6, None]


def test_plans_are_used_in_the_order_they_were_made() -> None:
    schedule: FailureSchedule[str] = FailureSchedule()
    schedule.plan("*", "any")
    schedule.plan("sendmessage", "exact")
    assert [schedule.take("sendmessage") for _ in range(3)] == ["any", "exact", None]


def test_exact_first_prefers_a_plan_for_the_method_itself() -> None:
    schedule: FailureSchedule[str] = FailureSchedule(exact_first=True)
    schedule.plan("*", "any")
    schedule.plan("wall.get", "exact")
    assert [schedule.take("wall.get") for _ in range(3)] == ["exact", "any", None]


def test_a_condition_limits_a_plan_to_calls_with_those_parameters() -> None:
    schedule: FailureSchedule[int] = FailureSchedule(exact_first=True)
    schedule.plan("wall.getComments", 10, times=5, when={"post_id": 7, "offset": 0})
    schedule.plan("wall.getComments", 6)
    assert schedule.take("wall.getComments", {"post_id": "7", "offset": "0"}) == 6
    assert schedule.take("wall.getComments", {"post_id": "8", "offset": "0"}) is None
    assert schedule.take("wall.getComments", {"post_id": "7"}) is None
    assert schedule.take("wall.getComments", {"post_id": "7", "offset": "0"}) == 10


def test_planning_no_calls_plans_nothing() -> None:
    schedule: FailureSchedule[int] = FailureSchedule()
    schedule.plan("*", 500, times=0)
    assert schedule.take("getme") is None
