"""Optional Redis (REDIS_URL): caches shared by every bot process and kept across restarts.

Without REDIS_URL nothing here runs and the bot keeps its in-process caches. With it:
- quota counters (RedisQuotas): a restart no longer resets them, and processes count together;
- the chat-config layer (Database.chat_config): loaded once for every process, replaced on /config set;
- /analyze summaries (Database.cached_analysis): answered without a PostgreSQL query.
A Redis failure never fails a command: each use falls back to what the bot does without Redis (logged
as a warning at most once a minute).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.quotas import WINDOWS, Quotas, Refusal

log = logging.getLogger(__name__)

PREFIX = "psychochauffeur:"
TIMEOUT = 1.0  # seconds for a connect or a command: a slow Redis must not slow every message down
WARN_INTERVAL = 60.0

# KEYS: n counters (sorted sets of call times, ms), then their n "refused until" flags.
# ARGV: now (ms), a unique member, then limit and window (ms) per counter.
# Counts the call on every counter, or on none and returns the longest wait (and whether the flag was new).
_TAKE = """
local n = #KEYS / 2
local now = tonumber(ARGV[1])
local worst, worst_i = -1, 0
for i = 1, n do
  local limit, window = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = tonumber(redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')[2])
    if oldest + window - now > worst then worst, worst_i = oldest + window - now, i end
  end
end
if worst_i > 0 then
  local first = redis.call('SET', KEYS[n + worst_i], '1', 'NX', 'PX', math.max(1, math.ceil(worst)))
  return {worst_i, tostring(worst), first and 1 or 0}
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 + 2 * i]))
end
return {0, '0', 0}
"""


class SharedCache:
    """JSON values under PREFIX; every failure is logged and reads as a miss."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                                        decode_responses=True)
        self._last_warning = 0.0

    def failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_INTERVAL:
            self._last_warning = now
            log.warning("redis unavailable (%s: %s): %s", type(exc).__name__, exc, what)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError) as exc:
            self.failed("the bot runs without its shared caches until it answers", exc)
            return False

    async def get_json(self, key: str) -> Any | None:
        try:
            raw = await self.client.get(PREFIX + key)
        except (RedisError, OSError) as exc:
            self.failed("reading from the database instead", exc)
            return None
        try:
            return None if raw is None else json.loads(raw)
        except ValueError:  # not written by this bot: a miss, the caller reads the database
            return None

    async def set_json(self, key: str, value: Any, ttl: float, only_new: bool = False) -> None:
        """only_new: keep a value already there (a load must not overwrite what a change wrote)."""
        try:
            await self.client.set(PREFIX + key, json.dumps(value), px=int(ttl * 1000), nx=only_new)
        except (RedisError, OSError) as exc:
            self.failed("not cached", exc)

    async def close(self) -> None:
        await self.client.aclose()


class RedisQuotas(Quotas):
    """The quota counters in Redis (wall-clock time, so they survive a restart); the in-process
    counters of Quotas take over while Redis does not answer."""

    def __init__(self, limits: Mapping[str, Mapping[str, int]], cache: SharedCache,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(limits, time.monotonic)
        self.cache = cache
        self.wall_clock = clock
        self._script = cache.client.register_script(_TAKE)

    async def check(self, kind: str, chat_id: int | None, user_id: int | None) -> Refusal | None:
        names, counters, args = [], [], []
        for name, (window, scope) in WINDOWS.items():
            limit = int(self.limits.get(kind, {}).get(name, 0))
            who = user_id if scope == "user" else chat_id
            if limit > 0 and who is not None:
                names.append(name)
                counters.append(f"{PREFIX}quota:{kind}:{name}:{who}")
                args += [limit, int(window * 1000)]
        if not counters:
            return None
        now_ms = int(self.wall_clock() * 1000)
        try:
            index, wait, first = await self._script(keys=counters + [c + ":refused" for c in counters],
                                                    args=[now_ms, f"{now_ms}-{uuid.uuid4().hex[:8]}", *args])
        except (RedisError, OSError) as exc:
            self.cache.failed("counting quotas in this process only", exc)
            return self.take(kind, chat_id, user_id)
        if not index:
            return None
        return Refusal(names[int(index) - 1], float(wait) / 1000, bool(first))
