"""Builds the python-telegram-bot Application and runs it with long polling."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any

import httpx
from telegram import BotCommand, Update
from telegram.constants import ChatType
from telegram.error import Conflict, InvalidToken, NetworkError, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, Defaults, ExtBot
from telegram.request import HTTPXRequest

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

# A stop must fit in the unit's TimeoutStopSec (30 s, roles/bot/templates/psychochauffeur-bot.service.j2):
# buffered messages are stored first, then running handlers get a grace period, then the rest is cancelled
# and what they queued is stored. Before, PTB waited for every handler (a download: minutes) and only
# then flushed, so systemd's SIGKILL lost the buffer.
STOP_FLUSH_SECONDS = 8.0
STOP_HANDLER_GRACE_SECONDS = 10.0
STOP_FINAL_FLUSH_SECONDS = 5.0
# Before getUpdates confirms a batch, wait at most this long for its updates to be handled, then as long
# for their messages to be committed (StoreBeforeConfirmBot).
CONFIRM_WAIT_SECONDS = 10.0
# A 409 Conflict (another process polls with this token) is logged and recorded once per this interval.
CONFLICT_LOG_INTERVAL = 600.0

_update_tasks: ContextVar[list[asyncio.Task[Any]] | None] = ContextVar("update_tasks", default=None)


class StoreBeforeConfirmBot(ExtBot):
    """getUpdates with an offset confirms every earlier update: Telegram forgets it. PTB's Updater sends
    that call right after queueing a batch, while the storage handler only buffers the messages, so a
    kill -9 between the two lost them (issue 8). This bot first awaits `before_confirm`
    (BotApplication.store_fetched): stored before confirmed. A kill before the confirm makes Telegram
    send the batch again; messages are unique by (chat_id, message_id), so it is stored once."""

    __slots__ = ("before_confirm",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with self._unfrozen():
            self.before_confirm: Callable[[], Awaitable[None]] | None = None

    def set_before_confirm(self, hook: Callable[[], Awaitable[None]]) -> None:
        with self._unfrozen():
            self.before_confirm = hook

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[Update, ...]:
        offset = kwargs.get("offset", args[0] if args else None)
        if offset and self.before_confirm is not None:
            await self.before_confirm()
        return await super().get_updates(*args, **kwargs)


class BotApplication(Application):
    """Application that times every update (background handlers included) for data/metrics.json,
    and stops within the unit's TimeoutStopSec, storing buffered messages first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler_tasks: set[asyncio.Task[Any]] = set()

    def create_task(self, coroutine: Coroutine[Any, Any, Any], update: object | None = None, *,
                    name: str | None = None) -> asyncio.Task[Any]:
        task = super().create_task(coroutine, update=update, name=name)
        if update is not None:  # a handler with block=False (or an error handler) for this update
            self.handler_tasks.add(task)
            task.add_done_callback(self.handler_tasks.discard)
            tasks = _update_tasks.get()
            if tasks is not None:
                tasks.append(task)
        return task

    async def process_update(self, update: object) -> None:
        start = time.perf_counter()
        tasks: list[asyncio.Task[Any]] = []
        token = _update_tasks.set(tasks)
        try:
            await super().process_update(update)
        finally:
            _update_tasks.reset(token)
            self._record_latency(start, [t for t in tasks if not t.done()])

    def _record_latency(self, start: float, running: list[asyncio.Task[Any]]) -> None:
        """The update's latency ends when its last background handler does (GPT, downloads, /analyze)."""
        metrics: Metrics | None = self.bot_data.get("metrics")
        if metrics is None:
            return
        if not running:
            metrics.record_update((time.perf_counter() - start) * 1000)
            return
        left = len(running)

        def one_done(_task: asyncio.Task[Any]) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                metrics.record_update((time.perf_counter() - start) * 1000)

        for task in running:
            task.add_done_callback(one_done)

    async def store_fetched(self) -> None:
        """Every fetched update handled (the storage handler runs first) and its message committed, each
        wait bounded by CONFIRM_WAIT_SECONDS; with the database down the messages stay buffered, as before."""
        try:
            await asyncio.wait_for(self.update_queue.join(), CONFIRM_WAIT_SECONDS)
        except TimeoutError:
            log.warning("updates still being handled after %g s are confirmed to Telegram anyway",
                        CONFIRM_WAIT_SECONDS)
        db: Database | None = self.bot_data.get("db")
        if db is not None and db.up:
            await _flush(db, CONFIRM_WAIT_SECONDS, "before confirming them to Telegram")

    async def stop(self) -> None:
        db: Database | None = self.bot_data.get("db")
        if db is not None:
            await _flush(db, STOP_FLUSH_SECONDS, "before stopping")
        stopping = asyncio.ensure_future(super().stop())  # processes fetched updates, awaits handlers
        await asyncio.wait({stopping}, timeout=STOP_HANDLER_GRACE_SECONDS)
        running = [t for t in self.handler_tasks if not t.done()]
        if running and not stopping.done():
            log.warning("stopping: %d handlers still running after %g s are cancelled", len(running),
                        STOP_HANDLER_GRACE_SECONDS)
            for task in running:
                task.cancel()
        await stopping


