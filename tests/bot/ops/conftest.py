"""Helpers for the operator CLI tests: run `psychochauffeur` in-process with an exact environment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import cli
from bot.ops.system import process_start_epoch

ENV_KEYS = (
    "BOT_TOKEN", "TELEGRAM_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "WEATHER_API_KEY",
    "WEATHER_BASE_URL", "DATABASE_URL", "BOT_ADMIN_IDS", "BOT_APP_DIR", "BOT_LOG_DIR", "BOT_SANDBOX",
    "BOT_POLL_TIMEOUT", "BOT_DB_POOL_SIZE", "REDIS_URL", "BOT_HOST_NAME", "BOT_ACTIVE_HOST_FILE",
)  # fmt: skip


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """run_cli(env, *args) -> CliRun: the CLI in this process, seeing only `env` among the bot's variables."""

    def run(env: dict[str, str], *args: str) -> CliRun:
        for key in ENV_KEYS:
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        code = cli(list(args))
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    (path / "logs").mkdir(parents=True)
    return path


@pytest.fixture
def db_env(app_dir: Path, database_url: str) -> dict[str, str]:
    """A migrated fresh database and an empty app dir."""
    from bot.db import migrate

    migrate(database_url)
    return {"DATABASE_URL": database_url, "BOT_APP_DIR": str(app_dir)}


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def write_metrics(app_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A metrics.json as the bot writes it, by default for this (live) test process, fresh."""
    now = datetime.now(UTC)
    data: dict[str, Any] = {
        "pid": os.getpid(),
        "started_at": iso(datetime.fromtimestamp(process_start_epoch(os.getpid()) or 0, UTC)),
        "written_at": iso(now),
        "last_update_at": iso(now - timedelta(seconds=3)),
        "updates_total": 100,
        "errors_total": 0,
        "handler_latency_ms": {"count": 100, "p50": 12.0, "p95": 40.0, "max": 90.0},
        "rss_bytes": 50_000_000,
        "gc_objects": 123_456,
    }
    data.update(overrides)
    path = app_dir / "data" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return data


def write_log(log_dir: Path, name: str, count: int, *, level: str = "INFO", age: timedelta = timedelta(0),
              msg: str = "line", logger: str = "bot", code: str | None = None) -> None:  # fmt: skip
    """Append `count` JSON-lines records `age` old, in the format of bot.logs."""
    ts = iso(datetime.now(UTC) - age)
    with open(log_dir / name, "a", encoding="utf-8") as fh:
        for i in range(count):
            record = {"ts": ts, "level": level, "logger": logger, "msg": f"{msg} {i}"}
            if code:
                record["code"] = code
            fh.write(json.dumps(record) + "\n")


@pytest.fixture
def metrics(app_dir: Path):
    """metrics(**overrides) writes app_dir/data/metrics.json (this live process as the bot by default)."""
    return lambda **overrides: write_metrics(app_dir, **overrides)


@pytest.fixture
def log(app_dir: Path):
    """log(name, count, **kw) appends JSON-lines records to app_dir/logs/<name>."""
    return lambda name, count, **kw: write_log(app_dir / "logs", name, count, **kw)
