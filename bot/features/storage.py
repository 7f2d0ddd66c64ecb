"""Every message is stored (chats, users, messages) and logged to chat.log; /stats per chat."""

from __future__ import annotations

import logging
from datetime import UTC

from telegram import Update
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.features import Context, db, reply

chat_log = logging.getLogger("chat")


async def store(update: Update, context: Context) -> None:
    """Runs first (group -1) for every message. Never replies and never waits for the database:
    the message is queued, and the writer in bot.db logs (once a minute) what a down DB made it drop."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    user = update.effective_user
    text = message.text or message.caption
    who = {"chat_id": chat.id, "user_id": user.id if user else None}
    chat_log.info(text or f"<{_kind(message)}>", extra=who)
    db(context).queue_message(
        {"id": chat.id, "type": chat.type, "title": chat.title or chat.full_name},
        {"id": user.id, "username": user.username, "first_name": user.first_name,
         "last_name": user.last_name} if user else None,
        message.message_id, text, message.date,
    )


def _kind(message) -> str:  # noqa: ANN001 - telegram.Message
    for kind in ("photo", "video", "sticker", "voice", "document", "animation", "audio", "location", "poll"):
        if getattr(message, kind, None):
            return kind
    return "other"


async def stats(update: Update, context: Context) -> None:
    data = await db(context).chat_stats(update.effective_chat.id, bot_id=context.bot.id)
    if not data.get("messages"):
        await reply(update, "📊 No messages stored for this chat yet.")
        return
    lines = [
        "📊 Chat statistics",
        f"Messages: {data['messages']} (last 24 h: {data['day']})",
        f"Users: {data['users']}",
        f"First message: {data['first'].astimezone(UTC):%Y-%m-%d %H:%M} UTC",
        f"Last message: {data['last'].astimezone(UTC):%Y-%m-%d %H:%M} UTC",
    ]
    if data["top"]:
        lines.append("Most active:")
        lines += [f"  {i}. {row['name']} — {row['n']}" for i, row in enumerate(data["top"], 1)]
    await reply(update, "\n".join(lines))


def register(app: Application) -> None:
    app.add_handler(MessageHandler(filters.ALL, store), group=-1)
    app.add_handler(CommandHandler("stats", stats))
