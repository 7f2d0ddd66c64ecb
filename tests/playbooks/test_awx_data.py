"""AWX configuration as data (awx/controller.yml, applied by awx/configure.yml with the awx.awx modules):
every object passes the argument spec of the module that applies it (as ansible-doc documents it, through
Ansible's ArgumentSpecValidator), configure.yml passes every key on to its module, every job template names
an existing playbook and carries the Vault credential, the schedules come from roles/schedule's one list as
valid RRULEs that fire when cron does, the workflow graph is closed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from pbhelpers import REPO

sys.path.insert(0, str(REPO / "awx/filter_plugins"))
from awx_schedule import awx_schedules, cron_rrule  # noqa: E402

DATA = yaml.safe_load((REPO / "awx/controller.yml").read_text())
CONFIGURE = yaml.safe_load((REPO / "awx/configure.yml").read_text())[0]
SCHEDULE_JOBS = yaml.safe_load((REPO / "roles/schedule/defaults/main.yml").read_text())["schedule_jobs"]
SCHEDULES = awx_schedules(SCHEDULE_JOBS, DATA["controller_templates"])
# the data list -> the awx.awx module configure.yml applies it with
MODULES = {
    "controller_templates": "job_template",
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


@cache
def _options(module: str) -> dict:
    out = subprocess.run(
        [str(REPO / ".venv/bin/ansible-doc"), "-j", f"awx.awx.{module}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)[f"awx.awx.{module}"]["doc"]["options"]


def _spec(options: dict) -> dict:
    """The module's argument spec as ansible-doc documents it (type, elements, choices, suboptions...)."""
    spec = {}
    for name, doc in options.items():
        entry: dict[str, Any] = {"type": doc.get("type", "str")}
        for key in ("elements", "choices", "required", "aliases"):
            if key in doc:
                entry[key] = doc[key]
        if "suboptions" in doc:
            entry["options"] = _spec(doc["suboptions"])
        spec[name] = entry
    return spec


def _validate(module: str, params: dict) -> list[str]:
    result = ArgumentSpecValidator(_spec(_options(module))).validate(dict(params))
    return [str(e) for e in result.errors]


def _task_args(module: str) -> set[str]:
    task = next(t for t in CONFIGURE["tasks"] if f"awx.awx.{module}" in t)
    return set(task[f"awx.awx.{module}"])


OBJECTS = [(key, MODULES[key], item) for key in sorted(MODULES) for item in DATA[key]] + [
    ("schedules from schedule_jobs", "schedule", s) for s in SCHEDULES
]


@pytest.mark.parametrize(
    ("key", "module", "item"), OBJECTS, ids=lambda v: v["name"] if isinstance(v, dict) else v
)
@pytest.mark.runbook("Operations | AWX objects valid for the awx.awx modules; Vault credential")
def test_object_passes_the_module_argument_spec(key, module, item):
    errors = _validate(module, item)
    assert not errors, f"{key} {item['name']}: awx.awx.{module} rejects it: {errors}"
    dropped = set(item) - _task_args(module)
    assert not dropped, f"{key} {item['name']}: awx/configure.yml does not pass {dropped} to awx.awx.{module}"


def test_settings_pass_the_settings_module_spec():
    assert not _validate("settings", {"settings": DATA["controller_settings"]})
    show = DATA["controller_settings"]["AWX_ISOLATION_SHOW_PATHS"]
    assert show == ["{{ awx_reports_dir }}:{{ awx_reports_dir }}:z"]


def test_the_validator_rejects_what_awx_would():
    """The check can fail: an unknown key, a wrong type and a bad choice are each reported."""
    template = DATA["controller_templates"][0]
    assert _validate("job_template", {**template, "playbok": "x.yml"})
    assert _validate("job_template", {**template, "forks": "many"})
    assert _validate("execution_environment", {"name": "ee", "image": "x", "pull": "sometimes"})


