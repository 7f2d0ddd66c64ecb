"""Feature modules. Each exposes `register(app)` adding its plain async handlers.

The helpers below read the clients post_init put into `bot_data`, so handlers stay short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telegram import Message, Update
from telegram.constants import MessageLimit
from telegram.ext import ContextTypes

from bot.settings import ChatSettings, Env

if TYPE_CHECKING:
    import httpx
    from openai import AsyncOpenAI

    from bot.db import Database

Context = ContextTypes.DEFAULT_TYPE


def env(context: Context) -> Env:
    return context.bot_data["env"]


def config(context: Context) -> dict[str, Any]:
    return context.bot_data["config"]


def db(context: Context) -> Database:
    return context.bot_data["db"]


def http(context: Context) -> httpx.AsyncClient:
    return context.bot_data["http"]


def openai_client(context: Context) -> AsyncOpenAI | None:
    return context.bot_data.get("openai")


async def chat_settings(context: Context, chat_id: int) -> ChatSettings:
    """Global defaults + the chat layer; when the DB is down the defaults (or cached layer) apply."""
    layer = await db(context).chat_config(chat_id, strict=False)
    return ChatSettings.from_layers(config(context), layer)


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Telegram rejects messages over 4096 characters: cut on line breaks where possible."""
    chunks = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = limit
        chunks.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text or not chunks:
        chunks.append(text or "…")
    return chunks


async def reply(update: Update, text: str, **kwargs: Any) -> Message | None:
    """Reply in the chat of the update (quoting the message when there is one), split if too long."""
    message = update.effective_message
    sent = None
    for chunk in split_text(text):
        if message is not None:
            sent = await message.reply_text(chunk, do_quote=True, **kwargs)
        elif update.effective_chat is not None:
            sent = await update.effective_chat.send_message(chunk, **kwargs)
    return sent


def command_args(context: Context) -> list[str]:
    return list(context.args or [])
