"""Role monitoring on the converged lab host: the timer, and the monitor service run by hand against the
stand-in health command and the stand-in Bot API: journal priorities, alerts, repeat suppression, recovery,
no-op without a chat id or token, and a health command that gives no JSON."""

import json

import pytest

UNIT = "psychochauffeur-monitor.service"
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


def calls(host) -> list[dict]:
    f = host.file(CALLS)
    return [json.loads(line) for line in f.content_string.splitlines()] if f.exists else []


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
    """Healthy stand-in, no alert state, no recorded Bot API calls."""
    set_health(host, "ok")
    host.run_test(f"rm -f {STATE} && truncate -s 0 {CALLS} && systemctl reset-failed {UNIT} || true")
    yield
    set_health(host, "ok")


def test_timer_is_listed_and_active(host):
    timer = host.service("psychochauffeur-monitor.timer")
    assert timer.is_enabled and timer.is_running
    assert "psychochauffeur-monitor.timer" in host.check_output("systemctl list-timers --all --no-pager")
    show = host.check_output("systemctl show psychochauffeur-monitor.timer -p TimersMonotonic")
    assert "OnUnitActiveUSec=1h" in show
    assert host.run(f"systemd-analyze verify /etc/systemd/system/{UNIT}").rc == 0


def test_settings_hold_no_secret(host):
    for name in ("monitor.json", "alerts.json"):
        f = host.file(f"/etc/psychochauffeur-monitoring/{name}")
        assert (f.user, f.group, f.mode) == ("root", "psychochauffeur", 0o640)
        assert TOKEN.split(":")[1] not in f.content_string
    alerts = json.loads(host.file("/etc/psychochauffeur-monitoring/alerts.json").content_string)
    assert alerts["alert_chat_id"] == str(CHAT_ID)
    assert alerts["env_file"] == "/opt/psychochauffeur-bot/.env"


def test_healthy_run_logs_ok_and_sends_nothing(host, fresh):
    result, messages = run_unit(host, "ok")
    assert result.rc == 0, result.stderr
    assert any(
        m["MESSAGE"] == "psychochauffeur-bot health on mon1: OK" and m["PRIORITY"] == "6" for m in messages
    )
    assert calls(host) == []


def test_alert_lifecycle(host, fresh):
    # warning: journal at warning priority, one alert through the Bot API with the bot's token
    result, messages = run_unit(host, "warning")
    assert result.rc != 0, "the unit fails while the bot is unhealthy"
    assert host.run(f"systemctl is-failed {UNIT}").stdout.strip() == "failed"
    warnings = [m["MESSAGE"] for m in messages if m["PRIORITY"] == "4"]
    assert "psychochauffeur-bot health on mon1: WARNING" in warnings
    assert "[WARNING] cpu: stand-in cpu check is warning" in warnings
    sent = calls(host)
    assert len(sent) == 1
    assert sent[0]["token"] == TOKEN and sent[0]["method"] == "sendMessage"
    assert sent[0]["params"]["chat_id"] == CHAT_ID
    assert sent[0]["params"]["text"].startswith("psychochauffeur-bot on mon1: WARNING")
    assert "[WARNING] cpu: stand-in cpu check is warning" in sent[0]["params"]["text"]

    # the same warning again: no second message within the repeat interval
    result, messages = run_unit(host, "warning")
    assert result.rc != 0
    assert any("alert suppressed" in m["MESSAGE"] for m in messages)
    assert len(calls(host)) == 1

    # critical: a new status is alerted at once, logged at critical priority
    result, messages = run_unit(host, "critical")
    assert result.rc != 0
    assert any(m["PRIORITY"] == "2" and m["MESSAGE"].endswith("CRITICAL") for m in messages)
    sent = calls(host)
    assert len(sent) == 2 and "CRITICAL" in sent[1]["params"]["text"]

    # back to ok: one "recovered" message, the unit succeeds again
    result, _ = run_unit(host, "ok")
    assert result.rc == 0
    sent = calls(host)
    assert len(sent) == 3 and "recovered" in sent[2]["params"]["text"]
    result, _ = run_unit(host, "ok")
    assert len(calls(host)) == 3


def test_token_never_reaches_the_journal(host, fresh):
    mark = cursor(host)
    run_unit(host, "warning")
    everything = json.dumps(journal(host, mark))
    assert TOKEN not in everything and TOKEN.split(":")[1] not in everything


def test_a_health_command_without_json_is_critical(host, fresh):
    result, messages = run_unit(host, "garbage")  # the stand-in exits 2 with an error and no JSON
    assert result.rc != 0
    critical = [m["MESSAGE"] for m in messages if m["PRIORITY"] == "2"]
    assert "psychochauffeur-bot health on mon1: CRITICAL" in critical
    assert any("without a health JSON" in m and "bad status garbage" in m for m in critical)
    assert "CRITICAL" in calls(host)[0]["params"]["text"]


def test_no_chat_id_means_no_alert(host, fresh):
    set_health(host, "warning")
    out = host.run(f"runuser -u psychochauffeur -- {SCRIPT} --alerts-config /nonexistent.json")
    assert out.rc == 1
    assert "<4>psychochauffeur-bot health on mon1: WARNING" in out.stdout
    assert "alerting is off: no alert chat id configured" in out.stdout
    assert calls(host) == []


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
        assert calls(host) == []
    finally:
        host.run(
            "rm -f /etc/psychochauffeur-monitoring/notoken.json /etc/psychochauffeur-monitoring/empty.env"
        )


def test_refused_alert_is_logged_and_retried(host, fresh):
    cfg = json.dumps({"alert_chat_id": "-1", "env_file": "/opt/psychochauffeur-bot/.env"})
    host.run_test("echo %s > /etc/psychochauffeur-monitoring/unknown-chat.json", cfg)
    host.run_test("chmod 644 /etc/psychochauffeur-monitoring/unknown-chat.json")
    try:
        set_health(host, "warning")
        alerts = "/etc/psychochauffeur-monitoring/unknown-chat.json"
        cmd = f"runuser -u psychochauffeur -- {SCRIPT} --alerts-config {alerts}"
        for _ in range(2):  # not delivered, so not remembered as sent: the next run tries again
            out = host.run(cmd)
            assert out.rc == 1
            assert (
                "<3>alert to chat -1 refused by the Bot API (HTTP 400): Bad Request: chat not found"
                in out.stdout
            )
            assert TOKEN not in out.stdout
    finally:
        host.run("rm -f /etc/psychochauffeur-monitoring/unknown-chat.json")
