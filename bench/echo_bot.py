"""A bare python-telegram-bot echo bot: the baseline for /start latency.

Reads BOT_TOKEN, TELEGRAM_BASE_URL and BOT_POLL_TIMEOUT like our bot; run with `python -m bench.echo_bot`.
"""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.message.reply_text("Hi! I echo what you write.")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.message.reply_text(update.message.text)


def main() -> None:
    app = (
        Application.builder()
        .token(os.environ["BOT_TOKEN"])
        .base_url(os.environ.get("TELEGRAM_BASE_URL", "https://api.telegram.org/bot"))
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.run_polling(timeout=int(os.environ.get("BOT_POLL_TIMEOUT", "10")))


if __name__ == "__main__":
    main()
