"""The demo's people: every citizen's surname agrees with the first name's gender (issue 12).

Checked with pymorphy3's dictionary (the Name and Surn grammemes), not with our own table.
"""

from __future__ import annotations

import pymorphy3
import pytest

from bot.demo import FIRST_NAMES, SURNAMES, surname_for

MORPH = pymorphy3.MorphAnalyzer()


def gender(word: str, grammeme: str) -> str:
    """The gender of `word` read as a first name (Name) or a surname (Surn), nominative."""
    for parse in MORPH.parse(word):
        if {grammeme, "nomn"} <= parse.tag.grammemes and parse.tag.gender:
            return str(parse.tag.gender)
    raise AssertionError(f"pymorphy3 does not know {word!r} as {grammeme}")


@pytest.mark.parametrize("first_name", FIRST_NAMES)
def test_surnames_agree_with_first_names(first_name: str) -> None:
    expected = gender(first_name, "Name")
    for forms in SURNAMES:
        surname = surname_for(first_name, forms)
        assert gender(surname, "Surn") == expected, f"{first_name} {surname}"


def test_both_genders_are_present() -> None:
    assert {gender(name, "Name") for name in FIRST_NAMES} == {"masc", "femn"}
