"""Feature modules. Each exposes `register(app)` adding its plain async handlers.

The helpers below read the clients post_init put into `bot_data`, so handlers stay short.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from telegram import Message, Update
from telegram.constants import MessageLimit
from telegram.ext import ContextTypes

from bot.quotas import Quotas, slow_down_text
from bot.settings import ChatSettings, Env

if TYPE_CHECKING:
    import httpx
    from openai import AsyncOpenAI

    from bot.db import Database

Context = ContextTypes.DEFAULT_TYPE
log = logging.getLogger(__name__)


def env(context: Context) -> Env:
    return context.bot_data["env"]


def config(context: Context) -> dict[str, Any]:
    return context.bot_data["config"]


def db(context: Context) -> Database:
    return context.bot_data["db"]


def http(context: Context) -> httpx.AsyncClient:
    return context.bot_data["http"]


async def openai_client(context: Context) -> AsyncOpenAI | None:
    """None without OPENAI_API_KEY; else the client post_init builds in a thread (waits for it at first)."""
    building: asyncio.Future[AsyncOpenAI] | None = context.bot_data.get("openai")
    return None if building is None else await asyncio.shield(building)


SETTINGS_CACHE_MAX = 10_000  # chats; beyond that the cache starts over (a rebuild is cheap, just not free)


async def chat_settings(context: Context, chat_id: int) -> ChatSettings:
    """Global defaults + the chat layer; when the DB is down the defaults (or cached layer) apply.

    Built once per chat and reused while both sources are the very same objects: Database.chat_config
    returns a new dict whenever it (re)loads the layer (after /config set/reset, after its TTL), and
    the global config is replaced, never changed in place. Building (validating every key) for every
    group text message was a fifth of the bot's CPU in a burst.
    """
    layer = await db(context).chat_config(chat_id, strict=False)
    global_cfg = config(context)
    cache: dict[int, tuple[Any, Any, ChatSettings]] = context.bot_data.setdefault("chat_settings", {})
    hit = cache.get(chat_id)
    if hit is not None and hit[0] is global_cfg and hit[1] is layer:
        return hit[2]
    settings = ChatSettings.from_layers(global_cfg, layer)
    if len(cache) >= SETTINGS_CACHE_MAX:
        cache.clear()
    cache[chat_id] = (global_cfg, layer, settings)  # holding the sources keeps their identity unique
    return settings


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


async def within_quota(update: Update, context: Context, kind: str, quiet: bool = False) -> bool:
    """Count one call of `kind` (gpt, analyze, video) against rate_limits; over a limit say "slow down".

    The reply comes once per run of refusals (a flood of refusals must not become a flood of replies);
    quiet=True for calls nobody asked for, such as random replies.
    """
    quotas: Quotas | None = context.bot_data.get("quotas")
    chat, user = update.effective_chat, update.effective_user
    chat_id, user_id = (chat.id if chat else None), (user.id if user else None)
    refusal = await quotas.check(kind, chat_id, user_id) if quotas is not None else None
    if refusal is None:
        return True
    if refusal.first:
        log.info("rate limit %s.%s reached", kind, refusal.limit,
                 extra={"chat_id": chat_id, "user_id": user_id})
        if not quiet:
            await reply(update, slow_down_text(kind, refusal))
    return False


def command_args(context: Context) -> list[str]:
    return list(context.args or [])
