"""Failed scheduled jobs reach someone (issue 11): a backup job that fails for real on the converged lab
host raises a critical alert at once through the monitor's webhook (OnFailure=psychochauffeur-alert@%n.service
runs the monitor's own sender); the control node's cron entries mail failed runs to schedule_mailto,
required outside the lab (refused before anything is written). The webhook receiver and the monitoring
converge are test_85_alerts.py's fixture; this file runs on its own so it can use a host of its own."""

from __future__ import annotations

import json
import time

import pytest
from pbhelpers import REPO, control_node_playbook, host_sh, run_playbook
from test_85_alerts import HOOK_PATH, RECEIVED, received, webhook  # noqa: F401 (webhook: the fixture)

UNIT = "psychochauffeur-backup-daily.service"
ALERT_UNIT = f"psychochauffeur-alert@{UNIT}.service"  # the instance is the unit's full name (%n)
BACKUP_DIR = "/var/backups/psychochauffeur-bot"


def alerts_for(unit: str, timeout: float = 60) -> list[dict]:
    """The webhook alerts naming `unit`, polled until one arrives (OnFailure= starts the sender
    asynchronously) or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r["body"] for r in received() if r["path"] == HOOK_PATH and r["body"].get("unit") == unit]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def invocation(unit: str) -> str:
    return host_sh(f"systemctl show -p InvocationID --value {unit}").stdout.strip()


@pytest.mark.runbook("Backups | A failed backup job alerts at once (critical, webhook; OnFailure=)")
def test_a_failed_backup_raises_a_critical_alert_naming_the_unit(webhook):  # noqa: F811
    host_sh(f": > {RECEIVED}; systemctl reset-failed {UNIT} {ALERT_UNIT} 2>/dev/null || true")
    host_sh(f"chmod 0500 {BACKUP_DIR}")  # the backup user can no longer write its dumps
    try:
        failed = host_sh(f"systemctl start {UNIT}", check=False)
    finally:
        host_sh(f"chmod 0700 {BACKUP_DIR}")
    assert failed.returncode != 0
    (alert,) = alerts_for(UNIT)
    assert alert["severity"] == "critical" and alert["event"] == "unit-failed", alert
    assert f"CRITICAL: scheduled job {UNIT} failed (result exit-code, exit status 1)" in alert["text"], alert
    assert any(line.startswith("BACKUP FAILED (dump daily): ") for line in alert["problems"]), alert
    assert "t85SecretPath" not in host_sh(f"journalctl --sync; journalctl -u {ALERT_UNIT} -o cat").stdout

    # the same job succeeding again raises nothing: the alert unit is not started again
    sent = invocation(ALERT_UNIT)
    host_sh(f": > {RECEIVED}; systemctl reset-failed {UNIT}; systemctl start {UNIT}")
    assert invocation(ALERT_UNIT) == sent
    assert received() == []


SCHEDULE_PATHS = ("schedule_data_dir", "schedule_log_dir", "schedule_wrapper_path", "schedule_cron_file")


@pytest.mark.runbook("Daily | Schedule: cron mails failed runs (MAILTO), required outside the lab")
def test_cron_mails_failed_runs_and_mailto_is_required_outside_the_lab(tmp_path):
    """The lab's default (root) is rendered; the production inventory without schedule_mailto, and a value
    that could add a cron line, are refused on the control node before anything is written."""
    paths = {key: str(tmp_path / key) for key in SCHEDULE_PATHS}
    extravars = {**paths, "schedule_install_cron": False, "schedule_inventory": str(REPO / "inventories/lab")}
    lab = run_playbook("schedule", extravars, limit="")
    assert lab.rc == 0, lab.text[-3000:]
    assert 'MAILTO="root"' in (tmp_path / "schedule_cron_file").read_text().splitlines()

    injected = {"schedule_mailto": "ops@example.org\n* * * * * root id"}  # would add a cron line
    for inventory, extra in (("production", {}), ("lab", injected)):
        refused = tmp_path / f"refused-{inventory}"
        vars_file = tmp_path / f"vars-{inventory}.json"
        refused_paths = {key: str(refused / key) for key in SCHEDULE_PATHS}
        vars_file.write_text(json.dumps({**extravars, **refused_paths, **extra}))
        rc, out = control_node_playbook(inventory, "schedule", "-e", f"@{vars_file}")
        assert rc != 0, out
        assert "schedule_mailto must name who gets the output of a failed scheduled run (cron MAILTO)" in out
        assert "changed=0" in out.split("PLAY RECAP")[-1], out
        assert not refused.exists()
