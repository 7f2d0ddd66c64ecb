"""Role monitoring on the converged lab host: the timers, and the monitor service run by hand against the
stand-in health command, the stand-in Bot API and webhook receiver: journal priorities, routing by severity
(critical at once to the webhook and the chat, warnings in the digest), repeat suppression, recovery, no-op
without a channel, and a health command that gives no JSON."""

import json

import pytest

UNIT = "psychochauffeur-monitor.service"
CONF_DIR = "/etc/psychochauffeur-monitoring"
DIGEST_UNIT = "psychochauffeur-monitor-digest.service"
DIGEST = "/var/lib/psychochauffeur-monitor/digest.jsonl"
WEBHOOK_PATH = "/hooks/T000/B000/webhookSecretPath0000"  # the secret part of the webhook URL
SCRIPT = "/usr/local/sbin/psychochauffeur-monitor"
CALLS = "/var/lib/fake-botapi/calls.jsonl"
STATE = "/var/lib/psychochauffeur-monitor/state.json"
TOKEN = "123456789:AAHfakeTokenForMonitoringScenario00"  # noqa: S105 - the stand-in API's fake token
CHAT_ID = -1001234567890


def cursor(host) -> str:
    out = host.check_output("journalctl -n 1 --show-cursor -o cat --no-pager")
    return out.rsplit("-- cursor: ", 1)[1].strip()


def journal(host, after: str, **fields: str) -> list[dict]:
    """Entries after the cursor whose fields match; --sync so everything logged so far is in."""
    host.run_test("journalctl --sync")
    out = host.check_output("journalctl --after-cursor %s -o json --no-pager", after)
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [e for e in entries if all(e.get(k) == v for k, v in fields.items())]


def received(host) -> list[dict]:
    f = host.file(CALLS)
    return [json.loads(line) for line in f.content_string.splitlines()] if f.exists else []


def calls(host) -> list[dict]:
    """Bot API calls."""
    return [c for c in received(host) if "method" in c]


def hooks(host) -> list[dict]:
    """Webhook bodies."""
    return [c["body"] for c in received(host) if c.get("webhook") == WEBHOOK_PATH]


def set_health(host, status: str) -> None:
    host.run_test("echo %s > /etc/psychochauffeur-standin-status", status)


def run_unit(host, status: str):
    set_health(host, status)
    mark = cursor(host)
    result = host.run(f"systemctl start {UNIT}")
    messages = journal(host, mark, _SYSTEMD_UNIT=UNIT)
    return result, messages


@pytest.fixture
def fresh(host):
    """Healthy stand-in, no alert state, no queued warnings, no recorded Bot API calls or webhooks."""
    set_health(host, "ok")
    host.run_test(f"rm -f {STATE} {DIGEST} && truncate -s 0 {CALLS} && systemctl reset-failed {UNIT} || true")
    yield
    set_health(host, "ok")


def test_timers_are_listed_and_active(host):
    timers = host.check_output("systemctl list-timers --all --no-pager")
    for name in ("psychochauffeur-monitor.timer", "psychochauffeur-monitor-digest.timer"):
        timer = host.service(name)
        assert timer.is_enabled and timer.is_running
        assert name in timers
    show = host.check_output("systemctl show psychochauffeur-monitor.timer -p TimersMonotonic")
    assert "OnUnitActiveUSec=1h" in show
    calendar = host.check_output("systemctl show psychochauffeur-monitor-digest.timer -p TimersCalendar")
    assert "08:00:00" in calendar
    for unit in (UNIT, DIGEST_UNIT):
        assert host.run(f"systemd-analyze verify /etc/systemd/system/{unit}").rc == 0


