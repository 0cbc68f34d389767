"""A review of every Russian text with a count, at 0/1/2/5/11/21/22/25/111/1001 (issue 12).

Each text is rendered by the code that sends it (cards, /stats, the digest, the overdue
summary, /page, the CLI's summaries) and compared with a table of the forms a Russian reader
expects, written out here by hand rather than computed by `bot.ru.plural`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot import ru
from bot.services.cards import AppealCard, appeals_count, reminder_header
from bot.services.digest import _index_lines, _summary_line
from bot.services.figures import Figures, StatsReport
from bot.services.final_stage import FinalStage
from bot.services.overdue import summary_header
from bot.services.reclassify import ReclassifySummary
from bot.services.report_text import format_stats
from bot.services.team import OperatorWork, TeamReport, team_lines
from bot.text.training import TrainSummary
from handlers.telegram.pressoffice import _working_days

COUNTS = (0, 1, 2, 5, 11, 21, 22, 25, 111, 1001)
NBSP, NNBSP = "\u00a0", "\u202f"
MSK = ZoneInfo("Europe/Moscow")
AT = datetime(2026, 11, 10, 9, tzinfo=MSK).astimezone(UTC)

# The expected form for each count of COUNTS, in order: 0 1 2 5 11 21 22 25 111 1001.
FORMS = {
    "обращение": "обращений обращение обращения обращений обращений обращение обращения "
    "обращений обращений обращение",
    "ответ": "ответов ответ ответа ответов ответов ответ ответа ответов ответов ответ",
    "сообщение": "сообщений сообщение сообщения сообщений сообщений сообщение сообщения "
    "сообщений сообщений сообщение",
    "решение": "решений решение решения решений решений решение решения решений решений решение",
    "день": "дней день дня дней дней день дня дней дней день",
    "исправление": "исправлений исправление исправления исправлений исправлений исправление "
    "исправления исправлений исправлений исправление",
    "тексте": "текстах тексте текстах текстах текстах тексте текстах текстах текстах тексте",
    "поменяло": "поменяли поменяло поменяли поменяли поменяли поменяло поменяли поменяли "
    "поменяли поменяло",
    "рабочий": "рабочих рабочий рабочих рабочих рабочих рабочий рабочих рабочих рабочих рабочий",
    # After «из», «не дольше», «у»: the genitive — singular for 1, 21, 1001.
    "обращения (род.)": "обращений обращения обращений обращений обращений обращения обращений "
    "обращений обращений обращения",
    "дня (род.)": "дней дня дней дней дней дня дней дней дней дня",
    # Verbs agree with the count.
    "ждёт": "ждут ждёт ждут ждут ждут ждёт ждут ждут ждут ждёт",
    "просрочено": "просрочено просрочено просрочены просрочено просрочено просрочено просрочены "
    "просрочено просрочено просрочено",
    "стало": "стали стало стали стали стали стало стали стали стали стало",
    "сохранено": "сохранено сохранено сохранены сохранено сохранено сохранено сохранены "
    "сохранено сохранено сохранено",
}


def form(word: str, n: int) -> str:
    return FORMS[word].split()[COUNTS.index(n)]


def num(n: int) -> str:
    """«1 001» with the narrow no-break space, as bot.ru writes thousands."""
    return ru.number(n)


def plain(text: str) -> str:
    return text.replace("<b>", "").replace("</b>", "")


def test_the_table_covers_every_count() -> None:
    assert all(len(forms.split()) == len(COUNTS) for forms in FORMS.values())
    assert num(1001) == f"1{NNBSP}001"


@pytest.mark.parametrize("n", COUNTS)
def test_cards_and_reminders(n: int) -> None:
    assert appeals_count(n) == f"{num(n)}{NBSP}{form('обращение', n)}"
    if n:  # a reminder about several appeals; never about none
        assert plain(reminder_header(n)) == (
            f"🔔 Напоминание: {num(n)}{NBSP}{form('обращение', n)} {form('ждёт', n)} ответа"
        )


@pytest.mark.parametrize("n", [n for n in COUNTS if n])
def test_overdue_summary(n: int) -> None:
    overdue = [_card(i) for i in range(n)]
    header = plain(summary_header(overdue, AT, "Europe/Moscow"))
    assert (
        header == f"📋 На 09:00 10.11 {form('просрочено', n)} {num(n)}{NBSP}{form('обращение', n)}"
    )
    reopened = [_card(i, reopened=True) for i in range(n)]
    header = plain(summary_header(reopened, AT, "Europe/Moscow"))
    verb = form("просрочено", n).replace("просрочен", "возвращен")
    assert header.endswith(f"{verb} жителями {num(n)}{NBSP}{form('обращение', n)}")


@pytest.mark.parametrize("n", COUNTS)
def test_stats(n: int) -> None:
    figures = Figures(
        appeals=n,
        answered=n,
        answered_in_time=n,
        final_answered=n,
        final_in_time=n,
        formal_replies=n,
        reopened=n,
        deleted_by_page=n,
        frt_median_s=86400.0 * n,
        frt_median_work_s=3600.0 * n,
        frt_p90_s=86400.0 * n,
        replied=n,
    )
    report = StatsReport(since=AT, until=AT, at=AT, total=figures, pages=[])
    lines = format_stats(report, "Europe/Moscow").splitlines()
    appeals = f"{num(n)}{NBSP}{form('обращение', n)}"
    assert f"Всего: {appeals}" in lines
    if not n:
        return
    of_appeals = f"{num(n)}{NBSP}{form('обращения (род.)', n)}"
    assert any(line.startswith(f"• ответили: {num(n)} из {of_appeals}, 100") for line in lines)
    assert f"• похожи на отписку: {num(n)}{NBSP}{form('ответ', n)}" in lines
    assert f"• вернулись недовольными: {appeals}" in lines
    assert f"• удалено страницей: {appeals}" in lines
    [frt] = [line for line in lines if line.startswith("• первый ответ")]
    assert f"медиана {num(n)}{NBSP}{form('день', n)}" in frt
    assert f"не дольше {num(n)}{NBSP}{form('дня (род.)', n)}" in frt
    # Working time in hours, never «1 день» of working time.
    hours = f"{num(n)}{NBSP}ч"
    assert f"(рабочего времени {hours})" in frt


@pytest.mark.parametrize("n", COUNTS)
def test_digest(n: int) -> None:
    total = {
        "appeals": n,
        "answered": n,
        "overdue": 0,
        "pending": 0,
        "formal_replies": n,
        "reopened": n,
        "frt_median_s": 86400.0 * n if n else None,
        "frt_p90_s": 86400.0 * n if n else None,
    }
    summary = _summary_line(total, {})
    assert summary.startswith(f"Поступило {num(n)}{NBSP}{form('обращение', n)} (неделей раньше")
    if n:
        assert f"через {num(n)}{NBSP}{form('день', n)}" in summary
        assert f"не дольше {num(n)}{NBSP}{form('дня (род.)', n)}." in summary
    lines = _index_lines(total, {})
    if n:
        assert f"• похожи на отписку: {num(n)}{NBSP}{form('ответ', n)}" in lines
        assert f"• вернулись недовольными: {num(n)}{NBSP}{form('обращение', n)}" in lines


@pytest.mark.parametrize("n", [n for n in COUNTS if n])
def test_page_final_days(n: int) -> None:
    assert _working_days(n) == f"{num(n)}{NBSP}{form('рабочий', n)} {form('день', n)}"


@pytest.mark.parametrize("n", COUNTS)
def test_durations(n: int) -> None:
    if n:
        assert ru.duration(86400.0 * n) == f"{num(n)}{NBSP}{form('день', n)}"
        assert ru.duration(86400.0 * n, genitive=True) == f"{num(n)}{NBSP}{form('дня (род.)', n)}"
    assert ru.working_duration(3600.0 * n) == (f"{num(n)}{NBSP}ч" if n else f"0{NBSP}мин")


@pytest.mark.parametrize("n", [n for n in COUNTS if n])
def test_cli_reclassify_summary(n: int) -> None:
    summary = ReclassifySummary(
        model_version="m1",
        checked=n,
        became_appeals=n,
        topic_changed=n,
        kept_by_people=n,
    )
    lines = summary.report_ru().splitlines()
    assert lines[0] == f"Пересмотрено {num(n)}{NBSP}{form('сообщение', n)} граждан моделью m1."
    assert lines[1].startswith(f"{num(n)}{NBSP}{form('сообщение', n)} {form('стало', n)} ")
    assert f"У {num(n)}{NBSP}{form('обращения (род.)', n)} сменилась тема." in lines
    assert (
        f"{num(n)}{NBSP}{form('решение', n)} людей {form('сохранено', n)}, "
        "хотя модель решила бы иначе."
    ) in lines


@pytest.mark.parametrize("n", [n for n in COUNTS if n])
def test_cli_train_summary(n: int) -> None:
    summary = TrainSummary(
        path=Path("model.bin"),
        corrections=n,
        used=n,
        rejected=0,
        overriding=n,
        corpus=n,
        examples=n,
        changed=True,
        version="v",
    )
    lines = summary.report_ru().splitlines()
    assert lines[1] == (
        f"{num(n)}{NBSP}{form('исправление', n)} {form('поменяло', n)} "
        "разметку встроенного корпуса."
    )
    assert (
        lines[2] == f"Модель обучена на {num(n)} {form('тексте', n)} (встроенный корпус: {num(n)})."
    )


@pytest.mark.parametrize("n", COUNTS)
def test_team(n: int) -> None:
    work = OperatorWork(actor_id="1", name="Анна Смирнова", taken=n, answered=n, in_time=n, open=n)
    lines = team_lines(TeamReport(operators=[work], untaken_open=n, appeals=n), "неделю")
    in_time = f"в срок {num(n)} из {num(n)}" if n else "в срок —"
    assert lines[1] == (
        f"• Анна Смирнова: взято в работу {num(n)}, ответили {num(n)} ({in_time}), открыто {num(n)}"
    )


def _card(appeal_id: int, *, reopened: bool = False) -> AppealCard:
    received = datetime(2026, 11, 9, 10, tzinfo=MSK).astimezone(UTC)
    final = None
    if reopened:
        final = FinalStage(at=AT, started_at=AT, deadline=AT, answered_at=None, reopened_at=AT)
    return AppealCard(
        appeal_id=appeal_id,
        at=AT,
        page_title="Правительство области",
        platform="telegram",
        topic="roads",
        urgent=False,
        received_at=received,
        deadline=received,
        excerpt="",
        citizen_name=None,
        link=None,
        link_label="Открыть",
        taken_by=None,
        taken_at=None,
        timezone="Europe/Moscow",
        working_left_s=0.0,
        answered_at=received if reopened else None,
        final=final,
    )
