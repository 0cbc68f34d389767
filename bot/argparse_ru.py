"""argparse speaking Russian: usage, section titles and every error the `otklik` CLI can show.

argparse looks its messages up through the module-level `_` and `ngettext` (gettext) at call
time; there is no public hook, and shipping a compiled `.mo` catalogue for one module would be
heavier than this table. `RussianArgumentParser` swaps them in while it formats or fails, so
other users of argparse in the same process keep their own language.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any, NoReturn

MESSAGES = {
    "usage: ": "использование: ",
    "positional arguments": "аргументы",
    "options": "параметры",
    "optional arguments": "параметры",
    "show this help message and exit": "показать эту справку и выйти",
    "%(prog)s: error: %(message)s\n": "%(prog)s: ошибка: %(message)s\n",
    "the following arguments are required: %s": "не указаны обязательные аргументы: %s",
    "unrecognized arguments: %s": "непонятные аргументы: %s",
    "invalid choice: %(value)r (choose from %(choices)s)": (
        "недопустимое значение %(value)r (можно: %(choices)s)"
    ),
    "argument %(argument_name)s: %(message)s": "%(argument_name)s: %(message)s",
    "expected one argument": "после параметра нужно значение",
    "expected at least one argument": "нужно хотя бы одно значение",
    "expected at most one argument": "нужно не больше одного значения",
    "ambiguous option: %(option)s could match %(matches)s": (
        "неоднозначный параметр %(option)s: подходят %(matches)s"
    ),
    "not allowed with argument %s": "нельзя вместе с %s",
    "one of the arguments %s is required": "нужен один из параметров %s",
    "ignored explicit argument %r": "лишнее значение %r",
    "can't open '%(filename)s': %(error)s": "не удалось открыть «%(filename)s»: %(error)s",
    "invalid %(type)s value: %(value)r": "неверное значение %(value)r: ожидается %(type)s",
    "unknown parser %(parser_name)r (choices: %(choices)s)": (
        "нет команды %(parser_name)r (есть: %(choices)s)"
    ),
}
PLURAL_MESSAGES = {
    "expected %s argument": "ожидается значений: %s",
    "expected %s arguments": "ожидается значений: %s",
}


def _translate(message: str) -> str:
    return MESSAGES.get(message, message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    chosen = singular if n == 1 else plural
    return PLURAL_MESSAGES.get(chosen, chosen)


@contextlib.contextmanager
def russian() -> Iterator[None]:
    """argparse's messages in Russian for the duration of the block."""
    # argparse has no hook for its messages; its module-level gettext names are swapped (untyped).
    saved = argparse._, argparse.ngettext  # type: ignore[attr-defined]
    argparse._ = _translate  # type: ignore[attr-defined]
    argparse.ngettext = _ngettext  # type: ignore[attr-defined]
    try:
        yield
    finally:
        argparse._, argparse.ngettext = saved  # type: ignore[attr-defined]


def integer(text: str) -> int:
    """An argparse `type` for whole numbers with a Russian error."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"ожидается целое число, например 12; указано «{text}»"
        ) from None


class RussianArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose titles, usage and errors are in Russian (subparsers too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with russian():
            super().__init__(*args, **kwargs)

    # Narrower overload signatures than ArgumentParser declares; the behaviour is the same.
    def parse_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> argparse.Namespace:
        with russian():
            return super().parse_args(args, namespace)

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        with russian():
            return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        with russian():
            return super().format_help()

    def format_usage(self) -> str:
        with russian():
            return super().format_usage()

    def error(self, message: str) -> NoReturn:
        with russian():
            super().error(message)