def test_settings_files(host):
    """monitor.json holds no secret; alerts.json holds the webhook URL (a secret): service user's, 0600."""
    f = host.file("/etc/psychochauffeur-monitoring/monitor.json")
    assert (f.user, f.group, f.mode) == ("root", "psychochauffeur", 0o640)
    f = host.file("/etc/psychochauffeur-monitoring/alerts.json")
    assert (f.user, f.group, f.mode) == ("psychochauffeur", "psychochauffeur", 0o600)
    assert TOKEN.split(":")[1] not in f.content_string
    alerts = json.loads(f.content_string)
    assert alerts["alert_chat_id"] == str(CHAT_ID)
    assert alerts["env_file"] == "/opt/psychochauffeur-bot/.env"
    assert alerts["webhook_url"] == f"http://127.0.0.1:8081{WEBHOOK_PATH}"


def test_healthy_run_logs_ok_and_sends_nothing(host, fresh):
    result, messages = run_unit(host, "ok")
    assert result.rc == 0, result.stderr
    assert any(
        m["MESSAGE"] == "psychochauffeur-bot health on mon1: OK" and m["PRIORITY"] == "6" for m in messages
    )
    assert calls(host) == []


@pytest.mark.runbook(
    "Monitoring | Alert routing: critical at once (webhook, admin chat), warnings in a daily digest"
)
@pytest.mark.runbook("Monitoring | Alert routing: critical at once (webhook, admin chat), warnings in a daily digest")  # noqa: E501
def test_alert_lifecycle(host, fresh):
    # warning: journal at warning priority, queued for the digest, nothing sent now
    result, messages = run_unit(host, "warning")
    assert result.rc != 0, "the unit fails while the bot is unhealthy"
    assert host.run(f"systemctl is-failed {UNIT}").stdout.strip() == "failed"
    warnings = [m["MESSAGE"] for m in messages if m["PRIORITY"] == "4"]
    assert "psychochauffeur-bot health on mon1: WARNING" in warnings
    assert "[WARNING] cpu: stand-in cpu check is warning" in warnings
    assert any("warning queued for the digest" in m["MESSAGE"] for m in messages)
    assert received(host) == []
    assert len(host.file(DIGEST).content_string.splitlines()) == 1

    # the same warning again: not queued twice within the repeat interval
    result, messages = run_unit(host, "warning")
    assert result.rc != 0
    assert any("alert suppressed" in m["MESSAGE"] for m in messages)
    assert len(host.file(DIGEST).content_string.splitlines()) == 1

    # critical: sent at once to both channels, logged at critical priority
    result, messages = run_unit(host, "critical")
    assert result.rc != 0
    assert any(m["PRIORITY"] == "2" and m["MESSAGE"].endswith("CRITICAL") for m in messages)
    (hook,) = hooks(host)
    assert hook["severity"] == "critical" and hook["event"] == "alert" and hook["host"] == "mon1"
    assert hook["text"].startswith("psychochauffeur-bot on mon1: CRITICAL")
    assert hook["problems"] == ["[CRITICAL] cpu: stand-in cpu check is critical"]
    (sent,) = calls(host)
    assert sent["token"] == TOKEN and sent["method"] == "sendMessage"
    assert sent["params"]["chat_id"] == CHAT_ID and sent["params"]["text"] == hook["text"]

    # back to ok after a critical: "recovered" at once, the unit succeeds again
    result, _ = run_unit(host, "ok")
    assert result.rc == 0
    assert [h["event"] for h in hooks(host)] == ["alert", "recovered"]
    assert "recovered" in calls(host)[1]["params"]["text"]
    result, _ = run_unit(host, "ok")
    assert len(received(host)) == 4

    # the daily digest sends the queued warnings as one message to both channels, then nothing is left
    result = host.run(f"systemctl start {DIGEST_UNIT}")
    assert result.rc == 0, result.stderr
    digest = hooks(host)[-1]
    assert digest["event"] == "digest" and digest["severity"] == "warning"
    assert len(digest["entries"]) == 1 and "WARNING" in digest["entries"][0]["text"]
    assert calls(host)[-1]["params"]["text"].startswith(
        "psychochauffeur-bot on mon1: warning digest, 1 warning(s)"
    )
    assert host.file(DIGEST).content_string == ""
    mark = cursor(host)
    assert host.run(f"systemctl start {DIGEST_UNIT}").rc == 0
    assert any(
        m["MESSAGE"] == "digest: no warnings queued" for m in journal(host, mark, _SYSTEMD_UNIT=DIGEST_UNIT)
    )
    assert len(received(host)) == 6