async def _flush(db: Database, seconds: float, when: str) -> None:
    """Store buffered messages, for at most `seconds`; what is left stays buffered (and logged)."""
    if not db.pending:
        return
    try:
        await asyncio.wait_for(db.flush(), seconds)
    except Exception as exc:  # incl. TimeoutError: the rows went back to the buffer
        log.error("%d buffered messages not stored %s: %s", db.pending, when, exc or type(exc).__name__,
                  extra={"code": classify(exc)})


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
    bot = StoreBeforeConfirmBot(
        env.bot_token,
        base_url=base,
        base_file_url=file_base,
        request=HTTPXRequest(connection_pool_size=256, connect_timeout=5, read_timeout=15, write_timeout=30,
                             media_write_timeout=120),
        # pool_timeout: at a stop PTB cancels the long poll without awaiting it and confirms the last batch
        # on the one connection at once; under load freeing it took longer than the 1 s default.
        get_updates_request=HTTPXRequest(connection_pool_size=1, connect_timeout=5, read_timeout=5,
                                         pool_timeout=5),
        defaults=Defaults(allow_sending_without_reply=True),  # a deleted message must not lose the answer
        # Telegram's flood limits (30 messages/s, 20 a minute per group): wait instead of being banned,
        # and retry once after a 429's retry_after.
        rate_limiter=AIORateLimiter(max_retries=1),
    )
    app = (
        ApplicationBuilder()
        .application_class(BotApplication)
        .bot(bot)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    bot.set_before_confirm(app.store_fetched)
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
    db = Database(env.database_url, max_size=env.db_pool_size)
    app.bot_data["db"] = db
    app.bot_data["http"] = httpx.AsyncClient(timeout=10, headers={"User-Agent": "psychochauffeur-bot"})
    app.bot_data["openai"] = None
    if env.openai_api_key:  # built in a thread: importing openai costs ~3 s on a busy host, off the start
        timeout = float(app.bot_data["config"].get("gpt", {}).get("timeout_seconds", 60))
        app.bot_data["openai"] = asyncio.ensure_future(_openai_client(env, timeout))
    if env.redis_url:
        await _use_redis(app, db)
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


async def _openai_client(env: Env, request_timeout: float) -> Any:
    """The AsyncOpenAI client (bot.features.openai_client awaits it); the import runs in a thread."""
    openai = await asyncio.to_thread(importlib.import_module, "openai")
    return openai.AsyncOpenAI(api_key=env.openai_api_key, base_url=env.openai_base_url,
                              timeout=request_timeout, max_retries=1)


async def _use_redis(app: Application, db: Database) -> None:
    """REDIS_URL: quotas, chat configs and /analyze summaries in Redis (bot.cache), for every process."""
    from bot.cache import RedisQuotas, SharedCache

    cache = SharedCache(app.bot_data["env"].redis_url)
    app.bot_data["redis"] = db.shared = cache
    app.bot_data["quotas"] = RedisQuotas(app.bot_data["config"]["rate_limits"], cache)
    if await cache.ping():
        log.info("redis is up: quotas, chat configs and /analyze summaries are shared")


async def post_shutdown(app: Application) -> None:
    _write_metrics_now(app)
    db: Database | None = app.bot_data.get("db")
    if db is not None:
        await _flush(db, STOP_FINAL_FLUSH_SECONDS, "at shutdown")  # what the last handlers queued
        await db.close()
    client: httpx.AsyncClient | None = app.bot_data.get("http")
    if client is not None:
        await client.aclose()
    openai_task: asyncio.Future[Any] | None = app.bot_data.get("openai")
    if openai_task is not None and not openai_task.done():
        openai_task.cancel()
    elif openai_task is not None and not openai_task.cancelled() and openai_task.exception() is None:
        await openai_task.result().close()
    if app.bot_data.get("redis") is not None:
        await app.bot_data["redis"].close()
    log.info("bot stopped")


async def _write_metrics(context: ContextTypes.DEFAULT_TYPE) -> None:
    app = context.application
    snapshot = app.bot_data["metrics"].snapshot()  # on the loop: the counters change there
    try:  # the file write off the loop: a slow disk must not stall every chat
        await asyncio.to_thread(Metrics.write_snapshot, snapshot, app.bot_data["env"].app_dir)
    except OSError as exc:
        log.error("cannot write metrics: %s", exc, extra={"code": classify(exc)})


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
    if isinstance(exc, Conflict) and update is None:
        await _on_conflict(exc, context)
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


async def _on_conflict(exc: Conflict, context: ContextTypes.DEFAULT_TYPE) -> None:
    """409 from getUpdates: another process polls with this token. PTB retries with a growing pause
    (1 s up to 30 s); this logs one error line (no traceback) and one error_events row per
    CONFLICT_LOG_INTERVAL, and metrics.json tells `psychochauffeur health` about it."""
    metrics: Metrics = context.bot_data["metrics"]
    first = time.time() - metrics.last_logged_conflict_at > CONFLICT_LOG_INTERVAL
    metrics.record_conflict()
    if not first:
        log.debug("409 Conflict again (%d so far)", metrics.conflicts_total)
        return
    metrics.last_logged_conflict_at = time.time()
    log.error("another process is polling Telegram with this BOT_TOKEN (409 %s); retrying with"
              " back-off: stop the other instance or revoke the token", exc.message, extra={"code": "API003"})
    db: Database | None = context.bot_data.get("db")
    if db is not None and db.up:
        with contextlib.suppress(BotError):
            await db.record_error("API003", type(exc).__module__, f"Conflict: {exc.message}", None)


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
