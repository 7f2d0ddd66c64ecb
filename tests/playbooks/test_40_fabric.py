"""Fabric tasks against the lab host, hosts read from the Ansible inventory."""

from __future__ import annotations

import queue
import subprocess
import threading
import time

import pytest
from pbhelpers import REPO, host_sh

FAB = str(REPO / ".venv/bin/fab")


def fab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FAB, *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_an_inventory_ansible_cannot_read_is_named_with_ansible_s_error(tmp_path):
    """Read twice (a dynamic inventory can change while it is read), then Ansible's message, no traceback."""
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts.yml").write_text("bot_hosts:\n  hosts:\n    one: {ansible_host: 192.0.2.1}\n")
    (tmp_path / "group_vars" / "all.yml").write_text("a: [\n")
    run = fab("status", "--inventory", str(tmp_path))
    out = run.stdout + run.stderr
    assert run.returncode == 2, out
    assert "reading it again" in out and "cannot read the inventory" in out, out
    assert "YAML parsing failed" in out and "Traceback" not in out, out


@pytest.mark.runbook("Monitoring | Monitoring commands (status, tail -f logs)")
def test_status_logs_health_restart(lab_host):
    status = fab("status", "--limit", lab_host)
    assert (
        status.returncode == 0
        and "active (running)" in status.stdout
        and "release: releases/" in status.stdout
    )
    assert fab("logs", "--limit", lab_host, "--lines", "5").returncode == 0
    assert fab("logs", "--errors", "--limit", lab_host).returncode == 0
    health = fab("health", "--limit", lab_host)  # a WARNING (busy test machine) is not a failure
    assert health.returncode == 0 and "health: " in health.stdout, health.stdout + health.stderr
    restart = fab("restart", "--limit", lab_host)
    assert restart.returncode == 0 and restart.stdout.strip().endswith("active")


def test_follow_needs_one_host(tmp_path):
    """Two known hosts: the one-host check itself refuses (an unknown host would fail earlier, elsewhere)."""
    inventory = tmp_path / "two.yml"
    inventory.write_text(
        "bot_hosts:\n  hosts:\n    one: {ansible_host: 192.0.2.1}\n    two: {ansible_host: 192.0.2.2}\n"
    )
    run = fab("logs", "--follow", "--inventory", str(inventory))
    assert run.returncode == 2 and "--follow needs exactly one host (use --limit); selected: one, two" in (
        run.stdout + run.stderr
    )


def test_a_corrupt_fact_cache_file_does_not_stop_fab(tmp_path):
    """fab needs no facts: a host's cached facts that Ansible cannot parse (ansible-inventory would delete
    the file and exit 1) neither stop fab nor get deleted by it."""
    name = f"fabcache{time.time_ns()}"
    cached = REPO / ".cache" / "ansible-facts" / f"s1_{name}"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text('{"ansible_facts": {"ansible_hostname": ')  # a write cut short
    inventory = tmp_path / "two.yml"
    inventory.write_text(
        f"bot_hosts:\n  hosts:\n    {name}: {{ansible_host: 192.0.2.1}}\n"
        "    two: {ansible_host: 192.0.2.2}\n"
    )
    try:
        run = fab("logs", "--follow", "--inventory", str(inventory))
        out = run.stdout + run.stderr
        assert run.returncode == 2 and f"selected: {name}, two" in out, out  # read at once, then refused
        assert "reading it again" not in out and "corrupt" not in out, out
        assert cached.exists()  # the writer's file is left alone
    finally:
        cached.unlink(missing_ok=True)


@pytest.mark.runbook("Monitoring | Monitoring commands (status, tail -f logs)")
def test_logs_follow_shows_lines_written_after_it_started(lab_host):
    """runbook: tail -f logs/general.log. A line written after `fab logs --follow` started shows up."""
    proc = subprocess.Popen(
        [FAB, "logs", "--follow", "--lines", "0", "--limit", lab_host],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        marker = f"fidelity-follow-{time.time_ns()}"
        deadline = time.monotonic() + 60
        seen = ""
        while marker not in seen and time.monotonic() < deadline:
            # again until tail -F has the file open and prints it
            host_sh(f"echo {marker} >> /opt/psychochauffeur-bot/logs/general.log")
            try:
                seen += lines.get(timeout=2)
            except queue.Empty:
                continue
        assert marker in seen, seen
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.runbook("Operations | Every procedure by name (Fabric, ansible-runner)")
def test_run_procedure(lab_host):
    run = fab("run", "diagnose", "--extra", "symptom=memory", "--limit", lab_host)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    bad = fab("run", "diagnose", "--extra", "symptom=gremlins", "--limit", lab_host)
    assert bad.returncode != 0
