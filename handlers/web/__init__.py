"""The read-only web dashboard (docs/SETUP.md sec. 6a), also opened as a Telegram Mini App.

A presentation layer like `handlers/`: aiohttp views parse the request, check who is asking
(`bot.services.web_access`) and render what the report use case and the dashboard services
return; they decide nothing themselves. Everything it serves is in this package: templates,
one stylesheet, one small script, server-side SVG charts — nothing loads from outside.
"""
