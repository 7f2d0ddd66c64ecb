"""Threshold evaluation for the runbook reports.

Playbooks gather raw figures; these filters turn them into statuses and one verdict so the
templates only render and the playbooks can fail loudly on CRITICAL.
"""

from __future__ import annotations

import json
from typing import Any

RANK = {"OK": 0, "INFO": 0, "UNKNOWN": 1, "WARNING": 2, "CRITICAL": 3}
# Unit of each `psychochauffeur health` check value, and the metric its thresholds are listed under.
CHECK_UNITS = {
    "disk": "% free",
    "memory": "%",
    "cpu": "%",
    "error_rate": "%",
    "latency": " s",
    "database": " ms",
    "bot_api": " ms",
    "last_update": " s",
    "openai": " ms",
    "weather": " ms",
    "external_apis": "% failing",
}
CHECK_METRICS = {
    "disk": "disk_free_percent",
    "memory": "memory_percent",
    "cpu": "cpu_percent",
    "error_rate": "error_rate_percent",
    "latency": "handler_p95_seconds",
    "external_apis": "external_api_failure_percent",
}


def ops_status(value: Any, warn: Any = None, crit: Any = None, better: str = "lower") -> str:
    """Status of one figure: above (or below, when better='higher') warn/crit thresholds."""
    if value is None or value == "":
        return "UNKNOWN"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "UNKNOWN"
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', not {better!r}")

    def breached(limit: Any) -> bool:
        if limit is None:
            return False
        return number < float(limit) if better == "higher" else number > float(limit)

    if breached(crit):
        return "CRITICAL"
    if breached(warn):
        return "WARNING"
    return "OK"


def ops_evaluate(figures: list[dict]) -> list[dict]:
    """Return the figures with a `status` key computed from value/warn/crit/better."""
    evaluated = []
    for figure in figures:
        row = dict(figure)
        row["status"] = ops_status(
            row.get("value"), row.get("warn"), row.get("crit"), row.get("better", "lower")
        )
        evaluated.append(row)
    return evaluated


def ops_verdict(items: list[Any]) -> str:
    """Worst status among figures/checks (dicts with `status`) or plain status strings."""
    worst = "OK"
    for item in items or []:
        status = item.get("status", "UNKNOWN") if isinstance(item, dict) else str(item)
        status = status.upper() if status.upper() in RANK else "UNKNOWN"
        if RANK[status] > RANK[worst]:
            worst = status
    return worst


def ops_checks(health: dict | None) -> list[dict]:
    """`psychochauffeur health --json` checks as report rows (name, STATUS, detail)."""
    if not health or not isinstance(health.get("checks"), list):
        return [
            {
                "name": "health",
                "status": "CRITICAL",
                "detail": (health or {}).get("error", "no health output"),
            }
        ]
    return [
        {
            "name": c.get("name", "?"),
            "status": str(c.get("status", "unknown")).upper(),
            "detail": c.get("summary", ""),
        }
        for c in health["checks"]
    ]


def ops_figures(health: dict | None) -> list[dict]:
    """The measured values of the health checks, with the CLI's own runbook thresholds and status."""
    if not health or not isinstance(health.get("checks"), list):
        return []
    thresholds = health.get("thresholds") or {}
    rows = []
    for c in health["checks"]:
        if c.get("value") is None:
            continue
        t = thresholds.get(CHECK_METRICS.get(c.get("name", ""), ""), {})
        rows.append(
            {
                "name": c["name"],
                "value": c["value"],
                "unit": CHECK_UNITS.get(c["name"], ""),
                "warn": t.get("warning"),
                "crit": t.get("critical"),
                "better": "lower" if t.get("higher_is_worse", True) else "higher",
                "status": str(c.get("status", "unknown")).upper(),
            }
        )
    return rows


def ops_history_align(text: str, current: str, previous: str = "") -> list[str]:
    """Deploy history (one release per line, oldest first) ending at the live release.

    A history that does not know the live release (deployed by site.yml) gets the previous link's release
    and the live one appended; entries after the live release (rolled back from) are dropped.
    """
    history = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if current in history:
        return history[: history.index(current) + 1]
    if previous and previous not in history and previous != current:
        history.append(previous)
    return history + [current] if current else history


