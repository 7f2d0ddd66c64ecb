"""roles/schedule on the control node (paths in a temp dir): the cron entries are rendered, and the daily
entry's command runs daily.yml through ansible-runner against the lab host; a failing job exits non-zero,
says so on stderr and records its exit code."""

from __future__ import annotations

import subprocess

import pytest
from pbhelpers import HOST, REPO, run_playbook


@pytest.mark.runbook("Daily | Schedule (cron on the control node)")
def test_cron_entries_rendered_and_runnable(lab_host, tmp_path):
    cron = tmp_path / "cron.d-psychochauffeur-ops"
    extravars = {
        "schedule_inventory": str(REPO / "inventories/lab"),
        "schedule_data_dir": str(tmp_path / "data"),
        "schedule_log_dir": str(tmp_path / "log"),
        "schedule_wrapper_path": str(tmp_path / "psychochauffeur-ops-run"),
        "schedule_cron_file": str(cron),
        "schedule_install_cron": False,
        "schedule_jobs": [
            {"name": "daily", "procedure": "daily", "minute": "0", "hour": "7", "limit": HOST},
            {"name": "broken", "procedure": "diagnose", "minute": "5", "hour": "7", "limit": HOST},
        ],
    }
    assert run_playbook("schedule", extravars, limit="").rc == 0
    again = run_playbook("schedule", extravars, limit="")
    assert again.rc == 0 and again.changed == 0, again.changed_tasks
    lines = [line for line in cron.read_text().splitlines() if line and not line.startswith("#")]
    daily = next(line for line in lines if " daily daily " in line)
    fields = daily.split(None, 6)
    assert fields[:5] == ["0", "7", "*", "*", "*"] and fields[5] == "root"
    ok = subprocess.run(fields[6], shell=True, capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "log/daily.last").read_text().strip() == "0"
    assert "PLAY RECAP" in (tmp_path / "log/daily.log").read_text()
    # diagnose without a symptom fails: the wrapper must surface it
    broken = next(line for line in lines if " broken diagnose " in line).split(None, 6)[6]
    bad = subprocess.run(broken, shell=True, capture_output=True, text=True, timeout=900)
    assert bad.returncode != 0
    assert "FAILED" in bad.stderr
    assert (tmp_path / "log/broken.last").read_text().strip() == str(bad.returncode)


@pytest.mark.runbook("Security | Daily security checks scheduled (cron and AWX, the same time)")
def test_default_schedule_runs_the_daily_security_checks(lab_host, tmp_path):
    """The role's own schedule (no schedule_jobs override) has a daily security-checks entry, and that entry's
    command runs security-checks.yml through ansible-runner against the lab host."""
    cron = tmp_path / "cron.d-psychochauffeur-ops"
    extravars = {
        "schedule_inventory": str(REPO / "inventories/lab"),
        "schedule_data_dir": str(tmp_path / "data"),
        "schedule_log_dir": str(tmp_path / "log"),
        "schedule_wrapper_path": str(tmp_path / "psychochauffeur-ops-run"),
        "schedule_cron_file": str(cron),
        "schedule_install_cron": False,
    }
    assert run_playbook("schedule", extravars, limit="").rc == 0
    entry = next(line for line in cron.read_text().splitlines() if " security-checks security-checks" in line)
    fields = entry.split(None, 6)
    assert fields[2:5] == ["*", "*", "*"], entry  # every day
    assert run_playbook("security-checks", {"update_baseline": "true"}).rc == 0
    ok = subprocess.run(f"{fields[6]} {HOST}", shell=True, capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "log/security-checks.last").read_text().strip() == "0"
    assert "files_changed_since_baseline" in (tmp_path / "log/security-checks.log").read_text()
