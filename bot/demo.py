"""`otklik demo`: the whole tracker against the built-in sandboxes over simulated days.

Simulated citizens comment under a regional government channel's posts and write to its
feedback bot; a simulated press office answers some appeals quickly, some late, some only with
an interim reply, and forgets a few. Everything goes through the real parts: aiogram polling the
Bot API sandbox over HTTP, the one ingest path, SQLite, the reminder scheduler, /stats and the
weekly digest. At the end it prints what supervisors would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot import ru
from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.config import Settings
from bot.demo_admin import ADMIN, admin_tour, appoint_operator
from bot.demo_health import plan_page_health, start_refresh
from bot.demo_state import DemoState, Step
from bot.sandbox import TelegramSandbox
from bot.services.policy import page_calendar
from storage.engine import open_database

logger = logging.getLogger(__name__)

TOKEN = "7000000001:DEMO-sandbox-token"
BOT_ID = 7000000001
CHANNEL_ID = -1002000000001
GROUP_ID = -1002000000002
PRESS_CHAT_ID = -1002000000009
SUPERVISOR: dict[str, Any] = {
    "id": 9100,
    "is_bot": False,
    "first_name": "Ольга",
    "last_name": "Руководитель",
}
OPERATOR: dict[str, Any] = {
    "id": 9200,
    "is_bot": False,
    "first_name": "Мария",
    "last_name": "Пресс-служба",
}
# Monday 2 November 2026, 08:00 Moscow: the week has the 4 November public holiday.
START = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)
OUTPUT = Path("out") / "demo"
SERVE_SPEED = 60  # --serve: simulated seconds per real second
SERVE_TICK = timedelta(minutes=5)  # --serve: how often (simulated) the scheduler looks

POSTS = (
    "Губернатор провёл совещание по подготовке к зиме",
    "В области стартовал ремонт дворов по программе «Комфортная среда»",
    "Новые автобусы выходят на маршруты областного центра",
    "Итоги недели: что сделано по обращениям жителей",
    "Открыта запись на бесплатную диспансеризацию",
)
APPEALS = (
    ("Когда отремонтируют дорогу на улице Ленина? Сплошные ямы, колёса бьём каждый день", False),
    ("Во дворе дома 12 по Садовой не вывозят мусор уже неделю, контейнеры переполнены", False),
    ("Нет отопления в доме 5 по улице Мира, в квартирах 14 градусов, дети болеют!", True),
    ("Почему автобус №23 не ходит по расписанию? Утром ждали 40 минут на остановке", False),
    ("Прошу убрать снег с детской площадки у школы №4, дети не могут пройти", False),
    ("В поликлинике на Советской невозможно записаться к терапевту, телефон не отвечает", False),
    ("На перекрёстке Гагарина и Пушкина не работает светофор, чуть не сбили ребёнка", True),
    ("Когда вернут горячую воду в доме 7 на Лесной? Третий день без воды", True),
    ("Не горят фонари на улице Победы, вечером идти страшно", False),
    ("Почему не начисляют пособие многодетным? Документы сдали в сентябре", False),
    ("Прошу установить пешеходный переход у детского сада №15", False),
    ("Из трубы котельной на Заводской валит чёрный дым, дышать нечем", False),
)
OTHER_COMMENTS = (
    "Спасибо за новости!",
    "Молодцы, так держать 👍",
    "Доброе утро всем",
    "😂😂😂",
    "Кто знает, во сколько открывается МФЦ в субботу?",
)
OPENINGS = (
    "Здравствуйте, {name}! Спасибо, что написали нам.",
    "{name}, добрый день! Разобрались с вашим вопросом вместе с ведомством.",
    "Здравствуйте, {name}. Ваше обращение рассмотрено, сообщаем результат.",
    "Добрый вечер, {name}! Ответ подготовлен по вашему сообщению.",
    "{name}, здравствуйте! Проверили информацию на месте.",
)
CLOSINGS = (
    "Если проблема повторится, напишите в личные сообщения сообщества — проверим снова.",
    "О результате сообщим дополнительно в этой ветке.",
    "Спасибо за неравнодушие и внимательность к своему району!",
    "Контроль исполнения оставляем за собой, держим вас в курсе.",
    "Если что-то не так — позвоните на горячую линию 122, вас соединят с ответственным.",
    "Благодарим за терпение, ситуацию держим на контроле администрации.",
)
# One answer per appeal above, addressed to the citizen; the same answer pasted to two
# citizens is what the template check catches.
ANSWERS = (
    "ремонт дороги на улице Ленина включён в план на июнь 2027 года, подрядчик — "
    "«Дорстрой», контроль за сроками у управления дорожного хозяйства.",
    "управляющая компания «Жилсервис» вывезла мусор сегодня, контейнерная площадка на Садовой "
    "теперь в ежедневном графике до 10:00.",
    "аварийная бригада теплосети устранила утечку на вводе в дом 5, тепло подано к 18:00. "
    "Если батареи холодные — звоните диспетчеру 8 (800) 555-12-34.",
    "департамент транспорта выдал перевозчику предписание по маршруту №23; с понедельника "
    "утром на линии два дополнительных автобуса.",
    "снег с площадки у школы №4 уберут до 12:00 завтра, подрядчик «Городское хозяйство» "
    "получил заявку.",
    "министерство здравоохранения проверило поликлинику на Советской: с 10 ноября открыта "
    "запись через Госуслуги, добавлена вторая линия колл-центра.",
    "ГИБДД и «Горсвет» восстановили работу светофора на перекрёстке Гагарина и Пушкина, "
    "причина — повреждённый кабель.",
    "горячую воду в дом 7 на Лесной дали сегодня в 16:00 после замены задвижки, работы "
    "выполнила «Теплосеть».",
    "заявка на ремонт фонарей на улице Победы передана «Горсвету», замену ламп выполнят до "
    "пятницы.",
    "управление соцзащиты проверило ваши документы: пособие начислено, выплата придёт до 15 "
    "числа, вопросы — по телефону 8 (800) 555-00-11.",
    "переход у детского сада №15 включён в программу безопасности дорог на 2027 год, "
    "разметку нанесут весной.",
    "Росприроднадзор провёл замеры у котельной на Заводской, владельцу выдано предписание, "
    "повторная проверка — 20 ноября.",
)
INTERIM_REPLY = "Здравствуйте! Передали ваше обращение в профильное ведомство, разбираемся."


def _demo_settings(
    sandbox: TelegramSandbox, database_url: str, vk: dict[str, Any] | None = None
) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_SERVER=sandbox.base_url,
        DATABASE_URL=database_url,
        PRESS_CHAT_ID=PRESS_CHAT_ID,
        ADMIN_IDS=str(ADMIN["id"]),  # appoints the operator (bot/demo_admin.py)
        SUPERVISOR_IDS=str(SUPERVISOR["id"]),
        DIGEST_CHAT_IDS=str(SUPERVISOR["id"]),
        **(vk or {}),
    )


def _setup_sandbox(sandbox: TelegramSandbox) -> None:
    sandbox.add_bot(TOKEN, BOT_ID, "oblast_otklik_bot", "Обратная связь — Правительство области")
    sandbox.add_chat(
        {
            "id": CHANNEL_ID,
            "type": "channel",
            "title": "Правительство области",
            "username": "oblast_gov",
            "linked_chat_id": GROUP_ID,
        }
    )
    sandbox.add_chat(
        {
            "id": GROUP_ID,
            "type": "supergroup",
            "title": "Правительство области — обсуждение",
            "linked_chat_id": CHANNEL_ID,
        }
    )
    sandbox.add_chat({"id": PRESS_CHAT_ID, "type": "supergroup", "title": "Пресс-служба"})
    sandbox.add_user(SUPERVISOR)
    sandbox.add_user(OPERATOR)
    sandbox.add_user(ADMIN)
    # The bot is an administrator of the channel and of its discussion group (docs/SETUP.md).
    sandbox.set_admins(CHANNEL_ID, [ADMIN], bot_is_admin=True)
    sandbox.set_admins(GROUP_ID, [ADMIN], bot_is_admin=True)


def _plan(state: DemoState, app: AppContext, days: int) -> None:
    """Every simulated event, in advance, with its platform time."""
    rng = state.rng
    calendar = page_calendar(None, app.defaults)
    sandbox = state.sandbox

    def answer_time(received: datetime, working_hours: float) -> datetime:
        return calendar.add_working_hours(received, working_hours)

    for day in range(days):
        morning = START + timedelta(days=day)
        post_at = morning + timedelta(hours=2)

        def publish(day: int = day, post_at: datetime = post_at) -> None:
            _, forward = sandbox.inject_channel_post(
                CHANNEL_ID, POSTS[day % len(POSTS)], date=post_at
            )
            assert forward is not None
            state.posts[day] = forward["message_id"]
            state.last_update = max(state.last_update, forward["update_id"])

        state.at(post_at, publish)
        weekend = (morning + timedelta(hours=3)).weekday() >= 5
        for n in range(rng.randint(3, 5) if weekend else rng.randint(6, 9)):
            moment = post_at + timedelta(minutes=rng.randint(10, 14 * 60))
            first_name = rng.choice(FIRST_NAMES)
            citizen = {
                "id": 100_000 + day * 100 + n,
                "is_bot": False,
                "first_name": first_name,
                "last_name": surname_for(first_name, rng.choice(SURNAMES)),
            }
            if rng.random() < 0.25:
                text, is_appeal = rng.choice(OTHER_COMMENTS), False
            else:
                choice = rng.randrange(len(APPEALS))
                text, is_appeal = APPEALS[choice][0], True
            holder: dict[str, int] = {}

            def comment(
                day: int = day,
                citizen: dict = citizen,
                text: str = text,
                moment: datetime = moment,
                holder: dict = holder,
            ) -> None:
                sent = sandbox.inject_message(
                    GROUP_ID, citizen, text, reply_to=state.posts[day], date=moment
                )
                holder["id"] = sent["message_id"]
                state.last_update = max(state.last_update, sent["update_id"])

            state.at(moment, comment)
            if not is_appeal:
                continue
            body = ANSWERS[choice]
            answer = (
                f"{rng.choice(OPENINGS).format(name=citizen['first_name'])} "
                f"{body[0].upper()}{body[1:]} {rng.choice(CLOSINGS)}"
            )
            fate = rng.random()
            if fate < 0.55:
                reply_at = answer_time(moment, rng.uniform(0.3, 5))
                _reply(state, reply_at, holder, answer)
            elif fate < 0.75:
                reply_at = answer_time(moment, rng.uniform(9, 20))  # late
                _reply(state, reply_at, holder, answer)
            elif fate < 0.88:
                first = answer_time(moment, rng.uniform(0.5, 3))
                _reply(state, first, holder, INTERIM_REPLY)
                _reply(
                    state,
                    answer_time(moment, rng.uniform(10, 24)),
                    holder,
                    answer,
                )
            # else: nobody answers — it goes overdue and the reminders start.
        if not weekend:
            _private_message(state, morning + timedelta(hours=rng.uniform(1, 8)), day, calendar)


def _reply(state: DemoState, at: datetime, holder: dict[str, int], text: str) -> None:
    def send() -> None:
        sent = state.sandbox.inject_message(
            GROUP_ID, None, text, sender_chat=CHANNEL_ID, reply_to=holder["id"], date=at
        )
        state.last_update = max(state.last_update, sent["update_id"])

    state.at(at, send)


# Citizens' names: a surname agrees with the first name's gender («Анна Смирнова», never
# «Анна Петров»); tests/test_demo_names.py checks every pair with pymorphy3.
FIRST_NAMES = ("Иван", "Анна", "Сергей", "Елена", "Олег")
FEMININE = frozenset({"Анна", "Елена"})
SURNAMES = (
    ("Петров", "Петрова"),
    ("Смирнов", "Смирнова"),
    ("Кузнецов", "Кузнецова"),
    ("Иванов", "Иванова"),
)


def surname_for(first_name: str, forms: tuple[str, str]) -> str:
    """The masculine or feminine form of a surname, as the first name requires."""
    return forms[1] if first_name in FEMININE else forms[0]


def _private_message(state: DemoState, at: datetime, day: int, calendar: Any) -> None:
    sandbox = state.sandbox
    citizen: dict[str, Any] = {
        "id": 200_000 + day,
        "is_bot": False,
        "first_name": "Татьяна",
        "last_name": "Орлова",
    }
    text = (
        f"Здравствуйте! В подъезде дома {10 + day} на улице Строителей третий день не "
        "работает лифт, пожилые люди не могут выйти. Куда обращаться?"
    )

    def write() -> None:
        sandbox.add_user(citizen)
        sent = sandbox.inject_message(citizen["id"], citizen, text, date=at)
        state.last_update = max(state.last_update, sent["update_id"])

    state.at(at, write)
    reply_at = calendar.add_working_hours(at, state.rng.uniform(0.5, 6))

    def operator_reply() -> None:
        relayed = [m for m in sandbox.sent_messages(PRESS_CHAT_ID) if text in (m.text or "")]
        if not relayed:
            return
        sent = sandbox.inject_message(
            PRESS_CHAT_ID,
            OPERATOR,
            "Здравствуйте, Татьяна! Управляющая компания «Жилсервис» вызвала лифтовую службу, "
            "лифт запустят завтра до 12:00. Диспетчер: 8 (800) 555-12-34.",
            reply_to=relayed[-1].message_id,
            date=reply_at,
        )
        state.last_update = max(state.last_update, sent["update_id"])

    state.at(reply_at, operator_reply)


def _plain(text: str) -> str:
    return (
        re.sub(r"<[^>]+>", "", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )


async def run_demo(days: int = 10, serve: bool = False, database_url: str | None = None) -> int:
    """Run the simulation and print what supervisors would see; 0 on success."""
    from bot.services.scheduler import Scheduler
    from handlers.telegram.notifier import RateLimiter, TelegramNotifier
    from handlers.telegram.setup import allowed_updates, confirm_offset, make_bot, make_dispatcher

    # The demo prints what people would see; service logs only for problems (or LOG_LEVEL=DEBUG).
    root = logging.getLogger()
    if root.level > logging.DEBUG:
        root.setLevel(logging.WARNING)
    days = max(1, min(days, 28))
    clock = SimulatedClock(START)
    with tempfile.TemporaryDirectory(prefix="otklik-demo-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/demo.db"
        async with TelegramSandbox() as sandbox:
            _setup_sandbox(sandbox)
            sandbox.now = clock
            from bot.demo_vk import VK_GROUP, VK_TOKEN, VkDemo

            vk_demo = VkDemo(clock)
            await vk_demo.start()
            settings = _demo_settings(sandbox, url, vk_demo.settings())
            async with open_database(url) as engine:
                app = AppContext.create(settings, engine, clock=clock)
                bot = make_bot(TOKEN, sandbox.base_url)
                # The sandbox has no flood limits; the real limiter would only slow the demo.
                app.notifier = TelegramNotifier(
                    bot,
                    limiter=RateLimiter(
                        per_second=10_000, group_per_minute=100_000, private_per_second=10_000
                    ),
                )
                dp, store = make_dispatcher(app)
                store.use_for_polling(bot)
                polling = asyncio.create_task(
                    dp.start_polling(
                        bot,
                        handle_signals=False,
                        handle_as_tasks=False,
                        close_bot_session=False,
                        allowed_updates=allowed_updates(dp),
                        polling_timeout=1,
                    )
                )
                scheduler = Scheduler(app)
                closers: list[Any] = []
                try:
                    await vk_demo.start_intake(app)
                    state = DemoState(sandbox, random.Random(20261102), clock, vk=vk_demo)
                    _plan(state, app, days)
                    vk_demo.plan(state, app, days, START)
                    # Page health (bot/demo_health.py): media, members, views, the refresh.
                    plan_page_health(state, days, START, channel_id=CHANNEL_ID, vk_group=VK_GROUP)
                    ticks, close_health = await start_refresh(
                        app,
                        scheduler,
                        token=TOKEN,
                        api_server=sandbox.base_url,
                        vk_server=vk_demo.sandbox.base_url,
                        vk_group=VK_GROUP,
                        vk_token=VK_TOKEN,
                    )
                    closers.append(close_health)
                    print(
                        f"Отклик, демонстрация: {ru.quantity(days, 'день', 'дня', 'дней')} "
                        f"с 02.11.2026 (4 ноября — праздник), "
                        f"{ru.quantity(len(state.steps), 'событие', 'события', 'событий')} "
                        "в Telegram и ВКонтакте."
                    )
                    await appoint_operator(sandbox, clock, OPERATOR)
                    later = await _simulate(state, ticks, days)
                    await _show(state, app, sandbox, days)
                    await admin_tour(sandbox, clock, "oblast_gov", _period(app, days))
                    if serve:
                        print(
                            f"\nПесочницы работают. Telegram Bot API: {sandbox.base_url}, "
                            f"VK API: {vk_demo.sandbox.base_url} "
                            f"(управление — /_sandbox/). Время идёт в {SERVE_SPEED} раз "
                            "быстрее настоящего: минута в песочнице — секунда, напоминания "
                            "приходят в пресс-чат. Остановить: Ctrl-C."
                        )
                        dashboard = await _serve_dashboard(app)
                        try:
                            with contextlib.suppress(asyncio.CancelledError):
                                await _serve(state, ticks, later)
                        finally:
                            await dashboard.stop()
                finally:
                    for close in closers:
                        await close()
                    await vk_demo.stop()
                    with contextlib.suppress(RuntimeError):
                        await dp.stop_polling()
                    await confirm_offset(bot, store)
                    polling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await polling
                    await store.close()
                    await bot.session.close()
    return 0


def _period(app: AppContext, days: int) -> str:
    """«02.11-11.11»: the simulated days as /stats and /team take them."""
    last = (START + timedelta(days=days - 1)).astimezone(ZoneInfo(app.defaults.timezone))
    return f"02.11-{last:%d.%m}"


async def _serve_dashboard(app: AppContext) -> Any:
    """The dashboard on a free local port, with a login link for the demo's supervisor."""
    from bot.clock import utc_now
    from bot.services.web_access import issue_login_token, login_url
    from handlers.web.server import DashboardServer

    server = DashboardServer(app, app.settings.WEB_LISTEN or "127.0.0.1:0")
    await server.start()
    address = f"http://{server.host}:{server.bound_port}"
    async with app.sessions() as session:
        # Credentials live in real time (the demo's clock runs faster, see SERVE_SPEED).
        token = await issue_login_token(session, SUPERVISOR["id"], utc_now())
        await session.commit()
    print(
        f"Панель Отклика: {address}/ — вход для руководителя (ссылка действует 10 минут, "
        f"один раз): {login_url(address, token)}"
    )
    return server


