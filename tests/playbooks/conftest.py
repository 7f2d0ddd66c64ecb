"""Session fixture: ONE lab host for every playbook test (see pbhelpers.py)."""

from __future__ import annotations

import subprocess

import pytest
from pbhelpers import HOST, PY, REPO, run_playbook


@pytest.fixture(scope="session")
def lab_host():
    up = subprocess.run(
        [PY, "-m", "lab", "up", HOST, "--image", "postgres"], cwd=REPO, capture_output=True, text=True
    )
    if up.returncode != 0:
        pytest.fail(f"lab up {HOST} failed: {up.stdout}{up.stderr}")
    try:
        site = run_playbook("site")
        assert site.rc == 0, site.stdout[-4000:]
        yield HOST
    finally:
        subprocess.run([PY, "-m", "lab", "down", HOST, "--missing-ok"], cwd=REPO, capture_output=True)
