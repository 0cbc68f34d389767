"""Telegram adapters: aiogram routers that translate updates into normalised events."""
