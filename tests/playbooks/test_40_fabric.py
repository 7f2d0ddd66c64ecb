"""Fabric tasks against the lab host, hosts read from the Ansible inventory."""

from __future__ import annotations

import subprocess

from pbhelpers import REPO

FAB = str(REPO / ".venv/bin/fab")


def fab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FAB, *args], cwd=REPO, capture_output=True, text=True, timeout=600)


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


def test_follow_needs_one_host(lab_host):
    assert fab("logs", "--follow", "--limit", "nosuchhost").returncode == 2


def test_run_procedure(lab_host):
    run = fab("run", "diagnose", "--extra", "symptom=memory", "--limit", lab_host)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    bad = fab("run", "diagnose", "--extra", "symptom=gremlins", "--limit", lab_host)
    assert bad.returncode != 0
