"""/start, /help, /ping, /cat and the reply to unknown commands."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urljoin

import httpx
from telegram import Update
from telegram.constants import ChatType
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.errors import BotError
from bot.features import Context, config, env, http, reply
from bot.urls import UnresolvableHost, UnsafeURL, check_url

log = logging.getLogger(__name__)
MAX_REDIRECTS = 3

COMMANDS = [
    ("start", "say hello"),
    ("help", "what I can do"),
    ("ping", "check that I am alive"),
    ("cat", "a random cat picture"),
    ("ask", "ask the AI: /ask <question>"),
    ("analyze", "summarize the chat: /analyze [today | last N | date YYYY-MM-DD]"),
    ("weather", "weather and a clothing tip: /weather [city]"),
    ("video", "download a video: /video <link>"),
    ("stats", "message statistics of this chat"),
    ("config", "chat settings (admins): /config show | set <key> <value> | reset <key>"),
    ("errors", "error counts by code (admins): /errors [hours]"),
]

HELP = "\n".join(
    ["I am PsychoChauffeur. Commands:"]
    + [f"/{name} — {text}" for name, text in COMMANDS]
    + ["", "I also download videos from supported links, fix x.com/instagram links, and answer when "
       "mentioned or in private chats."]
)


async def start(update: Update, context: Context) -> None:
    user = update.effective_user
    name = user.first_name if user else "there"
    await reply(update, f"Hi {name}! I'm PsychoChauffeur 🚗. Send /help to see what I can do.")


async def help_command(update: Update, context: Context) -> None:
    await reply(update, HELP)


async def ping(update: Update, context: Context) -> None:
    await reply(update, "pong")


async def cat(update: Update, context: Context) -> None:
    """Fetch a cat picture ourselves (so a failure gets a clear reply) and send it as a photo."""
    cfg = config(context).get("cat", {})
    url = str(cfg.get("url") or "")
    if not url:
        raise BotError("APP001", "cat.url is not configured")
    max_bytes = int(cfg.get("max_bytes", 10 * 1024 * 1024))
    client = http(context)
    timeout = float(cfg.get("timeout_seconds", 10))
    try:
        data = await _fetch_image(client, url, max_bytes, timeout, allow_loopback=env(context).sandbox)
    except BotError as exc:
        log.warning("cat fetch failed: %s", exc, extra={"code": exc.code})
        await reply(update, f"😿 I couldn't fetch a cat right now: {exc} ({exc.code}).")
        return
    await update.effective_message.reply_photo(data, do_quote=True)


async def _get(client: httpx.AsyncClient, url: str, max_bytes: int, seconds: float,
               allow_loopback: bool) -> tuple[str, bytes]:
    """(content type, body) of url, following at most MAX_REDIRECTS redirects, each address-checked."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            await asyncio.to_thread(check_url, url, allow_loopback=allow_loopback)
        except UnresolvableHost:
            raise BotError("API003", "the cat service is unreachable (no such host)") from None
        except UnsafeURL as exc:
            raise BotError("APP003", f"the cat service named a link I won't fetch: {exc}") from None
        async with client.stream("GET", url, timeout=seconds, follow_redirects=False) as response:
            if response.is_redirect and response.headers.get("location"):
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code >= 400:
                raise BotError("API003", f"the cat service answered HTTP {response.status_code}")
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise BotError("APP004", "the picture is too large")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise BotError("APP004", "the picture is too large")
            return kind, bytes(body)
    raise BotError("API003", "the cat service redirected too often")


async def _fetch_image(client: httpx.AsyncClient, url: str, max_bytes: int, seconds: float,
                       allow_loopback: bool = False) -> bytes:
    """The picture at url, or at the one URL a JSON answer names (thecatapi style: [{"url": ...}]).

    Every hop is address-checked like a video link; a JSON answer is followed once, never recursively.
    """
    try:
        kind, body = await _get(client, url, max_bytes, seconds, allow_loopback)
        if kind == "application/json":
            try:
                item = json.loads(body)
                image_url = str(item[0]["url"] if isinstance(item, list) else item["url"])
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise BotError("API003", "the cat service answered something unexpected") from exc
            kind, body = await _get(client, image_url, max_bytes, seconds, allow_loopback)
    except httpx.HTTPError as exc:
        raise BotError("API003", f"the cat service is unreachable ({type(exc).__name__})") from exc
    if not kind.startswith("image/"):
        raise BotError("API003", f"the cat service sent {kind or 'no content type'}, not a picture")
    if not body:
        raise BotError("API003", "the cat service sent an empty picture")
    return body


async def unknown_command(update: Update, context: Context) -> None:
    """Answer in private chats, or in groups when the command is addressed to us (/cmd@ourbot)."""
    message = update.effective_message
    if message is None or not message.text:
        return
    first = message.text.split()[0]
    command, _, target = first[1:].partition("@")
    addressed = target.lower() == (context.bot.username or "").lower()
    if update.effective_chat.type != ChatType.PRIVATE and not addressed:
        return
    shown = command[:32] or "?"
    await reply(update, f"🤔 Unknown command /{shown}. Send /help to see what I can do.")


def register(app: Application) -> None:
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("help", help_command))
    app.add_handler(CommandHandler("ping", ping))
    app.add_handler(CommandHandler("cat", cat, block=False))


def register_fallback(app: Application) -> None:
    """Registered after every feature so real commands win; edited commands (those skip them) are ignored."""
    app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, unknown_command))
