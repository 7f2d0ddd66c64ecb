"""PostgreSQL: migrations (sync, also used by the CLI) and the bot's async pool with DB-down resilience.

When the database goes away the bot keeps polling: `Database.up` turns False, DB calls fail fast with
BotError("DB001") instead of waiting on the pool, and a background probe brings it back (running any
pending migrations first) as soon as the server answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bot.errors import BotError, classify

if TYPE_CHECKING:
    from bot.cache import SharedCache

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x50_43_42  # advisory lock so two migrators never race
CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 15_000
MAX_PENDING = 20_000  # messages buffered while the writer is busy or the database is down
MAX_PENDING_BYTES = 64 * 1024 * 1024  # and their memory: 20,000 long non-Latin texts would be ~330 MB
CONFIG_CACHE_MAX = 10_000  # chats whose config layer is cached; the oldest entries go first
MAX_BATCH = 2_000  # messages per transaction
RETRY_MAX_DELAY = 5.0  # seconds between attempts of a failing writer, at most
DROP_LOG_INTERVAL = 60.0  # seconds between "buffer full" lines during a long outage
SHARED_CONFIG_TTL = 3600.0  # seconds a chat-config layer stays in Redis (a change replaces it at once)
SHARED_ANALYSIS_TTL = 86_400.0  # seconds an /analyze summary stays in Redis (PostgreSQL keeps it longer)

SLOW_QUERY_MS = 1_000  # a connection held longer is logged as slow_query (runbook: grep slow_query)


# --- migrations (sync) ----------------------------------------------------------------------------


def migration_files() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path))
    return found


def migrate(dsn: str, check: bool = False) -> list[str]:
    """Apply pending migrations (or, with check=True, only list them). Returns the migration names."""
    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
        if check:
            done = set()
            if exists:
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            return [name for version, name, _ in migration_files() if version not in done]
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            applied = []
            # All pending migrations in ONE transaction: when the k+1th fails, 1..k are undone too, so an
            # update either moves the schema to the new release's version or leaves it where it was.
            with conn.transaction():
                for version, name, path in migration_files():
                    if version in done:
                        continue
                    conn.execute(path.read_text(encoding="utf-8"))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                    applied.append(name)
            for name in applied:
                log.info("applied migration %s", name)
            return applied
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))


# --- async pool -----------------------------------------------------------------------------------


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates: no UTF-8 for the server


def clean_text(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL or a lone surrogate (not UTF-8); Telegram's JSON can carry both."""
    return None if text is None else _UNSTORABLE.sub("\ufffd", text)


def _message_row(chat: dict[str, Any], user: dict[str, Any] | None, message_id: int, text: str | None,
                 timestamp: datetime) -> dict[str, Any]:
    return {
        "chat_id": chat["id"], "chat_type": chat.get("type") or "",
        "title": clean_text(chat.get("title")),
        "user_id": user["id"] if user else None,
        "username": clean_text(user.get("username")) if user else None,
        "first_name": clean_text(user.get("first_name")) if user else None,
        "last_name": clean_text(user.get("last_name")) if user else None,
        "message_id": message_id, "text": clean_text(text), "ts": timestamp,
    }


def _row_bytes(row: dict[str, Any]) -> int:
    """Memory a buffered row holds (the dict and its values): what MAX_PENDING_BYTES bounds."""
    return sys.getsizeof(row) + sum(sys.getsizeof(value) for value in row.values())


def _refused_data(exc: BaseException) -> bool:
    """The row itself is the problem (the server refused it, or it could not even be encoded), so
    retrying cannot help; anything else (connection, pool, cancellation) keeps the rows for a retry."""
    if isinstance(exc, psycopg.Error):
        return not isinstance(exc, psycopg.OperationalError)
    return isinstance(exc, ValueError | TypeError)  # e.g. UnicodeEncodeError while adapting a value