@pytest.mark.parametrize("template", DATA["controller_templates"], ids=lambda t: t["name"])
@pytest.mark.runbook("Operations | AWX objects valid for the awx.awx modules; Vault credential")
def test_job_template_playbook_exists_and_gets_the_secrets_and_reports_dir(template):
    assert (REPO / template["playbook"]).is_file(), template["playbook"]
    assert "psychochauffeur-vault" in template["credentials"]
    assert template["extra_vars"]["ops_reports_dir"] == "{{ awx_reports_dir }}"


def test_vault_credential():
    (vault,) = [c for c in DATA["controller_credentials"] if c["credential_type"] == "Vault"]
    assert vault["inputs"] == {"vault_password": "{{ awx_vault_password }}"}
    configure = (REPO / "awx/configure.yml").read_text()
    assert "awx_vault_password | length > 0" in configure


@pytest.mark.runbook("Daily | Schedule (AWX)")
def test_schedules():
    """One AWX schedule per cron job of roles/schedule, at its time, on the template of the same playbook."""
    templates = {t["name"]: t for t in DATA["controller_templates"]}
    assert [s["name"] for s in SCHEDULES] == [f"PsychoChauffeur {j['name']}" for j in SCHEDULE_JOBS]
    for job, schedule in zip(SCHEDULE_JOBS, SCHEDULES, strict=True):
        assert RRULE.match(schedule["rrule"]), schedule["rrule"]
        assert templates[schedule["unified_job_template"]]["playbook"] == f"playbooks/{job['procedure']}.yml"
        assert f"T{int(job['hour']):02d}{int(job['minute']):02d}00 " in schedule["rrule"]
    # the runbook's three cadences are all scheduled
    assert {"daily", "weekly", "monthly"} <= {j["procedure"] for j in SCHEDULE_JOBS}
    by_name = {j["name"]: s["rrule"] for j, s in zip(SCHEDULE_JOBS, SCHEDULES, strict=True)}
    assert by_name["weekly"].endswith("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO")
    assert by_name["monthly"].endswith("FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=1")


@pytest.mark.parametrize(
    ("job", "error"),
    [
        ({"name": "x", "minute": "*/5", "hour": "7"}, "minute='*/5' has no AWX schedule equivalent"),
        ({"name": "x", "minute": "0", "hour": "7", "day": "1", "weekday": "1"}, "both day and weekday"),
        ({"name": "x", "minute": "0", "hour": "25"}, "hour='25'"),
    ],
)
def test_cron_fields_awx_cannot_express_are_refused(job, error):
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match=re.escape(error)):
        cron_rrule(job)


def test_sunday_is_0_or_7():
    assert cron_rrule({"minute": "0", "hour": "1", "weekday": "0"}).endswith("BYDAY=SU")
    assert cron_rrule({"minute": "0", "hour": "1", "weekday": "7"}).endswith("BYDAY=SU")


@pytest.mark.runbook("Security | Daily security checks scheduled (cron and AWX, the same time)")
def test_security_checks_scheduled_daily_in_cron_and_awx():
    """The runbook's Daily Security Checks run every day, at the same time in AWX and in cron."""
    name = "PsychoChauffeur security-checks"
    awx = [s for s in SCHEDULES if s["unified_job_template"] == name]
    assert len(awx) == 1 and "FREQ=DAILY;INTERVAL=1" in awx[0]["rrule"], awx
    cron_jobs = yaml.safe_load((REPO / "roles/schedule/defaults/main.yml").read_text())["schedule_jobs"]
    (cron,) = [j for j in cron_jobs if j["procedure"] == "security-checks"]
    assert all(cron.get(f, "*") == "*" for f in ("day", "month", "weekday")), cron
    start = awx[0]["rrule"].split(":")[1].split()[0]  # DTSTART;TZID=UTC:20250101T064500 RRULE:...
    assert start[-6:] == f"{int(cron['hour']):02d}{int(cron['minute']):02d}00"


@pytest.mark.runbook("Update | Workflow update → verify → rollback (AWX)")
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
