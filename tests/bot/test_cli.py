"""The `psychochauffeur` entry points: parsing, help, errors, exit codes, and commands on a running bot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from bot.cli import build_parser, cli

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("psychochauffeur")
COMMANDS = ["run", "health", "perf", "db", "audit", "config", "admins"]
DB_COMMANDS = ["migrate", "vacuum", "analyze", "index-analysis", "create-indexes", "cleanup-indexes",
               "slow-queries", "stats", "truncate"]  # fmt: skip
BOT_VARS = ("BOT_", "OPENAI_", "WEATHER_", "TELEGRAM_", "DATABASE_URL")


def wait_for_row(dsn: str, query: str, params: tuple, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute(query, params).fetchone() is None:
            assert time.monotonic() < deadline, f"no row for {query} within {timeout}s"
            time.sleep(0.05)


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(BOT_VARS)}
    return {**env, **extra, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def run(args: list[str], env: dict[str, str], module: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bot", *args] if module else [str(CONSOLE_SCRIPT), *args]
    return subprocess.run(cmd, env=clean_env(env), capture_output=True, text=True, timeout=120, cwd=REPO)


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS) and "exit codes" in out and "DATABASE_URL" in out
    subcommands = [["db", c] for c in DB_COMMANDS] + [["config", "generate"], ["config", "show"]]
    for argv in [[c] for c in COMMANDS] + subcommands:
        with pytest.raises(SystemExit) as exc:
            cli([*argv, "--help"])
        assert exc.value.code == 0, argv
        assert len(capsys.readouterr().out) > 100, argv
    with pytest.raises(SystemExit):
        cli(["db", "--help"])
    db_help = capsys.readouterr().out
    assert all(c in db_help for c in DB_COMMANDS)


USAGE_ERRORS = [[], ["nope"], ["db"], ["db", "nope"], ["db", "truncate"], ["perf", "--quick", "x"],
                ["config"], ["--json"]]  # fmt: skip


@pytest.mark.parametrize("argv", USAGE_ERRORS)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli(argv)
    assert exc.value.code == 2
    assert "usage: psychochauffeur" in capsys.readouterr().err


def test_json_flag_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["--json", "db", "stats"]).json is True
    assert parser.parse_args(["db", "stats", "--json"]).json is True
    assert parser.parse_args(["db", "--json", "stats"]).json is True
    assert parser.parse_args(["db", "stats"]).json is False


def test_console_script_and_python_m_bot_agree(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "BOT_APP_DIR": str(tmp_path)}
    for module in (False, True):
        pending = run(["db", "migrate", "--check", "--json"], env, module)
        assert pending.returncode == 1, pending.stderr
        assert json.loads(pending.stdout)["pending"]
    assert run(["db", "migrate"], env).returncode == 0
    for module in (False, True):
        stats = run(["--json", "db", "stats"], env, module)
        assert stats.returncode == 0, stats.stderr
        assert "messages" in {t["table"] for t in json.loads(stats.stdout)["tables"]}


def test_missing_settings_say_what_to_set(tmp_path):
    no_db = run(["db", "stats"], {"BOT_APP_DIR": str(tmp_path)})
    assert no_db.returncode == 2 and "DATABASE_URL is not set" in no_db.stderr and not no_db.stdout
    no_db_json = run(["db", "stats", "--json"], {"BOT_APP_DIR": str(tmp_path)})
    assert no_db_json.returncode == 2 and "DATABASE_URL" in json.loads(no_db_json.stdout)["error"]
    no_token = run(["run"], {"BOT_APP_DIR": str(tmp_path)}, module=True)
    assert no_token.returncode == 2 and "BOT_TOKEN is not set" in no_token.stderr
    bad_value = run(["admins"], {"BOT_APP_DIR": str(tmp_path), "BOT_POLL_TIMEOUT": "soon"})
    assert (
        bad_value.returncode == 2 and "APP001" in bad_value.stderr and "BOT_POLL_TIMEOUT" in bad_value.stderr
    )


def test_leading_dash_and_shell_metacharacters_are_data(database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "BOT_APP_DIR": str(tmp_path)}
    for value in ("-1d", "$(id)", "30d; rm -rf /", "30d`id`"):
        result = run(["db", "truncate", f"--older-than={value}"], env)
        assert result.returncode == 2 and "invalid duration" in result.stderr
    assert not (tmp_path / "id").exists()


@pytest.mark.bot_e2e
def test_commands_against_a_running_bot(running_bot, sandbox):
    """`python -m bot run` is up (the fixture ran it through this CLI); the operator commands see it."""
    env = running_bot.env
    pid = running_bot.proc.pid
    metrics = running_bot.app_dir / "data" / "metrics.json"
    assert json.loads(metrics.read_text())["pid"] == pid  # written by the bot at start-up

    health = run(["health", "--comprehensive", "--json"], env)
    data = json.loads(health.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["process"]["status"] == "ok" and checks["process"]["details"]["pid"] == pid
    assert checks["bot_api"]["status"] == "ok" and checks["database"]["status"] == "ok"
    assert checks["openai"]["status"] == "ok" and checks["weather"]["status"] == "ok"
    assert health.returncode == data["exit_code"]
    assert env["BOT_TOKEN"] not in health.stdout + health.stderr

    perf = run(["perf", "--quick", "--json"], env)
    assert perf.returncode == 0, perf.stdout
    figures = json.loads(perf.stdout)
    assert figures["process"]["pid"] == pid and figures["process"]["rss_bytes"] > 10 * 2**20
    assert figures["gc_objects"] > 1000

    memory = run(["perf", "--memory-profile"], env)
    assert memory.returncode == 0 and f"pid {pid}" in memory.stdout

    migrated = run(["db", "migrate", "--check"], env)  # the bot migrated at start-up
    assert migrated.returncode == 0 and "up to date" in migrated.stdout

    chat_id, admin_id = -100777, 4242
    sandbox.client.push("hello group", chat_id=chat_id, user_id=admin_id, chat_type="supergroup")
    sandbox.client.set_member(chat_id, admin_id, "administrator")
    wait_for_row(
        env["DATABASE_URL"], "SELECT 1 FROM chats WHERE chat_id = %s", (chat_id,)
    )  # the bot stored it
    admins = run(["admins", "--chats", "--json"], env)
    assert admins.returncode == 0, admins.stdout
    listed = json.loads(admins.stdout)
    assert [a["user_id"] for a in listed["bot_admins"]] == [admin_id]
    (chat,) = listed["chat_admins"]
    assert chat["chat_id"] == chat_id and [a["user_id"] for a in chat["admins"]] == [admin_id]

    audit = run(["audit", "--quick-scan", "--json"], env)
    report = json.loads(audit.stdout)
    assert not [f for f in report["findings"] if f["check"] == "secrets_in_logs"]  # the bot redacts its logs
    assert str(running_bot.log_dir / "general.log") in report["files_scanned"]

    assert running_bot.stop() == 0  # SIGTERM: a clean stop through `run`
    stopped = run(["health", "--json"], env)
    assert stopped.returncode == 2
    assert {c["name"]: c["status"] for c in json.loads(stopped.stdout)["checks"]}["process"] == "critical"