async def _settle(state: DemoState) -> None:
    """Wait until the intake has handled everything injected so far."""
    if state.last_update:
        await state.sandbox.wait_for_confirmed(state.last_update, timeout=20)
    if state.vk is not None:
        await state.vk.settle()


async def _simulate(state: DemoState, scheduler: Any, days: int) -> list[Step]:
    """Run the planned days; the steps planned after their end are returned, not run.

    The clock never goes past the end and back: what the press chat got and what /stats and
    the digest show are as of the same moment. `--serve` runs the later steps as time goes on.
    """
    end = START + timedelta(days=days)
    tick_every = timedelta(minutes=30)
    next_tick = START
    steps = sorted(state.steps)
    later = [step for step in steps if step.at > end]
    for step in steps[: len(steps) - len(later)]:
        while next_tick <= step.at:
            state.clock.set(next_tick)
            await _settle(state)
            await scheduler.tick()
            next_tick += tick_every
        state.clock.set(step.at)
        step.action()
        await _settle(state)
    while next_tick <= end:
        state.clock.set(next_tick)
        await scheduler.tick()
        next_tick += tick_every
    state.clock.set(end)
    await _settle(state)
    return later


async def _serve(state: DemoState, scheduler: Any, later: list[Step]) -> None:
    """Keep time running, SERVE_SPEED times faster than real time, until cancelled.

    The steps planned after the simulated days happen when their time comes, and the scheduler
    ticks every few simulated minutes, so reminders can be watched arriving in the press chat.
    """
    pending = list(later)
    next_tick = state.clock()
    while True:
        await asyncio.sleep(1)
        now = state.clock() + timedelta(seconds=SERVE_SPEED)
        while pending and pending[0].at <= now:
            step = pending.pop(0)
            state.clock.set(step.at)
            step.action()
            await _settle(state)
        state.clock.set(now)
        if now >= next_tick:
            await scheduler.tick()
            next_tick = now + SERVE_TICK