@pytest.mark.runbook(
    "Monitoring | Alert routing: critical at once (webhook, admin chat), warnings in a daily digest"
)
@pytest.mark.runbook("Monitoring | Alert routing: critical at once (webhook, admin chat), warnings in a daily digest")  # noqa: E501
def test_critical_reaches_the_webhook_when_telegram_refuses(host, fresh):
    """The webhook does not depend on the bot's token or Telegram: a refused sendMessage does not stop it."""
    webhook = f"http://127.0.0.1:8081{WEBHOOK_PATH}"
    cfg = json.dumps(
        {"alert_chat_id": "-1", "env_file": "/opt/psychochauffeur-bot/.env", "webhook_url": webhook}
    )
    host.run_test("echo %s > /etc/psychochauffeur-monitoring/refused.json", cfg)
    host.run_test("chmod 644 /etc/psychochauffeur-monitoring/refused.json")
    try:
        set_health(host, "critical")
        out = host.run(f"runuser -u psychochauffeur -- {SCRIPT} --alerts-config {CONF_DIR}/refused.json")
        assert out.rc == 2
        assert "refused by the Bot API (HTTP 400): Bad Request: chat not found" in out.stdout
        assert "<6>alert sent to the webhook at http://127.0.0.1:8081 (HTTP 200)" in out.stdout
        assert [h["severity"] for h in hooks(host)] == ["critical"] and calls(host) == []
    finally:
        host.run("rm -f /etc/psychochauffeur-monitoring/refused.json")


def test_a_refusing_webhook_is_logged_without_its_secret_and_retried(host, fresh):
    cfg = json.dumps({"webhook_url": "http://127.0.0.1:8081/hooks/down/secretPathPart"})
    host.run_test("echo %s > /etc/psychochauffeur-monitoring/down.json", cfg)
    host.run_test("chmod 644 /etc/psychochauffeur-monitoring/down.json")
    try:
        set_health(host, "critical")
        for _ in range(2):  # not delivered, so not remembered as sent: the next run tries again
            out = host.run(f"runuser -u psychochauffeur -- {SCRIPT} --alerts-config {CONF_DIR}/down.json")
            assert out.rc == 2
            assert "<3>alert to the webhook at http://127.0.0.1:8081 refused (HTTP 503" in out.stdout
            assert "secretPathPart" not in out.stdout
    finally:
        host.run("rm -f /etc/psychochauffeur-monitoring/down.json")


def test_secrets_never_reach_the_journal(host, fresh):
    mark = cursor(host)
    run_unit(host, "critical")
    assert hooks(host) and calls(host)
    everything = json.dumps(journal(host, mark))
    assert TOKEN not in everything and TOKEN.split(":")[1] not in everything
    assert "webhookSecretPath0000" not in everything


def test_a_health_command_without_json_is_critical(host, fresh):
    result, messages = run_unit(host, "garbage")  # the stand-in exits 2 with an error and no JSON
    assert result.rc != 0
    critical = [m["MESSAGE"] for m in messages if m["PRIORITY"] == "2"]
    assert "psychochauffeur-bot health on mon1: CRITICAL" in critical
    assert any("without a health JSON" in m and "bad status garbage" in m for m in critical)
    assert "CRITICAL" in calls(host)[0]["params"]["text"] and hooks(host)[0]["severity"] == "critical"


def test_no_channel_means_no_alert(host, fresh):
    set_health(host, "critical")
    out = host.run(f"runuser -u psychochauffeur -- {SCRIPT} --alerts-config /nonexistent.json")
    assert out.rc == 2
    assert "<2>psychochauffeur-bot health on mon1: CRITICAL" in out.stdout
    assert "alerting is off: no alert channel configured (webhook URL or chat id)" in out.stdout
    assert received(host) == []


