"""Page health in Russian: the «Страница» block of /stats, the digest section, /page ID.

Figures come from bot/services/health.py; unknown figures are «нет данных» with the reason,
never a zero.
"""

from __future__ import annotations

import html
from typing import Any

from bot import ru
from bot.config import Settings
from bot.services.health import BestPost, PageHealth

NO_DATA = "нет данных"


def _or_gap(value: str | None) -> str:
    return value if value is not None else NO_DATA


def _signed(value: int) -> str:
    return ("+" if value > 0 else "") + ru.number(value)


def page_block(health: PageHealth, *, escape: bool = True) -> list[str]:
    """The «Страница» block: subscribers, rhythm, video, reach, engagement, the index."""
    esc = html.escape if escape else str
    subscribers = None
    if health.subscribers is not None:
        subscribers = ru.number(health.subscribers)
        if health.subscribers_change is not None:
            subscribers += f" ({_signed(health.subscribers_change)} за период)"
    rhythm = NO_DATA
    if health.posts_per_week is not None:
        norm = ru.number(health.posts_per_week_norm, 1)
        mark = " — ниже нормы" if health.below_norm else ""
        rhythm = (
            f"{ru.quantity(health.posts, 'пост', 'поста', 'постов')}, "
            f"{ru.number(health.posts_per_week, 1)} в неделю при норме {norm}{mark}"
        )
    silence = None
    if health.longest_silence_days is not None:
        silence = f"{ru.number(health.longest_silence_days, 1)} дн."
    views = None
    if health.views_per_post is not None:
        views = ru.number(health.views_per_post)
        if health.reach_rate is not None:
            views += f", охват {ru.percent(health.reach_rate)} подписчиков"
    engagement = None
    if health.er is not None or health.err is not None:
        parts = []
        if health.er is not None:
            parts.append(f"ER {ru.percent(health.er, 2)}")
        if health.err is not None:
            parts.append(f"ERR {ru.percent(health.err, 2)}")
        engagement = ", ".join(parts)
    index = None if health.health_index is None else f"{ru.number(health.health_index, 1)} из 100"
    penetration = None if health.penetration is None else ru.percent(health.penetration, 2)
    video = None if health.video_share is None else ru.percent(health.video_share)
    length = None
    if health.text_length_mean is not None:
        length = ru.quantity(round(health.text_length_mean), "знак", "знака", "знаков")
    comments = None
    if health.comments_open_share is not None:
        comments = ru.percent(health.comments_open_share)
    lines = [
        "Страница:",
        f"  подписчики: {_or_gap(subscribers)}",
        f"  проникновение: {_or_gap(penetration)}",
        f"  публикации: {rhythm}",
        f"  самое долгое молчание: {_or_gap(silence)}",
        f"  доля видео: {_or_gap(video)}",
        f"  средняя длина текста: {_or_gap(length)}",
        f"  просмотры поста (через 72 ч): {_or_gap(views)}",
        f"  вовлечённость: {_or_gap(engagement)}",
        f"  комментарии открыты: {_or_gap(comments)}",
        f"  индекс здоровья страницы: {_or_gap(index)}",
    ]
    if health.missing:
        lines.append("  нет данных: " + "; ".join(esc(reason) for reason in health.missing))
    return lines


