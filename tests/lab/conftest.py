"""Real lab hosts for the lab tool's tests: booted once per session, always removed (even on failure)."""

from __future__ import annotations

import pytest
from lab_helpers import down_quietly, lab, status

SESSION_HOSTS = ["lab1", "lab2"]


@pytest.fixture(scope="session")
def hosts():
    """Two running base hosts, lab1 and lab2, as `lab status --json` entries."""
    try:
        lab("up", *SESSION_HOSTS)
        yield status(*SESSION_HOSTS)
    finally:
        down_quietly(*SESSION_HOSTS)


@pytest.fixture
def lab1(hosts):
    return hosts["lab1"]
