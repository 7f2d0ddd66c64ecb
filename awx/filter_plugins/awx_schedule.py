"""AWX schedules from roles/schedule's schedule_jobs (the one list cron also reads).

    {{ schedule_jobs | awx_schedules(controller_templates) }}

Each cron job (minute, hour and optionally day or weekday, single numbers) becomes an awx.awx.schedule object
whose RRULE fires at the same time, on the job template that runs the same playbook, with the same extra vars
and limit. A cron field AWX cannot express this way is an error that names the job and the field.
"""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

BYDAY = ["SU", "MO", "TU", "WE", "TH", "FR", "SA", "SU"]  # cron weekday 0..7 (0 and 7 are Sunday)
DTSTART_DATE = "20250101"


def _field(job: dict[str, Any], name: str, low: int, high: int, required: bool) -> int | None:
    value = str(job.get(name, "*" if not required else "")).strip()
    if value == "*" and not required:
        return None
    if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
        raise AnsibleFilterError(
            f"schedule job {job.get('name')!r}: {name}={value!r} has no AWX schedule equivalent: "
            f"use one number from {low} to {high}{'' if required else ' or *'}"
        )
    return int(value)


def cron_rrule(job: dict[str, Any], timezone: str = "UTC") -> str:
    """The RRULE of one schedule_jobs entry (minute, hour; day of month or weekday; month must be *)."""
    minute = _field(job, "minute", 0, 59, True)
    hour = _field(job, "hour", 0, 23, True)
    day = _field(job, "day", 1, 31, False)
    weekday = _field(job, "weekday", 0, 7, False)
    if str(job.get("month", "*")).strip() != "*":
        raise AnsibleFilterError(f"schedule job {job.get('name')!r}: month must be * for an AWX schedule")
    if day is not None and weekday is not None:
        raise AnsibleFilterError(
            f"schedule job {job.get('name')!r}: both day and weekday set (cron runs on either): set only one"
        )
    rule = "FREQ=DAILY;INTERVAL=1"
    if weekday is not None:
        rule = f"FREQ=WEEKLY;INTERVAL=1;BYDAY={BYDAY[weekday]}"
    elif day is not None:
        rule = f"FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY={day}"
    return f"DTSTART;TZID={timezone}:{DTSTART_DATE}T{hour:02d}{minute:02d}00 RRULE:{rule}"


def awx_schedules(
    jobs: list[dict[str, Any]], templates: list[dict[str, Any]], timezone: str = "UTC"
) -> list[dict[str, Any]]:
    """awx.awx.schedule objects, one per cron job, on the job template running playbooks/<procedure>.yml."""
    by_playbook = {t["playbook"]: t for t in templates}
    schedules = []
    for job in jobs:
        template = by_playbook.get(f"playbooks/{job['procedure']}.yml")
        if template is None:
            raise AnsibleFilterError(
                f"schedule job {job['name']!r}: no AWX job template runs playbooks/{job['procedure']}.yml "
                "(add one to awx/controller.yml)"
            )
        schedule: dict[str, Any] = {
            "name": f"PsychoChauffeur {job['name']}",
            "description": f"roles/schedule job {job['name']} (cron: {cron_fields(job)})",
            "unified_job_template": template["name"],
            "organization": template["organization"],
            "rrule": cron_rrule(job, timezone),
            "enabled": True,
        }
        if job.get("extravars"):
            schedule["extra_data"] = dict(job["extravars"])
        if job.get("limit"):
            schedule["limit"] = job["limit"]
        schedules.append(schedule)
    return schedules


def cron_fields(job: dict[str, Any]) -> str:
    return " ".join(str(job.get(k, "*")) for k in ("minute", "hour", "day", "month", "weekday"))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"awx_schedules": awx_schedules, "cron_rrule": cron_rrule}
