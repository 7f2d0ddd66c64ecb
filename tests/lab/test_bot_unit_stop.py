"""The bot under real systemd, with the unit's stop settings: `systemctl stop` during a 30 s handler and a
message burst ends within TimeoutStopSec (no SIGKILL), and every update the bot fetched is stored.

A lab host (postgres image) runs the sandbox and the bot as transient units (`systemd-run`), from this
checkout's bot package and this venv's site-packages copied into the host (same Python minor version).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest
from lab_helpers import REPO, down_quietly, lab, ssh, status

HOST = "s81"
HERE = Path(__file__).parent / "bot_unit_stop"
UNIT = REPO / "roles" / "bot" / "templates" / "psychochauffeur-bot.service.j2"
NOT_COPIED = ("ansible", "ansible_collections", "molecule", "__editable__", "_pytest", "hypothesis")


def timeout_stop_sec() -> int:
    return int(re.search(r"^TimeoutStopSec=(\d+)$", UNIT.read_text(), re.MULTILINE).group(1))


@pytest.fixture(scope="module")
def host():
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the venv is copied into a Debian 12 host: Python 3.11 only")
    try:
        lab("up", HOST, "--image", "postgres")
        state = status(HOST)[HOST]
        root = Path(state["root"]) / "opt" / "pc"
        shutil.copytree(REPO / "bot", root / "src" / "bot", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(sysconfig.get_paths()["purelib"], root / "sp",
                        ignore=lambda _d, names: [n for n in names if n.startswith(NOT_COPIED)
                                                  or n == "__pycache__"])
        for name in ("drive.py", "stop-test.sh"):
            shutil.copy2(HERE / name, root / name)
        yield state
    finally:
        down_quietly(HOST)


def test_systemctl_stop_flushes_and_ends_within_timeout_stop_sec(host) -> None:
    limit = timeout_stop_sec()
    out = ssh(host, f"/opt/pc/stop-test.sh {limit}").stdout
    seconds = float(re.search(r"^stop_seconds=([\d.]+)$", out, re.MULTILINE).group(1))
    counts = json.loads(out.strip().splitlines()[-1])
    assert "timed out" not in out and "SIGKILL" not in out, out
    assert seconds < limit, out
    assert counts["fetched"] > 0 and counts["fetched_not_stored"] == 0, counts
