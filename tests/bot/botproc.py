"""The bot as a real process: `python -m bot run` polling a sandbox, with its own database and app dir.

The one implementation behind the fixtures (tests/bot/conftest.py: bot_env, running_bot;
tests/bot/features/conftest.py: one bot per feature test module) and the tests that start a second bot.
Tests talk to it through the sandbox control API and read the DB and the logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg

from bot.sandbox.client import SandboxClient, SandboxTimeout
from bot.sandbox.control import detect_entities
from bot.sandbox.server import SANDBOX_BOT_TOKEN, SandboxServer

ADMIN_ID = 4242  # in BOT_ADMIN_IDS
NO_RATE_LIMITS = {kind: {"per_user_per_minute": 0, "per_chat_per_minute": 0, "per_chat_per_day": 0}
                  for kind in ("gpt", "analyze", "video")}
_DROP = ("BOT_", "OPENAI_", "WEATHER_", "TELEGRAM_", "DATABASE_URL", "PG", "http_proxy", "https_proxy",
         "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def make_env(sandbox: Any, dsn: str, app_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        "BOT_TOKEN": SANDBOX_BOT_TOKEN,
        "TELEGRAM_BASE_URL": f"{sandbox.url}/bot",
        "OPENAI_API_KEY": sandbox.env["OPENAI_API_KEY"],
        "OPENAI_BASE_URL": f"{sandbox.url}/openai/v1",
        "WEATHER_API_KEY": sandbox.env["WEATHER_API_KEY"],
        "WEATHER_BASE_URL": f"{sandbox.url}/weather",
        "OPENAI_MODEL": "gpt-4o-mini",
        "DATABASE_URL": dsn,
        "BOT_ADMIN_IDS": str(ADMIN_ID),
        "BOT_APP_DIR": str(app_dir),
        "BOT_LOG_DIR": str(app_dir / "logs"),
        "BOT_SANDBOX": "1",
        "BOT_POLL_TIMEOUT": "1",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@dataclass
class Bot:
    proc: subprocess.Popen
    sandbox: Any
    dsn: str
    app_dir: Path
    output: Path  # the process's stdout + stderr
    env: dict[str, str]  # the bot's own variables (what make_env gave it)

    @property
    def client(self) -> Any:
        return self.sandbox.client

    @property
    def log_dir(self) -> Path:
        return self.app_dir / "logs"

    # talking ---------------------------------------------------------------------------------------

    def send(self, text: str, *, chat_id: int | None = None, user_id: int = 1001, expect: int = 1,
             timeout: float = 20, method: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        """Push a message and wait for `expect` things the bot sends to that chat afterwards."""
        after = self.client.last_sent_id()
        self.client.push(text, chat_id=chat_id, user_id=user_id, **kw)
        if expect == 0:
            return []
        try:
            return self.client.wait_for(chat_id=chat_id if chat_id is not None else user_id, count=expect,
                                        timeout=timeout, after=after, method=method)
        except SandboxTimeout as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None  # what the bot was doing meanwhile

    def say(self, text: str, **kw: Any) -> str:
        """Push a message; return the text of the first reply."""
        item = self.send(text, **kw)[0]
        return item.get("text") or item["params"].get("text") or item["params"].get("caption") or ""

    def quiet_after(self, text: str, *, chat_id: int | None = None, user_id: int = 1001, edited: bool = False,
                    **kw: Any) -> list:
        """Push `text` (as an edit of an earlier message when `edited`), then /ping twice as a barrier; return
        what the bot sent besides the pongs.

        Updates are handled in order, so the first pong means `text` was dispatched; the second gives
        handlers that run in the background (GPT, downloads) the time to decide.
        """
        chat = chat_id if chat_id is not None else user_id
        after = self.client.last_sent_id()
        if edited:
            self.client.push_raw({"edited_message": edited_message(text, chat, user_id)})
        else:
            self.client.push(text, chat_id=chat_id, user_id=user_id, **kw)
        for pongs in (1, 2):
            self.client.push("/ping", chat_id=chat_id, user_id=user_id, **kw)
            items = self.client.wait_for(chat_id=chat, count=1, timeout=20, after=after)
            while sum(i.get("text") == "pong" for i in items) < pongs:
                items = self.client.wait_for(chat_id=chat, count=len(items) + 1, timeout=20, after=after)
        return [i for i in self.client.sent(chat_id=chat, after=after) if i.get("text") != "pong"]

    # looking ---------------------------------------------------------------------------------------

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def records(self, name: str = "general.log") -> list[dict[str, Any]]:
        path = self.log_dir / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(errors="replace").splitlines() if line.strip()]

    def wait_log(self, name: str, predicate, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.records(name):
                if predicate(record):
                    return record
            time.sleep(0.05)
        last = self.records(name)[-5:]
        raise AssertionError(f"no matching record in {name} within {timeout}s; last: {last}")

    def all_logs_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_dir.glob("*.log")) + self.output_text()

    def tail(self, lines: int = 15) -> str:
        """The end of the bot's logs and output for a failure message: what it did when a test gave up."""
        parts = [f"bot pid {self.proc.pid} ({'running' if self.alive() else f'exit {self.proc.returncode}'})"]
        for name in ("general.log", "error.log"):
            path = self.log_dir / name
            raw = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            shown = [_brief(line) for line in raw]
            parts.append(f"-- last of {name}:\n" + "\n".join(shown or ["(empty)"]))
        output = self.output_text().splitlines()[-lines:]
        parts.append("-- last of its output:\n" + "\n".join(output or ["(empty)"]))
        return "\n".join(parts)

    def output_text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _brief(line: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return line[:300]  # a line being written
    return " ".join(str(record.get(k, "")) for k in ("ts", "level", "code", "msg"))[:300]


def until(condition: Callable[[], Any], what: str, timeout: float = 60, bot: Bot | None = None) -> None:
    """Poll until condition() holds; on timeout fail with `what` and, given the bot, the end of its logs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            context = f"\n{bot.tail()}" if bot is not None else ""
            raise AssertionError(f"gave up waiting {timeout:g} s: {what}{context}")
        time.sleep(0.05)


def start_bot(sandbox: Any, dsn: str, app_dir: Path, global_config: dict | None = None,
              ready_timeout: float = 90, **env_overrides: str) -> Bot:
    """Start `python -m bot run`; return once the bot polls getUpdates (or fail with its output)."""
    app_dir.mkdir(parents=True, exist_ok=True)
    # Feature tests ask more of one user in a minute than the shipped limits allow: no limits here unless
    # a test sets them (tests/bot/test_quotas.py tests the limits themselves).
    path = app_dir / "config" / "global" / "global_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rate_limits": NO_RATE_LIMITS, **(global_config or {})}))
    bot_env = make_env(sandbox, dsn, app_dir, **env_overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env.update(bot_env)
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONUNBUFFERED="1")
    output = app_dir / "bot-output.log"
    before = sandbox.client.health()["get_updates_calls"]
    with output.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], env=env, cwd=app_dir, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    bot = Bot(proc, sandbox, dsn, app_dir, output, bot_env)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline and bot.alive():
        if sandbox.client.health()["get_updates_calls"] != before:
            return bot
        time.sleep(0.05)
    code = bot.stop()
    raise AssertionError(f"the bot did not start polling (exit {code}):\n{bot.output_text()[-3000:]}")


def module_bot(pg_server: Any, sandbox: Any, base: Path, global_config: dict | None = None,
               **env_overrides: str) -> Iterator[Bot]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    pg_server.start()
    dsn = pg_server.create_db(name)
    bot = start_bot(sandbox, dsn, base / "app", global_config, **env_overrides)
    try:
        yield bot
    finally:
        bot.stop()
        pg_server.start()
        pg_server.drop_db(name)


@contextmanager
def private_sandbox() -> Iterator[SimpleNamespace]:
    """A second sandbox for a second bot (two bots polling one fake Bot API steal each other's updates)."""
    server = SandboxServer().start()
    client = SandboxClient(server.url)
    try:
        yield SimpleNamespace(url=server.url, client=client, env=server.env)
    finally:
        client.close()
        server.stop()


def edited_message(text: str, chat_id: int, user_id: int, message_id: int = 1) -> dict[str, Any]:
    """A Message as Telegram sends it in an edited_message update (entities detected like for a push)."""
    user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
    chat = ({"id": chat_id, "type": "private", "first_name": user["first_name"]} if chat_id > 0
            else {"id": chat_id, "type": "supergroup", "title": f"Sandbox {-chat_id}"})
    now = int(time.time())
    message = {"message_id": message_id, "from": user, "chat": chat, "date": now - 60, "edit_date": now,
               "text": text}
    entities = detect_entities(text)
    if entities:
        message["entities"] = entities
    return message


def unhandled(bot: Bot) -> list[dict[str, Any]]:
    """Error records for unexpected exceptions (APP000) or with a traceback: bugs, not handled failures."""
    return [r for r in bot.records("error.log") if r.get("code") == "APP000" or "exc" in r]
