"""Shared fixtures for the bot tests: a throw-away PostgreSQL cluster, the sandbox, the running bot.

- pg_server (session): PgServer; .dsn(dbname), .create_db(name), .drop_db(name), .stop(), .start(),
  .is_running(), .port, .socket_dir
- database_url (function): DSN of a fresh empty database (dropped afterwards)
- sandbox (session): Sandbox(url, client, server, env); reset before every test that uses it
- bot_env (function): dict of env vars pointing the bot at the sandbox, the database and a tmp app dir
- running_bot (function): botproc.Bot, `python -m bot run` polling the sandbox with bot_env
- bot (module, tests/bot/features/conftest.py): one running bot per feature test module
- redis_server (session): RedisServer, a real redis-server process (Debian package redis-server) on a free
  loopback port with a password; .url, .client(), .stop(), .start(); emptied before every test using it
botproc.py holds the one implementation of running and talking to the bot process.
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from botproc import Bot, make_env, start_bot

from bot.sandbox.client import SandboxClient
from bot.sandbox.pg import PgServer, pg_bindir
from bot.sandbox.server import SandboxServer

REPO_ROOT = Path(__file__).resolve().parents[2]


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


# ---------------------------------------------------------------- Redis


class RedisServer:
    """redis-server as the role configures it (loopback, requirepass, maxmemory), in a tmp dir."""

    PASSWORD = "test-redis-password-0123"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        with socket.socket() as probe:  # a free port; redis-server has no "pick one and tell me"
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://:{self.PASSWORD}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is missing: `make deps` installs the Debian package redis-server")
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--requirepass", self.PASSWORD,
             "--maxmemory", "32mb", "--maxmemory-policy", "allkeys-lru", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except Exception:  # noqa: S110 - refused or still loading while it starts: poll again
                pass
            time.sleep(0.02)
        raise AssertionError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def client(self):  # a synchronous redis.Redis
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2, decode_responses=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    atexit.register(server.stop)
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


@pytest.fixture(autouse=True)
def _empty_redis(request: pytest.FixtureRequest) -> None:
    if "redis_server" in request.fixturenames:
        request.getfixturevalue("redis_server").start().client().flushall()


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
    return make_env(sandbox, database_url, app_dir)


def core_entry_point_missing() -> bool:
    try:
        return importlib.util.find_spec("bot.__main__") is None or importlib.util.find_spec("bot.app") is None
    except (ImportError, ValueError):
        return True


@pytest.fixture
def running_bot(bot_env: dict[str, str], sandbox: Sandbox) -> Iterator[Bot]:
    bot = start_bot(sandbox, bot_env["DATABASE_URL"], Path(bot_env["BOT_APP_DIR"]), **bot_env)
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
