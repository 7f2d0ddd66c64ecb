"""Optional on-disk state of the sandbox (`--data-file`): what must survive its own restarts.

Kept: the pending update queue, the update/sent counters, each chat's last message id, chats and users.
Without them a restarted sandbox would hand out update ids and message ids again from 1, and the bot
(which upserts on (chat_id, message_id)) would overwrite stored messages: a drill could not tell a lost
chat message from a lost sandbox message. Not kept: what the bot sent, the message cache behind
reply_to_message_id, injected failures.

SQLite in WAL mode, written through before a push is answered: an accepted push is on disk.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.sandbox.state import SandboxState

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (update_id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chats (chat_id INTEGER PRIMARY KEY, last_message_id INTEGER NOT NULL, body TEXT);
CREATE TABLE IF NOT EXISTS users (user_id INTEGER PRIMARY KEY, body TEXT NOT NULL);
"""


class SandboxStore:
    """One SQLite file; every method commits before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise RuntimeError(
                f"cannot open the sandbox data file {path}: {exc}; pass a writable --data-file path"
            ) from exc

    def close(self) -> None:
        self.db.close()

    def load(self, state: SandboxState) -> None:
        """Fill a fresh state from the file."""
        counters = dict(self.db.execute("SELECT name, value FROM counters"))
        state.last_update_id = counters.get("last_update_id", 0)
        state.last_sent_id = counters.get("last_sent_id", 0)
        for chat_id, last, body in self.db.execute("SELECT chat_id, last_message_id, body FROM chats"):
            state.message_ids[chat_id] = last
            if body is not None:
                state.chats[chat_id] = json.loads(body)
        for user_id, body in self.db.execute("SELECT user_id, body FROM users"):
            state.users[user_id] = json.loads(body)
        state.pending.extend(
            json.loads(body) for (body,) in self.db.execute("SELECT body FROM pending ORDER BY update_id")
        )

    def pushed(self, state: SandboxState, updates: Iterable[dict[str, Any]]) -> None:
        """New updates were queued (one transaction for the batch)."""
        with self._transaction():
            chats: set[int] = set()
            for update in updates:
                self.db.execute(
                    "INSERT OR REPLACE INTO pending (update_id, body) VALUES (?, ?)",
                    (update["update_id"], json.dumps(update)),
                )
                message = next((v for v in update.values() if isinstance(v, dict)), None) or {}
                message = message.get("message", message)  # a callback query carries its message
                chat, user = message.get("chat"), message.get("from")
                if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                    chats.add(chat["id"])
                if isinstance(user, dict) and isinstance(user.get("id"), int):
                    self.db.execute(
                        "INSERT OR REPLACE INTO users (user_id, body) VALUES (?, ?)",
                        (user["id"], json.dumps(user)),
                    )
            for chat_id in chats:
                chat = state.chats.get(chat_id)
                self.db.execute(
                    "INSERT OR REPLACE INTO chats (chat_id, last_message_id, body) VALUES (?, ?, ?)",
                    (chat_id, state.message_ids.get(chat_id, 0), json.dumps(chat) if chat else None),
                )
            self._counter("last_update_id", state.last_update_id)

    def confirmed(self, offset: int) -> None:
        """getUpdates with this offset: every update below it is handled and forgotten."""
        with self._transaction():
            self.db.execute("DELETE FROM pending WHERE update_id < ?", (offset,))

    def kept_last(self, state: SandboxState) -> None:
        """A negative offset or a drop: the queue is now what state.pending holds."""
        with self._transaction():
            first = state.pending[0]["update_id"] if state.pending else state.last_update_id + 1
            self.db.execute("DELETE FROM pending WHERE update_id < ?", (first,))

    def sent(self, state: SandboxState, chat_id: int | None) -> None:
        """The bot sent something: the sent counter and the chat's message id moved."""
        with self._transaction():
            self._counter("last_sent_id", state.last_sent_id)
            if chat_id is not None and chat_id in state.message_ids:
                chat = state.chats.get(chat_id)
                self.db.execute(
                    "INSERT OR REPLACE INTO chats (chat_id, last_message_id, body) VALUES (?, ?, ?)",
                    (chat_id, state.message_ids[chat_id], json.dumps(chat) if chat else None),
                )

    def _counter(self, name: str, value: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value))

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
