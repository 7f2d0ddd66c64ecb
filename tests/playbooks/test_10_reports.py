"""Report-only procedures on the converged lab host: each runs, writes its report, changes nothing else."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime

import pytest
from pbhelpers import REPO, host_sh, psql, run_playbook

REPORTS = REPO / "reports"


def _newest(kind: str):
    files = sorted(REPORTS.glob(f"{kind}-*.md"))
    assert files, f"no reports/{kind}-*.md"
    return files[-1].read_text()


ANALYZED_SQL = "SELECT coalesce(extract(epoch FROM last_analyze), 0) FROM pg_stat_user_tables"
USAGE_CHAT, SILENT_CHAT = -4243, -4242
USAGE_SEED = f"""
INSERT INTO messages (chat_id, message_id, user_id, text, timestamp) VALUES
  ({USAGE_CHAT}, 900001, 7001, '/fidelityprobe a', now() - interval '1 day'),
  ({USAGE_CHAT}, 900002, 7002, '/fidelityprobe@PsychoBot b', now() - interval '2 days'),
  ({USAGE_CHAT}, 900003, 7003, '/FidelityProbe', now() - interval '3 days'),
  ({USAGE_CHAT}, 900004, 7001, '/fidelityprobe', now() - interval '40 days') ON CONFLICT DO NOTHING;
INSERT INTO chats (chat_id, chat_type, config) VALUES ({SILENT_CHAT}, 'group', '{{"gpt_enabled": false}}')
  ON CONFLICT DO NOTHING;
