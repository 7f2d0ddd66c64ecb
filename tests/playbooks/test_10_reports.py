"""Report-only procedures on the converged lab host: each runs, writes its report, changes nothing else."""

from __future__ import annotations

import pytest
from pbhelpers import REPO, psql, run_playbook

REPORTS = REPO / "reports"


def _newest(kind: str):
    files = sorted(REPORTS.glob(f"{kind}-*.md"))
    assert files, f"no reports/{kind}-*.md"
    return files[-1].read_text()


USAGE_CHAT, SILENT_CHAT = -4243, -4242
USAGE_SEED = f"""
INSERT INTO messages (chat_id, message_id, user_id, text, timestamp) VALUES
  ({USAGE_CHAT}, 900001, 7001, '/fidelityprobe a', now() - interval '1 day'),
  ({USAGE_CHAT}, 900002, 7002, '/fidelityprobe@PsychoBot b', now() - interval '2 days'),
  ({USAGE_CHAT}, 900003, 7003, '/FidelityProbe', now() - interval '3 days'),
  ({USAGE_CHAT}, 900004, 7001, '/fidelityprobe', now() - interval '40 days');
INSERT INTO chats (chat_id, chat_type, config) VALUES ({SILENT_CHAT}, 'group', '{{"gpt_enabled": false}}');
"""


@pytest.fixture(scope="module")
def planted_usage(lab_host):
    """Commands of three users this week and one 40 days ago, and a chat configured but silent (its
    configuration is its own, it has no messages): what the weekly and monthly usage figures must show."""
    psql(USAGE_SEED)
    yield
    psql(f"DELETE FROM messages WHERE chat_id = {USAGE_CHAT}")
    psql(f"DELETE FROM chats WHERE chat_id = {SILENT_CHAT}")


@pytest.mark.runbook("Daily | 1. Check system health")
@pytest.mark.runbook("Daily | 2. Review error logs (tail + grep ERROR/CRITICAL)")
@pytest.mark.runbook("Daily | 3. Monitor resource usage (perf --quick)")
@pytest.mark.runbook("Daily | 4. Verify external services (OpenAI, weather, DB)")
@pytest.mark.runbook("Weekly | 1. DB maintenance check + old data")
@pytest.mark.runbook("Weekly | 3. Performance review (full report) with active users, command usage, trends")
@pytest.mark.runbook("Weekly | 4. Security scan (quick)")
@pytest.mark.runbook("Monthly | 1. Comprehensive security audit")
@pytest.mark.runbook("Monthly | 2. Full performance analysis: the month's trend and the previous 30 days")
@pytest.mark.runbook("Monthly | 4. Configuration review")
@pytest.mark.parametrize("kind", ["daily", "weekly", "monthly"])
def test_scheduled_reports(lab_host, planted_usage, kind):
    first = run_playbook(kind)
    assert first.rc == 0, first.stdout[-3000:]
    text = _newest(kind)
    assert text.splitlines()[2].startswith("**Verdict: ")
    assert f"## {lab_host} " in text
    if kind == "weekly":
        assert "Active users, command usage and trends against the previous week" in text
        assert "/fidelityprobe: 3 uses by 3 user(s), previous period 0" in text  # 40 days ago: not last week
        assert "| active users and command usage |" in text
        assert "by_part_of_the_period" not in text
    if kind == "monthly":
        assert "/fidelityprobe: 3 uses by 3 user(s), previous period 1" in text  # against the 30 days before
        assert "Trends over the month (4 parts of the last 30 days)" in text
        assert text.count("from 20") >= 4  # the month's four parts, each with its start
        silent = text.split("### Chats configured but silent for 30 days")[1].split("###")[0]
        assert f"chat_id: {SILENT_CHAT}" in silent and f"chat_id: {USAGE_CHAT}" not in silent
        external = text.split("### External services")[1].split("###")[0]
        assert "bot_api: OK" in external and "openai:" in external and "weather:" in external
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


def test_outage(lab_host):
    run = run_playbook("outage")
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


def test_security_checks_detect_changed_file(lab_host):
    from pbhelpers import host_sh

    assert run_playbook("security-checks", {"update_baseline": "true"}).rc == 0
    host_sh("echo tampered >> /opt/psychochauffeur-bot/config/global/global_config.json.extra")
    try:
        run = run_playbook("security-checks")
        assert run.rc != 0 and "global_config.json.extra" in run.text
    finally:
        host_sh("rm -f /opt/psychochauffeur-bot/config/global/global_config.json.extra")
