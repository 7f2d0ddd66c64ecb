"""Per-user and per-chat limits on the calls that cost money or time: GPT, /analyze, video downloads.

The limits come from `rate_limits` in the global config (0 turns one off). Counts live in memory: a
restart forgets them, which errs on the generous side and needs no database round trip per message.
With REDIS_URL set they live in Redis instead (bot.cache.RedisQuotas): kept across restarts, shared.
Outgoing flood control towards Telegram is PTB's AIORateLimiter, set in bot.app.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# limit name -> (seconds, counted per user or per chat)
WINDOWS: dict[str, tuple[float, str]] = {
    "per_user_per_minute": (60.0, "user"),
    "per_chat_per_minute": (60.0, "chat"),
    "per_chat_per_day": (86_400.0, "chat"),
}
MAX_KEYS = 100_000  # counters kept; beyond that the idle ones are dropped (bounded memory under a flood)


@dataclass(frozen=True)
class Refusal:
    limit: str  # a WINDOWS key
    retry_after: float  # seconds until the next call is allowed
    first: bool  # the first refusal of this run of refusals: the one worth a reply


class Quotas:
    """Sliding-window counters; `take` either counts a call everywhere or refuses it, counting nothing."""

    def __init__(self, limits: Mapping[str, Mapping[str, int]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._calls: dict[tuple[str, str, int], deque[float]] = {}
        self._refused: dict[tuple[str, str, int], float] = {}  # counter -> until when it said "slow down"

    def take(self, kind: str, chat_id: int | None, user_id: int | None) -> Refusal | None:
        now = self.clock()
        counters: list[deque[float]] = []
        refusal: Refusal | None = None
        for name, (window, scope) in WINDOWS.items():
            limit = int(self.limits.get(kind, {}).get(name, 0))
            who = user_id if scope == "user" else chat_id
            if limit <= 0 or who is None:
                continue
            key = (kind, name, who)
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                wait = calls[0] + window - now
                if refusal is None or wait > refusal.retry_after:
                    first = self._refused.get(key, 0.0) <= now
                    self._refused[key] = now + wait
                    refusal = Refusal(name, wait, first)
            counters.append(calls)
        if refusal is not None:
            return refusal
        for calls in counters:
            calls.append(now)
        if len(self._calls) > MAX_KEYS:
            self._forget_idle(now)
        return None

    async def check(self, kind: str, chat_id: int | None, user_id: int | None) -> Refusal | None:
        """take(), in the form the shared counters (bot.cache.RedisQuotas) need: what features call."""
        return self.take(kind, chat_id, user_id)

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, calls in self._calls.items() if not calls or calls[-1] <= now - WINDOWS[k[1]][0]]
        for key in idle:
            del self._calls[key]
            self._refused.pop(key, None)


_WHO = {
    "per_user_per_minute": "you are asking too often",
    "per_chat_per_minute": "this chat is asking too often",
    "per_chat_per_day": "this chat has used today's quota",
}
_WHAT = {"gpt": "the AI", "analyze": "/analyze", "video": "video downloads"}


def slow_down_text(kind: str, refusal: Refusal) -> str:
    seconds = max(1, round(refusal.retry_after))
    if seconds < 120:
        wait = f"{seconds} s"
    else:
        wait = f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"
    return f"🐢 Slow down: {_WHO[refusal.limit]} for {_WHAT.get(kind, kind)}. Try again in {wait}."