def ops_cli_results(results: list[dict]) -> dict[str, dict]:
    """Loop results of `psychochauffeur --json ...` tasks → {key: {rc, data, error}} (item.key names each)."""
    out: dict[str, dict] = {}
    for r in results or []:
        text = (r.get("stdout") or "").strip()
        try:
            data = json.loads(text) if text.startswith(("{", "[")) else {}
        except ValueError:
            data = {}
        error = data.get("error") if isinstance(data, dict) else None
        out[r["item"]["key"]] = {
            "rc": r.get("rc"),
            "data": data,
            "error": error or ("" if r.get("rc") in (0, None) else (r.get("stderr") or "")[-500:]),
            "skipped": bool(r.get("skipped")),
        }
    return out


def ops_health_check(health: dict | None) -> dict:
    """One report row summing up `psychochauffeur health --json`: overall status, the checks not ok."""
    health = health or {}
    bad = [c.get("summary", "") for c in health.get("checks", []) if c.get("status") != "ok"]
    detail = "; ".join(bad) or "all checks ok"
    return {"name": "health", "status": str(health.get("status", "critical")).upper(), "detail": detail}


def ops_audit_check(audit: dict | None, name: str = "security audit") -> dict:
    """One report row from `psychochauffeur audit --json`: high → CRITICAL, medium → WARNING."""
    audit = audit or {}
    summary = audit.get("summary") or {}
    if not summary:
        return {"name": name, "status": "UNKNOWN", "detail": audit.get("error", "no audit output")}
    status = "CRITICAL" if summary.get("high") else "WARNING" if summary.get("medium") else "OK"
    findings = [f.get("message", "") for f in audit.get("findings", []) if f.get("severity") not in ("info",)]
    counts = ", ".join(f"{n} {sev}" for sev, n in summary.items())
    return {"name": name, "status": status, "detail": "; ".join([counts, *findings])}


def ops_sections(results: list[dict]) -> list[dict]:
    """Loop results of evidence commands (item.title) → report sections (stdout, then stderr)."""
    sections = []
    for r in results or []:
        body = "\n".join(part for part in (r.get("stdout", ""), r.get("stderr", "")) if part)
        sections.append({"title": r["item"]["title"], "body": body})
    return sections


def ops_usage_check(usage: dict | None, name: str = "active users and command usage") -> dict:
    """One report row from the `psychochauffeur usage --json` CLI result: INFO when a trend needs a look."""
    usage = usage or {}
    data = usage.get("data") or {}
    if usage.get("rc") not in (0, None) or "trends" not in data:
        return {"name": name, "status": "WARNING", "detail": usage.get("error") or "no usage output"}
    trends, users = data["trends"], data.get("active_users", {})
    top = ", ".join(f"/{c['command']} {c['uses']}" for c in data.get("top_commands", [])[:3]) or "none"

    def change(key: str) -> str:
        t = trends[key]
        pct = t.get("change_percent")
        return f"{t['current']} (previous {t['previous']}{'' if pct is None else f', {pct:+.1f}%'})"

    detail = (
        f"active users {change('active_users')}, daily average {users.get('daily_average')}; "
        f"commands {change('commands')}, top {top}; error events {change('errors')}"
    )
    notes = data.get("notes") or []
    return {"name": name, "status": "INFO" if notes else "OK", "detail": "; ".join([detail, *notes])}


def ops_usage_summary(data: dict | None, trend: bool = False) -> dict:
    """The report section of `psychochauffeur usage --json`: figures against the previous period, top
    commands, notes; with trend=True also the period's parts (trend within the period)."""
    data = data or {}
    if "trends" not in data:
        return {"error": data.get("error", "no usage output")}
    summary: dict[str, Any] = {
        "period": f"{data['period']['start']} .. {data['period']['end']}",
        "active_users": data["active_users"],
        "against_previous_period": data["trends"],
        "top_commands": [
            f"/{c['command']}: {c['uses']} uses by {c['users']} user(s), previous period {c['previous_uses']}"
            for c in data.get("top_commands", [])
        ],
        "notes": data.get("notes", []),
    }
    if trend:
        summary["by_part_of_the_period"] = [
            f"from {b['start']}: {b['messages']} messages, {b['active_users']} active users, "
            f"{b['commands']} commands, {b['errors']} error events"
            for b in data.get("buckets", [])
        ]
    return summary


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict:
        return {
            "ops_status": ops_status,
            "ops_evaluate": ops_evaluate,
            "ops_verdict": ops_verdict,
            "ops_checks": ops_checks,
            "ops_figures": ops_figures,
            "ops_history_align": ops_history_align,
            "ops_cli_results": ops_cli_results,
            "ops_health_check": ops_health_check,
            "ops_audit_check": ops_audit_check,
            "ops_sections": ops_sections,
            "ops_usage_check": ops_usage_check,
            "ops_usage_summary": ops_usage_summary,
        }