def test_no_token_means_no_alert(host, fresh):
    host.run_test("install -m 0644 /dev/null /etc/psychochauffeur-monitoring/empty.env")
    cfg = json.dumps({"alert_chat_id": str(CHAT_ID), "env_file": "/etc/psychochauffeur-monitoring/empty.env"})
    host.run_test("echo %s > /etc/psychochauffeur-monitoring/notoken.json", cfg)
    host.run_test("chmod 644 /etc/psychochauffeur-monitoring/notoken.json")
    try:
        set_health(host, "critical")
        notoken = "/etc/psychochauffeur-monitoring/notoken.json"
        out = host.run(f"runuser -u psychochauffeur -- {SCRIPT} --alerts-config {notoken}")
        assert out.rc == 2
        assert "alert not sent: no BOT_TOKEN in /etc/psychochauffeur-monitoring/empty.env" in out.stdout
        assert received(host) == []
    finally:
        host.run(
            "rm -f /etc/psychochauffeur-monitoring/notoken.json /etc/psychochauffeur-monitoring/empty.env"
        )


def test_refused_alert_is_logged_and_retried(host, fresh):
    cfg = json.dumps({"alert_chat_id": "-1", "env_file": "/opt/psychochauffeur-bot/.env"})
    host.run_test("echo %s > /etc/psychochauffeur-monitoring/unknown-chat.json", cfg)
    host.run_test("chmod 644 /etc/psychochauffeur-monitoring/unknown-chat.json")
    try:
        set_health(host, "critical")
        alerts = "/etc/psychochauffeur-monitoring/unknown-chat.json"
        cmd = f"runuser -u psychochauffeur -- {SCRIPT} --alerts-config {alerts}"
        for _ in range(2):  # not delivered, so not remembered as sent: the next run tries again
            out = host.run(cmd)
            assert out.rc == 2
            assert (
                "<3>alert to chat -1 refused by the Bot API (HTTP 400): Bad Request: chat not found"
                in out.stdout
            )
            assert TOKEN not in out.stdout
    finally:
        host.run("rm -f /etc/psychochauffeur-monitoring/unknown-chat.json")


def test_a_failed_job_alerts_at_once_through_the_webhook(host, fresh):
    """A unit of monitoring_alert_on_failure_units that fails (a stand-in under the backup job's name) starts
    psychochauffeur-alert@<unit>.service: one critical webhook alert naming the unit, its result and its last
    journal lines, and the chat message."""
    job = "psychochauffeur-backup-daily.service"
    host.run_test(
        "printf '%%s\\n' '[Service]' 'Type=oneshot' "
        "\"ExecStart=/bin/sh -c 'echo stand-in backup broke >&2; exit 3'\" > /etc/systemd/system/%s",
        job,
    )
    alert_unit = f"psychochauffeur-alert@{job}.service"  # instance: the full name (%n)
    host.run_test("systemctl daemon-reload; systemctl reset-failed %s %s || true", job, alert_unit)
    try:
        assert host.run(f"systemctl start {job}").rc != 0
        for _ in range(180):  # OnFailure= starts the alert unit asynchronously (it may wait for the journal)
            if hooks(host):
                break
            host.run("sleep 0.5")
        (alert,) = hooks(host)
        assert alert["severity"] == "critical" and alert["event"] == "unit-failed" and alert["unit"] == job
        assert f"CRITICAL: scheduled job {job} failed (result exit-code, exit status 3)" in alert["text"]
        assert "stand-in backup broke" in alert["problems"]
        assert [c["params"]["chat_id"] for c in calls(host)] == [CHAT_ID]
        assert host.check_output(f"systemctl show -p Result --value {alert_unit}") == "success"
    finally:
        host.run(f"rm -f /etc/systemd/system/{job}; systemctl daemon-reload; systemctl reset-failed {job}")
