"""Converge time of several hosts vs one: `python -m bench converge`.

Fresh lab hosts, each set in a lab home of its own (so the lab inventory holds only that set), converged by
playbooks/site.yml with the lab inventory and Ansible's forks (ansible.cfg: 10):

* one host: `one1` (bot_hosts, single-host layout: PostgreSQL on it),
* four hosts: `db1` (db_hosts, the database host) with `bot1` (active), `bot2`, `bot3` (warm standbys).

The same release name for both; the four hosts go first, so if the release's wheelhouse is not cached yet
its build on the control node counts against them, not against the one host. Prints a Markdown table with
the wall times and the ratio four/one (goal <= 1.5); with --write the table replaces the block between the
markers in docs/PERFORMANCE.md. The hosts are removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- converge:begin -->", "<!-- converge:end -->"
IMAGES = Path(os.environ.get("LAB_HOME", REPO / ".lab")) / "images"
GOAL = 1.5
TIMEOUT_S = 3600
SETS = {
    "one": [("base", "bot_hosts", ["one1"])],
    "four": [("postgres", "db_hosts", ["db1"]), ("base", "bot_hosts", ["bot1", "bot2", "bot3"])],
}


def _env(name: str) -> dict[str, str]:
    home = REPO / ".cache" / f"lab-bench-{name}"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "images").is_symlink():
        (home / "images").symlink_to(IMAGES.resolve())
    return {**os.environ, "LAB_HOME": str(home), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1"}  # fmt: skip


def _run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("w") as out:
        rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT_S,
                            check=False).returncode  # fmt: skip
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"{' '.join(cmd)} exited {rc} (log {log}):\n{tail}")


def converge(name: str, version: str, logs: Path) -> float:
    """Boot the set, converge it; the converge's wall time in seconds. The hosts are removed afterwards."""
    env = _env(name)
    hosts = [h for _, _, names in SETS[name] for h in names]
    lab = [sys.executable, "-m", "lab"]
    down = [*lab, "down", "--missing-ok", *hosts]
    subprocess.run(down, cwd=REPO, env=env, capture_output=True, check=False)
    try:
        for image, group, names in SETS[name]:
            bridge = ["--bridge"] if len(hosts) > 1 else []
            up = [*lab, "up", *bridge, "--image", image, "--group", group, *names]
            _run(up, env, logs / f"{name}-up.log")
        playbook = str(Path(sys.executable).with_name("ansible-playbook"))
        start = time.monotonic()
        site = [playbook, "playbooks/site.yml", "-e", f"bot_version={version}"]
        _run(site, env, logs / f"{name}-converge.log")
        return time.monotonic() - start
    finally:
        subprocess.run(down, cwd=REPO, env=env, capture_output=True, check=False)


def table(one: float, four: float) -> str:
    ratio = four / one
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    return "\n".join([
        f"Measured {when} by `python -m bench converge` on this machine (2 cores, shared with other work),",
        "forks 10, fresh lab hosts (four first: a wheelhouse build, if any, counts against them):",
        "",
        "| hosts | layout | converge wall time |",
        "|---|---|---|",
        f"| 1 (`one1`) | single host: PostgreSQL on the bot host | {one:.0f} s |",
        f"| 4 (`db1`, `bot1`..`bot3`) | database host + active poller + 2 warm standbys | {four:.0f} s |",
        "",
        f"Ratio four/one: **{ratio:.2f}x** (goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'}).",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench converge", description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"put the table into {DOC.relative_to(REPO)}")
    p.add_argument("--logs", type=Path, default=REPO / ".cache" / "bench-converge")
    args = p.parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([sys.executable, str(REPO / "roles/bot/files/release_version.py"), str(REPO)],
                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    four = converge("four", version, args.logs)
    one = converge("one", version, args.logs)
    text = table(one, four)
    print(text)
    if args.write:
        doc = DOC.read_text()
        head, _, rest = doc.partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    return 0 if four / one <= GOAL else 1
