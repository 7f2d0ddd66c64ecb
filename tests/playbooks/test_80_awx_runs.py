"""Every AWX job template's playbook runs under ansible-runner against a lab host.

The playbook tests run as sessions side by side on their own hosts (scripts/test_parts.py PLAYBOOK_HOSTS).
This file runs in the first: the playbooks its session ran already (pbhelpers.RUNS) count, the rest
run here, except the destructive ones that their own test files run through the same run_playbook()."""

from __future__ import annotations

import pytest
import yaml
from pbhelpers import REPO, RUNS, run_playbook

EXTRA = {"diagnose": {"symptom": "database"}}
# playbook -> the test file (another session's, scripts/test_parts.py PLAYBOOK_HOSTS) that runs it through
# run_playbook (ansible-runner)
OTHER_SESSION = {
    "update": "test_60_update.py",
    "rollback": "test_60_update.py",
    "restore": "test_70_restore.py",
    "incident": "test_90_incident.py",
    "harden": "test_30_state.py",
    "db-maintenance": "test_30_state.py",
    "config-restore": "test_30_state.py",
}


def test_destructive_playbooks_run_in_the_other_session():
    for name, test_file in OTHER_SESSION.items():
        text = (REPO / "tests/playbooks" / test_file).read_text()
        assert f'run_playbook("{name}"' in text, f"{test_file} no longer runs {name}.yml: run it here again"


@pytest.mark.runbook("Operations | Every AWX job template runs under ansible-runner")
def test_every_job_template_ran_under_ansible_runner(lab_host):
    data = yaml.safe_load((REPO / "awx/controller.yml").read_text())
    for template in data["controller_templates"]:
        name = template["playbook"].removeprefix("playbooks/").removesuffix(".yml")
        if name in OTHER_SESSION or 0 in RUNS.get(name, []):
            continue
        # AWX renders awx_reports_dir (awx/configure.yml); here the reports go to the repo's reports/
        extra = {**template.get("extra_vars", {}), "ops_reports_dir": str(REPO / "reports")}
        run = run_playbook(name, {**extra, **EXTRA.get(name, {})})
        assert run.rc == 0, f"{name}: {run.stdout[-3000:]}"
