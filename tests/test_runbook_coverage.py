"""docs/RUNBOOK.md: every runbook area has rows; every row has a command, existing implementation files and a
test id that exists in the repo (file and test function)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "RUNBOOK.md"
AREAS = [
    "Daily",
    "Weekly",
    "Monthly",
    "Monitoring",
    "Troubleshooting",
    "Update",
    "Rollback",
    "Database maintenance",
    "Backups",
    "Log management",
    "Outage",
    "Data recovery",
    "Config recovery",
    "Performance",
    "Security",
]
TROUBLESHOOTING = [
    "Bot not responding",
    "Database connection",
    "High memory",
    "External API",
    "Performance degradation",
]


def rows() -> list[list[str]]:
    lines = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| Section")
    ]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_table_parses():
    assert len(rows()) >= 40
    assert all(len(r) == 5 for r in rows()), [r for r in rows() if len(r) != 5]


def test_every_area_is_covered():
    sections = {r[0] for r in rows()}
    assert not set(AREAS) - sections
    steps = " ".join(r[1] for r in rows() if r[0] == "Troubleshooting")
    assert all(t in steps for t in TROUBLESHOOTING)


def _test_ids(cell: str) -> list[str]:
    return re.findall(r"`([^`]+::[^`]+)`", cell)


def _defined(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name for n in ast.walk(tree)
    )


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"{r[0]}: {r[1]}")
def test_row(row):
    section, step, command, implemented, test = row
    assert command.strip("` "), f"{step}: no command"
    files = re.findall(r"`([^`]+)`", implemented)
    assert files, f"{step}: nothing implements it"
    for f in files:
        assert (REPO / f).is_file(), f"{step}: {f} is missing"
    ids = _test_ids(test)
    assert ids, f"{step}: no test"
    for test_id in ids:
        path, _, name = test_id.partition("::")
        assert (REPO / path).is_file(), f"{step}: {path} is missing"
        assert _defined(REPO / path, name.split("[")[0]), f"{step}: no test {name} in {path}"


def _runbook_marks() -> list[tuple[str, str, str]]:
    """(test id, section, step) of every test marked @pytest.mark.runbook("<Section> | <Runbook step>")."""
    marks = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "runbook":
                    section, _, step = dec.args[0].value.partition(" | ")
                    marks.append((f"{path.relative_to(REPO)}::{node.name}", section, step))
    return marks


def test_runbook_marks_name_their_rows():
    """The row a runbook mark names exists (exact cell text) and lists that test."""
    table = {(r[0], r[1]): _test_ids(r[4]) for r in rows()}
    marks = _runbook_marks()
    assert marks
    for test_id, section, step in marks:
        assert (section, step) in table, f"{test_id}: no row '{section} | {step}' in {DOC.name}"
        assert test_id in table[(section, step)], f"row '{section} | {step}' does not name {test_id}"
