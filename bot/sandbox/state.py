"""In-memory state of one sandbox: pending updates, what the bot sent, chats, members.

Everything is bounded; counters (update ids, message ids, sent ids) never go back,
not even on reset, so a bot that is still polling never skips or repeats an update.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bot.sandbox.store import SandboxStore

MAX_PENDING_UPDATES = 50_000
MAX_SENT = 20_000
MAX_MESSAGES = 50_000
MAX_CHATS = 10_000
MAX_MEMBERS = 10_000
MAX_OPENAI_REQUESTS = 500
MAX_CONFIRMATIONS = 20_000

BOT_USERNAME = "psychochauffeur_sandbox_bot"
BOT_FIRST_NAME = "PsychoChauffeur Sandbox"

#: Methods left out of /control/sent and /control/wait unless asked for by name (or method=all).
QUIET_METHODS = frozenset({"sendChatAction", "setMyCommands", "deleteMyCommands"})


class _BoundedDict(OrderedDict):
    """OrderedDict that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


@dataclass
class Failure:
    """An injected Bot API error for the next `count` calls of `method`."""

    error_code: int
    description: str
    count: int
    retry_after: int | None = None


@dataclass
class SandboxState:
    bot_username: str = BOT_USERNAME
    bot_first_name: str = BOT_FIRST_NAME
    openai_key: str = "sk-sandbox"
    weather_key: str = "sandbox-weather-key"
    last_update_id: int = 0
    last_sent_id: int = 0
    pending: deque = field(default_factory=deque)
    sent: deque = field(default_factory=lambda: deque(maxlen=MAX_SENT))
    messages: _BoundedDict = field(default_factory=lambda: _BoundedDict(MAX_MESSAGES))
    chats: _BoundedDict = field(default_factory=lambda: _BoundedDict(MAX_CHATS))
    members: _BoundedDict = field(default_factory=lambda: _BoundedDict(MAX_MEMBERS))
    users: _BoundedDict = field(default_factory=lambda: _BoundedDict(MAX_MEMBERS))
    message_ids: _BoundedDict = field(default_factory=lambda: _BoundedDict(MAX_CHATS))
    commands: list = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    openai_requests: deque = field(default_factory=lambda: deque(maxlen=MAX_OPENAI_REQUESTS))
    calls: dict[str, int] = field(default_factory=dict)
    get_updates_calls: int = 0
    last_get_updates_at: float | None = None
    poll_generation: dict[int, int] = field(default_factory=dict)
    # /files/drip.mp4 and chunked.mp4 by their ?tag=: responses open now, the most open at once, bytes sent
    streams: _BoundedDict = field(default_factory=lambda: _BoundedDict(100))
    #: (time, offset) of each getUpdates that confirmed updates: when the bot had handled what (drills).
    confirmations: deque = field(default_factory=lambda: deque(maxlen=MAX_CONFIRMATIONS))
    store: SandboxStore | None = None
    started_at: float = field(default_factory=time.time)
    changed: asyncio.Condition | None = None

    def condition(self) -> asyncio.Condition:
        """One condition for 'an update was pushed' and 'the bot sent something'."""
        if self.changed is None:
            self.changed = asyncio.Condition()
        return self.changed

    async def notify(self) -> None:
        cond = self.condition()
        async with cond:
            cond.notify_all()

    def reset(self) -> None:
        """Forget data; keep counters and the configured keys."""
        self.pending.clear()
        self.sent.clear()
        self.messages.clear()
        self.chats.clear()
        self.members.clear()
        self.users.clear()
        self.commands = []
        self.failures.clear()
        self.openai_requests.clear()
        self.calls.clear()
        self.get_updates_calls = 0
        self.last_get_updates_at = None
        self.confirmations.clear()
        if self.store is not None:
            self.store.kept_last(self)

    def next_message_id(self, chat_id: int) -> int:
        value = self.message_ids.get(chat_id, 0) + 1
        self.message_ids[chat_id] = value
        return value

    def bot_user(self, bot_id: int) -> dict[str, Any]:
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def record_sent(
        self, method: str, chat_id: int | None, params: dict[str, Any], message_id: int | None = None
    ) -> dict[str, Any]:
        self.last_sent_id += 1
        text = params.get("text", params.get("caption"))
        item = {
            "id": self.last_sent_id,
            "method": method,
            "chat_id": chat_id,
            "params": params,
            "ts": time.time(),
            "message_id": message_id,
            "text": text if isinstance(text, str) else None,
        }
        self.sent.append(item)
        if self.store is not None:
            self.store.sent(self, chat_id)
        return item

    def select_sent(self, chat_id: int | None, after: int, methods: set[str] | None) -> list[dict[str, Any]]:
        """Sent items after id `after`; methods None = all but QUIET_METHODS, empty set = all."""
        return [
            item
            for item in self.sent
            if item["id"] > after
            and (chat_id is None or item["chat_id"] == chat_id)
            and (
                item["method"] not in QUIET_METHODS
                if methods is None
                else not methods or item["method"] in methods
            )
        ]

    def health(self) -> dict[str, Any]:
        return {
            "ok": True,
            "bot_username": self.bot_username,
            "pending_updates": len(self.pending),
            "last_update_id": self.last_update_id,
            "last_sent_id": self.last_sent_id,
            "sent_stored": len(self.sent),
            "get_updates_calls": self.get_updates_calls,
            "last_get_updates_at": self.last_get_updates_at,
            "persistent": self.store is not None,
            "calls": dict(self.calls),
            "streams": dict(self.streams),
            "uptime_s": round(time.time() - self.started_at, 3),
        }


#: Where the aiohttp application keeps its SandboxState.
STATE: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)
