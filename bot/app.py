"""Builds the python-telegram-bot Application and runs it with long polling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import Any

import httpx
from telegram import BotCommand, Update
from telegram.constants import ChatType
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, Defaults

from bot import logs
from bot.db import Database
from bot.errors import BotError, classify, user_message
from bot.features import admin, analyze, basic, gpt, links, storage, video, weather
from bot.metrics import Metrics
from bot.quotas import Quotas
from bot.settings import Env, load_global_config

log = logging.getLogger(__name__)

# Order matters inside group 0: commands first, then link downloads, then conversation (GPT).
FEATURES = (storage, basic, admin, analyze, weather, video, links, gpt)


class BotApplication(Application):
    """Application that times every update for data/metrics.json."""

    async def process_update(self, update: object) -> None:
        start = time.perf_counter()
        try:
            await super().process_update(update)
        finally:
            metrics: Metrics | None = self.bot_data.get("metrics")
            if metrics is not None:
                metrics.record_update((time.perf_counter() - start) * 1000)


class _ErrorCounter(logging.Handler):
    """Counts ERROR lines for the metrics file (the error rate the CLI reports)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.ERROR)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        self.metrics.record_error()


def build_application(env: Env) -> Application:
    """The one place the bot is assembled. Raises BotError("APP001") on bad configuration."""
    if not env.bot_token:
        raise BotError("APP001", "BOT_TOKEN is not set")
    config = load_global_config(env.app_dir)
    base = env.telegram_base_url
    file_base = base[: -len("bot")] + "file/bot" if base.endswith("/bot") else base
    app = (
        ApplicationBuilder()
        .application_class(BotApplication)
        .token(env.bot_token)
        .base_url(base)
        .base_file_url(file_base)
        .connect_timeout(5)
        .read_timeout(15)
        .write_timeout(30)
        .media_write_timeout(120)
        .get_updates_connect_timeout(5)
        .get_updates_read_timeout(5)
        .defaults(Defaults(allow_sending_without_reply=True))  # a deleted message must not lose the answer
        # Telegram's flood limits (30 messages/s, 20 a minute per group): wait instead of being banned,
        # and retry once after a 429's retry_after.
        .rate_limiter(AIORateLimiter(max_retries=1))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    app.bot_data.update(env=env, config=config, metrics=Metrics(), quotas=Quotas(config["rate_limits"]))
    for feature in FEATURES:
        feature.register(app)
    basic.register_fallback(app)
    app.add_error_handler(on_error)
    return app


async def post_init(app: Application) -> None:
    env: Env = app.bot_data["env"]
    metrics: Metrics = app.bot_data["metrics"]
    logging.getLogger().addHandler(_ErrorCounter(metrics))
    db = Database(env.database_url)
    app.bot_data["db"] = db
    app.bot_data["http"] = httpx.AsyncClient(timeout=10, headers={"User-Agent": "psychochauffeur-bot"})
    app.bot_data["openai"] = None
    if env.openai_api_key:
        from openai import AsyncOpenAI

        timeout = float(app.bot_data["config"].get("gpt", {}).get("timeout_seconds", 60))
        app.bot_data["openai"] = AsyncOpenAI(api_key=env.openai_api_key, base_url=env.openai_base_url,
                                             timeout=timeout, max_retries=1)
    await db.open()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not in the main thread
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, logs.reopen_logs)
    interval = float(app.bot_data["config"].get("metrics_interval_seconds", 15))
    if app.job_queue is not None:
        app.job_queue.run_repeating(_write_metrics, interval=interval, first=interval, name="metrics")
    _write_metrics_now(app)
    try:
        await app.bot.set_my_commands([BotCommand(name, text[:256]) for name, text in basic.COMMANDS])
    except TelegramError as exc:
        log.warning("setMyCommands failed: %s", exc, extra={"code": classify(exc)})
    log.info("bot @%s started (database %s)", app.bot.username, "up" if db.up else "DOWN")


async def post_shutdown(app: Application) -> None:
    _write_metrics_now(app)
    db: Database | None = app.bot_data.get("db")
    if db is not None:
        await db.close()
    client: httpx.AsyncClient | None = app.bot_data.get("http")
    if client is not None:
        await client.aclose()
    if app.bot_data.get("openai") is not None:
        await app.bot_data["openai"].close()
    log.info("bot stopped")


async def _write_metrics(context: ContextTypes.DEFAULT_TYPE) -> None:
    _write_metrics_now(context.application)


def _write_metrics_now(app: Application) -> None:
    try:
        app.bot_data["metrics"].write(app.bot_data["env"].app_dir)
    except OSError as exc:
        log.error("cannot write metrics: %s", exc, extra={"code": classify(exc)})


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every error with its code, record it, and tell the user something went wrong."""
    exc = context.error
    if exc is None:
        return
    code = classify(exc)
    chat = update.effective_chat if isinstance(update, Update) else None
    user = update.effective_user if isinstance(update, Update) else None
    db: Database | None = context.bot_data.get("db")
    extra: dict[str, Any] = {"code": code, "chat_id": chat.id if chat else None,
                             "user_id": user.id if user else None}
    if isinstance(exc, BotError) and code.startswith("DB") and db is not None and not db.up:
        # The outage itself is logged once by bot.db; each refused command is only a warning.
        log.warning("refused during database outage: %s", exc, extra=extra)
    else:
        where = "while handling an update" if update is not None else "while polling"
        log.error("%s %s: %s: %s", code, where, type(exc).__name__, exc,
                  exc_info=exc if code == "APP000" else None, extra=extra)
        if db is not None and db.up:
            with contextlib.suppress(BotError):
                message = logs.redact(f"{type(exc).__name__}: {exc}", context.bot_data["env"].secrets())
                await db.record_error(code, type(exc).__module__, message, chat.id if chat else None)
    if chat is None or not isinstance(update, Update) or isinstance(exc, TelegramError) and code == "APP003":
        return  # nothing to answer, or we are not allowed to write there
    if chat.type == ChatType.CHANNEL:
        return
    try:
        await context.bot.send_message(chat.id, user_message(code))
    except TelegramError as send_exc:
        log.warning("could not send the error reply: %s", send_exc, extra=extra)


def run(env: Env) -> int:
    """Run the bot until SIGTERM/SIGINT; SIGHUP reopens the log files.

    Returns 0 after a clean stop; exits with status 2 on a configuration error (APP001).
    """
    logs.setup_logging(env.log_dir, env.secrets())
    try:
        app = build_application(env)
    except BotError as exc:
        log.error("cannot start: %s", exc, extra={"code": exc.code})
        print(logs.redact(f"error: {exc} ({exc.code})", env.secrets()), file=sys.stderr)
        raise SystemExit(2) from None
    log.info("starting long polling (timeout %s s)", env.poll_timeout)
    try:
        app.run_polling(allowed_updates=Update.ALL_TYPES, timeout=env.poll_timeout,
                        stop_signals=(signal.SIGINT, signal.SIGTERM))
    except (InvalidToken, NetworkError) as exc:  # at startup: getMe/deleteWebhook failed
        code = classify(exc)
        what = "Telegram rejected BOT_TOKEN" if code == "API002" else "cannot reach the Telegram Bot API"
        log.error("cannot start: %s: %s", what, exc, extra={"code": code})
        print(logs.redact(f"error: {what}: {exc} ({code})", env.secrets()), file=sys.stderr)
        raise SystemExit(2 if code == "API002" else 1) from None
    return 0
