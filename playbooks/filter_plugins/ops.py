"""Threshold evaluation for the runbook reports.

Playbooks gather raw figures; these filters turn them into statuses and one verdict so the
templates only render and the playbooks can fail loudly on CRITICAL.
"""

from __future__ import annotations

from typing import Any

RANK = {"OK": 0, "UNKNOWN": 1, "WARNING": 2, "CRITICAL": 3}


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


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict:
        return {"ops_status": ops_status, "ops_evaluate": ops_evaluate, "ops_verdict": ops_verdict}
