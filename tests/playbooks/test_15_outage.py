"""outage.yml beyond the restart: impact assessment taken before it, the admin chats told through the bot (the
sandbox receives the messages), the watch after recovery (short in tests) that fails when the bot degrades,
and the escalation matrix from the inventory in the report."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from pbhelpers import REPO, host_sh, psql, run_playbook, sandbox

SHORT_WATCH = {"ops_outage_watch_seconds": 4, "ops_outage_watch_interval": 2}
ADMIN_CHAT = 1001  # inventories/lab/group_vars/bot_hosts.yml ops_admin_chat_ids


def report_of(run) -> str:
    path = re.search(r"report (\S+/outage-\S+\.md)", run.text).group(1)
    return (REPO / "reports" / path.rsplit("/", 1)[-1]).read_text()


@pytest.mark.runbook("Outage | Impact, admin notice, watch after recovery, escalation")
def test_outage_assesses_impact_tells_admins_and_watches(lab_host):
    sandbox("start", ADMIN_CHAT, "--username", "opsadmin")
    psql(
        "INSERT INTO messages(chat_id, message_id, user_id, text) "
        "VALUES (-4343, 1, 4343, 'before the outage') ON CONFLICT DO NOTHING"
    )
    day = "timestamp > now() - interval '24 hours'"
    chats = int(psql(f"SELECT count(DISTINCT chat_id) FROM messages WHERE {day}"))
    after = int(sandbox("last"))
    host_sh("systemctl stop psychochauffeur-bot")
    run = run_playbook("outage", SHORT_WATCH)
    assert run.rc == 0, run.text[-3000:]
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
    report = report_of(run)
    impact = report.split("### Impact assessment (before the restart)")[1].split("###")[0]
    assert "service inactive/dead" in impact and "unit inactive since" in impact, impact
    assert re.search(rf"chats_active_last_24h: '?{chats}'?\n", impact), impact
    assert "updates_waiting_at_bot_api:" in impact and "errors_in_error_log_last_hour:" in impact
    assert "watch after recovery | ✅ OK | stable for 4 s" in report
    assert f"admin chats told | ✅ OK | sent to {ADMIN_CHAT}" in report
    assert "| 1 | On-call engineer | immediate response | lab on-call @lab_oncall |" in report
    assert "| Telegram Support | @BotSupport |" in report
    texts = json.loads(sandbox("sent", ADMIN_CHAT, "--after", after))
    first = f"PsychoChauffeur outage on {lab_host}: service inactive/dead"
    assert any(t.startswith(first) for t in texts), texts
    assert any("recovered and stable for 4 s" in t for t in texts), texts


@pytest.mark.runbook("Outage | Impact, admin notice, watch after recovery, escalation")
def test_outage_watch_fails_when_the_bot_degrades(lab_host):
    """The bot crashes during the watch (killed; systemd restarts it): the watch and the play fail and say so.
    With no admin chats configured the notice is skipped with a visible message."""
    host_sh("rm -f /run/psychochauffeur-outage-watch.log")
    result = {}
    extravars = {"ops_outage_watch_seconds": 120, "ops_outage_watch_interval": 2, "ops_admin_chat_ids": []}
    thread = threading.Thread(target=lambda: result.update(run=run_playbook("outage", extravars)))
    thread.start()
    try:
        deadline = time.monotonic() + 600
        while "poll 1:" not in host_sh("cat /run/psychochauffeur-outage-watch.log", check=False).stdout:
            assert thread.is_alive() and time.monotonic() < deadline, "the watch never started"
            time.sleep(1)
        host_sh("systemctl kill --signal=KILL psychochauffeur-bot")
        thread.join(timeout=600)
    finally:
        thread.join(timeout=600)
        host_sh("systemctl start psychochauffeur-bot")
    run = result["run"]
    assert run.rc != 0
    assert "DEGRADED at poll" in run.text and "watch after recovery | 🛑 CRITICAL" in report_of(run)
    assert "NOT SENT: ops_admin_chat_ids is empty" in run.text
