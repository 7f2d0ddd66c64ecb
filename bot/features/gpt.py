"""GPT answers: /ask, mentions, replies to the bot, private chats, and optional random replies in groups.

`complete()` is the one call into the OpenAI SDK; analyze and weather use it too. API errors raise and
reach the application's error handler, which replies with the API00x code.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from telegram import Message, Update
from telegram.constants import ChatAction, ChatType
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.errors import BotError, classify
from bot.features import (
    Context,
    chat_settings,
    command_args,
    config,
    db,
    env,
    openai_client,
    reply,
    within_quota,
)
from bot.settings import ChatSettings
from bot.urls import extract_urls

log = logging.getLogger(__name__)
MAX_QUESTION = 4000


async def complete(context: Context, messages: list[dict[str, str]], settings: ChatSettings,
                   max_tokens: int | None = None) -> str:
    client = await openai_client(context)
    if client is None:
        raise BotError("APP001", "OPENAI_API_KEY is not set")
    response = await client.chat.completions.create(
        model=settings.gpt_model or env(context).openai_model,
        messages=messages,  # type: ignore[arg-type]
        temperature=settings.gpt_temperature,
        max_tokens=max_tokens or int(config(context).get("gpt", {}).get("max_tokens", 800)),
    )
    text = response.choices[0].message.content if response.choices else None
    if not text or not text.strip():
        raise BotError("API003", "the AI service returned an empty answer")
    return text.strip()


async def _history(context: Context, chat_id: int, limit: int, skip_message_id: int) -> list[dict[str, str]]:
    """Recent stored messages as chat turns; without a database the question goes alone."""
    if limit <= 0:
        return []
    try:
        rows = await db(context).recent_messages(chat_id, limit + 1)
    except BotError as exc:
        log.warning("answering without history: %s", exc, extra={"code": exc.code, "chat_id": chat_id})
        return []
    turns = []
    for row in rows:
        if row["message_id"] == skip_message_id or not row["text"]:
            continue
        if row["user_id"] == context.bot.id:
            turns.append({"role": "assistant", "content": row["text"][:MAX_QUESTION]})
        else:
            turns.append({"role": "user", "content": f"{row['name']}: {row['text'][:MAX_QUESTION]}"})
    return turns[-limit:]


async def answer(update: Update, context: Context, question: str, quiet: bool = False) -> None:
    chat = update.effective_chat
    message = update.effective_message
    settings = await chat_settings(context, chat.id)
    if not settings.gpt_enabled:
        await reply(update, "🤖 The AI is switched off in this chat (gpt_enabled = false).")
        return
    if not await within_quota(update, context, "gpt", quiet=quiet):
        return
    await context.bot.send_chat_action(chat.id, ChatAction.TYPING)
    user = update.effective_user
    name = (user.first_name or user.username or "user") if user else "user"
    messages = [{"role": "system", "content": settings.gpt_system_prompt}]
    messages += await _history(context, chat.id, settings.gpt_history_messages, message.message_id)
    messages.append({"role": "user", "content": f"{name}: {question[:MAX_QUESTION]}"})
    text = await complete(context, messages, settings)
    sent = await reply(update, text)
    if sent is not None:
        await _remember(context, sent)


async def _remember(context: Context, sent: Message) -> None:
    """Store our own answer so the next question has it as context."""
    me = context.bot
    try:
        await db(context).store_message(
            {"id": sent.chat.id, "type": sent.chat.type, "title": sent.chat.title or sent.chat.full_name},
            {"id": me.id, "username": me.username, "first_name": me.first_name, "last_name": None},
            sent.message_id, sent.text, sent.date,
        )
    except BotError:
        pass  # the answer is out; missing context later is acceptable


async def ask(update: Update, context: Context) -> None:
    question = " ".join(command_args(context)).strip()
    replied = update.effective_message.reply_to_message
    if not question and replied is not None:
        question = (replied.text or replied.caption or "").strip()
    if not question:
        await reply(update, "Usage: /ask <question> — for example: /ask what is the capital of Ukraine?")
        return
    await answer(update, context, question)


def _addressed_to_me(message: Message, context: Context) -> tuple[bool, str]:
    text = message.text or ""
    username = context.bot.username or ""
    if username and f"@{username}".lower() in text.lower():
        start = text.lower().index(f"@{username}".lower())
        return True, (text[:start] + text[start + len(username) + 1:]).strip()
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == context.bot.id:
        return True, text
    return False, text


def _only_links(text: str) -> bool:
    urls = extract_urls(text, limit=50)
    rest = text
    for url in urls:
        rest = rest.replace(url, "").replace(url.removeprefix("https://"), "")
    return bool(urls) and not rest.strip(" \n\t.,;:!?()[]<>")


async def on_text(update: Update, context: Context) -> None:
    """Plain text: answer in private chats and when addressed; maybe a random reply in groups."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or not message.text or chat is None:
        return
    addressed, question = _addressed_to_me(message, context)
    if not addressed and _only_links(message.text):
        return  # a bare link is for the video/link features, not a question
    if chat.type == ChatType.PRIVATE or addressed:
        await answer(update, context, question or message.text)
        return
    if chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
        await _maybe_random_reply(update, context)


async def _maybe_random_reply(update: Update, context: Context) -> None:
    settings = await chat_settings(context, update.effective_chat.id)
    if not settings.random_reply_enabled or not settings.gpt_enabled or await openai_client(context) is None:
        return
    chat_data: dict[str, Any] = context.chat_data if context.chat_data is not None else {}
    count = chat_data.get("since_random_reply", 0) + 1
    chat_data["since_random_reply"] = count
    if count < settings.random_reply_min_messages or random.random() >= settings.random_reply_probability:
        return
    chat_data["since_random_reply"] = 0
    try:
        await answer(update, context, update.effective_message.text, quiet=True)
    except Exception as exc:  # nobody asked: a failure is logged, not announced in the chat
        code = classify(exc)
        log.error("random reply failed: %s", exc, extra={"code": code, "chat_id": update.effective_chat.id})


def register(app: Application) -> None:
    # New messages only: an edit must not buy a second (paid) answer.
    app.add_handler(CommandHandler("ask", ask, filters=filters.UpdateType.MESSAGE, block=False))
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND, on_text,
                                   block=False))
