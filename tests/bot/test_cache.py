"""Redis (REDIS_URL, bot/cache.py) against a real redis-server: quota counters that survive a restart and are
shared between processes, the chat-config layer and /analyze summaries served from Redis, and the bot
carrying on without Redis when it goes away."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from botproc import ADMIN_ID, module_bot, private_sandbox, start_bot, unhandled

from bot.cache import RedisQuotas, SharedCache
from bot.quotas import Quotas

LIMITS = {"gpt": {"per_user_per_minute": 2, "per_chat_per_day": 3}}
ONE_ASK = {"rate_limits": {"gpt": {"per_user_per_minute": 1}}}


def execute(dsn: str, sql: str, params: tuple = ()) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(sql, params)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(loop_scope="function")
async def cache(redis_server) -> AsyncIterator[SharedCache]:
    shared = SharedCache(redis_server.url)
    try:
        yield shared
    finally:
        await shared.close()


async def test_redis_quotas_count_like_the_in_process_ones(cache: SharedCache) -> None:
    clock = Clock()
    quotas = RedisQuotas(LIMITS, cache, clock)
    assert await quotas.check("gpt", -1, 7) is None and await quotas.check("gpt", -1, 7) is None
    refused = await quotas.check("gpt", -2, 7)  # the same user in another chat
    assert refused is not None and refused.limit == "per_user_per_minute" and refused.first
    assert refused.retry_after == pytest.approx(60)
    clock.now += 30
    again = await quotas.check("gpt", -1, 7)
    assert again is not None and not again.first and again.retry_after == pytest.approx(30)
    assert await quotas.check("gpt", -1, 8) is None  # another user; the chat's third call today
    day = await quotas.check("gpt", -1, 9)
    assert day is not None and day.limit == "per_chat_per_day"
    clock.now += 31
    assert await quotas.check("gpt", -3, 7) is None  # the refusals did not count


async def test_redis_quotas_survive_a_restart_and_are_shared(redis_server, cache: SharedCache) -> None:
    clock = Clock()
    assert await RedisQuotas(LIMITS, cache, clock).check("gpt", -1, 7) is None
    assert await RedisQuotas(LIMITS, cache, clock).check("gpt", -1, 7) is None
    other = SharedCache(redis_server.url)  # another process
    try:
        refused = await RedisQuotas(LIMITS, other, clock).check("gpt", -1, 7)
    finally:
        await other.close()
    assert refused is not None and refused.limit == "per_user_per_minute"
    # the in-process counters (no Redis) forget on every restart: what Redis fixes
    assert Quotas(LIMITS).take("gpt", -1, 7) is None


async def test_without_redis_the_quotas_count_in_process_and_say_so(
        redis_server, cache: SharedCache, caplog: pytest.LogCaptureFixture) -> None:
    quotas = RedisQuotas({"gpt": {"per_user_per_minute": 1}}, cache)
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, "bot.cache"):
            assert await quotas.check("gpt", -1, 7) is None
            refused = await quotas.check("gpt", -1, 7)
        assert refused is not None and refused.limit == "per_user_per_minute"
        assert [r.getMessage() for r in caplog.records if "redis unavailable" in r.getMessage()]
        assert await cache.get_json("anything") is None  # a miss, not an error
    finally:
        redis_server.start()


async def test_a_value_this_bot_did_not_write_is_a_miss(redis_server, cache: SharedCache) -> None:
    redis_server.client().set("psychochauffeur:chat-config:-1", "{not json")
    assert await cache.get_json("chat-config:-1") is None
    await cache.set_json("chat-config:-1", {"a": 1}, 60)
    assert await cache.get_json("chat-config:-1") == {"a": 1}
    await cache.set_json("chat-config:-1", {"a": 2}, 60, only_new=True)  # a load never overwrites a change
    assert await cache.get_json("chat-config:-1") == {"a": 1}


@pytest.mark.runbook("Performance | Caching (Redis, optional)")
def test_quotas_survive_a_bot_restart_with_redis(pg_server, sandbox, redis_server, tmp_path: Path) -> None:
    """One /ask a minute; the bot restarts between the two asks. With Redis the second is refused."""
    bots = module_bot(pg_server, sandbox, tmp_path / "a", ONE_ASK, REDIS_URL=redis_server.url)
    bot = next(bots)
    try:
        assert bot.say("/ask first", user_id=9101).startswith("Sandbox answer:")
        bot.wait_log("general.log", lambda r: r["msg"].startswith("redis is up"))
        bot.stop()
        again = start_bot(sandbox, bot.dsn, bot.app_dir, ONE_ASK, REDIS_URL=redis_server.url)
        try:
            assert again.say("/ask second", user_id=9101).startswith(
                "🐢 Slow down: you are asking too often for the AI.")
        finally:
            again.stop()
        # the control: without Redis the restarted bot has forgotten the first ask
        plain = start_bot(sandbox, bot.dsn, bot.app_dir, ONE_ASK)
        try:
            assert plain.say("/ask third", user_id=9101).startswith("Sandbox answer:")
        finally:
            plain.stop()
    finally:
        next(bots, None)


@pytest.mark.runbook("Performance | Caching (Redis, optional)")
def test_two_bots_share_quotas_chat_config_and_summaries(pg_server, sandbox, redis_server,
                                                          tmp_path: Path) -> None:
    """Two processes on one database and one Redis: what one counts or sets, the other sees; a summary
    is served from Redis when PostgreSQL no longer has it."""
    chat, other_chat = -9102, -9107
    bots = module_bot(pg_server, sandbox, tmp_path / "a", ONE_ASK, REDIS_URL=redis_server.url)
    first = next(bots)
    client = redis_server.client()
    try:
        with private_sandbox() as box:
            second = start_bot(box, first.dsn, tmp_path / "b", ONE_ASK, REDIS_URL=redis_server.url)
            try:
                assert first.say("/ask hello", chat_id=chat, user_id=9103).startswith("Sandbox answer:")
                assert second.say("/ask hello", chat_id=chat, user_id=9103).startswith("🐢 Slow down")
                # the chat-config layer: written to Redis by /config set, read from there by the other bot
                assert first.say("/config set gpt_temperature 0.3", chat_id=other_chat,
                                 user_id=ADMIN_ID).startswith("✅")
                assert client.get(f"psychochauffeur:chat-config:{other_chat}") == '{"gpt_temperature": 0.3}'
                # from now on only Redis has the setting
                execute(first.dsn, "UPDATE chats SET config = '{}' WHERE chat_id = %s", (other_chat,))
                shown = second.say("/config", chat_id=other_chat, user_id=ADMIN_ID)
                assert "* gpt_temperature = 0.3" in shown, shown
            finally:
                second.stop()
        # /analyze: with the summary gone from PostgreSQL, the second call is still a cache hit (Redis)
        first.client.push("something worth a summary", chat_id=chat, user_id=9104)
        assert first.say("/analyze", chat_id=chat, user_id=9105).startswith("📝 Summary of today")
        assert client.keys("psychochauffeur:analysis:*")
        execute(first.dsn, "DELETE FROM analysis_cache")
        answer = first.say("/analyze", chat_id=chat, user_id=9106)
        assert "cached" in answer.splitlines()[0], answer
    finally:
        next(bots, None)


@pytest.mark.runbook("Performance | Caching (Redis, optional)")
def test_the_bot_works_on_while_redis_is_down(pg_server, sandbox, redis_server, tmp_path: Path) -> None:
    """Redis stopped before the bot starts: it starts, says so once, and every cached path falls back."""
    redis_server.stop()
    try:
        bots = module_bot(pg_server, sandbox, tmp_path, ONE_ASK, REDIS_URL=redis_server.url)
        bot = next(bots)
        try:
            bot.wait_log("general.log", lambda r: r["msg"].startswith("redis unavailable"))
            assert bot.say("/ask one", user_id=9301).startswith("Sandbox answer:")
            assert bot.say("/ask two", user_id=9301).startswith("🐢 Slow down")  # counted in the process
            changed = bot.say("/config set gpt_temperature 0.5", chat_id=-9302, user_id=ADMIN_ID)
            assert changed.startswith("✅"), changed
            assert "* gpt_temperature = 0.5" in bot.say("/config", chat_id=-9302, user_id=ADMIN_ID)
            assert unhandled(bot) == []
        finally:
            next(bots, None)
    finally:
        redis_server.start()
