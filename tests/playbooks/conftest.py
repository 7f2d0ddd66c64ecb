"""Session fixture: ONE lab host for every playbook test (see pbhelpers.py).

PLAYBOOKS_KEEP_HOST=1 reuses a running host and leaves it up afterwards (for iterating on one test; site.yml
still converges it first). Without it the host is booted fresh and removed at the end.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from pbhelpers import HOST, PY, REPO, run_playbook

KEEP = os.environ.get("PLAYBOOKS_KEEP_HOST") == "1"


@pytest.fixture(scope="session")
def lab_host():
    up = subprocess.run(
        [PY, "-m", "lab", "up", HOST, "--image", "postgres", *(["--reuse"] if KEEP else [])],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if up.returncode != 0:
        pytest.fail(f"lab up {HOST} failed: {up.stdout}{up.stderr}")
    try:
        site = run_playbook("site")
        assert site.rc == 0, site.stdout[-4000:]
        yield HOST
    finally:
        if not KEEP:
            subprocess.run([PY, "-m", "lab", "down", HOST, "--missing-ok"], cwd=REPO, capture_output=True)
