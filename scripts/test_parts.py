#!/usr/bin/env python3
"""Run the test suite's parts side by side: one log per part, progress lines, a summary table with times.

    scripts/test_parts.py                 # every part (what `make test` runs after deps and venv)
    scripts/test_parts.py bot lab         # only these parts (or groups: roles, playbooks)
    scripts/test_parts.py --list          # the parts, their commands and what they wait for

Parts that need no lab host (lint, bot) start at once; the lab image is built meanwhile, then the lab parts
(molecule scenarios, infra, the two playbook hosts) run at most --lab-slots at a time, longest first. Most of
their time is spent waiting on hosts (apt, pip, systemd), so a 2-core machine runs several at once.
Logs: .cache/test-logs/<part>.log; the summary is also written to .cache/test-logs/summary.md.
Ctrl-C interrupts every part (SIGINT to its process group, so pytest and molecule tear their lab hosts down).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
LOGS = REPO / ".cache" / "test-logs"
# The playbook tests on four lab hosts, one session each, side by side; files not named here run on pb1.
# Each session pays one site.yml converge, so a file moves to a host of its own only when it is long.
PLAYBOOK_HOSTS = {
    "b": ("pb2", ["test_60_update.py"]),  # update/rollback: most release builds
    "c": (
        "pb3",
        [
            "test_65_sandbox.py",
            "test_70_restore.py",
            "test_75_pitr.py",  # point-in-time restore: destructive, next to restore
            "test_90_incident.py",
            "test_95_site.py",
        ],
    ),
    "d": (
        "pb4",
        [
            "test_30_state.py",  # harden, db-maintenance, config changes
            "test_62_update_notice.py",  # three updates: before test_85 makes the host's health critical
            "test_85_alerts.py",
            "test_86_job_alerts.py",  # uses test_85's webhook receiver
        ],
    ),
}


@dataclass
class Part:
    name: str
    cmd: list[str]
    lab: bool = False  # needs the lab image and takes a lab slot
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)  # lab hosts to remove when the part ends (molecule)
    rank: int = 0  # higher starts first (rough length)
    state: str = "waiting"
    took: float = 0.0
    rc: int | None = None
    cpu: float = 0.0  # CPU seconds of the part's own processes on this machine (not its lab hosts')

    @property
    def log(self) -> Path:
        return LOGS / f"{self.name.replace(':', '-')}.log"


def _role_hosts(role: str) -> list[str]:
    data = yaml.safe_load((REPO / "roles" / role / "molecule/default/molecule.yml").read_text()) or {}
    return [p["name"] for p in data.get("platforms") or []]


def parts() -> list[Part]:
    pytest = [str(BIN / "pytest"), "--durations=12"]  # each part's log ends with its slowest tests
    tests = REPO / "tests" / "playbooks"
    elsewhere = {f for _, files in PLAYBOOK_HOSTS.values() for f in files}
    files_a = sorted(p.name for p in tests.glob("test_*.py") if p.name not in elsewhere)
    result = [
        Part("lint", ["bash", "-c", f"{BIN}/ruff check . && {BIN}/ansible-lint"], rank=1),
        Part(
            "bot",
            [*pytest, "tests/bot", "tests/bench", "tests/scripts", *map(str, REPO.glob("tests/test_*.py"))],
            rank=9,
        ),
        Part("lab", [*pytest, "tests/lab"], lab=True, rank=3),
        Part("infra", [*pytest, "tests/infra", "--ignore=tests/infra/test_multihost.py"], lab=True, rank=6),
        # db1 + bot1 + bot2 in a lab home of their own (.cache/lab-multihost): one slot, three hosts
        Part("infra:multihost", [*pytest, "tests/infra/test_multihost.py"], lab=True, rank=7),
    ]
    for group, (host, files) in [("a", ("pb1", files_a)), *PLAYBOOK_HOSTS.items()]:
        result.append(
            Part(
                f"playbooks:{group}",
                [*pytest, *(f"tests/playbooks/{f}" for f in files if (tests / f).exists())],
                lab=True,
                env={"PLAYBOOKS_LAB_HOST": host},
                rank={"a": 8, "b": 10, "c": 7, "d": 7}[group],
            )
        )
    for scenario in sorted(REPO.glob("roles/*/molecule/default/molecule.yml")):
        role = scenario.parents[2].name
        result.append(
            Part(
                f"roles:{role}",
                [str(BIN / "molecule"), "test"],
                lab=True,
                cwd=REPO / "roles" / role,
                # molecule's scenario state lives under ~/.cache by default: per checkout instead
                env={"MOLECULE_EPHEMERAL_DIRECTORY": str(REPO / ".cache" / "molecule" / role)},
                hosts=_role_hosts(role),
                rank=5 if role in ("bot", "backup", "monitoring") else 4,
            )
        )
    return result


def select(all_parts: list[Part], wanted: list[str]) -> list[Part]:
    if not wanted:
        return all_parts
    chosen = []
    for w in wanted:
        match = [p for p in all_parts if p.name == w or p.name.split(":")[0] == w]
        if not match:
            names = ", ".join(p.name for p in all_parts)
            sys.exit(f"test_parts: no part or group '{w}'; parts: {names}")
        chosen += [p for p in match if p not in chosen]
    return chosen


def cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat (all cores)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


class CpuMeter:
    """Machine-wide CPU use during the run, sampled every 30 s: tells a CPU-bound run (every core busy, so
    more parts side by side cannot help) from one that waits on hosts."""

    def __init__(self) -> None:
        self.start = self.last = cpu_times()
        self.samples: list[float] = []
        self.stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self.stop.wait(30):
            now = cpu_times()
            if now[1] > self.last[1]:
                self.samples.append((now[0] - self.last[0]) / (now[1] - self.last[1]))
            self.last = now

    def rows(self) -> list[str]:
        self.stop.set()
        busy, total = (b - a for a, b in zip(self.start, cpu_times(), strict=True))
        cores = os.cpu_count() or 1
        saturated = sum(s >= 0.95 for s in self.samples)
        share = busy / max(total, 1)
        return [
            f"| machine CPU busy (lab hosts too; {cores} cores) | | | {busy:.0f} ({share:.0%}) |",
            f"| 30-s samples with every core ≥ 95 % busy | | {saturated} of {len(self.samples)} | |",
            f"| wall clock if CPU were the only limit (busy / cores) | | {busy / cores:.0f} | |",
        ]


class Runner:
    def __init__(self, todo: list[Part], lab_slots: int, tail: int) -> None:
        self.todo = sorted(todo, key=lambda p: -p.rank)
        self.stream = len(todo) == 1  # one part: its output goes to the terminal too
        self.free_slots = lab_slots
        self.slot_freed = threading.Condition()
        self.queue = [p for p in self.todo if p.lab]  # lab parts waiting for a slot, longest first
        self.tail = tail
        self.t0 = time.monotonic()
        self.cpu = CpuMeter()
        self.lock = threading.Lock()
        self.procs: dict[str, subprocess.Popen] = {}
        self.image_ready = threading.Event()
        self.image_failed = False
        self.interrupted = False

    def say(self, msg: str) -> None:
        elapsed = int(time.monotonic() - self.t0)
        with self.lock:
            print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {msg}", flush=True)

    def _exec(self, part: Part) -> int:
        env = {**os.environ, **part.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
        env["PY_COLORS"] = "0"
        with part.log.open("w") as log:
            proc = subprocess.Popen(
                part.cmd, cwd=part.cwd, env=env, stdout=subprocess.PIPE if self.stream else log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            with self.lock:
                self.procs[part.name] = proc
            if self.stream:
                for chunk in iter(lambda: proc.stdout.readline(), b""):
                    log.write(chunk.decode(errors="replace"))
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
            # wait4: the exit status and the CPU time of the part and the descendants it waited for
            # (pytest, ansible-playbook and its forks, ssh); lab hosts run outside that tree
            _, status, usage = os.wait4(proc.pid, 0)
            rc = proc.returncode = os.waitstatus_to_exitcode(status)
            part.cpu = usage.ru_utime + usage.ru_stime
            with self.lock:
                self.procs.pop(part.name, None)
        return rc

    def run_part(self, part: Part) -> None:
        if part.lab:
            self.image_ready.wait()
            if self.image_failed:
                with self.slot_freed:
                    self.queue.remove(part)
                    self.slot_freed.notify_all()
                part.state, part.rc = "skipped", None
                self.say(f"{part.name}: skipped (the lab image failed)")
                return
            with self.slot_freed:  # the longest waiting part gets the next free slot
                self.slot_freed.wait_for(lambda: self.free_slots > 0 and self.queue[0] is part)
                self.queue.pop(0)
                self.free_slots -= 1
                self.slot_freed.notify_all()
        try:
            if self.interrupted:
                part.state = "skipped"
                return
            part.state = "running"
            self.say(f"{part.name}: started (log {part.log.relative_to(REPO)})")
            start = time.monotonic()
            part.rc = self._exec(part)
            if part.hosts:  # molecule destroys its hosts itself; this catches an interrupted scenario
                subprocess.run(
                    [str(BIN / "python"), "-m", "lab", "down", "--missing-ok", *part.hosts],
                    cwd=REPO, capture_output=True, check=False,
                )  # fmt: skip
            part.took = time.monotonic() - start
            part.state = "ok" if part.rc == 0 else "FAILED"
            self.say(f"{part.name}: {part.state} in {part.took:.0f} s")
            if part.rc != 0 and not self.stream:
                lines = part.log.read_text(errors="replace").splitlines()[-self.tail :]
                with self.lock:
                    print(f"---- last {len(lines)} lines of {part.log.relative_to(REPO)}", flush=True)
                    print("\n".join(lines), flush=True)
                    print("----", flush=True)
        finally:
            if part.lab:
                with self.slot_freed:
                    self.free_slots += 1
                    self.slot_freed.notify_all()

    def build_image(self) -> None:
        py = BIN / "python"
        image = Part("image", ["bash", "-c", f"{py} -m lab image && {py} -m lab image --variant postgres"])
        self.say("image: started (log .cache/test-logs/image.log)")
        start = time.monotonic()
        rc = self._exec(image)
        self.image_failed = rc != 0
        took = time.monotonic() - start
        self.say(f"image: {'ok' if rc == 0 else 'FAILED'} in {took:.0f} s ({image.cpu:.0f} CPU s here)")
        if rc != 0:
            print(image.log.read_text(errors="replace")[-4000:], flush=True)
        self.image_ready.set()

    def interrupt(self) -> None:
        self.interrupted = True
        with self.lock:
            procs = list(self.procs.values())
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def run(self) -> bool:
        threads = []
        if any(p.lab for p in self.todo):
            threads.append(threading.Thread(target=self.build_image, daemon=True))
        else:
            self.image_ready.set()
        threads += [threading.Thread(target=self.run_part, args=(p,), daemon=True) for p in self.todo]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=1)
        except KeyboardInterrupt:
            self.say("interrupted: stopping every part (they remove their lab hosts)")
            self.interrupt()
            for t in threads:
                t.join(timeout=300)
        return all(p.state == "ok" for p in self.todo) and not self.interrupted

    def summary(self) -> str:
        wall = time.monotonic() - self.t0
        rows = ["| part | result | seconds | CPU s here |", "| --- | --- | ---: | ---: |"]
        for p in sorted(self.todo, key=lambda p: -p.took):
            rows.append(f"| {p.name} | {p.state} | {p.took:.0f} | {p.cpu:.0f} |")
        busy = sum(p.took for p in self.todo)
        rows.append(f"| **wall clock** | | **{wall:.0f}** | |")
        rows.append(f"| sum of parts | | {busy:.0f} | {sum(p.cpu for p in self.todo):.0f} |")
        rows += self.cpu.rows()
        return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="*", help="part names or groups (default: all)")
    ap.add_argument("--lab-slots", type=int, default=int(os.environ.get("TEST_LAB_SLOTS", "6")),
                    help="lab parts running at once (default 6, env TEST_LAB_SLOTS)")  # fmt: skip
    ap.add_argument("--tail", type=int, default=60, help="log lines printed for a failed part")
    ap.add_argument("--list", action="store_true", help="list the parts and exit")
    args = ap.parse_args()
    chosen = select(parts(), args.parts)
    if args.list:
        for p in chosen:
            where = f" (in {p.cwd.relative_to(REPO)})" if p.cwd != REPO else ""
            print(f"{p.name:18} {'lab ' if p.lab else '    '}{' '.join(p.cmd)}{where}")
        return 0
    if args.lab_slots < 1:
        ap.error("--lab-slots must be at least 1")
    LOGS.mkdir(parents=True, exist_ok=True)
    # SIGINT (Ctrl-C) and SIGTERM (a CI timeout) stop every part cleanly. Set here, not inherited: a shell
    # starts background jobs with SIGINT ignored, and an ignored SIGINT would be ignored by the parts too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    runner = Runner(chosen, args.lab_slots, args.tail)
    ok = runner.run()
    table = runner.summary()
    (LOGS / "summary.md").write_text(table + "\n")
    print("\n" + table, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