def digest_section(
    pages: list[dict[str, Any]], before: dict[int, dict[str, Any]], best: BestPost | None
) -> list[str]:
    """The digest's «Здоровье страниц» (HTML): the index against last week, the pages below
    their posting norm, the best post of the week by views (`pages`: stats --json pages)."""
    followed = [page for page in pages if page.get("health")]
    if not followed:
        return []
    lines = ["<b>Здоровье страниц</b>"]
    below = []
    for page in followed:
        health = page["health"]
        title = html.escape(page.get("title") or f"страница {page['page_id']}")
        index = health.get("health_index")
        previous = (before.get(page["page_id"]) or {}).get("health") or {}
        change = ""
        if index is not None and previous.get("health_index") is not None:
            change = f" ({_signed_float(index - previous['health_index'])} к прошлой неделе)"
        shown = NO_DATA if index is None else ru.number(index, 1)
        subscribers = health.get("subscribers")
        people = "" if subscribers is None else f", подписчиков {ru.number(subscribers)}"
        lines.append(f"• <b>{title}</b>: индекс {shown}{change}{people}")
        ppw, norm = health.get("posts_per_week"), health.get("posts_per_week_norm")
        if ppw is not None and norm is not None and ppw < norm:
            below.append(f"{title} ({ru.number(ppw, 1)} при норме {ru.number(norm, 1)})")
    if below:
        lines.append("Ниже нормы публикаций: " + ", ".join(below))
    if best is not None:
        kind = KIND_NAMES.get(best.kind, best.kind)
        views = ru.quantity(best.views, "просмотр", "просмотра", "просмотров")
        link = f' — <a href="{html.escape(best.link)}">открыть</a>' if best.link else ""
        lines.append(f"Лучший пост недели по охвату: {kind}, {views}{link}")
    return lines


def _signed_float(value: float) -> str:
    return ("+" if value > 0 else "") + ru.number(value, 1)


KIND_NAMES = {
    "video": "видео",
    "clip": "клип",
    "photo": "фото",
    "text": "текст",
    "poll": "опрос",
    "repost": "репост",
}


def data_advice(platform: str, kind: str, username: str | None, settings: Settings) -> list[str]:
    """/page ID: what page health lacks for this page and which right or token would give it."""
    lines = []
    if platform == "telegram" and kind == "tg_channel":
        lines.append(
            "Посты и реакции: бот должен быть администратором канала (он получает публикации "
            "и счётчики реакций); подписчики — тоже через права администратора."
        )
        if not settings.TELEGRAM_PREVIEW_VIEWS:
            lines.append(
                "Просмотры: Bot API их не даёт; включите TELEGRAM_PREVIEW_VIEWS, чтобы читать "
                "их с открытой страницы канала t.me/s/."
            )
        elif not username:
            lines.append("Просмотры: канал закрытый, открытой страницы с просмотрами нет.")
        lines.append("Репосты: Telegram не сообщает их ботам.")
    elif platform == "vk":
        if settings.VK_SERVICE_TOKEN is None:
            lines.append(
                "Просмотры, лайки, репосты: нужен сервисный ключ приложения VK_SERVICE_TOKEN "
                "(wall.getById)."
            )
        if kind == "vk_group":
            lines.append("Подписчики: groups.getById (работает с ключом сообщества или сервисным).")
            if not settings.vk_group_tokens:
                lines.append(
                    "Новые посты: ключ сообщества в VK_GROUP_TOKENS и событие wall_post_new "
                    "в Long Poll или Callback API."
                )
        else:
            lines.append("Подписчики личной страницы: Отклик их не читает.")
    else:
        lines.append("Здоровье страницы считается для каналов Telegram и стен ВКонтакте.")
    if settings.REGION_AUDIENCE is None:
        lines.append("Проникновение: задайте интернет-аудиторию региона в REGION_AUDIENCE.")
    return lines


def compact_line(title: str, health: PageHealth) -> str:
    """One page's health in one line, for /stats over several pages."""
    parts = []
    if health.subscribers is not None:
        parts.append(f"подписчиков {ru.number(health.subscribers)}")
    if health.posts_per_week is not None:
        below = " — ниже нормы" if health.below_norm else ""
        parts.append(f"постов в неделю {ru.number(health.posts_per_week, 1)}{below}")
    if health.video_share is not None:
        parts.append(f"видео {ru.percent(health.video_share)}")
    if health.views_per_post is not None:
        parts.append(f"просмотров на пост {ru.number(health.views_per_post)}")
    index = NO_DATA if health.health_index is None else ru.number(health.health_index, 1)
    parts.append(f"индекс здоровья {index}")
    return f"— {title}: " + ", ".join(parts)
