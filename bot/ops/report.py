"""What every operator command returns: JSON-able data, the human text and the exit code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

# Severity of a health check; info is shown but does not change the exit code.
STATUSES = ("ok", "info", "warning", "critical")
EXIT_CODES = {"ok": 0, "info": 0, "warning": 1, "critical": 2}


class OpsError(Exception):
    """A command cannot run (bad input, missing setting, unreachable DB): operator message + exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Check:
    name: str
    status: str
    summary: str
    value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Result:
    data: dict[str, Any]
    text: str
    exit_code: int = 0


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=STATUSES.index, default="ok")


def checks_text(title: str, checks: list[Check], overall: str) -> str:
    lines = [f"{title}: {overall.upper()}"]
    for c in checks:
        lines.append(f"  [{c.status.upper():8}] {c.name:15} {c.summary}")
    return "\n".join(lines)

