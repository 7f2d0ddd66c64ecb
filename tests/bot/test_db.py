"""Migrations and the async Database against a real PostgreSQL, including an outage and recovery."""

from __future__ import annotations

import inspect
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import pytest_asyncio
from botproc import module_bot

from bot.db import Database, migrate, migration_files
from bot.errors import BotError

CHAT = {"id": -1001, "type": "supergroup", "title": "Test group"}
USER = {"id": 7, "username": "neo", "first_name": "Thomas", "last_name": "Anderson"}


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_migrate_check_apply_idempotent(database_url: str) -> None:
    names = [name for _, name, _ in migration_files()]
    assert names and names[0] == "001_initial"
    assert migrate(database_url, check=True) == names
    assert tables(database_url) == set()  # --check changes nothing
    assert migrate(database_url) == names
    assert migrate(database_url) == []
    assert migrate(database_url, check=True) == []
    assert {"chats", "users", "messages", "analysis_cache", "error_events", "schema_migrations"} <= tables(
        database_url)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
        found = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'messages'").fetchall()
        indexes = {r[0] for r in found}
    assert [(v, n) for v, n, _ in rows] == [(v, n) for v, n, _ in migration_files()]
    assert "messages_chat_id_timestamp_idx" in indexes


def test_migrate_against_a_missing_server_raises_operational_error(pg_server) -> None:
    with pytest.raises(psycopg.OperationalError):
        migrate(pg_server.dsn("no_such_database_here"))


@pytest_asyncio.fixture(loop_scope="function")  # the pool lives on the test's own loop
async def database(database_url: str):
    db = Database(database_url)
    await db.open()
    assert db.up
    try:
        yield db
    finally:
        await db.close()


async def test_store_message_upserts_and_keeps_text_verbatim(database: Database, database_url: str) -> None:
    ts = datetime.now(UTC)
    weird = "RTL \u202eabc\u202c zero\u200bwidth $(id); -rf " + "я" * 5000 + "\x00nul"
    await database.store_message(CHAT, USER, 1, weird, ts)
    await database.store_message(CHAT, {**USER, "username": "the_one"}, 1, "edited", ts)  # edit: same id
    await database.store_message({**CHAT, "title": "Renamed"}, None, 2, None, ts)  # no author, no text
    with psycopg.connect(database_url) as conn:
        msgs = conn.execute("SELECT message_id, user_id, text FROM messages ORDER BY message_id").fetchall()
        chat = conn.execute("SELECT chat_type, title, config FROM chats").fetchall()
        users = conn.execute("SELECT user_id, username FROM users").fetchall()
    assert msgs == [(1, 7, "edited"), (2, None, None)]
    assert chat == [("supergroup", "Renamed", {})]
    assert users == [(7, "the_one")]
    await database.store_message(CHAT, USER, 3, weird, ts)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT text FROM messages WHERE message_id = 3").fetchone()[0]
    assert stored == weird.replace("\x00", "\ufffd")


def test_the_upsert_sql_is_written_once() -> None:
    """store_message and the batch writer share their statements (a change to one used to miss the other)."""
    import bot.db

    source = inspect.getsource(bot.db)
    for clause in ("ON CONFLICT (user_id) DO UPDATE SET username", "INSERT INTO messages (chat_id, "):
        assert source.count(clause) == 1, clause


async def test_queued_messages_are_written_in_batches_and_visible_to_readers(database: Database) -> None:
    now = datetime.now(UTC)
    for i in range(1, 501):
        database.queue_message(CHAT, {**USER, "id": 1000 + i % 7}, i, f"queued {i}", now)
    # no explicit flush: readers flush first, so a reader never misses what was queued before it
    stats = await database.chat_stats(CHAT["id"])
    assert stats["messages"] == 500 and stats["users"] == 7
    assert [r["text"] for r in await database.recent_messages(CHAT["id"], 2)] == ["queued 499", "queued 500"]


async def test_queued_messages_during_an_outage_are_kept_and_stored_after_recovery(database: Database,
                                                                                   pg_server) -> None:
    pg_server.stop()
    try:
        with pytest.raises(BotError):
            await database.chat_stats(CHAT["id"])  # marks the database down
        database.queue_message(CHAT, USER, 1, "kept", datetime.now(UTC))
        with pytest.raises(BotError) as info:
            await database.flush()
        assert info.value.code == "DB001"
        assert database.pending == 1  # a failed flush keeps the rows for the writer's retry
    finally:
        pg_server.start()
    deadline = time.monotonic() + 30
    while database.pending and time.monotonic() < deadline:
        await _tick()
    assert database.pending == 0, "the writer did not store the buffered message after recovery"
    assert [r["text"] for r in await database.recent_messages(CHAT["id"], 10)] == ["kept"]


