"""VK intake: vk_api client wiring."""

from handlers.vk.client import (
    VkCallError,
    VkTransportError,
    call,
    make_bot_longpoll,
    make_vk_session,
)

__all__ = ["VkCallError", "VkTransportError", "call", "make_bot_longpoll", "make_vk_session"]
