"""Control-node tasks never need sudo. With an inventory whose localhost has ansible_become: true (the
implicit localhost inherits it from the example inventories' `all: vars`) and no working sudo, a report
playbook still writes its report where ops_reports_dir says (AWX: a host directory exposed to the job) and
hands its verdict over as a set_stats artifact; the bot role's control-node build tasks run too (site.yml
--check)."""

from __future__ import annotations

import pytest
from pbhelpers import HOST, run_playbook

# become on the control node cannot work here: any control-node task that becomes fails on this sudo
NO_SUDO = """\
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
      ansible_become: true
      ansible_become_user: nobody
      ansible_become_exe: /nonexistent/sudo
"""


@pytest.mark.runbook("Operations | Reports survive the job; no sudo on the control node")
def test_reports_and_build_need_no_sudo_on_the_control_node(lab_host, tmp_path):
    inventory = tmp_path / "no-sudo.yml"
    inventory.write_text(NO_SUDO)
    reports = tmp_path / "reports"
    # the host's health is not the subject here: a CRITICAL verdict must not fail the run
    extravars = {"ops_reports_dir": str(reports), "ops_fail_on_critical": False}
    run = run_playbook("daily", extravars, extra_inventories=[str(inventory)])
    assert run.rc == 0, run.text[-3000:]
    (report,) = reports.glob("daily-*.md")
    daily = run.artifacts["ops_reports"]["daily"]
    assert daily["path"] == str(report)
    assert daily["verdict"][HOST] in report.read_text()
    site = run_playbook("site", check=True, extra_inventories=[str(inventory)])
    assert site.rc == 0, site.text[-3000:]


@pytest.mark.runbook("Operations | Reports survive the job; no sudo on the control node")
def test_schedule_needs_no_sudo_on_the_control_node(lab_host, tmp_path):
    inventory = tmp_path / "no-sudo.yml"
    inventory.write_text(NO_SUDO)
    extravars = {
        "schedule_data_dir": str(tmp_path / "data"),
        "schedule_log_dir": str(tmp_path / "log"),
        "schedule_wrapper_path": str(tmp_path / "psychochauffeur-ops-run"),
        "schedule_cron_file": str(tmp_path / "cron"),
        "schedule_install_cron": False,
    }
    run = run_playbook("schedule", extravars, limit="", extra_inventories=[str(inventory)])
    assert run.rc == 0, run.text[-3000:]
    assert "psychochauffeur-ops daily" in (tmp_path / "cron").read_text()
