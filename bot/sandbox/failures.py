"""Failure injection shared by the sandboxes: "the next N calls of this method fail".

Tests and the demo plan error answers (`fail_next` on either sandbox); before serving a call
the sandbox asks its schedule whether an answer is planned for it and turns that answer into
its own error (Telegram: an HTTP status with a description, VK: an API error code).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

ANY_METHOD = "*"

Answer = TypeVar("Answer")


@dataclass
class PlannedFailure(Generic[Answer]):
    """One planned error answer for the next `remaining` matching calls."""

    method: str  # an API method name, or "*" for any
    answer: Answer
    remaining: int
    when: dict[str, str] | None = None  # only calls whose parameters include these values

    def matches(self, method: str, params: Mapping[str, Any]) -> bool:
        """Tell whether a call of `method` with `params` gets this answer."""
        if self.remaining <= 0 or self.method not in (method, ANY_METHOD):
            return False
        if self.when is None:
            return True
        return all(params.get(name) == value for name, value in self.when.items())


class FailureSchedule(Generic[Answer]):
    """Planned error answers, each used up by the calls it matches.

    Plans without a condition go before conditional ones. With `exact_first` (VK's order)
    a plan for the method itself goes before a plan for "*"; otherwise (Telegram's order)
    unconditional plans are used in the order they were made.
    """

    def __init__(self, *, exact_first: bool = False) -> None:
        self._exact_first = exact_first
        self._planned: list[PlannedFailure[Answer]] = []

    def plan(
        self,
        method: str,
        answer: Answer,
        times: int = 1,
        *,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer the next `times` matching calls of `method` ("*": any) with `answer`."""
        if times <= 0:
            return
        condition = None if when is None else {str(k): str(v) for k, v in when.items()}
        self._planned.append(PlannedFailure(method, answer, times, condition))

    def take(self, method: str, params: Mapping[str, Any] | None = None) -> Answer | None:
        """Use up and return the answer planned for this call, or None to serve it."""
        for planned in self._in_order(method):
            if planned.matches(method, params or {}):
                planned.remaining -= 1
                if planned.remaining <= 0:
                    self._planned.remove(planned)
                return planned.answer
        return None

    def _in_order(self, method: str) -> Iterator[PlannedFailure[Answer]]:
        unconditional = [p for p in self._planned if p.when is None]
        if self._exact_first:
            yield from (p for p in unconditional if p.method == method)
            yield from (p for p in unconditional if p.method != method)
        else:
            yield from unconditional
        yield from (p for p in self._planned if p.when is not None)
