"""Regression sets for the decision rule and the danger concepts (docs/CLASSIFIER.md).

The texts are written here, not taken from the corpus: they fail when the rule «a question to
the page about a public matter is an appeal» or any urgent concept regresses.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.text import classify

# One-line questions and requests to the page, with and without a question mark.
QUESTIONS = [
    "Когда включат фонари на Парковой?",
    "когда дадут горячую воду на Лесной",
    "Где теперь останавливается 12 автобус?",
    "где получить справку для субсидии",
    "Будет ли ремонт дороги на Заречной в этом году?",
    "будет ли отопление в школе к понедельнику",
    "Почему не убирают снег во дворе на Мира 14?",
    "почему опять нет света на Садовой",
    "Сколько ещё ждать детскую площадку?",
    "Кто отвечает за уборку остановки у рынка?",
    "Куда жаловаться на шум стройки ночью?",
    "А бассейн в ФОКе когда откроют?",
    "Подскажите, как записать ребенка в первый класс",
    "Как получить выплату многодетным?",
    "Когда починят светофор на перекрёстке Гагарина и Ленина?",
    "Уберите пожалуйста сугробы с тротуара у поликлиники",
    "Прошу проверить цены на лекарства в аптеке на Советской",
    "Сделайте пешеходный переход у школы 5",
    "будут ли возить детей на автобусе в школу из Заречья",
    "Что с мостом через Сосновку? Закрыт уже месяц",
]

# Not appeals: gratitude, greetings, ads, chatter, condolences.
NOT_APPEALS = [
    "Спасибо большое за новую площадку! Дети счастливы",
    "С Днём города, дорогие земляки! 🎉",
    "Продаю дрова берёзовые колотые, доставка, звоните 89001234567",
    "Ирина, да я тоже там была, очередь небольшая",
    "Светлая память, соболезнуем родным",
    "👍👍👍",
]

# Urgent concepts: several paraphrases each (colloquial, CAPS, emoji, formal).
URGENT: dict[str, list[Any]] = {
    "gas": [
        "в подъезде сильно пахнет газом, позвонили в 104 никто не едет",
        "ВОНЯЕТ ГАЗОМ НА ВТОРОМ ЭТАЖЕ УЖЕ ЧАС",
        "У соседей шипит газовая труба, запах по всему дому, что делать?",
    ],
    "fire": [
        "горит сарай за домом 7 огонь перекидывается на гаражи",
        "Подъезд весь в дыму, дети не могут выйти, пожарных нет 🔥🔥",
        "на Лесной горит дом там люди внутри",
    ],
    "trapped": [
        "Застряли в лифте с ребенком уже сорок минут, диспетчер не отвечает",
        "бабушка заперта в квартире не может выйти дверь заклинило",
        "ЛЮДИ ЗАСТРЯЛИ В ЛИФТЕ НА ЛЕНИНА 5 ПОМОГИТЕ",
    ],
    "unconscious": [
        "Мужчина лежит без сознания на остановке у рынка, скорую вызвали",
        "у отца инсульт а скорая едет уже час",
        "человек упал на улице и не дышит, помогите кто-нибудь",
    ],
    "help_late": [
        "Скорую ждем третий час, у ребенка температура 40, что происходит?",
        "вызвали скорую в 9 утра до сих пор никого",
        "Пожарные так и не приехали, дым валит из подвала",
    ],
    "child_danger": [
        "Дети играют на тонком льду на пруду, никто не следит",
        pytest.param(
            "на стройке нет забора дети лазят в котлован",
            marks=pytest.mark.xfail(
                strict=True,
                reason="known miss since the blind sets joined the training part: the first "
                "set's writer labelled an unfenced pit with children climbing in as not urgent "
                "(corrected, docs/CLASSIFIER.md); the thin-ice paraphrase of the concept holds",
            ),
        ),
        "Открытый люк прямо у детского сада, ребенок чуть не упал",
    ],
    "animals": [
        "Стая собак напала на школьника у гаражей, покусали",
        "собаки бросаются на детей у школы, вчера укусили девочку",
        "БРОДЯЧИЕ СОБАКИ КУСАЮТ ПРОХОЖИХ НА ПУСТЫРЕ",
    ],
    "collapse": [
        "По мосту через реку пошла трещина, машины едут как ни в чём не бывало",
        "в доме 12 обрушился балкон, остальные тоже висят над тротуаром",
        "Стена дома треснула, штукатурка падает на людей, дом аварийный",
    ],
    "flooding": [
        "Затопило подвал и первый этаж, вода поднимается, помогите",
        "прорвало трубу кипяток хлещет в подъезд",
        "Улицу Заречную подтопило, вода по колено, люди не могут выйти из домов",
    ],
    "no_heating": [
        "НЕТ ОТОПЛЕНИЯ ТРЕТИЙ ДЕНЬ НА УЛИЦЕ МИНУС 25 ДЕТИ МЕРЗНУТ",
        "батареи ледяные неделю, в квартире +12, мороз",
        "Уважаемая администрация! В доме по ул. Строителей, 4 с 10 января не подается "
        "отопление, температура на улице −30, в квартирах пожилые люди и младенцы. "
        "Прошу принять срочные меры.",
    ],
    "no_water": [
        "Воды нет уже пятый день, ни холодной ни горячей, как жить",
        "третьи сутки без воды в Заречье, подвоза нет",
        pytest.param(
            "когда дадут воду?? неделю сидим с сухими кранами",
            marks=pytest.mark.xfail(
                strict=True, reason="known miss: a «когда…?» question outweighs the concept"
            ),
        ),
    ],
    "toxic": [
        "От завода опять выброс, дышать нечем, глаза слезятся",
        "над городом какой-то едкий смог, дети кашляют, что это за выбросы?",
        "Химический запах по всему району с утра, людям плохо",
    ],
    "wires": [
        "оборванные провода лежат на тротуаре у школы, искрят",
        "Провод под напряжением висит до земли на детской площадке",
        "на столбе у дома 3 искрит, провода оголенные, дети рядом ходят",
    ],
    "medicine": [
        "Инсулин закончился, в аптеке по льготному рецепту не выдают уже месяц",
        "у мамы онкология, препараты не выдают, осталось на три дня",
        "Ребенку с эпилепсией нужны лекарства, в аптеке нет, запас кончается",
    ],
    "accident": [
        "На перекрестке Мира и Гагарина ДТП, есть пострадавшие",
        "машина сбила пешехода на переходе у школы, светофор не работает",
        "Автобус перевернулся на трассе, люди пострадали",
    ],
}


@pytest.mark.parametrize("text", QUESTIONS)
def test_questions_and_requests_to_the_page_are_appeals(text: str) -> None:
    result = classify(text)
    assert result.is_appeal, (text, result)


@pytest.mark.parametrize("text", NOT_APPEALS)
def test_gratitude_greetings_ads_chatter_are_not_appeals(text: str) -> None:
    assert not classify(text).is_appeal


def _cases() -> list[object]:
    """(concept, text) pairs; an xfail mark on a text carries over to its pair."""
    cases: list[object] = []
    for concept, texts in URGENT.items():
        for text in texts:
            if isinstance(text, str):
                cases.append((concept, text))
            else:  # a pytest.param with a mark
                cases.append(pytest.param(concept, *text.values, marks=text.marks))
    return cases


@pytest.mark.parametrize(("concept", "text"), _cases())
def test_every_danger_concept_is_an_urgent_appeal(concept: str, text: str) -> None:
    result = classify(text)
    assert result.is_appeal and result.urgent, (concept, text, result)
