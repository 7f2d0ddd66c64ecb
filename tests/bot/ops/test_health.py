"""`psychochauffeur health`: states driven by real conditions (metrics.json, logs, a stopped DB, the sandbox).

Disk, memory and CPU are the shared host's and may be anything: tests assert the checks they control and
that the exit code is the one the reported statuses imply.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.ops.health import THRESHOLDS, grade
from bot.ops.report import EXIT_CODES, worst
from bot.sandbox.server import SandboxServer


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)


@pytest.fixture
def app_dir(bot_env) -> Path:
    """The sandbox-pointed app dir of bot_env (overrides the plain one of conftest)."""
    path = Path(bot_env["BOT_APP_DIR"])
    (path / "logs").mkdir(exist_ok=True)
    return path


@pytest.fixture
def healthy(bot_env, metrics, log):
    """A live 'bot' (this process) with fresh metrics, 200 chat messages and no errors in the last hour."""
    metrics()
    log("chat.log", 200, logger="chat")
    log("general.log", 5)
    return bot_env


def health(run_cli, env, *args):
    result = run_cli(env, "health", "--json", *args)
    data = result.json()
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert result.code == EXIT_CODES[worst(statuses.values())] == data["exit_code"]
    assert env["BOT_TOKEN"] not in result.out + result.err
    return result, statuses


def test_healthy_bot(run_cli, healthy):
    result, statuses = health(run_cli, healthy)
    controlled = ("process", "database", "bot_api", "error_rate", "latency", "last_update", "polling")
    assert {k: statuses[k] for k in controlled} == dict.fromkeys(controlled, "ok")
    assert {"disk", "memory", "cpu"} <= statuses.keys()
    checks = {c["name"]: c for c in result.json()["checks"]}
    assert checks["error_rate"]["details"] == {"errors": 0, "updates": 200, "source": "logs, last hour"}
    assert "@" in checks["bot_api"]["summary"]  # getMe answered with the bot's username
    text = run_cli(healthy, "health")
    overall = text.out.splitlines()[0].removeprefix("health: ").lower()
    assert text.code == EXIT_CODES[overall] and "[OK      ] database" in text.out


@pytest.mark.runbook(
    "Monitoring | Alert thresholds (error rate, response time; CPU, memory, disk by the same table)"
)
@pytest.mark.parametrize("p95_ms, expected", [(1500, "ok"), (3000, "warning"), (6000, "critical")])
def test_p95_latency_states(run_cli, healthy, metrics, p95_ms, expected):
    metrics(handler_latency_ms={"count": 500, "p50": 200.0, "p95": p95_ms, "max": p95_ms * 1.5})
    result, statuses = health(run_cli, healthy)
    assert statuses["latency"] == expected
    assert result.code >= EXIT_CODES[expected]


@pytest.mark.runbook(
    "Monitoring | Alert thresholds (error rate, response time; CPU, memory, disk by the same table)"
)
@pytest.mark.parametrize("errors, expected", [(1, "ok"), (2, "info"), (3, "warning"), (6, "critical")])
def test_error_rate_states(run_cli, bot_env, metrics, log, errors, expected):
    metrics()
    log("chat.log", 100, logger="chat")
    log("error.log", errors, level="ERROR", code="API003")
    log("error.log", 50, level="ERROR", age=timedelta(hours=2))  # outside the one-hour window
    result, statuses = health(run_cli, bot_env)
    assert statuses["error_rate"] == expected
    check = next(c for c in result.json()["checks"] if c["name"] == "error_rate")
    assert check["value"] == errors  # per cent of 100 updates
    assert result.code >= EXIT_CODES[expected]


@pytest.mark.parametrize("age_s, expected", [(None, "ok"), (20, "critical"), (600, "ok")])
def test_a_409_conflict_while_polling_is_reported(run_cli, healthy, metrics, age_s, expected):
    last = None
    if age_s is not None:
        last = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat(timespec="seconds")
    metrics(polling_conflicts_total=0 if age_s is None else 7, last_polling_conflict_at=last)
    result, statuses = health(run_cli, healthy)
    assert statuses["polling"] == expected
    check = next(c for c in result.json()["checks"] if c["name"] == "polling")
    if expected == "critical":
        assert "409 Conflict" in check["summary"] and "API003" in check["summary"]
        assert "stop the other instance" in check["summary"] and result.code == 2


def test_errors_without_traffic_warn(run_cli, bot_env, metrics, log):
    metrics(updates_total=0, handler_latency_ms={"count": 0, "p50": 0, "p95": 0, "max": 0})
    log("error.log", 4, level="ERROR", code="DB001")
    _, statuses = health(run_cli, bot_env)
    assert statuses["error_rate"] == "warning"


def test_error_rate_falls_back_to_the_bot_counters(run_cli, bot_env, metrics):
    metrics(updates_total=1000, errors_total=80)  # 8 % since start, no chat.log lines in the window
    result, statuses = health(run_cli, bot_env)
    assert statuses["error_rate"] == "critical" and result.code == 2


def test_stopped_database_is_critical(run_cli, healthy, pg_server):
    pg_server.stop()
    try:
        result, statuses = health(run_cli, healthy)
    finally:
        pg_server.start()
    assert statuses["database"] == "critical" and result.code == 2
    assert "DB001" in next(c for c in result.json()["checks"] if c["name"] == "database")["summary"]


def test_no_metrics_file_means_not_running(run_cli, bot_env):
    result, statuses = health(run_cli, bot_env)
    assert statuses["process"] == "critical" and result.code == 2
    assert "metrics.json" in next(c["summary"] for c in result.json()["checks"] if c["name"] == "process")


def test_dead_pid_is_critical(run_cli, healthy, metrics):
    proc = subprocess.Popen(["true"])
    proc.wait()
    metrics(pid=proc.pid)
    result, statuses = health(run_cli, healthy)
    assert statuses["process"] == "critical" and result.code == 2


def test_reused_pid_is_not_the_bot(run_cli, healthy, metrics):
    # This test process started long after a bot that started a day ago: its pid is not that bot's.
    metrics(started_at=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    _, statuses = health(run_cli, healthy)
    assert statuses["process"] == "critical"


def test_stale_metrics_mean_a_hung_bot_which_is_critical(run_cli, healthy, metrics):
    metrics(written_at=(datetime.now(UTC) - timedelta(minutes=10)).isoformat())
    result, statuses = health(run_cli, healthy)
    assert statuses["process"] == "critical" and result.code == 2
    process = next(c for c in result.json()["checks"] if c["name"] == "process")
    assert "hung" in process["summary"]


@pytest.mark.runbook("Monitoring | Critical: application down/unresponsive (hung bot)")
def test_a_frozen_bot_process_is_critical(run_cli, running_bot):
    """The real bot process, frozen with SIGSTOP: alive but neither polling nor answering."""
    env = running_bot.env
    metrics_file = running_bot.app_dir / "data" / "metrics.json"
    wait_until(metrics_file.exists, "the bot writes metrics.json")
    _, statuses = health(run_cli, env)
    assert statuses["process"] == "ok"
    running_bot.proc.send_signal(signal.SIGSTOP)
    try:
        result, statuses = health(run_cli, env)
        process = next(c for c in result.json()["checks"] if c["name"] == "process")
        assert statuses["process"] == "critical" and result.code == 2
        assert f"pid {running_bot.proc.pid} is stopped" in process["summary"]
    finally:
        running_bot.proc.send_signal(signal.SIGCONT)
    _, statuses = health(run_cli, env)
    assert statuses["process"] == "ok"


def test_bad_token_is_critical_and_not_printed(run_cli, healthy):
    env = {**healthy, "BOT_TOKEN": "not-a-token-secretvalue"}
    result, statuses = health(run_cli, env)
    assert statuses["bot_api"] == "critical" and result.code == 2
    assert "secretvalue" not in result.out


def test_unreachable_bot_api_is_critical_and_token_not_printed(run_cli, healthy):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**healthy, "TELEGRAM_BASE_URL": f"http://127.0.0.1:{port}/bot"}
    result, statuses = health(run_cli, env)
    assert statuses["bot_api"] == "critical"
    assert healthy["BOT_TOKEN"].split(":")[1] not in result.out


def test_bot_api_server_error_is_critical(run_cli, healthy, sandbox):
    sandbox.client.fail("getMe", error_code=500)
    _, statuses = health(run_cli, healthy)
    assert statuses["bot_api"] == "critical"


def test_missing_token_says_what_to_set(run_cli, healthy):
    env = {k: v for k, v in healthy.items() if k != "BOT_TOKEN"}
    result = run_cli(env, "health", "--json")
    bot_api = next(c for c in result.json()["checks"] if c["name"] == "bot_api")
    assert bot_api["status"] == "critical" and "BOT_TOKEN" in bot_api["summary"]


def test_unreadable_log_warns(run_cli, bot_env, metrics, app_dir):
    metrics()
    (app_dir / "logs" / "error.log").mkdir()
    _, statuses = health(run_cli, bot_env)
    assert statuses["error_rate"] == "warning"


def test_missing_app_dir_is_critical(run_cli, healthy, tmp_path):
    env = {**healthy, "BOT_APP_DIR": str(tmp_path / "nowhere")}
    _, statuses = health(run_cli, env)
    assert statuses["disk"] == "critical" and statuses["process"] == "critical"


def test_external_apis_are_checked_by_default_and_comprehensive_adds_db_stats(run_cli, healthy):
    result, statuses = health(run_cli, healthy)
    assert statuses["openai"] == "ok" and statuses["weather"] == "ok" and statuses["external_apis"] == "ok"
    assert "db_stats" not in statuses
    _, statuses = health(run_cli, healthy, "--comprehensive")
    assert statuses["db_stats"] == "ok"
    unconfigured = {k: v for k, v in healthy.items() if k != "OPENAI_API_KEY"}
    result, statuses = health(run_cli, unconfigured)
    assert statuses["openai"] == "info" and statuses["external_apis"] == "ok"
    apis = next(c for c in result.json()["checks"] if c["name"] == "external_apis")
    assert apis["details"]["configured"] == ["weather"]


@pytest.fixture
def own_sandbox():
    """A sandbox of this test only (fake OpenAI and weather), so the test can stop it."""
    server = SandboxServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.runbook("Monitoring | Critical: external API failures > 50%")
def test_external_api_failures_over_half_are_critical(run_cli, healthy, own_sandbox):
    env = {**healthy, **{k: v for k, v in own_sandbox.env.items() if k.startswith(("OPENAI_", "WEATHER_"))}}
    _, statuses = health(run_cli, env)
    assert statuses["external_apis"] == "ok"
    # one of two APIs refuses its key: 50 % failing is not > 50 %: a warning
    result, statuses = health(run_cli, {**env, "WEATHER_API_KEY": "wrong-key"})
    assert statuses["weather"] == "warning" and statuses["external_apis"] == "warning"
    apis = next(c for c in result.json()["checks"] if c["name"] == "external_apis")
    assert apis["value"] == 50.0 and apis["details"]["failed"] == ["weather"]
    # the API server is down: both fail, 100 %: critical
    own_sandbox.stop()
    result, statuses = health(run_cli, env)
    assert statuses["openai"] == statuses["weather"] == "warning"
    assert statuses["external_apis"] == "critical" and result.code == 2
    apis = next(c for c in result.json()["checks"] if c["name"] == "external_apis")
    assert apis["value"] == 100.0 and apis["summary"].startswith("100.0% failing (2 of 2")


@pytest.mark.parametrize(
    "metric, value, expected",
    [
        ("cpu_percent", 69.9, "ok"), ("cpu_percent", 70.1, "info"), ("cpu_percent", 80.5, "warning"),
        ("memory_percent", 80.0, "ok"), ("memory_percent", 85, "warning"),
        ("memory_percent", 90.1, "critical"),
        ("disk_free_percent", 30.0, "ok"), ("disk_free_percent", 29.9, "warning"),
        ("disk_free_percent", 19.9, "critical"),
        ("error_rate_percent", 1.0, "ok"), ("error_rate_percent", 1.5, "info"),
        ("error_rate_percent", 2.5, "warning"), ("error_rate_percent", 5.1, "critical"),
        ("handler_p95_seconds", 2.0, "ok"), ("handler_p95_seconds", 2.1, "warning"),
        ("handler_p95_seconds", 5.1, "critical"),
        ("external_api_failure_percent", 0.0, "ok"), ("external_api_failure_percent", 50.0, "warning"),
        ("external_api_failure_percent", 50.1, "critical"),
    ],
)  # fmt: skip
def test_runbook_thresholds(metric, value, expected):
    assert grade(metric, value) == expected


@pytest.mark.parametrize(
    "record, expected",
    [("bot2\n", "info"), ("bot1\n", "critical"), (None, "critical")],
)  # fmt: skip
def test_a_stopped_unit_on_a_warm_standby_is_not_critical(run_cli, healthy, tmp_path, monkeypatch,
                                                          record, expected):  # fmt: skip
    """Several bot hosts: the one the active-host record does not name is a standby, its unit stopped on
    purpose (monitoring there must not page); the active one, or a host with no record, is critical."""
    from bot.ops import system

    unit = {"LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead", "MainPID": "0"}
    monkeypatch.setattr(system, "systemd_unit", lambda name=system.SERVICE_NAME: unit)
    active_file = tmp_path / "active-host"
    if record is not None:
        active_file.write_text(record)
    env = {**healthy, "BOT_HOST_NAME": "bot1", "BOT_ACTIVE_HOST_FILE": str(active_file)}
    result, statuses = health(run_cli, env)
    assert statuses["process"] == expected
    process = next(c for c in result.json()["checks"] if c["name"] == "process")
    if expected == "info":
        # the exit code is the other checks' (health() asserts it): here disk or CPU may warn, never process
        assert "warm standby" in process["summary"] and "bot2 polls" in process["summary"], process
    else:
        assert result.code == 2 and "inactive" in process["summary"], process


def test_threshold_table_is_in_the_json(run_cli, healthy):
    data = run_cli(healthy, "health", "--json").json()
    assert set(data["thresholds"]) == set(THRESHOLDS)
    assert data["thresholds"]["memory_percent"]["critical"] == 90


@pytest.mark.parametrize(
    "state, with_metrics, expected",
    [("active", True, "ok"), ("failed", True, "critical"), ("activating", True, "critical"),
     ("active", False, "warning")],
)  # fmt: skip
def test_systemd_unit_state_decides_when_systemd_runs_the_bot(run_cli, healthy, app_dir, monkeypatch,
                                                              state, with_metrics, expected):  # fmt: skip
    """The systemd branch's mapping (this machine has no systemd as PID 1; lab hosts run the real one)."""
    from bot.ops import system

    unit = {"LoadState": "loaded", "ActiveState": state, "SubState": "running", "MainPID": str(os.getpid())}
    monkeypatch.setattr(system, "systemd_unit", lambda name=system.SERVICE_NAME: unit)
    if not with_metrics:
        (app_dir / "data" / "metrics.json").unlink()
    result, statuses = health(run_cli, healthy)
    assert statuses["process"] == expected
    process = next(c for c in result.json()["checks"] if c["name"] == "process")
    assert process["details"]["source"] == "systemd"