class Database:
    """The bot's connection pool plus the few queries the features need."""

    def __init__(self, dsn: str, *, max_size: int = 5, timeout: float = 3.0) -> None:
        self.dsn = dsn
        self.up = False
        self.max_size = max_size
        self.timeout = timeout
        self.pool = self._new_pool()
        self._probe: asyncio.Task[None] | None = None
        self._pending: list[dict[str, Any]] = []  # messages waiting for the writer
        self._pending_bytes = 0  # _row_bytes of everything in _pending
        self._in_flight = 0  # messages of the batch being written
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._recovered = asyncio.Event()  # cuts the writer's retry backoff short
        self.dropped = 0  # messages lost because the buffer overflowed (all logged, with APP004)
        self._dropped_unlogged = 0
        self._last_drop_log = 0.0
        self._last_retry_log = 0.0
        self._config_cache: dict[int, tuple[float, dict[str, Any]]] = {}
        self._config_loads: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._config_changes = 0  # counts set_chat_config calls: a load older than one is not cached
        self.config_ttl = 30.0
        self.shared: SharedCache | None = None  # Redis (REDIS_URL): chat configs, summaries for all processes

    # lifecycle ------------------------------------------------------------------------------------

    def _new_pool(self) -> psycopg_pool.AsyncConnectionPool:
        return psycopg_pool.AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.max_size,
            open=False,
            timeout=self.timeout,
            reconnect_timeout=30,
            name="bot",
            kwargs={
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            },
        )

    async def open(self) -> None:
        """Never waits for the server: a down database must not stop the bot from starting."""
        if not await self._try_recover():
            self._mark_down("database unavailable at startup")

    async def close(self) -> None:
        for task in (self._writer, self._probe):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        try:
            await self.flush()
        except Exception as exc:
            log.error("%d buffered messages not stored at shutdown: %s", len(self._pending), exc,
                      extra={"code": classify(exc)})
        self._log_drops(force=True)
        await self.pool.close(timeout=2)

    async def _try_recover(self) -> bool:
        """Probe with a plain connection (running pending migrations); on success use a fresh pool.

        A fresh pool, because the old one may sit in its reconnect backoff for a long while.
        """
        try:
            applied = await asyncio.to_thread(migrate, self.dsn)
        except (psycopg.OperationalError, OSError) as exc:  # cannot connect: still down
            log.debug("database probe failed: %s", exc)
            return False
        except psycopg.Error as exc:  # connected, but e.g. no right to migrate: say so, use the DB as it is
            log.error("database migrations failed: %s", exc, extra={"code": "APP001"})
            applied = []
        if applied:
            log.info("database migrations applied: %s", ", ".join(applied))
        old, self.pool = self.pool, self._new_pool()
        await self.pool.open(wait=False)
        self.up = True
        self._recovered.set()
        await old.close(timeout=0)
        return True

    def _mark_down(self, reason: str) -> None:
        if self.up or self._probe is None or self._probe.done():
            log.error("database unavailable: %s", reason, extra={"code": "DB001"})
        self.up = False
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_loop(), name="db-probe")

    async def _probe_loop(self) -> None:
        delay = 0.3
        while not await self._try_recover():
            await asyncio.sleep(delay)  # backoff between reconnect attempts, not a wait for a condition
            delay = min(delay * 2, 5.0)
        log.info("database is back")

    # access ---------------------------------------------------------------------------------------

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; every database failure comes out as a BotError with its DB code."""
        if not self.up:
            raise BotError("DB001", "database is unavailable")
        try:
            async with self.pool.connection() as conn:
                started = time.monotonic()
                yield conn
                _log_if_slow(started)
        except psycopg_pool.PoolTimeout as exc:
            stats = self.pool.get_stats()
            if stats.get("pool_size", 0) >= (self.pool.max_size or 0) and not stats.get("pool_available"):
                raise BotError("DB003", f"connection pool exhausted: all {self.max_size} connections busy for"
                               f" {self.timeout:g} s; raise BOT_DB_POOL_SIZE (bot_db_pool_size)") from exc
            self._mark_down(str(exc))
            raise BotError("DB001", str(exc)) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolClosed) as exc:
            code = classify(exc)
            if code == "DB001":
                self._mark_down(str(exc).strip())
            raise BotError(code, str(exc).strip()[:300]) from exc

    # queries --------------------------------------------------------------------------------------

    def queue_message(self, chat: dict[str, Any], user: dict[str, Any] | None, message_id: int,
                      text: str | None, timestamp: datetime) -> None:
        """Buffer a message for the background writer, which stores batches in one transaction each.

        Update handling never waits for the database this way: this is what makes >1,000 stored
        messages a second possible. Readers of messages flush first, so nothing is read stale.
        A batch that cannot be written stays buffered and is retried (also across an outage);
        only when MAX_PENDING messages are waiting are new ones dropped, and that is logged.
        """
        row = _message_row(chat, user, message_id, text, timestamp)
        size = _row_bytes(row)
        if len(self._pending) >= MAX_PENDING or self._pending_bytes + size > MAX_PENDING_BYTES:
            self._drop(1)
        else:
            self._pending.append(row)
            self._pending_bytes += size
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="db-writer")
        self._wake.set()

    async def store_message(self, chat: dict[str, Any], user: dict[str, Any] | None, message_id: int,
                            text: str | None, timestamp: datetime) -> None:
        """Store one message right now, bypassing the buffer; raises BotError when that is impossible."""
        await self._write_batch([_message_row(chat, user, message_id, text, timestamp)])

    @property
    def pending(self) -> int:
        """Messages buffered and not yet stored (including a batch being written)."""
        return len(self._pending) + self._in_flight

    async def flush(self) -> None:
        """Write what is buffered now, in batches of one transaction each.

        A batch that fails goes back to the head of the buffer (nothing is lost by a failed attempt;
        the writer retries it) and the error is raised as BotError with its DB code.
        """
        async with self._flush_lock:
            todo = len(self._pending)
            while todo > 0 and self._pending:
                rows = self._take(MAX_BATCH)
                todo -= len(rows)
                self._in_flight = len(rows)
                try:
                    await self._write_batch(rows)
                except BaseException as exc:  # incl. cancellation at shutdown: keep the rows
                    self._in_flight = 0
                    self._requeue(rows)
                    if _refused_data(exc):
                        # This data cannot be stored: retrying the batch cannot help, so store row
                        # by row and set aside only what is refused (never happens with sane input).
                        await self._write_rows_singly(len(rows), exc)
                        continue
                    raise
                self._in_flight = 0

    async def _write_batch(self, rows: list[dict[str, Any]]) -> None:
        """Upsert the batch's chats and users once each, then its messages: three statements.

        synchronous_commit is off for this transaction only: COMMIT does not wait for the WAL flush
        (the database cannot be corrupted by this; a crash of the PostgreSQL server, not of the bot,
        may lose the last few hundred milliseconds of committed batches). The bot's own buffer is a
        bigger exposure than that, and it doubles the throughput on a busy disk.
        """
        chats = {r["chat_id"]: r for r in rows}  # the last version of each chat/user/message wins
        users = {r["user_id"]: r for r in rows if r["user_id"] is not None}
        messages = {(r["chat_id"], r["message_id"]): r for r in rows}
        chat_rows = [chats[k] for k in sorted(chats)]  # a fixed lock order: no deadlocks
        user_rows = [users[k] for k in sorted(users)]
        message_rows = [messages[k] for k in sorted(messages)]
        async with self.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute("SET LOCAL synchronous_commit = off")
            await cur.execute(_UPSERT_CHATS_SQL, _columns(chat_rows, "chat_id", "chat_type", "title"))
            if user_rows:
                await cur.execute(_UPSERT_USERS_SQL,
                                  _columns(user_rows, "user_id", "username", "first_name", "last_name"))
            await cur.execute(_INSERT_MESSAGES_SQL,
                              _columns(message_rows, "chat_id", "message_id", "user_id", "text", "ts"))

    async def _write_rows_singly(self, count: int, batch_error: BaseException) -> None:
        rows = self._take(count)
        refused = 0
        for i, row in enumerate(rows):
            try:
                await self._write_batch([row])
            except BaseException as exc:
                if not _refused_data(exc):
                    self._requeue(rows[i:])
                    raise
                refused += 1
        if refused:
            self.dropped += refused
            log.error("%d messages refused by the database and not stored: %s", refused, batch_error,
                      extra={"code": classify(batch_error)})

    def _take(self, count: int) -> list[dict[str, Any]]:
        """Remove and return the oldest `count` rows of the buffer."""
        rows = self._pending[:count]
        del self._pending[:count]
        self._pending_bytes -= sum(_row_bytes(row) for row in rows)
        return rows

    def _requeue(self, rows: list[dict[str, Any]]) -> None:
        """Put rows back at the head of the buffer; beyond MAX_PENDING (or _BYTES) the newest are dropped."""
        self._pending[:0] = rows
        self._pending_bytes += sum(_row_bytes(row) for row in rows)
        overflow = 0
        while self._pending and (len(self._pending) > MAX_PENDING or self._pending_bytes > MAX_PENDING_BYTES):
            self._pending_bytes -= _row_bytes(self._pending.pop())
            overflow += 1
        if overflow:
            self._drop(overflow)

    def _drop(self, count: int) -> None:
        self.dropped += count
        self._dropped_unlogged += count
        self._log_drops()

    def _log_drops(self, force: bool = False) -> None:
        """Log dropped messages: at once, then at most once per DROP_LOG_INTERVAL during an outage."""
        now = time.monotonic()
        if self._dropped_unlogged and (force or now - self._last_drop_log >= DROP_LOG_INTERVAL):
            self._last_drop_log = now
            log.error("message buffer full (%d messages or %d MiB waiting): %d messages dropped, not stored"
                      " (%d in total)", MAX_PENDING, MAX_PENDING_BYTES // 2**20, self._dropped_unlogged,
                      self.dropped, extra={"code": "APP004"})
            self._dropped_unlogged = 0

    async def _write_loop(self) -> None:
        """Flush whenever messages arrive; while a batch is written the next one accumulates.

        After a failure the buffer is kept and retried with backoff (0.1 s doubling up to
        RETRY_MAX_DELAY), or at once when the database comes back.
        """
        delay = 0.0
        while True:
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._recovered.wait(), delay)
            else:
                await self._wake.wait()
            self._wake.clear()
            self._recovered.clear()
            try:
                await self.flush()
            except Exception as exc:  # the writer must outlive any failure; the rows stay buffered
                delay = min(max(delay * 2, 0.1), RETRY_MAX_DELAY)
                now = time.monotonic()
                if now - self._last_retry_log > 60:  # one line a minute during an outage
                    self._last_retry_log = now
                    log.warning("%d messages buffered, not stored yet (retrying): %s", len(self._pending),
                                exc, extra={"code": classify(exc)})
                continue
            if delay:
                log.info("buffered messages stored again after a database failure")
                delay = 0.0
            self._log_drops(force=True)

    async def _flush_before_reading(self) -> None:
        try:
            await self.flush()
        except Exception as exc:
            log.debug("flush before read failed: %s", exc)

    async def chat_config(self, chat_id: int, strict: bool = True) -> dict[str, Any]:
        """The chat layer (chats.config), cached for config_ttl seconds.

        With strict=False a down database yields the cached or an empty layer instead of raising.
        Concurrent callers on a cold cache share one query: every text message asks for this, and
        a burst of them used to queue hundreds of identical queries for the pool's few connections,
        starving the message writer (DB003) until it dropped batches.
        """
        cached = self._config_cache.get(chat_id)
        if cached and time.monotonic() - cached[0] < self.config_ttl:
            return cached[1]
        load = self._config_loads.get(chat_id)
        if load is None:
            load = asyncio.get_running_loop().create_task(self._load_chat_config(chat_id))
            self._config_loads[chat_id] = load
            load.add_done_callback(lambda done: self._forget_load(chat_id, done))
        try:
            return await asyncio.shield(load)
        except BotError:
            if strict:
                raise
            return cached[1] if cached else {}

    def _forget_load(self, chat_id: int, done: asyncio.Future[dict[str, Any]]) -> None:
        if self._config_loads.get(chat_id) is done:
            del self._config_loads[chat_id]
        if not done.cancelled():
            done.exception()  # retrieved here, so a load nobody waits for any more logs no warning

    async def _load_chat_config(self, chat_id: int) -> dict[str, Any]:
        changes = self._config_changes
        config = await self.shared.get_json(f"chat-config:{chat_id}") if self.shared else None
        if not isinstance(config, dict):
            async with self.connection() as conn:
                cur = await conn.execute("SELECT config FROM chats WHERE chat_id = %s", (chat_id,))
                row = await cur.fetchone()
            config = row[0] if row and isinstance(row[0], dict) else {}
            if self.shared:  # only_new: a change written meanwhile (by any process) wins over this read
                await self.shared.set_json(f"chat-config:{chat_id}", config, SHARED_CONFIG_TTL, only_new=True)
        if changes == self._config_changes:  # else it may have read the value from before a change
            self._config_cache.pop(chat_id, None)  # re-inserted last: the dict stays oldest first
            self._config_cache[chat_id] = (time.monotonic(), config)
            while len(self._config_cache) > CONFIG_CACHE_MAX:
                del self._config_cache[next(iter(self._config_cache))]
        return config

    async def set_chat_config(self, chat_id: int, chat_type: str, key: str, value: Any | None) -> None:
        """Set one chat setting, or remove it (back to the global default) when value is None."""
        async with self.connection() as conn:
            if value is None:
                cur = await conn.execute(
                    "UPDATE chats SET config = config - %s, updated_at = now() WHERE chat_id = %s"
                    " RETURNING config", (key, chat_id))
            else:
                cur = await conn.execute(
                    "INSERT INTO chats (chat_id, chat_type, config) VALUES (%(c)s, %(t)s, %(cfg)s)"
                    " ON CONFLICT (chat_id) DO UPDATE SET config = chats.config || %(cfg)s,"
                    " updated_at = now() RETURNING config",
                    {"c": chat_id, "t": chat_type, "cfg": Jsonb({key: value})},
                )
            row = await cur.fetchone()
        if self.shared:  # the new layer for every process, replacing what any load put there
            await self.shared.set_json(f"chat-config:{chat_id}", row[0] if row else {}, SHARED_CONFIG_TTL)
        self._config_changes += 1
        self._config_cache.pop(chat_id, None)
        self._config_loads.pop(chat_id, None)  # a load running now may have read the old value

    async def chat_stats(self, chat_id: int, bot_id: int | None = None) -> dict[str, Any]:
        """Counts for /stats; the bot's own stored answers (user bot_id) are left out."""
        args = {"chat": chat_id, "bot": bot_id}
        await self._flush_before_reading()
        async with self.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT count(*) AS messages, count(DISTINCT user_id) AS users, min(timestamp) AS first,"
                " max(timestamp) AS last, count(*) FILTER (WHERE timestamp > now() - interval '1 day') AS day"
                " FROM messages WHERE chat_id = %(chat)s AND user_id IS DISTINCT FROM %(bot)s::bigint", args)
            stats = await cur.fetchone() or {}
            await cur.execute(
                "SELECT coalesce(u.username, u.first_name, m.user_id::text) AS name, count(*) AS n"
                " FROM messages m LEFT JOIN users u ON u.user_id = m.user_id"
                " WHERE m.chat_id = %(chat)s AND m.user_id IS NOT NULL"
                " AND m.user_id IS DISTINCT FROM %(bot)s::bigint"
                " GROUP BY 1 ORDER BY n DESC, name LIMIT 5", args)
            stats["top"] = await cur.fetchall()
        return stats

    async def recent_messages(self, chat_id: int, limit: int) -> list[dict[str, Any]]:
        """The last `limit` messages of a chat, oldest first, with the author's display name."""
        return await self._messages(
            "WHERE m.chat_id = %(chat)s ORDER BY m.timestamp DESC, m.id DESC LIMIT %(limit)s",
            {"chat": chat_id, "limit": limit})

    async def messages_between(self, chat_id: int, start: datetime, end: datetime,
                               limit: int) -> list[dict[str, Any]]:
        return await self._messages(
            "WHERE m.chat_id = %(chat)s AND m.timestamp >= %(start)s AND m.timestamp < %(end)s"
            " ORDER BY m.timestamp DESC, m.id DESC LIMIT %(limit)s",
            {"chat": chat_id, "start": start, "end": end, "limit": limit})

    async def _messages(self, where: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        await self._flush_before_reading()
        async with self.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT m.message_id, m.user_id, m.text, m.timestamp,"
                " coalesce(u.first_name, u.username, m.user_id::text, 'someone') AS name"
                " FROM messages m LEFT JOIN users u ON u.user_id = m.user_id "
                f"{where}", params)
            rows = await cur.fetchall()
        rows.reverse()
        return rows

    async def cached_analysis(self, chat_id: int, period: str, content_hash: str) -> str | None:
        key = f"analysis:{chat_id}:{period}:{content_hash}"
        if self.shared and isinstance(summary := await self.shared.get_json(key), str):
            return summary
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT summary FROM analysis_cache WHERE chat_id = %s AND period = %s AND content_hash = %s",
                (chat_id, period, content_hash))
            row = await cur.fetchone()
        if row and self.shared:
            await self.shared.set_json(key, row[0], SHARED_ANALYSIS_TTL)
        return row[0] if row else None

    async def store_analysis(self, chat_id: int, period: str, content_hash: str, summary: str) -> None:
        if self.shared:
            await self.shared.set_json(f"analysis:{chat_id}:{period}:{content_hash}", clean_text(summary),
                                       SHARED_ANALYSIS_TTL)
        async with self.connection() as conn:
            await conn.execute(
                "INSERT INTO analysis_cache (chat_id, period, content_hash, summary) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (chat_id, period, content_hash) DO UPDATE SET summary = EXCLUDED.summary,"
                " created_at = now()", (chat_id, period, content_hash, clean_text(summary)))

    async def user_city(self, user_id: int) -> str | None:
        async with self.connection() as conn:
            cur = await conn.execute("SELECT city FROM users WHERE user_id = %s", (user_id,))
            row = await cur.fetchone()
        return row[0] if row else None

    async def set_user_city(self, user: dict[str, Any], city: str) -> None:
        async with self.connection() as conn:
            await conn.execute(
                "INSERT INTO users (user_id, username, first_name, last_name, city)"
                " VALUES (%(id)s, %(username)s, %(first_name)s, %(last_name)s, %(city)s)"
                " ON CONFLICT (user_id) DO UPDATE SET city = EXCLUDED.city, updated_at = now()",
                {"id": user["id"], "username": user.get("username"), "first_name": user.get("first_name"),
                 "last_name": user.get("last_name"), "city": clean_text(city)})

    async def record_error(self, code: str, logger: str, message: str, chat_id: int | None) -> None:
        async with self.connection() as conn:
            await conn.execute(
                "INSERT INTO error_events (code, logger, message, chat_id) VALUES (%s, %s, %s, %s)",
                (code, logger, clean_text(message[:2000]), chat_id))

    async def error_counts(self, since: datetime, chat_id: int | None = None) -> dict[str, int]:
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT code, count(*) FROM error_events WHERE ts >= %s"
                " AND (%s::bigint IS NULL OR chat_id = %s) GROUP BY code ORDER BY count(*) DESC, code",
                (since, chat_id, chat_id))
            return {code: n for code, n in await cur.fetchall()}