async def _show(state: DemoState, app: AppContext, sandbox: TelegramSandbox, days: int) -> None:
    from bot.services import digest as digest_service

    OUTPUT.mkdir(parents=True, exist_ok=True)
    reminders = sandbox.sent_messages(PRESS_CHAT_ID)
    with_buttons = [m for m in reminders if m.reply_markup]
    count = ru.quantity(len(reminders), "сообщение", "сообщения", "сообщений")
    print(f"\n=== Пресс-служба: {count} в рабочем чате (пересланные обращения и напоминания) ===")
    if with_buttons:
        first = with_buttons[0]
        keyboard = (first.reply_markup or {})["inline_keyboard"]
        print(_plain(first.text or ""))
        buttons = [b["text"] for row in keyboard for b in row]
        print("Кнопки: " + " | ".join(buttons))
        # The operator takes the first reminded appeal into work.
        take = keyboard[0][0]["callback_data"]
        press = sandbox.inject_callback_query(OPERATOR, first, take)
        await sandbox.wait_for_confirmed(press["update_id"], timeout=20)
        if sandbox.callback_answers:
            print(f"«{buttons[0]}» → {sandbox.callback_answers[-1].get('text', 'ок')}")

    already = len(sandbox.sent_messages(SUPERVISOR["id"]))
    command = sandbox.inject_message(
        SUPERVISOR["id"], SUPERVISOR, f"/stats {_period(app, days)}", date=state.clock()
    )
    await sandbox.wait_for_confirmed(command["update_id"], timeout=30)
    answers = sandbox.sent_messages(SUPERVISOR["id"])[already:]
    print(f"\n=== Руководитель: /stats {_period(app, days)} ===")
    for message in answers:
        for upload in message.files:
            (OUTPUT / upload.filename).write_bytes(upload.data)
            print(f"[график отправлен в чат и сохранён: {OUTPUT / upload.filename}]")
        if message.text:
            print(_plain(message.text))

    week = digest_service.parse_week("2026-W45", state.clock(), app.defaults.timezone)
    async with app.sessions() as session:
        built = await digest_service.build_digest(session, app, week)
    (OUTPUT / "digest-2026-W45.png").write_bytes(built.chart_png)
    print("\n=== Еженедельная сводка (понедельник 09:00) ===")
    print(digest_service.plain_text(built.text))
    print(f"[график: {OUTPUT / 'digest-2026-W45.png'}]")