"""


@pytest.fixture(scope="module")
def planted_usage(lab_host):
    """Commands of three users this week and one 40 days ago, and a chat configured but silent (its
    configuration is its own, it has no messages): what the weekly and monthly usage figures must show."""
    psql(" ".join(USAGE_SEED.split()))  # one line for psql -c
    yield
    psql(f"DELETE FROM messages WHERE chat_id = {USAGE_CHAT}")
    psql(f"DELETE FROM usage_rollup WHERE chat_id = {USAGE_CHAT}")
    psql(f"DELETE FROM chats WHERE chat_id = {SILENT_CHAT}")


@pytest.mark.runbook("Daily | 1. Check system health")
@pytest.mark.runbook("Daily | 2. Review error logs (tail + grep ERROR/CRITICAL)")
@pytest.mark.runbook("Daily | 3. Monitor resource usage (perf --quick)")
@pytest.mark.runbook("Daily | 4. Verify external services (OpenAI, weather, DB)")
@pytest.mark.runbook("Weekly | 1. DB maintenance check + old data")
@pytest.mark.runbook("Weekly | 2. Log rotation and cleanup (logs not written for 7 days)")
@pytest.mark.runbook("Weekly | 3. Performance review (full report) with active users, command usage, trends")
@pytest.mark.runbook("Weekly | 4. Security scan (quick)")
@pytest.mark.runbook("Monthly | 1. Comprehensive security audit")
@pytest.mark.runbook("Monthly | 2. Full performance analysis: the month's trend and the previous 30 days")
@pytest.mark.runbook("Monthly | 3. Database optimisation (vacuum, analyze, missing indexes)")
@pytest.mark.runbook("Monthly | 4. Configuration review")
@pytest.mark.parametrize("kind", ["daily", "weekly", "monthly"])
def test_scheduled_reports(lab_host, planted_usage, kind):
    if kind == "weekly":  # runbook: find logs/ -name "*.log" -mtime +7 -delete
        host_sh(f"cd {LOGS} && echo x > fidelity-week-old.log && touch -d '8 days ago' fidelity-week-old.log"
                " && echo x > fidelity-week-new.log")  # fmt: skip
    if kind == "monthly":  # runbook: migrate_db.py --optimize; an expected index is missing
        # the weekly retention (db truncate --older-than 30d; again here, for this case run alone) deleted the
        # 40-day-old command: the month before is counted from the hourly counts it kept (usage_rollup)
        host_sh("psychochauffeur db truncate --older-than 30d")
        assert psql(f"SELECT count(*) FROM messages WHERE chat_id = {USAGE_CHAT}"
                    " AND timestamp < now() - interval '30 days'") == "0"
        psql("DROP INDEX IF EXISTS messages_timestamp_idx")
        analyzed = psql(f"{ANALYZED_SQL} WHERE relname = 'messages'")
    first = run_playbook(kind)
    assert first.rc == 0, first.stdout[-3000:]
    text = _newest(kind)
    assert text.splitlines()[2].startswith("**Verdict: ")
    assert f"## {lab_host} " in text
    if kind == "weekly":
        assert f"{LOGS}/fidelity-week-old.log" in _section(text, "Deleted log files")
        left = host_sh(f"ls {LOGS}; rm -f {LOGS}/fidelity-week-*.log").stdout.split()
        assert "fidelity-week-old.log" not in left and "fidelity-week-new.log" in left
        assert "Active users, command usage and trends against the previous week" in text
        assert "/fidelityprobe: 3 uses by 3 user(s), previous period 0" in text  # 40 days ago: not last week
        assert "| active users and command usage |" in text
        assert "by_part_of_the_period" not in text
    if kind == "monthly":
        assert "messages_timestamp_idx" in psql("SELECT indexname FROM pg_indexes")
        assert float(psql(f"{ANALYZED_SQL} WHERE relname = 'messages'")) > float(analyzed)
        assert "indexes created: messages_timestamp_idx" in text
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


@pytest.mark.runbook("Troubleshooting | 1. Bot not responding")
@pytest.mark.runbook("Troubleshooting | 2. Database connection issues")
@pytest.mark.runbook("Troubleshooting | 3. High memory usage")
@pytest.mark.runbook("Troubleshooting | 4. External API failures")
@pytest.mark.runbook("Troubleshooting | 5. Performance degradation")
@pytest.mark.runbook("Performance | Memory optimisation (monitor memory)")
@pytest.mark.parametrize("symptom", ["not-responding", "database", "memory", "external-api", "performance"])
def test_diagnose(lab_host, symptom):
    run = run_playbook("diagnose", {"symptom": symptom})
    assert run.rc == 0, run.stdout[-3000:]
    text = _newest("diagnose")
    assert f"symptom `{symptom}`" in text
    assert "Runbook solutions" in text


@pytest.mark.runbook("Troubleshooting | Unknown symptom → clear error")
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


@pytest.mark.runbook("Outage | Quick restart recovers a unit at systemd's start limit (reset-failed first)")
def test_outage_restarts_a_unit_stuck_at_its_start_limit(lab_host):
    """A crash loop ran the unit into systemd's start limit: the quick restart must reset-failed first
    (a plain restart is refused with "Start request repeated too quickly" and the bot stays down)."""
    unit = "psychochauffeur-bot"
    # A crash loop for real: kill -9 the bot each time systemd restarts it, until systemd refuses to start it
    # again (bounded poll).
    host_sh(f"since=$(date +%s); for i in $(seq 600); do journalctl -u {unit} --since @$since -o cat"
            f" | grep -q 'Start request repeated too quickly' && exit 0;"
            f" pid=$(systemctl show -P MainPID {unit}); [ \"$pid\" != 0 ] && kill -9 $pid; sleep 0.25; done;"
            " exit 1")  # fmt: skip
    try:
        refused = host_sh(f"systemctl start {unit}", check=False)  # a plain start stays refused
        assert refused.returncode != 0, "the crash loop did not reach the start limit"
        assert host_sh(f"systemctl is-active {unit}", check=False).stdout.strip() == "failed"
        # the 10-minute watch after recovery has tests of its own (test_15_outage.py): a short one here
        run = run_playbook("outage", {"ops_outage_watch_seconds": 3, "ops_outage_watch_interval": 1})
        assert run.rc == 0, run.stdout[-3000:]
        assert host_sh(f"systemctl is-active {unit}", check=False).stdout.strip() == "active"
        assert "restart + verify | ✅ OK" in _newest("outage")
    finally:
        host_sh(f"systemctl reset-failed {unit}; systemctl start {unit}", check=False)


LOGS = "/opt/psychochauffeur-bot/logs"


def _record(level: str, msg: str, **extra: object) -> str:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    return shlex.quote(json.dumps({"ts": ts, "level": level, "logger": "fidelity", "msg": msg, **extra}))


def _section(text: str, title: str) -> str:
    assert f"### {title}" in text, title
    return text.split(f"### {title}")[1].split("\n## ")[0].split("\n### ")[0]


@pytest.fixture
def planted_logs(lab_host):
    """The runbook's greps' targets in the host's logs: a slow query in general.log, two users' lines in
    chat.log, three ERROR records (own file: the health check's error rate reads error.log), a log file not
    written for 10 days and a fresh one."""
    host_sh(
        f"cd {LOGS} && echo {_record('WARNING', 'slow_query: fidelity_probe held a connection for 4321 ms')}"
        f" >> general.log && echo {_record('INFO', 'fidelity line of 7777001', user_id=7777001)} >> chat.log"
        f" && echo {_record('INFO', 'fidelity line of 7777002', user_id=7777002)} >> chat.log"
        f" && for i in 1 2 3; do echo {_record('ERROR', 'fidelity planted error', code='DB002')}"
        " >> fidelity-errors.log; done"
        " && echo old > fidelity-old.log && touch -d '10 days ago' fidelity-old.log"
        " && echo new > fidelity-new.log"
    )
    yield
    host_sh(f"rm -f {LOGS}/fidelity-*.log")


@pytest.mark.runbook("Log management | Log analysis (error patterns, slow_query, one user's lines) + cleanup")
def test_logs(lab_host, planted_logs):
    refused = run_playbook("logs", {"user_id": "1;rm"})
    assert refused.rc != 0 and "user_id must be a Telegram user id (digits only)" in refused.text
    # refused: nothing changed
    assert host_sh(f"test -f {LOGS}/fidelity-old.log", check=False).returncode == 0

    run = run_playbook("logs", {"user_id": "7777001"})
    assert run.rc == 0, run.stdout[-3000:]
    text = _newest("logs")
    assert "3 ERROR DB002 fidelity planted error" in _section(text, "Error patterns")
    assert "slow_query: fidelity_probe held" in _section(text, "Slow queries (grep slow_query")
    user = _section(text, "Lines of user 7777001")
    assert "fidelity line of 7777001" in user and "7777002" not in user
    assert f"{LOGS}/fidelity-old.log" in _section(text, "Removed log files")
    left = host_sh(f"ls {LOGS}").stdout.split()
    assert "fidelity-old.log" not in left
    assert {"fidelity-new.log", "general.log", "error.log", "chat.log"} <= set(left)  # fresh, live logs stay
    assert "Lines of user" not in _newest_after(run_playbook("logs"), "logs")  # no user_id: no user section


def _newest_after(run, kind: str) -> str:
    assert run.rc == 0, run.stdout[-3000:]
    return _newest(kind)


@pytest.mark.runbook("Log management | Log rotation configuration")
def test_logrotate_rotates_and_the_bot_writes_to_the_new_file(lab_host):
    """The logrotate role's drop-in on the converged host: a forced rotation moves general.log aside, creates
    a new one (0644, the bot's user) and reloads the bot, which reopens its files and writes to the new."""
    host_sh(f"echo {_record('INFO', 'before rotation')} >> {LOGS}/general.log")
    host_sh("logrotate -f /etc/logrotate.d/psychochauffeur-bot")
    assert "before rotation" in host_sh(f"cat {LOGS}/general.log.1").stdout
    assert host_sh(f"stat -c '%a %U' {LOGS}/general.log").stdout.split() == ["644", "psychochauffeur"]
    reopened = host_sh(
        f"for i in $(seq 60); do grep -q 'log files reopened' {LOGS}/general.log && exit 0; sleep 0.5; done;"
        " exit 1",
        check=False,
    )
    assert reopened.returncode == 0, host_sh(f"cat {LOGS}/general.log").stdout


@pytest.mark.runbook("Security | User access review (admins, API key usage)")
@pytest.mark.parametrize("playbook", ["security-checks", "access-review"])
def test_read_only_checks(lab_host, playbook):
    # security-checks: (re)record the file baseline first, so only this session's changes count
    first = run_playbook(playbook, {"update_baseline": "true"} if playbook == "security-checks" else {})
    assert first.rc == 0, first.stdout[-3000:]
    second = run_playbook(playbook)
    assert second.rc == 0 and second.changed == 0, second.changed_tasks


@pytest.mark.runbook("Security | Daily security checks (failed auth, suspicious patterns, file integrity)")
def test_security_checks_detect_changed_file(lab_host):
    assert run_playbook("security-checks", {"update_baseline": "true"}).rc == 0
    host_sh("echo tampered >> /opt/psychochauffeur-bot/config/global/global_config.json.extra")
    try:
        run = run_playbook("security-checks")
        assert run.rc != 0 and "global_config.json.extra" in run.text
    finally:
        host_sh("rm -f /opt/psychochauffeur-bot/config/global/global_config.json.extra")
