"""The batching message writer (bot.db.Database.queue_message) against a real PostgreSQL.

A batch that cannot be written (pool exhausted, server down) stays buffered and is retried until
it is stored; only an overflowing bounded buffer may drop messages, and that is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import psycopg
import pytest
import pytest_asyncio

import bot.db
from bot.db import Database

CHAT = {"id": -100_777, "type": "supergroup", "title": "Writer test"}
DEADLINE = 60.0  # seconds; generous for a loaded machine, only reached when something is broken


def user(i: int) -> dict[str, object]:
    n = i % 13
    return {"id": 5000 + n, "username": f"u{n}", "first_name": f"Member {n}", "last_name": None}


def queue(db: Database, ids: range, text: str = "burst") -> None:
    now = datetime.now(UTC)
    for i in ids:
        db.queue_message(CHAT, user(i), i, f"{text} {i}", now)


def stored_ids(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT message_id FROM messages WHERE chat_id = %s ORDER BY message_id",
                            (CHAT["id"],)).fetchall()
    return [r[0] for r in rows]


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll (yielding to the writer) until condition() holds; fail after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.05)


async def until_stored(dsn: str, expected: list[int]) -> None:
    deadline = time.monotonic() + DEADLINE
    while (found := await asyncio.to_thread(stored_ids, dsn)) != expected:
        assert time.monotonic() < deadline, f"{len(found)} of {len(expected)} messages stored"
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture(loop_scope="function")
async def tiny_db(database_url: str) -> AsyncIterator[Database]:
    """Two connections at most and a short pool timeout, so a test can exhaust the pool cheaply."""
    db = Database(database_url, max_size=2, timeout=0.5)
    await db.open()
    assert db.up
    try:
        yield db
    finally:
        await db.close()


async def hold_all_connections(db: Database) -> list[psycopg.AsyncConnection]:
    held = [await db.pool.getconn() for _ in range(db.max_size)]
    assert db.pool.get_stats()["pool_available"] == 0
    return held


async def test_a_burst_while_the_pool_is_exhausted_is_stored_once_connections_return(
        tiny_db: Database, database_url: str) -> None:
    held = await hold_all_connections(tiny_db)
    errors_before = tiny_db.pool.get_stats().get("requests_errors", 0)
    queue(tiny_db, range(1, 3001))
    # the writer tries, times out on the pool (DB003) and keeps the whole burst buffered
    await until(lambda: tiny_db.pool.get_stats().get("requests_errors", 0) >= errors_before + 2,
                "two failed writer attempts")
    assert tiny_db.pending == 3000
    assert tiny_db.up  # an exhausted pool is not an outage
    for conn in held:
        await tiny_db.pool.putconn(conn)
    await until_stored(database_url, list(range(1, 3001)))
    assert tiny_db.dropped == 0 and tiny_db.pending == 0


async def test_a_burst_across_a_server_outage_is_stored_after_recovery_without_duplicates(
        database_url: str, pg_server) -> None:
    db = Database(database_url)
    await db.open()
    try:
        queue(db, range(1, 1001))
        await until(lambda: db.pending == 0, "the first part is stored")
        pg_server.stop()
        try:
            queue(db, range(1001, 2001))
            await until(lambda: not db.up, "the writer noticed the outage")
            queue(db, range(2001, 3001))
            await asyncio.sleep(0)
            assert db.pending >= 2000  # kept, not dropped
        finally:
            pg_server.start()
        await until_stored(database_url, list(range(1, 3001)))  # exact list: none lost, none twice
        assert db.dropped == 0
        with psycopg.connect(database_url) as conn:
            users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
            chats = conn.execute("SELECT title FROM chats").fetchall()
        assert users == 13 and chats == [(CHAT["title"],)]
    finally:
        await db.close()


async def test_a_failed_batch_goes_back_to_the_head_and_only_overflow_is_dropped_and_logged(
        tiny_db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(bot.db, "MAX_PENDING", 50)
    held = await hold_all_connections(tiny_db)
    queue(tiny_db, range(1, 41))
    await until(lambda: tiny_db.pool.get_stats().get("requests_waiting", 0) >= 1,
                "the writer took the first batch and waits for the pool")
    queue(tiny_db, range(41, 81))  # arrives while the first batch is in flight
    # the failed first batch goes back in front of the newer messages; the buffer holds 50,
    # so the 30 newest are dropped, and that is logged with the count and APP004
    with caplog.at_level(logging.ERROR, logger="bot.db"):
        await until(lambda: tiny_db.dropped == 30, "the overflow")
    assert tiny_db.pending == 50  # buffered or in flight
    drops = [r for r in caplog.records if getattr(r, "code", None) == "APP004"]
    assert drops and "30 messages dropped" in drops[0].getMessage()
    for conn in held:
        await tiny_db.pool.putconn(conn)
    await until_stored(database_url, list(range(1, 51)))  # the oldest 50, in order of arrival


async def test_a_full_buffer_refuses_new_messages_and_logs_the_count(
        tiny_db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(bot.db, "MAX_PENDING", 20)
    with caplog.at_level(logging.ERROR, logger="bot.db"):
        queue(tiny_db, range(1, 26))  # synchronously: the writer has not run yet
    assert tiny_db.dropped == 5 and tiny_db.pending == 20
    assert [r.getMessage() for r in caplog.records if getattr(r, "code", None) == "APP004"] == [
        "message buffer full (20 messages or 64 MiB waiting): 1 messages dropped, not stored (1 in total)"]
    await until_stored(database_url, list(range(1, 21)))
    await until(lambda: tiny_db.pending == 0, "the writer finished")
    assert any("4 messages dropped" in r.getMessage() and getattr(r, "code", None) == "APP004"
               for r in caplog.records)


async def test_edits_and_repeats_in_one_batch_keep_the_last_version(tiny_db: Database,
                                                                    database_url: str) -> None:
    now = datetime.now(UTC)
    tiny_db.queue_message(CHAT, user(1), 1, "first", now)
    tiny_db.queue_message(CHAT, user(1), 1, "edited", now)
    tiny_db.queue_message(CHAT, user(2), 2, None, now)
    tiny_db.queue_message({**CHAT, "title": "Renamed"}, None, 3, "no sender", now)
    await tiny_db.flush()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT message_id, user_id, text FROM messages ORDER BY message_id").fetchall()
        title = conn.execute("SELECT title FROM chats").fetchone()[0]
    assert rows == [(1, 5001, "edited"), (2, 5002, None), (3, None, "no sender")]
    assert title == "Renamed"


async def test_a_cold_chat_config_cache_costs_one_query_not_one_per_message(tiny_db: Database) -> None:
    tiny_db.pool.pop_stats()
    layers = await asyncio.gather(*(tiny_db.chat_config(CHAT["id"], strict=False) for _ in range(300)))
    assert layers == [{}] * 300
    assert tiny_db.pool.pop_stats().get("requests_num", 0) == 1


async def test_a_lone_surrogate_is_stored_cleaned_and_never_blocks_the_writer(tiny_db: Database,
                                                                             database_url: str) -> None:
    # Telegram's JSON may carry "\\ud800" alone; UTF-8 (the server's encoding) has no such character.
    now = datetime.now(UTC)
    queue(tiny_db, range(1, 5))
    tiny_db.queue_message({**CHAT, "title": "bad \ud800 title"}, {**user(1), "first_name": "\udfff"}, 5,
                          "lone \ud83d surrogate \x00 and NUL", now)  # the last version of chat and user
    await until_stored(database_url, [1, 2, 3, 4, 5])
    assert tiny_db.pending == 0 and tiny_db.dropped == 0
    with psycopg.connect(database_url) as conn:
        text = conn.execute("SELECT text FROM messages WHERE message_id = 5").fetchone()[0]
        title = conn.execute("SELECT title FROM chats").fetchone()[0]
        name = conn.execute("SELECT first_name FROM users WHERE user_id = 5001").fetchone()[0]
    assert (text, title, name) == ("lone \ufffd surrogate \ufffd and NUL", "bad \ufffd title", "\ufffd")
    queue(tiny_db, range(6, 8))  # the writer is still alive
    await until_stored(database_url, [1, 2, 3, 4, 5, 6, 7])


async def test_a_row_that_cannot_be_encoded_is_set_aside_and_the_rest_is_stored(
        tiny_db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Defence in depth: should an unencodable row get past clean_text, only that row is lost."""
    monkeypatch.setattr(bot.db, "clean_text", lambda text: text)
    now = datetime.now(UTC)
    queue(tiny_db, range(1, 3))
    tiny_db.queue_message(CHAT, user(3), 3, "lone \ud800", now)
    queue(tiny_db, range(4, 6))
    with caplog.at_level(logging.ERROR, logger="bot.db"):
        await until_stored(database_url, [1, 2, 4, 5])
        await until(lambda: tiny_db.pending == 0, "the writer finished")
    assert tiny_db.dropped == 1
    assert any("1 messages refused" in r.getMessage() for r in caplog.records)


