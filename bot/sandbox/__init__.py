"""Built-in sandboxes that speak the Telegram and VK APIs for demos and tests."""

from bot.sandbox.telegram import SandboxApiError, SentMessage, TelegramSandbox, UploadedFile

__all__ = ["SandboxApiError", "SentMessage", "TelegramSandbox", "UploadedFile"]
