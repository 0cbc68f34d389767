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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot import ru
from bot.app import AppContext
from bot.clock import SimulatedClock
from bot.config import Settings
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


@dataclass(order=True)
class Step:
    at: datetime
    order: int
    action: Any = field(compare=False)


@dataclass
class DemoState:
    sandbox: TelegramSandbox
    rng: random.Random
    clock: SimulatedClock
    posts: dict[int, int] = field(default_factory=dict)  # day -> forward message id
    last_update: int = 0
    steps: list[Step] = field(default_factory=list)
    counter: int = 0
    vk: Any = None  # VkDemo: the VK community beside the Telegram channel

    def at(self, moment: datetime, action: Any) -> None:
        self.counter += 1
        self.steps.append(Step(moment, self.counter, action))


def _demo_settings(
    sandbox: TelegramSandbox, database_url: str, vk: dict[str, Any] | None = None
) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_SERVER=sandbox.base_url,
        DATABASE_URL=database_url,
        PRESS_CHAT_ID=PRESS_CHAT_ID,
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
            citizen = {
                "id": 100_000 + day * 100 + n,
                "is_bot": False,
                "first_name": rng.choice(("Иван", "Анна", "Сергей", "Елена", "Олег")),
                "last_name": rng.choice(("Петров", "Смирнова", "Кузнецов", "Иванова")),
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
                try:
                    await vk_demo.start_intake(app)
                    state = DemoState(sandbox, random.Random(20261102), clock, vk=vk_demo)
                    _plan(state, app, days)
                    vk_demo.plan(state, app, days)
                    print(
                        f"Отклик, демонстрация: {ru.quantity(days, 'день', 'дня', 'дней')} "
                        f"с 02.11.2026 (4 ноября — праздник), "
                        f"{ru.quantity(len(state.steps), 'событие', 'события', 'событий')} "
                        "в Telegram и ВКонтакте."
                    )
                    await _simulate(state, scheduler, days)
                    await _show(state, app, sandbox, days)
                    if serve:
                        print(
                            f"\nПесочницы работают. Telegram Bot API: {sandbox.base_url}, "
                            f"VK API: {vk_demo.sandbox.base_url} "
                            f"(управление — /_sandbox/). Остановить: Ctrl-C."
                        )
                        dashboard = await _serve_dashboard(app)
                        try:
                            with contextlib.suppress(asyncio.CancelledError):
                                await asyncio.Event().wait()
                        finally:
                            await dashboard.stop()
                finally:
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


async def _serve_dashboard(app: AppContext) -> Any:
    """The dashboard on a free local port, with a login link for the demo's supervisor."""
    from bot.services.web_access import issue_login_token, login_url
    from web.server import DashboardServer

    server = DashboardServer(app, app.settings.WEB_LISTEN or "127.0.0.1:0")
    await server.start()
    address = f"http://{server.host}:{server.bound_port}"
    async with app.sessions() as session:
        token = await issue_login_token(session, SUPERVISOR["id"], app.clock())
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


async def _simulate(state: DemoState, scheduler: Any, days: int) -> None:
    end = START + timedelta(days=days)
    tick_every = timedelta(minutes=30)
    next_tick = START
    for step in sorted(state.steps):
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

    end_day = (
        (START + timedelta(days=days - 1))
        .astimezone(ZoneInfo(app.defaults.timezone))
        .strftime("%d.%m")
    )
    already = len(sandbox.sent_messages(SUPERVISOR["id"]))
    command = sandbox.inject_message(
        SUPERVISOR["id"], SUPERVISOR, f"/stats 02.11-{end_day}", date=state.clock()
    )
    await sandbox.wait_for_confirmed(command["update_id"], timeout=30)
    answers = sandbox.sent_messages(SUPERVISOR["id"])[already:]
    print(f"\n=== Руководитель: /stats 02.11-{end_day} ===")
    for message in answers:
        for upload in message.files:
            print(f"[график {upload.filename}, {upload.size // 1024} КБ, отправлен в чат]")
        if message.text:
            print(_plain(message.text))

    week = digest_service.parse_week("2026-W45", state.clock(), app.defaults.timezone)
    async with app.sessions() as session:
        built = await digest_service.build_digest(session, app, week)
    (OUTPUT / "digest-2026-W45.png").write_bytes(built.chart_png)
    print("\n=== Еженедельная сводка (понедельник 09:00) ===")
    print(digest_service.plain_text(built.text))
    print(f"[график: {OUTPUT / 'digest-2026-W45.png'}]")


# ------------------------------------------------------------------------------------- VK part
# A VK community beside the Telegram channel: the real VkIntake (vk_api's Bots Long Poll over
# HTTP) against the VK sandbox, fed over the same simulated days.

VK_GROUP = 230_000_001
VK_TOKEN = "vk1.a.DEMO-community-token"
VK_ADMIN = 9300
VK_APPEALS = (
    "Когда починят дорогу на Заречной? Ямы по колено",
    "Почему не вывозят мусор с площадки на Полевой, 3? Неделю стоит",
    "В доме 9 на Школьной нет холодной воды с утра, когда дадут?",
    "Прошу проверить детскую площадку во дворе Мира, 20 — сломаны качели",
    "Когда откроют новую поликлинику в микрорайоне Северный?",
)
VK_REPLIES = (
    "Здравствуйте! Ремонт дороги включён в план на май 2027 года, подрядчик — «Дорстрой».",
    "Добрый день! Управляющая компания вывезла мусор сегодня, график восстановлен.",
    "Здравствуйте! Аварийная служба водоканала устранила порыв, вода будет до 17:00.",
)


class VkDemo:
    """The VK sandbox, the VK intake and the simulated community for the demo."""

    def __init__(self, clock: SimulatedClock) -> None:
        from bot.sandbox.vk import VkSandbox

        self.sandbox = VkSandbox(clock=clock, history_limit=100_000)
        self.intake: Any = None
        self.task: asyncio.Task[None] | None = None
        self.post_id = 0

    async def start(self) -> str:
        base_url = await self.sandbox.start()
        self.sandbox.add_group(VK_GROUP, "Администрация областного центра", VK_TOKEN)
        self.sandbox.add_user(VK_ADMIN, "Ирина", "Соколова")
        return base_url

    def settings(self) -> dict[str, Any]:
        return {"VK_GROUP_TOKENS": f"{VK_GROUP}:{VK_TOKEN}", "VK_API_SERVER": self.sandbox.base_url}

    async def start_intake(self, app: AppContext) -> None:
        from handlers.vk.intake import VkIntake

        self.intake = VkIntake(app, wait=1, rps_delay=0)
        self.task = asyncio.create_task(self.intake.run(), name="vk-intake")
        await asyncio.wait_for(self.intake.wait_ready(), 20)

    async def settle(self) -> None:
        """Until the intake has handled every event the sandbox emitted."""
        emitted = len(self.sandbox.pending_events(VK_GROUP))
        async with asyncio.timeout(20):
            while self.intake.processed < emitted:  # noqa: ASYNC110  (counter of another task)
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self.intake is not None:
            await self.intake.stop()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.sandbox.stop()

    def plan(self, state: DemoState, app: AppContext, days: int) -> None:
        """Wall comments, the community's replies and one dialogue a working day."""
        rng = random.Random(4_11_2026)
        calendar = page_calendar(None, app.defaults)
        box, wall = self.sandbox, -VK_GROUP
        for day in range(days):
            morning = START + timedelta(days=day)
            if (morning + timedelta(hours=3)).weekday() >= 5:
                continue
            post_at = morning + timedelta(hours=1, minutes=30)

            def publish(post_at: datetime = post_at, day: int = day) -> None:
                self.post_id = box.add_post(wall, f"Новости города, день {day + 1}", post_at)

            state.at(post_at, publish)
            for n in range(rng.randint(2, 4)):
                moment = post_at + timedelta(minutes=rng.randint(15, 9 * 60))
                citizen = 300_000 + day * 10 + n
                text = rng.choice(VK_APPEALS)
                holder: dict[str, int] = {}

                def comment(
                    citizen: int = citizen,
                    text: str = text,
                    moment: datetime = moment,
                    holder: dict = holder,
                ) -> None:
                    box.add_user(citizen, "Житель", f"№{citizen}")
                    holder["id"] = box.add_comment(wall, self.post_id, citizen, text, moment)
                    holder["post"] = self.post_id

                state.at(moment, comment)
                fate = rng.random()
                if fate < 0.6:
                    hours = rng.uniform(0.5, 6) if fate < 0.45 else rng.uniform(9, 16)
                    reply_at = calendar.add_working_hours(moment, hours)

                    def reply(at: datetime = reply_at, holder: dict = holder) -> None:
                        box.add_comment(
                            wall, holder["post"], wall, rng.choice(VK_REPLIES), at, holder["id"]
                        )

                    state.at(reply_at, reply)
                elif fate < 0.7:
                    # Rude, or just inconvenient: the community deletes it.
                    delete_at = moment + timedelta(hours=1)

                    def delete(holder: dict = holder) -> None:
                        box.delete_comment(wall, holder["id"], wall)

                    state.at(delete_at, delete)
            # A dialogue: two messages, then the community answers both at once.
            peer = 400_000 + day
            asked = morning + timedelta(hours=rng.uniform(2, 7))
            for k, text in enumerate(
                ("Здравствуйте! Когда включат отопление в доме 4 на Лесной?", "В квартире +15")
            ):

                def write(
                    peer: int = peer, text: str = text, at: datetime = asked + timedelta(minutes=k)
                ) -> None:
                    box.send_community_message(VK_GROUP, peer, peer, text, at)

                state.at(asked + timedelta(minutes=k), write)
            answer_at = calendar.add_working_hours(asked, rng.uniform(0.5, 4))

            def answer(peer: int = peer, at: datetime = answer_at) -> None:
                box.send_community_message(
                    VK_GROUP,
                    peer,
                    VK_ADMIN,
                    "Здравствуйте! Теплосеть подключит дом сегодня до 18:00, проверим лично.",
                    at,
                    out=True,
                )

            state.at(answer_at, answer)