async def test_queries_for_features(database: Database) -> None:
    now = datetime.now(UTC)
    for i in range(1, 6):
        await database.store_message(CHAT, USER, i, f"message {i}", now - timedelta(minutes=10 - i))
    await database.store_message(CHAT, {"id": 99, "username": "bot", "first_name": "Bot"}, 6, "answer", now)
    recent = await database.recent_messages(CHAT["id"], 3)
    assert [r["text"] for r in recent] == ["message 4", "message 5", "answer"]
    assert recent[0]["name"] == "Thomas"
    window = await database.messages_between(CHAT["id"], now - timedelta(minutes=8), now, 100)
    assert [r["text"] for r in window] == ["message 2", "message 3", "message 4", "message 5"]
    stats = await database.chat_stats(CHAT["id"], bot_id=99)
    assert (stats["messages"], stats["users"], stats["day"]) == (5, 1, 5)
    assert [(t["name"], t["n"]) for t in stats["top"]] == [("neo", 5)]

    assert await database.cached_analysis(CHAT["id"], "last:5", "h1") is None
    await database.store_analysis(CHAT["id"], "last:5", "h1", "summary one")
    await database.store_analysis(CHAT["id"], "last:5", "h1", "summary two")
    assert await database.cached_analysis(CHAT["id"], "last:5", "h1") == "summary two"

    assert await database.user_city(USER["id"]) is None
    await database.set_user_city(USER, "Kyiv")
    assert await database.user_city(USER["id"]) == "Kyiv"
    await database.set_user_city({"id": 555, "first_name": "New"}, "Lviv")  # a user we never saw write
    assert await database.user_city(555) == "Lviv"

    await database.record_error("API001", "test", "rate limited", CHAT["id"])
    await database.record_error("API001", "test", "rate limited", None)
    await database.record_error("DB002", "test", "slow", CHAT["id"])
    since = now - timedelta(hours=1)
    assert await database.error_counts(since) == {"API001": 2, "DB002": 1}
    assert await database.error_counts(since, CHAT["id"]) == {"API001": 1, "DB002": 1}
    assert await database.error_counts(now + timedelta(hours=1)) == {}


async def test_chat_config_layer_set_reset_and_cache(database: Database) -> None:
    assert await database.chat_config(CHAT["id"]) == {}
    await database.set_chat_config(CHAT["id"], "supergroup", "gpt_temperature", 1.2)
    await database.set_chat_config(CHAT["id"], "supergroup", "gpt_model", "gpt-4o")
    assert await database.chat_config(CHAT["id"]) == {"gpt_temperature": 1.2, "gpt_model": "gpt-4o"}
    await database.set_chat_config(CHAT["id"], "supergroup", "gpt_temperature", None)
    assert await database.chat_config(CHAT["id"]) == {"gpt_model": "gpt-4o"}


async def test_outage_fails_fast_with_db001_and_recovers(database: Database, pg_server) -> None:
    await database.store_message(CHAT, USER, 1, "before", datetime.now(UTC))
    pg_server.stop()
    try:
        with pytest.raises(BotError) as info:
            await database.store_message(CHAT, USER, 2, "during", datetime.now(UTC))
        assert info.value.code == "DB001"
        assert not database.up
        started = time.monotonic()
        for _ in range(20):  # while down, calls are refused at once instead of waiting on the pool
            with pytest.raises(BotError, match="unavailable"):
                await database.chat_stats(CHAT["id"])
        assert time.monotonic() - started < 1.0
        assert await database.chat_config(CHAT["id"], strict=False) == {}
    finally:
        pg_server.start()
    deadline = time.monotonic() + 20
    while not database.up and time.monotonic() < deadline:
        await _tick()
    assert database.up, "the probe did not bring the database back"
    await database.store_message(CHAT, USER, 3, "after", datetime.now(UTC))
    assert [r["text"] for r in await database.recent_messages(CHAT["id"], 10)] == ["before", "after"]


async def test_opening_while_the_server_is_down_starts_degraded_then_recovers(database_url: str,
                                                                              pg_server) -> None:
    pg_server.stop()
    db = Database(database_url)
    try:
        await db.open()
        assert not db.up
        with pytest.raises(BotError) as info:
            await db.user_city(1)
        assert info.value.code == "DB001"
        pg_server.start()
        deadline = time.monotonic() + 20
        while not db.up and time.monotonic() < deadline:
            await _tick()
        assert db.up
        assert await db.user_city(1) is None  # and the migrations ran on recovery
    finally:
        pg_server.start()
        await db.close()


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.05)  # yield to the probe task; the loop condition is what we wait for


