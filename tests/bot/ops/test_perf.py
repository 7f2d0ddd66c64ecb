"""`psychochauffeur perf`: figures of a live process (this test process stands in for the bot) and the DB."""

from __future__ import annotations

import os
import subprocess

import pytest

from bot.ops import system

BAD_MONITOR_ARGS = [("--count", "0"), ("--count", "-3"), ("--interval", "0"), ("--interval", "-1")]


@pytest.fixture
def live(db_env, metrics):
    """metrics.json naming this (live) process as the bot."""
    metrics(gc_objects=98_765, handler_latency_ms={"count": 40, "p50": 11.5, "p95": 33.25, "max": 50.0})
    return db_env


def _status_rss(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_quick(run_cli, live):
    result = run_cli(live, "perf", "--quick", "--json")
    assert result.code == 0, result.out
    data = result.json()
    assert data["process"]["pid"] == os.getpid()
    rss = _status_rss(os.getpid())
    assert 0.5 * rss < data["process"]["rss_bytes"] < 2 * rss  # read from /proc, not from metrics.json
    assert data["process"]["vms_bytes"] >= data["process"]["rss_bytes"]
    assert data["gc_objects"] == 98_765
    assert data["handler_latency_ms"]["p95"] == 33.25
    lat = data["database"]["latency"]
    assert lat["count"] == 5 and 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p95_ms"] <= lat["max_ms"]
    text = run_cli(live, "perf", "--quick")
    assert text.code == 0 and f"pid {os.getpid()}" in text.out and "p95 33.25 ms" in text.out


def test_full_report_has_table_sizes_and_system_figures(run_cli, live):
    data = run_cli(live, "perf", "--full-report", "--json").json()
    assert data["database"]["latency"]["count"] == 50
    tables = {t["table"]: t for t in data["database"]["stats"]["tables"]}
    assert {"messages", "chats", "users"} <= tables.keys() and tables["messages"]["size_bytes"] > 0
    assert 0 <= data["system"]["memory_percent"] <= 100 and 0 <= data["system"]["cpu_percent"] <= 100
    assert data["counters"]["updates_total"] == 100


def test_memory_profile(run_cli, live):
    result = run_cli(live, "perf", "--memory-profile", "--json")
    assert result.code == 0
    proc = result.json()["process"]
    assert proc["peak_rss_bytes"] >= proc["rss_bytes"] > 0 and proc["threads"] >= 1
    assert proc["pss_bytes"] is None or proc["pss_bytes"] > 0
    text = run_cli(live, "perf", "--memory-profile")
    assert "RSS" in text.out and "GC objects 98765" in text.out


def test_monitor_takes_count_samples(run_cli, live):
    result = run_cli(live, "perf", "--monitor", "--interval", "0.05", "--count", "3", "--json")
    assert result.code == 0
    samples = result.json()["samples"]
    assert len(samples) == 3
    assert all(s["pid"] == os.getpid() and s["rss_bytes"] > 0 and s["db_ms"] > 0 for s in samples)
    assert all(s["cpu_percent"] is not None and s["updates_per_s"] == 0 for s in samples)
    text = run_cli(live, "perf", "--monitor", "--interval", "0.05", "--count", "2")
    assert text.code == 0 and len([line for line in text.out.splitlines() if " rss " in line]) == 2


@pytest.mark.parametrize("args", BAD_MONITOR_ARGS)
def test_monitor_rejects_bad_bounds(run_cli, live, args):
    result = run_cli(live, "perf", "--monitor", *args)
    assert result.code == 2 and ("--count" in result.err or "--interval" in result.err)


def test_perf_needs_exactly_one_mode(run_cli, live):
    with pytest.raises(SystemExit) as exc:
        run_cli(live, "perf")
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        run_cli(live, "perf", "--quick", "--memory-profile")


def test_bot_not_running_is_a_failure_with_partial_figures(run_cli, db_env, metrics):
    proc = subprocess.Popen(["true"])
    proc.wait()
    metrics(pid=proc.pid)
    result = run_cli(db_env, "perf", "--quick", "--json")
    assert result.code == 1
    data = result.json()
    assert data["process"] is None and data["database"]["latency"]["count"] == 5
    assert any("not running" in p for p in data["problems"])
    assert run_cli(db_env, "perf", "--memory-profile").code == 1


def test_stopped_database(run_cli, live, pg_server):
    pg_server.stop()
    try:
        result = run_cli(live, "perf", "--quick", "--json")
    finally:
        pg_server.start()
    assert result.code == 1
    data = result.json()
    assert data["database"] is None and data["process"]["pid"] == os.getpid()
    assert any("DB001" in p for p in data["problems"])


def test_process_memory_reads_proc():
    mem = system.process_memory(os.getpid())
    assert mem is not None and mem.rss_bytes > 0 and mem.vms_bytes >= mem.rss_bytes
    assert system.process_memory(2**22 + 12345) is None  # beyond pid_max: no such process
