"""Every share with its base, worded once for the chat, the digest, the export and the docs.

«в срок 54 из 85 с истёкшим сроком, 63,5 %»: a share alone cannot be checked against the counts
printed next to it, a share with its base can (issue 12 item 5). The bases are defined in
docs/METRICS.md («Shares and their bases»); the wording here is the one every place uses.
"""

from __future__ import annotations

from bot import ru
from bot.services.figures import Figures

# After «из N» the noun is genitive: singular for 1, 21, 101 …, plural otherwise.
APPEALS_OF = ("обращения", "обращений")
ANSWERS_OF = ("ответа", "ответов")
RATINGS_OF = ("оценки", "оценок")
EXPIRED = "с истёкшим сроком"  # answered, or unanswered past the deadline


def of_count(n: int, forms: tuple[str, str]) -> str:
    """«1 обращения», «2 обращений», «21 обращения», «111 обращений» (after «из»)."""
    singular = n % 10 == 1 and n % 100 != 11
    return f"{ru.number(n)}{ru.NBSP}{forms[0] if singular else forms[1]}"


def share_of(part: int, base: str, share: float | None) -> str:
    """«54 из 85 с истёкшим сроком, 63,5 %» (— for the share when the base is empty)."""
    return f"{ru.number(part)} из {base}, {ru.percent(share)}"


def answered(figures: Figures) -> str:
    """«69 из 120 обращений, 57,5 %»."""
    return share_of(figures.answered, of_count(figures.appeals, APPEALS_OF), figures.answered_share)


def in_time(figures: Figures) -> str:
    """«54 из 85 с истёкшим сроком, 63,5 %»: `within_sla_share` and its base."""
    base = f"{ru.number(figures.expired)} {EXPIRED}"
    return share_of(figures.answered_in_time, base, figures.within_sla_share)


def final_in_time(figures: Figures) -> str:
    """The same for the final answer: `final_within_deadline_share` and its base."""
    base = f"{ru.number(figures.final_expired)} {EXPIRED}"
    return share_of(figures.final_in_time, base, figures.final_within_deadline_share)


def templated(figures: Figures) -> str:
    """«5 из 60 оценённых ответов, 8,3 %»."""
    base = of_count(figures.quality_count, ("оценённого ответа", "оценённых ответов"))
    return share_of(figures.templated, base, figures.templated_share)


def csat(figures: Figures) -> str:
    """«8 из 10 оценок, 80 %»."""
    return share_of(figures.rated_positive, of_count(figures.rated, RATINGS_OF), figures.csat)


def from_json(data: dict[str, object]) -> Figures:
    """The counts of a `StatsReport.to_json()` figures object, to word its shares."""
    figures = Figures()
    for name in (
        "appeals",
        "answered",
        "answered_in_time",
        "answered_late",
        "overdue",
        "pending",
        "final_in_time",
        "final_late",
        "final_overdue",
        "final_pending",
        "final_answered",
        "rated",
    ):
        value = data.get(name)
        if isinstance(value, int):
            setattr(figures, name, value)
    share = data.get("csat")
    if isinstance(share, float | int):
        figures.rated_positive = round(share * figures.rated)
    return figures