def _log_if_slow(started: float) -> None:
    """A `slow_query` line naming the function that held the connection (the caller of connection())."""
    ms = (time.monotonic() - started) * 1000
    if ms < SLOW_QUERY_MS:
        return
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_name == "connection" or "contextlib" in frame.f_code.co_filename
    ):
        frame = frame.f_back
    log.warning("slow_query: %s held a database connection for %d ms (threshold %d ms)",
                frame.f_code.co_name if frame else "?", ms, SLOW_QUERY_MS)


def _columns(rows: list[dict[str, Any]], *keys: str) -> list[list[Any]]:
    """Rows as one list per column, for unnest(): one statement stores the whole batch."""
    return [[row[key] for row in rows] for key in keys]


_UPSERT_CHATS_SQL = """
INSERT INTO chats (chat_id, chat_type, title)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[])
ON CONFLICT (chat_id) DO UPDATE SET chat_type = EXCLUDED.chat_type, title = EXCLUDED.title, updated_at = now()
WHERE (chats.chat_type, chats.title) IS DISTINCT FROM (EXCLUDED.chat_type, EXCLUDED.title)
"""

_UPSERT_USERS_SQL = """
INSERT INTO users (user_id, username, first_name, last_name)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])
ON CONFLICT (user_id) DO UPDATE SET username = EXCLUDED.username, first_name = EXCLUDED.first_name,
    last_name = EXCLUDED.last_name, updated_at = now()
WHERE (users.username, users.first_name, users.last_name)
    IS DISTINCT FROM (EXCLUDED.username, EXCLUDED.first_name, EXCLUDED.last_name)
"""

_INSERT_MESSAGES_SQL = """
INSERT INTO messages (chat_id, message_id, user_id, text, timestamp)
SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[])
ON CONFLICT (chat_id, message_id) DO UPDATE SET text = EXCLUDED.text
"""
