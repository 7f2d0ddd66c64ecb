"""docs/SECURITY.md: every threat row names a defence and at least one test, and each test id exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_runbook_coverage import _defined

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "SECURITY.md"


def rows() -> list[list[str]]:
    lines = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and "---" not in line and not line.startswith("| threat")
    ]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def test_table_parses():
    assert len(rows()) >= 16
    assert all(len(r) == 3 for r in rows()), [r for r in rows() if len(r) != 3]


@pytest.mark.parametrize("row", rows(), ids=lambda r: r[0][:60])
def test_row(row):
    threat, defence, tests = row
    assert defence, f"{threat}: no defence"
    ids = re.findall(r"`([^`]+::[^`]+)`", tests)
    assert ids, f"{threat}: no test"
    for test_id in ids:
        path, name = test_id.split("::")[0], test_id.split("::")[-1].split("[")[0]
        assert (REPO / path).is_file(), f"{test_id}: no such file"
        assert _defined(REPO / path, name), f"{test_id}: no such test"