async def test_the_buffer_is_bounded_by_bytes_as_well_as_by_count(
        tiny_db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(bot.db, "MAX_PENDING_BYTES", 1024 * 1024)
    held = await hold_all_connections(tiny_db)  # nothing is written meanwhile
    long_text = "\U0001f600" * 4096  # Telegram's longest message, 4 bytes a character in memory
    now = datetime.now(UTC)
    with caplog.at_level(logging.ERROR, logger="bot.db"):
        for i in range(1, 101):
            tiny_db.queue_message(CHAT, user(i), i, long_text, now)
    assert 50 <= tiny_db.pending < 64  # ~16 KiB each: the MiB holds about 60, not 100
    assert tiny_db.dropped == 100 - tiny_db.pending
    assert tiny_db._pending_bytes <= 1024 * 1024
    assert any(getattr(r, "code", None) == "APP004" for r in caplog.records)
    for conn in held:
        await tiny_db.pool.putconn(conn)
    await until(lambda: tiny_db.pending == 0, "the writer finished")
    assert tiny_db._pending_bytes == 0
    assert len(stored_ids(database_url)) == 100 - tiny_db.dropped


async def test_the_chat_config_cache_is_bounded(tiny_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.db, "CONFIG_CACHE_MAX", 50)
    for chat_id in range(200):
        await tiny_db.chat_config(chat_id)
    assert len(tiny_db._config_cache) == 50
    assert set(tiny_db._config_cache) == set(range(150, 200))  # the oldest went first
