"""Offline sandbox for the bot: fake Telegram Bot API, OpenAI, weather and files over real HTTP.

Run it with `python -m bot.sandbox`; drive it with `bot.sandbox.client.SandboxClient`.
"""
