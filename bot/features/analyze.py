"""/analyze today | last N | date YYYY-MM-DD: a GPT summary of stored messages, cached per content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import Update
from telegram.constants import ChatAction
from telegram.ext import Application, CommandHandler, filters

from bot.errors import BotError
from bot.features import Context, chat_settings, command_args, config, db, reply, within_quota
from bot.features.gpt import complete

USAGE = "Usage: /analyze [today | last N | date YYYY-MM-DD] — N between 1 and 1000."
MAX_TRANSCRIPT = 12_000


@dataclass(frozen=True)
class Period:
    key: str  # cache key part: "today:2025-01-31", "last:50", "date:2025-01-31"
    label: str
    last: int | None = None
    day: date | None = None


def parse_period(args: list[str], today: date) -> Period:
    """Raise ValueError (with the usage text) on anything but the three forms."""
    words = [a.lower() for a in args]
    if not words or words == ["today"]:
        return Period(f"today:{today.isoformat()}", "today", day=today)
    if len(words) == 2 and words[0] == "last":
        if not words[1].isascii() or not words[1].isdigit() or not 1 <= int(words[1]) <= 1000:
            raise ValueError(USAGE)
        n = int(words[1])
        return Period(f"last:{n}", f"the last {n} messages", last=n)
    if len(words) == 2 and words[0] == "date":
        try:
            day = date.fromisoformat(words[1]) if len(words[1]) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise ValueError(USAGE)
        return Period(f"date:{day.isoformat()}", day.isoformat(), day=day)
    raise ValueError(USAGE)


def _zone(context: Context) -> ZoneInfo:
    try:
        return ZoneInfo(str(config(context).get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def content_hash(rows: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row['message_id']}\x1f{row['text']}\x1e".encode("utf-8", "replace"))
    return digest.hexdigest()


def transcript(rows: list[dict[str, Any]], zone: ZoneInfo) -> str:
    lines = [f"[{row['timestamp'].astimezone(zone):%H:%M}] {row['name']}: {row['text']}" for row in rows]
    text = "\n".join(lines)
    return text[-MAX_TRANSCRIPT:]  # the most recent part when the day was long


async def analyze(update: Update, context: Context) -> None:
    zone = _zone(context)
    try:
        period = parse_period(command_args(context), datetime.now(zone).date())
    except ValueError as exc:
        await reply(update, str(exc))
        return
    if not await within_quota(update, context, "analyze"):
        return
    chat_id = update.effective_chat.id
    limit = int(config(context).get("gpt", {}).get("analyze_max_messages", 500))
    if period.last is not None:
        rows = await db(context).recent_messages(chat_id, period.last + 50)  # room for skipped commands
    else:
        start = datetime.combine(period.day, datetime.min.time(), zone).astimezone(UTC)
        rows = await db(context).messages_between(chat_id, start, start + timedelta(days=1), limit)
    # Commands and our own answers are not chat content (and would change the hash on every call).
    rows = [r for r in rows if r["text"] and not r["text"].startswith("/") and r["user_id"] != context.bot.id]
    if period.last is not None:
        rows = rows[-period.last:]
    if not rows:
        await reply(update, f"📭 No messages to analyze for {period.label}.")
        return
    settings = await chat_settings(context, chat_id)
    if not settings.gpt_enabled:  # before the cache: switched off means off, not "old answers only"
        raise BotError("APP001", "the AI is switched off in this chat")
    digest = content_hash(rows)
    cached = await db(context).cached_analysis(chat_id, period.key, digest)
    if cached:
        await reply(update, f"📝 Summary of {period.label} ({len(rows)} messages, cached):\n\n{cached}")
        return
    await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
    prompt = str(config(context).get("gpt", {}).get("analyze_system_prompt") or "Summarize this chat log.")
    summary = await complete(context, [
        {"role": "system", "content": prompt},
        {"role": "user", "content": transcript(rows, zone)},
    ], settings)
    try:
        await db(context).store_analysis(chat_id, period.key, digest, summary)
    except BotError:
        pass  # the summary is still worth sending
    await reply(update, f"📝 Summary of {period.label} ({len(rows)} messages):\n\n{summary}")


def register(app: Application) -> None:
    # New messages only: an edit must not buy a second (paid) summary.
    app.add_handler(CommandHandler("analyze", analyze, filters=filters.UpdateType.MESSAGE, block=False))
