"""AWX configuration as data (awx/controller.yml): every job template names an existing playbook, every key is
an option of the awx.awx module that applies it, schedules are valid RRULEs, the workflow graph is closed."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from pbhelpers import REPO

DATA = yaml.safe_load((REPO / "awx/controller.yml").read_text())
MODULES = {
    "controller_templates": "job_template",
    "controller_schedules": "schedule",
    "controller_workflows": "workflow_job_template",
    "controller_projects": "project",
    "controller_inventories": "inventory",
    "controller_inventory_sources": "inventory_source",
    "controller_credentials": "credential",
    "controller_execution_environments": "execution_environment",
    "controller_organizations": "organization",
}
RRULE = re.compile(
    r"^DTSTART;TZID=[A-Za-z/_]+:\d{8}T\d{6} RRULE:FREQ=(DAILY|WEEKLY|MONTHLY)(;[A-Z]+=[A-Z0-9,]+)*$"
)


def _options(module: str) -> dict:
    out = subprocess.run(
        [str(REPO / ".venv/bin/ansible-doc"), "-j", f"awx.awx.{module}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)[f"awx.awx.{module}"]["doc"]["options"]


@pytest.mark.parametrize("template", DATA["controller_templates"], ids=lambda t: t["name"])
def test_job_template_playbook_exists(template):
    assert (REPO / template["playbook"]).is_file(), template["playbook"]


@pytest.mark.parametrize("key", sorted(MODULES))
def test_keys_are_module_options(key):
    options = _options(MODULES[key])
    for item in DATA[key]:
        unknown = set(item) - set(options)
        assert not unknown, f"{key} {item['name']}: not options of awx.awx.{MODULES[key]}: {unknown}"


@pytest.mark.runbook("Daily | Schedule (AWX)")
def test_schedules():
    names = {t["name"] for t in DATA["controller_templates"]}
    for schedule in DATA["controller_schedules"]:
        assert RRULE.match(schedule["rrule"]), schedule["rrule"]
        assert schedule["unified_job_template"] in names
    # the runbook's three cadences are all scheduled
    assert {"daily", "weekly", "monthly"} <= {
        s["unified_job_template"].split()[-1] for s in DATA["controller_schedules"]
    }


@pytest.mark.runbook("Security | Daily security checks scheduled (cron and AWX, the same time)")
def test_security_checks_scheduled_daily_in_cron_and_awx():
    """The runbook's Daily Security Checks run every day, at the same time in AWX and in cron."""
    name = "PsychoChauffeur security-checks"
    awx = [s for s in DATA["controller_schedules"] if s["unified_job_template"] == name]
    assert len(awx) == 1 and "FREQ=DAILY;INTERVAL=1" in awx[0]["rrule"], awx
    cron_jobs = yaml.safe_load((REPO / "roles/schedule/defaults/main.yml").read_text())["schedule_jobs"]
    (cron,) = [j for j in cron_jobs if j["procedure"] == "security-checks"]
    assert all(cron.get(f, "*") == "*" for f in ("day", "month", "weekday")), cron
    start = awx[0]["rrule"].split(":")[1].split()[0]  # DTSTART;TZID=UTC:20250101T064500 RRULE:...
    assert start[-6:] == f"{int(cron['hour']):02d}{int(cron['minute']):02d}00"


def test_update_workflow_graph():
    names = {t["name"] for t in DATA["controller_templates"]}
    (workflow,) = DATA["controller_workflows"]
    nodes = {n["identifier"]: n for n in workflow["workflow_nodes"]}
    for node in nodes.values():
        assert node["unified_job_template"]["name"] in names
        for edges in node.get("related", {}).values():
            assert all(e["identifier"] in nodes for e in edges)
    assert nodes["update"]["related"]["success_nodes"] == [{"identifier": "verify"}]
    assert nodes["verify"]["related"]["failure_nodes"] == [{"identifier": "rollback"}]
    assert nodes["rollback"]["unified_job_template"]["name"] == "PsychoChauffeur rollback"


def test_survey_choices_match_playbooks():
    diagnose = next(t for t in DATA["controller_templates"] if t["playbook"] == "playbooks/diagnose.yml")
    choices = diagnose["survey_spec"]["spec"][0]["choices"]
    playbook = yaml.safe_load((REPO / "playbooks/diagnose.yml").read_text())
    assert choices == playbook[0]["vars"]["ops_symptoms"]
