"""Report-only procedures on the converged lab host: each runs, writes its report, changes nothing else."""

from __future__ import annotations

import pytest
from pbhelpers import REPO, run_playbook

REPORTS = REPO / "reports"


def _newest(kind: str):
    files = sorted(REPORTS.glob(f"{kind}-*.md"))
    assert files, f"no reports/{kind}-*.md"
    return files[-1].read_text()


@pytest.mark.parametrize("kind", ["daily", "weekly", "monthly"])
def test_scheduled_reports(lab_host, kind):
    first = run_playbook(kind)
    assert first.rc == 0, first.stdout[-3000:]
    text = _newest(kind)
    assert text.splitlines()[2].startswith("**Verdict: ")
    assert f"## {lab_host} " in text
    second = run_playbook(kind)
    assert second.rc == 0
    assert all(t.startswith("Report |") for t in second.changed_tasks), second.changed_tasks


@pytest.mark.parametrize("symptom", ["not-responding", "database", "memory", "external-api", "performance"])
def test_diagnose(lab_host, symptom):
    run = run_playbook("diagnose", {"symptom": symptom})
    assert run.rc == 0, run.stdout[-3000:]
    text = _newest("diagnose")
    assert f"symptom `{symptom}`" in text
    assert "Runbook solutions" in text


def test_diagnose_unknown_symptom(lab_host):
    run = run_playbook("diagnose", {"symptom": "gremlins"})
    assert run.rc != 0
    assert "unknown symptom 'gremlins'" in run.text


@pytest.mark.runbook("Outage | Immediate actions: restart + status")
@pytest.mark.runbook("Outage | Investigation: logs, resources, DB status bundle")
def test_outage(lab_host):
    run = run_playbook("outage", {"ops_outage_watch_seconds": 2, "ops_outage_watch_interval": 1})
    assert run.rc == 0, run.stdout[-3000:]
    assert "restart + verify | ✅ OK" in _newest("outage")
    assert sorted((REPORTS / "evidence").glob(f"outage-*-{lab_host}.tar.gz"))


def test_logs(lab_host):
    assert run_playbook("logs").rc == 0
    assert "Error patterns" in _newest("logs")


@pytest.mark.parametrize("playbook", ["security-checks", "access-review"])
def test_read_only_checks(lab_host, playbook):
    # security-checks: (re)record the file baseline first, so only this session's changes count
    first = run_playbook(playbook, {"update_baseline": "true"} if playbook == "security-checks" else {})
    assert first.rc == 0, first.stdout[-3000:]
    second = run_playbook(playbook)
    assert second.rc == 0 and second.changed == 0, second.changed_tasks


@pytest.mark.runbook("Security | Daily security checks (failed auth, suspicious patterns, file integrity)")
def test_security_checks_detect_changed_file(lab_host):
    from pbhelpers import host_sh

    assert run_playbook("security-checks", {"update_baseline": "true"}).rc == 0
    host_sh("echo tampered >> /opt/psychochauffeur-bot/config/global/global_config.json.extra")
    try:
        run = run_playbook("security-checks")
        assert run.rc != 0 and "global_config.json.extra" in run.text
    finally:
        host_sh("rm -f /opt/psychochauffeur-bot/config/global/global_config.json.extra")
