"""Alerting on the converged lab host (issue 11): required for non-lab inventories (refused before anything
changes), a webhook independent of the bot's token, routed by severity, and the runbook's critical thresholds
fed real conditions: the bot process frozen with SIGSTOP, the sandbox (fake Bot API, OpenAI, weather) stopped.

The webhook receiver is a small HTTP server on the lab host (a transient systemd unit) appending every POST
to a file; the monitor is the real psychochauffeur-monitor.service started by hand, as its timer would.
Runs last in its session (test_85): stopping the sandbox makes the bot log polling errors, so the host's error
rate is critical for the next hour and daily.yml, the update gate etc. would see it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator

import pytest
from pbhelpers import host_sh, run_playbook

MONITOR = "psychochauffeur-monitor.service"
STATE_DIR = "/var/lib/psychochauffeur-monitor"
RECEIVER_UNIT = "t85-webhook"
RECEIVED = "/root/t85-webhook.jsonl"
HOOK_PATH = "/hooks/T000/B000/t85SecretPath"  # a real webhook URL carries its token in the path
ALERTING = {
    "monitoring_alert_webhook_url": f"http://127.0.0.1:9099{HOOK_PATH}",
    "monitoring_alert_chat_id": "1001",
    "monitoring_alert_required": True,
}
LISTENING = "import socket; socket.create_connection(('127.0.0.1', 9099))"
RECEIVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps({"path": self.path, "body": body}) + "\\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
"""


def received() -> list[dict]:
    out = host_sh(f"cat {RECEIVED} 2>/dev/null || true").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def run_monitor() -> tuple[int, list[str]]:
    """Start the monitor unit once from a clean alert state; its exit code and journal lines."""
    host_sh(f"rm -f {STATE_DIR}/state.json {STATE_DIR}/digest.jsonl; : > {RECEIVED}; "
            f"systemctl reset-failed {MONITOR} || true")  # fmt: skip
    rc = host_sh(f"systemctl start {MONITOR}", check=False).returncode
    invocation = host_sh(f"systemctl show -p InvocationID --value {MONITOR}").stdout.strip()
    journal = host_sh(f"journalctl --sync; journalctl _SYSTEMD_INVOCATION_ID={invocation} -o cat --no-pager")
    return rc, journal.stdout.splitlines()


@pytest.fixture(scope="module")
def webhook(lab_host: str) -> Iterator[None]:
    """The receiver running and the monitoring role converged with it (idempotent: a second run changes
    nothing)."""
    unit = RECEIVER_UNIT
    host_sh(f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; "
            f"systemd-run --unit={unit} --collect python3 -c {shlex.quote(RECEIVER)} 9099 {RECEIVED}; "
            f"for i in $(seq 50); do python3 -c {shlex.quote(LISTENING)} && exit 0; sleep 0.2; done; exit 1")
    try:
        first = run_playbook("site", extravars=ALERTING, cmdline="--tags monitoring")
        assert first.rc == 0, first.stdout[-4000:]
        second = run_playbook("site", extravars=ALERTING, cmdline="--tags monitoring")
        assert second.rc == 0 and second.changed == 0, second.changed_tasks
        assert "t85SecretPath" not in first.stdout + second.stdout
        yield
    finally:
        host_sh(f"systemctl stop {RECEIVER_UNIT}", check=False)


def test_alert_settings_are_a_secret_file(webhook):
    stat = host_sh("stat -c '%U %G %a' /etc/psychochauffeur-monitoring/alerts.json").stdout.split()
    assert stat == ["psychochauffeur", "psychochauffeur", "600"]


@pytest.mark.runbook("Monitoring | Critical: application down/unresponsive (hung bot)")
def test_a_frozen_bot_is_critical_and_alerted_at_once(webhook):
    pid = host_sh("systemctl show -p MainPID --value psychochauffeur-bot").stdout.strip()
    assert pid not in ("", "0")
    host_sh(f"kill -STOP {pid}")
    try:
        rc, journal = run_monitor()
    finally:
        host_sh(f"kill -CONT {pid}")
    assert rc != 0
    assert any(line.endswith(": CRITICAL") and "health on" in line for line in journal), journal
    (hook,) = [r for r in received() if r["path"] == HOOK_PATH]
    alert = hook["body"]
    assert alert["severity"] == "critical" and alert["event"] == "alert"
    assert any(p.startswith(f"[CRITICAL] process: pid {pid} is stopped") for p in alert["problems"]), alert
    assert "t85SecretPath" not in "\n".join(journal)


@pytest.mark.runbook("Monitoring | Critical: external API failures > 50%")
def test_sandbox_apis_down_critical_reaches_the_webhook_without_the_bot_api(webhook):
    """The sandbox stopped: OpenAI and weather fail (100 % > 50 %: critical) and so does the Bot API, so the
    Telegram alert cannot go out; the webhook still gets the critical alert at once."""
    host_sh("systemctl stop psychochauffeur-sandbox")
    try:
        rc, journal = run_monitor()
    finally:
        host_sh("systemctl start psychochauffeur-sandbox")
    assert rc != 0
    hooks = [r["body"] for r in received() if r["path"] == HOOK_PATH]
    assert [h["severity"] for h in hooks] == ["critical"], hooks
    problems = hooks[0]["problems"]
    assert "[CRITICAL] external_apis: 100.0% failing (2 of 2: openai, weather)" in problems, problems
    assert any(p.startswith("[CRITICAL] bot_api: Bot API unreachable") for p in problems), problems
    assert any("alert to chat 1001 not delivered" in line for line in journal), journal
    assert any(line.startswith("alert sent to the webhook at http://127.0.0.1:9099") for line in journal)


@pytest.mark.runbook("Monitoring | Alerting is a required input outside the lab (refused before any change)")
def test_site_without_a_webhook_is_refused_before_any_change(webhook):
    before = host_sh("sha256sum /etc/psychochauffeur-monitoring/alerts.json; "
                     "systemctl show -p ActiveEnterTimestamp --value psychochauffeur-bot").stdout  # fmt: skip
    run = run_playbook("site", extravars={"monitoring_alert_required": True})
    assert run.rc != 0
    assert "monitoring_alert_webhook_url is required for this inventory" in run.text
    assert 'monitoring_alert_webhook_url: "{{ vault_monitoring_alert_webhook_url }}"' in run.text
    assert "Gathering Facts" not in run.stdout and "base :" not in run.stdout
    assert run.changed == 0
    after = host_sh("sha256sum /etc/psychochauffeur-monitoring/alerts.json; "
                    "systemctl show -p ActiveEnterTimestamp --value psychochauffeur-bot").stdout  # fmt: skip
    assert after == before