async def test_a_user_without_rights_to_migrate_still_gets_a_working_database(database_url: str,
                                                                               caplog) -> None:
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS bot_reader")
        conn.execute("CREATE ROLE bot_reader LOGIN")
        conn.execute("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO bot_reader")
        conn.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO bot_reader")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute("DELETE FROM schema_migrations")  # pretend a migration is pending
    assert "://postgres@" in database_url
    db = Database(database_url.replace("://postgres@", "://bot_reader@"))
    try:
        await db.open()
        assert db.up  # the migration failed (logged as APP001), the database is still used
        failed = [r for r in caplog.records if r.getMessage().startswith("database migrations failed")]
        assert failed and failed[0].code == "APP001" and "permission denied" in failed[0].getMessage()
        await db.store_message(CHAT, USER, 1, "works", datetime.now(UTC))
        assert [r["text"] for r in await db.recent_messages(CHAT["id"], 5)] == ["works"]
    finally:
        await db.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("REASSIGN OWNED BY bot_reader TO CURRENT_USER")
            conn.execute("DROP OWNED BY bot_reader")
            conn.execute("DROP ROLE bot_reader")


def test_migrations_of_one_run_are_one_transaction(database_url: str, tmp_path, monkeypatch) -> None:
    """Migration 2 of 2 fails: migration 1 is undone too (schema and schema_migrations as before)."""
    migrate(database_url)
    before = tables(database_url)
    shipped = migration_files()
    for _, _, path in shipped:
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "901_first.sql").write_text("CREATE TABLE ops_first (id int);\n")
    (tmp_path / "902_second.sql").write_text("CREATE TABLE ops_second (id int); SELECT 1/0;\n")
    monkeypatch.setattr("bot.db.MIGRATIONS_DIR", tmp_path)
    with pytest.raises(psycopg.errors.DivisionByZero):
        migrate(database_url)
    assert tables(database_url) == before
    with psycopg.connect(database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _, _ in shipped]
    assert migrate(database_url, check=True) == ["901_first", "902_second"]


def _text(item: dict) -> str:
    return item.get("text") or item["params"].get("text") or ""


def _waiting_for_lock(dsn: str, table: str) -> int:
    """Sessions blocked on a lock of `table`: each holds one of the bot's pool connections while it waits."""
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                            (table,)).fetchone()[0]


@pytest.mark.runbook("Troubleshooting | DB003 connection pool exhausted: raise the pool size")
@pytest.mark.parametrize(("pool_size", "exhausted"), [("1", True), ("12", False)])
def test_the_pool_size_setting_decides_whether_a_burst_exhausts_the_pool(
        pg_server, sandbox, tmp_path, pool_size: str, exhausted: bool) -> None:
    """A burst of /weather (background handlers, one users query each) while a long transaction locks users:
    every query holds its pool connection while it waits. Eight of them, plus the message writer, need nine
    connections: a pool of 1 runs out (DB003 logged, the users told the bot is busy); BOT_DB_POOL_SIZE=12
    holds them all, so nothing is logged and every user gets the real answer once the lock goes.
    (A fixed pool of 5, as before the setting, runs out in both cases.)"""
    users = range(9201, 9209)
    bots = module_bot(pg_server, sandbox, tmp_path, BOT_DB_POOL_SIZE=pool_size)
    bot = next(bots)
    try:
        after = bot.client.last_sent_id()
        with psycopg.connect(bot.dsn) as locker:  # the transaction (and the lock) ends with this block
            locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            for user in users:
                bot.client.push("/weather", user_id=user)
            if exhausted:
                record = bot.wait_log("error.log", lambda r: r.get("code") == "DB003", timeout=30)
                assert "connection pool exhausted: all 1 connections busy" in record["msg"]
                assert "raise BOT_DB_POOL_SIZE" in record["msg"]
            else:
                deadline = time.monotonic() + 30
                while _waiting_for_lock(bot.dsn, "users") < len(users) + 1:  # the burst and the writer
                    assert time.monotonic() < deadline, "the burst never got its connections"
                    time.sleep(0.05)
        replies = [_text(bot.client.wait_for(chat_id=user, count=1, timeout=30, after=after)[0])
                   for user in users]
        busy = [text for text in replies if text.endswith("(DB003)")]  # "⚠️ The bot is busy right now, ..."
        db003 = [r for r in bot.records("error.log") if r.get("code") == "DB003"]
        if exhausted:
            assert busy and db003
        else:
            assert not busy and not db003, (busy, db003)
            assert all(text.startswith("Tell me a city") for text in replies), replies
    finally:
        next(bots, None)

async def test_a_slow_query_is_logged_as_slow_query_with_its_caller(database: Database, caplog) -> None:
    """The runbook greps general.log for slow_query: a call holding its connection too long is one."""

    async def hold_for(seconds: float) -> None:
        async with database.connection() as conn:
            await conn.execute("SELECT pg_sleep(%s)", (seconds,))

    await hold_for(0.01)
    assert not [r for r in caplog.records if "slow_query" in r.getMessage()]
    await hold_for(1.1)
    slow = [r.getMessage() for r in caplog.records if "slow_query" in r.getMessage()]
    assert len(slow) == 1, slow
    assert slow[0].startswith("slow_query: hold_for held a database connection for 1"), slow
