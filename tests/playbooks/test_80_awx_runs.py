"""Every AWX job template's playbook has run under ansible-runner against the lab host in this session
(the earlier files ran them through pbhelpers.run_playbook); the few not run yet run here."""

from __future__ import annotations

import yaml
from pbhelpers import REPO, RUNS, run_playbook

EXTRA = {"diagnose": {"symptom": "database"}, "incident": {"release_isolation": "true"}}


def test_every_job_template_ran_under_ansible_runner(lab_host):
    data = yaml.safe_load((REPO / "awx/controller.yml").read_text())
    for template in data["controller_templates"]:
        name = template["playbook"].removeprefix("playbooks/").removesuffix(".yml")
        if 0 not in RUNS.get(name, []):
            run = run_playbook(name, {**template.get("extra_vars", {}), **EXTRA.get(name, {})})
            assert run.rc == 0, f"{name}: {run.stdout[-3000:]}"
