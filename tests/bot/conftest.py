"""Shared fixtures for the bot tests: a throw-away PostgreSQL cluster, the sandbox, the running bot.

- pg_server (session): PgServer; .dsn(dbname), .create_db(name), .drop_db(name), .stop(), .start(),
  .is_running(), .port, .socket_dir
- database_url (function): DSN of a fresh empty database (dropped afterwards)
- sandbox (session): Sandbox(url, client, server, env); reset before every test that uses it
- bot_env (function): dict of env vars pointing the bot at the sandbox, the database and a tmp app dir
- running_bot (function): RunningBot; `python -m bot run` polling the sandbox
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.sandbox.client import SandboxClient
from bot.sandbox.pg import PgServer, pg_bindir
from bot.sandbox.server import SANDBOX_BOT_TOKEN, SandboxServer

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_USER_ID = 4242


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        bindir = pg_bindir()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    server = PgServer(bindir)
    atexit.register(server.destroy)  # also covers an interrupted session
    try:
        server.init().start()
        yield server
    finally:
        server.destroy()
        atexit.unregister(server.destroy)


@pytest.fixture
def database_url(pg_server: PgServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    pg_server.start()
    dsn = pg_server.create_db(name)
    try:
        yield dsn
    finally:
        pg_server.start()  # a test may have stopped it to simulate an outage
        pg_server.drop_db(name)


# ---------------------------------------------------------------- sandbox


@dataclass
class Sandbox:
    server: SandboxServer
    url: str
    client: SandboxClient
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    server = SandboxServer().start()
    client = SandboxClient(server.url)
    try:
        yield Sandbox(server=server, url=server.url, client=client, env=server.env)
    finally:
        client.close()
        server.stop()


@pytest.fixture(autouse=True)
def _reset_sandbox(request: pytest.FixtureRequest) -> None:
    """Tests that use the sandbox (directly or via bot_env/running_bot) start from an empty one."""
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").client.reset()


@pytest.fixture
def bot_env(tmp_path: Path, sandbox: Sandbox, database_url: str) -> dict[str, str]:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    return {
        "BOT_TOKEN": SANDBOX_BOT_TOKEN,
        "TELEGRAM_BASE_URL": f"{sandbox.url}/bot",
        "OPENAI_API_KEY": sandbox.env["OPENAI_API_KEY"],
        "OPENAI_BASE_URL": f"{sandbox.url}/openai/v1",
        "OPENAI_MODEL": "gpt-4o-mini",
        "WEATHER_API_KEY": sandbox.env["WEATHER_API_KEY"],
        "WEATHER_BASE_URL": f"{sandbox.url}/weather",
        "DATABASE_URL": database_url,
        "BOT_ADMIN_IDS": str(ADMIN_USER_ID),
        "BOT_APP_DIR": str(app_dir),
        "BOT_LOG_DIR": str(app_dir / "logs"),
        "BOT_SANDBOX": "1",
        "BOT_POLL_TIMEOUT": "1",
    }


# ---------------------------------------------------------------- the bot process

ENV_PREFIXES_TO_DROP = ("BOT_", "OPENAI_", "WEATHER_", "TELEGRAM_", "DATABASE_URL", "PG")
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def bot_process_env(bot_env: dict[str, str]) -> dict[str, str]:
    """os.environ without stray bot/proxy settings, plus bot_env."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES_TO_DROP) and k not in PROXY_VARS
    }
    env.update(bot_env)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class RunningBot:
    proc: subprocess.Popen
    env: dict[str, str]
    output: Path  # the bot's stdout+stderr
    app_dir: Path
    log_dir: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output_text(self) -> str:
        return self.output.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def core_entry_point_missing() -> bool:
    try:
        return importlib.util.find_spec("bot.__main__") is None or importlib.util.find_spec("bot.app") is None
    except (ImportError, ValueError):
        return True


def start_bot(
    bot_env: dict[str, str], sandbox: Sandbox, output: Path, ready_timeout: float = 30.0
) -> RunningBot:
    """Start `python -m bot run` and wait until the sandbox saw it poll getUpdates."""
    before = sandbox.client.health()["get_updates_calls"]
    handle = output.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=bot_process_env(bot_env),
        cwd=bot_env["BOT_APP_DIR"],
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    handle.close()
    bot = RunningBot(proc, bot_env, output, Path(bot_env["BOT_APP_DIR"]), Path(bot_env["BOT_LOG_DIR"]))
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if sandbox.client.health()["get_updates_calls"] > before:
            return bot
        if not bot.alive():
            break
        time.sleep(0.05)
    code = bot.stop()
    pytest.fail(
        f"`python -m bot run` did not poll the sandbox within {ready_timeout}s (exit {code}):\n"
        f"{bot.output_text()[-4000:]}"
    )


@pytest.fixture
def running_bot(bot_env: dict[str, str], sandbox: Sandbox, tmp_path: Path) -> Iterator[RunningBot]:
    bot = start_bot(bot_env, sandbox, tmp_path / "bot-output.log")
    try:
        yield bot
    finally:
        bot.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bot_e2e: runs `python -m bot run` (CORE's entry point) as a subprocess"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = core_entry_point_missing()
    for item in items:
        if "running_bot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.bot_e2e)
            if missing:
                item.add_marker(
                    pytest.mark.skip(
                        reason="CORE's entry point (bot/__main__.py, bot/app.py) is not in the tree yet"
                    )
                )
