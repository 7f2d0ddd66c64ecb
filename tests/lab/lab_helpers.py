"""Helpers for the lab tool's tests: run `python -m lab`, read status, ssh into hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the lab package lives at the repo root, outside the installed distribution


def lab(*args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run `python -m lab ARGS` from the repo root."""
    proc = subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"lab {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def status(*names: str) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(lab("status", "--json", *names).stdout)}


def ssh(state: dict, command: str, user: str = "root", check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [
            "ssh",
            "-i",
            state["identity_file"],
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            f"{user}@{state['address']}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"ssh {user}@{state['name']} {command!r} failed ({proc.returncode}): {proc.stderr}"
        )
    return proc


def down_quietly(*names: str) -> None:
    lab("down", "--missing-ok", *names, check=False)
