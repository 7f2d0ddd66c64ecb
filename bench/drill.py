"""Operations drill: `python -m bench drill` (make drill). Do update, rollback and a crash lose chat messages?

One lab host (postgres image), converged with site.yml. On the host a pusher sends chat messages with
unique texts to the sandbox (fake Telegram) at a steady rate for the whole drill. N cycles of:

1. update.yml to a new release,
2. update.yml to a broken release (its run() exits at start, it brings a schema migration): the playbook
   must roll back automatically,
3. rollback.yml (back to the release before the live one),
4. kill -9 of the bot (systemd restarts it).

At the end every message the sandbox accepted must be stored exactly once in PostgreSQL: lost and duplicated
are counted. Per step: downtime = the longest gap between two getUpdates that confirmed updates (the last
update the old poller handled -> the first the new one handled; the sandbox records them, on the host's
clock), the step's wall time and its exit code. The sandbox must stay up through all of it (same PID, its
update ids never go back). Release trees and wheelhouses are built once and reused. Figures go to
docs/PERFORMANCE.md between drill markers; every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- drill:begin -->", "<!-- drill:end -->"
SANDBOX = "http://127.0.0.1:8081"
CHAT_ID = -1_008_100_000
STEP_TIMEOUT = 900.0
RESUME_TIMEOUT = 120.0
DRAIN_TIMEOUT = 180.0
KINDS = ("update", "broken update", "rollback", "kill -9")
GOAL_DEPLOY_DOWNTIME = 5.0
GOAL_FAILED_TO_PREVIOUS = 30.0

#: Runs on the host with the system python3 (no venv): pushes one message every 1/rate s until the stop file
#: appears or max_s passes; prints "ok <seq> <update_id>" or "err <seq> <reason>" per push.
PUSHER = r"""
import json, os, sys, time, urllib.request
url, run, stop = sys.argv[1], sys.argv[4], sys.argv[6]
rate, max_s, chat = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[5])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
start = time.monotonic()
seq = 0
while time.monotonic() - start < max_s and not os.path.exists(stop):
    seq += 1
    spec = {"text": f"drill {run} {seq}", "chat_id": chat, "user_id": 4242, "title": "drill"}
    body = json.dumps(spec).encode()
    req = urllib.request.Request(url + "/control/updates", body, {"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=5) as response:
            print("ok", seq, json.load(response)["update_id"], time.time(), flush=True)
    except Exception as exc:
        print("err", seq, type(exc).__name__, str(exc)[:100].replace("\n", " "), flush=True)
    time.sleep(max(0.0, start + seq / rate - time.monotonic()))
print("done", seq, flush=True)
"""

#: Runs on the host: GET one control-API path of the sandbox, print the JSON.
GET = r"""
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open(sys.argv[1], timeout=10).read().decode())
"""


def log(message: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Step:
    kind: str
    cycle: int
    rc: int
    seconds: float
    downtime: float | None
    note: str = ""
    start: float = 0.0
    end: float = 0.0
    lost: int = 0


@dataclass
class Drill:
    host: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    steps: list[Step] = field(default_factory=list)

    def ssh(self, command: str, timeout: float = 300, check: bool = True) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "lab", "ssh", self.host, command],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{command[:200]!r} on {self.host} failed ({proc.returncode}): {proc.stderr[-2000:]}"
            )
        return proc.stdout

    def sandbox(self, path: str) -> object:
        return json.loads(self.ssh(f"python3 -c {shlex.quote(GET)} {shlex.quote(SANDBOX + path)}"))

    def psql(self, sql: str) -> str:
        return self.ssh(
            f"runuser -u postgres -- psql -X -At -F ' ' -d psychochauffeur_bot -c {shlex.quote(sql)}"
        ).strip()

    def playbook(self, name: str, extra: dict[str, str]) -> tuple[int, str]:
        argv = [str(REPO / ".venv/bin/ansible-playbook"), "-i", "inventories/lab", f"playbooks/{name}.yml"]
        argv += ["-l", self.host]
        for key, value in extra.items():
            argv += ["-e", f"{key}={value}"]
        try:
            proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            return 124, str(exc.stdout or "")[-3000:]
        return proc.returncode, proc.stdout

    def current(self) -> str:
        return self.ssh("readlink /opt/psychochauffeur-bot/current").strip().rsplit("/", 1)[-1]

    def sandbox_pid(self) -> str:
        return self.ssh("systemctl show -P MainPID psychochauffeur-sandbox").strip()

    def downtime(self, since: float, until: float) -> float | None:
        """Longest gap between confirmations from `since` on; waits (bounded) for one after `until`."""
        deadline = time.monotonic() + RESUME_TIMEOUT
        while True:
            stamps = [t for t, _ in self.sandbox(f"/control/confirmations?since={since - 2:.3f}")]
            if stamps and stamps[-1] > until:
                break
            if time.monotonic() > deadline:
                return None  # the bot did not handle anything again: reported as such
            time.sleep(0.5)
        return longest_gap(stamps, since, until)

    def step(self, kind: str, cycle: int, action) -> Step:
        start = time.time()
        rc, note = action()
        end = time.time()
        result = Step(kind, cycle, rc, end - start, self.downtime(start, end), note, start, end)
        self.steps.append(result)
        log(
            f"cycle {cycle} {kind}: rc {rc}, {result.seconds:.1f} s, downtime "
            f"{'none' if result.downtime is None else f'{result.downtime:.2f} s'} {note}"
        )
        return result


def longest_gap(stamps: list[float], since: float, until: float) -> float:
    """Longest gap between confirmations (and the step's start) up to the first one after `until`."""
    points = sorted([since, *stamps])
    end = next(i for i, t in enumerate(points) if t > until)
    return max(b - a for a, b in zip(points[:end], points[1 : end + 1], strict=True))


def source_tree(root: Path, name: str, break_it: bool = False, marker: str = "drill") -> Path:
    """A copy of the bot source (a release); break_it: run() exits 3 at start and a migration is added that
    creates the table <marker>_broken_marker. The playbook tests build their releases with it too."""
    src = root / name
    for item in ("bot", "pyproject.toml", "README.md", "constraints.txt"):
        (shutil.copytree if (REPO / item).is_dir() else shutil.copy)(REPO / item, src / item)
    if break_it:
        (src / f"bot/migrations/900_{marker}_broken_release.sql").write_text(
            f"CREATE TABLE {marker}_broken_marker (id int);\n"
        )
        app = src / "bot/app.py"
        app.write_text(
            app.read_text() + "\n\ndef run(env):  # deliberately broken release\n    raise SystemExit(3)\n"
        )
    return src


def reuse_wheelhouse(tree: Path, version: str) -> None:
    """The tree's wheelhouse (built once, by its first update) under the new version name: hard links."""
    cache = tree / ".cache" / "wheelhouse"
    built = sorted(p for p in cache.glob("*") if (p / "wheelhouse.tar").exists()) if cache.exists() else []
    if built and not (cache / version).exists():
        shutil.copytree(built[0], cache / version, copy_function=os.link)


def cycle(drill: Drill, number: int, trees: dict[str, Path]) -> None:
    tag = f"{drill.run}-{number}"

    def update(tree: str, version: str):
        def action() -> tuple[int, str]:
            reuse_wheelhouse(trees[tree], version)
            before = drill.current()
            rc, out = drill.playbook("update", {"bot_version": version, "bot_source_dir": str(trees[tree])})
            after = drill.current()
            active = drill.ssh("systemctl is-active psychochauffeur-bot", check=False).strip()
            tail = " ".join(out.split()[-12:]) if rc else ""
            return rc, f"({before} -> {after}, bot {active}) {tail}"

        return action

    def rollback() -> tuple[int, str]:
        before = drill.current()
        rc, out = drill.playbook("rollback", {})
        return rc, f"({before} -> {drill.current()})" + (" " + " ".join(out.split()[-12:]) if rc else "")

    def kill() -> tuple[int, str]:
        pid = drill.ssh("systemctl show -P MainPID psychochauffeur-bot").strip()
        drill.ssh("systemctl kill --signal=KILL psychochauffeur-bot")
        deadline = time.monotonic() + RESUME_TIMEOUT
        while time.monotonic() < deadline:
            state = drill.ssh("systemctl is-active psychochauffeur-bot", check=False).strip()
            new = drill.ssh("systemctl show -P MainPID psychochauffeur-bot").strip()
            if state == "active" and new not in ("0", pid):
                return 0, f"(pid {pid} -> {new})"
            time.sleep(0.5)
        return 1, f"(pid {pid}: not running again after {RESUME_TIMEOUT:.0f} s)"

    drill.step("update", number, update("good", f"drill-{tag}-good"))
    drill.step("broken update", number, update("broken", f"drill-{tag}-broken"))
    drill.step("rollback", number, rollback)
    drill.step("kill -9", number, kill)


def count_messages(drill: Drill, accepted: dict[int, float]) -> tuple[dict[str, int], list[int]]:
    """Wait (bounded) until the sandbox queue is empty and the row count settles; compare."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    last, stable = -1, 0
    while time.monotonic() < deadline:
        pending = drill.sandbox("/control/health")["pending_updates"]
        rows = int(drill.psql(f"SELECT count(*) FROM messages WHERE chat_id = {CHAT_ID}"))
        stable = stable + 1 if rows == last and pending == 0 else 0
        if stable >= 3:
            break
        last = rows
        time.sleep(1)
    stored: dict[int, int] = {}
    prefix = f"drill {drill.run} "
    for line in drill.psql(
        f"SELECT text, count(*) FROM messages WHERE chat_id = {CHAT_ID} GROUP BY text"
    ).splitlines():
        text, _, count = line.rpartition(" ")
        if text.startswith(prefix):
            stored[int(text[len(prefix) :])] = int(count)
    lost = sorted(seq for seq in accepted if seq not in stored)
    counts = {
        "accepted": len(accepted),
        "stored": sum(1 for seq in accepted if seq in stored),
        "lost": len(lost),
        "duplicated": sum(count - 1 for count in stored.values()),
        "stored_not_accepted": sum(1 for seq in stored if seq not in accepted),
    }
    return counts, lost


def blame(steps: list[Step], lost_at: list[float]) -> int:
    """Count each lost message against the step running when it was pushed (a gap goes to the step before);
    returns those pushed before the first step."""
    before = 0
    for ts in lost_at:
        owner = None
        for step in steps:
            if step.start <= ts:
                owner = step
        if owner is None:
            before += 1
        else:
            owner.lost += 1
    return before


def ranges(numbers: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


def summarize(steps: list[Step]) -> list[dict[str, object]]:
    rows = []
    for kind in KINDS:
        mine = [s for s in steps if s.kind == kind]
        downs = [s.downtime for s in mine if s.downtime is not None]
        rows.append(
            {
                "kind": kind,
                "n": len(mine),
                "rc": ",".join(str(s.rc) for s in mine),
                "downtime_median": statistics.median(downs) if downs else None,
                "downtime_max": max(downs) if downs else None,
                "no_resume": len(mine) - len(downs),
                "lost": sum(s.lost for s in mine),
                "seconds_median": statistics.median(s.seconds for s in mine) if mine else None,
            }
        )
    return rows


def fmt(value: object, unit: str = " s") -> str:
    return "–" if value is None else f"{value:.1f}{unit}" if isinstance(value, float) else str(value)


def render(result: dict) -> str:
    counts = result["messages"]
    sandbox = "same process throughout" if result["sandbox_survived"] else "RESTARTED"
    lines = [
        BEGIN,
        "## Drill: update, broken update, rollback and kill -9 with chat traffic (lab host)",
        "",
        f"Produced by `python -m bench drill --cycles {result['cycles']}` (`make drill` runs 20). "
        "Downtime: the longest gap between two getUpdates that confirmed updates during the step "
        "(last update handled by the old poller -> first handled by the new one, on the sandbox's clock); "
        "for the broken update that is "
        "the old release stopping -> the previous release handling again, an upper bound of failed health -> "
        "previous release answering. Per-step figures: `.cache/drill/<run>.json`.",
        "",
        f"Last run: {result['date']}, host `{result['host']}`, {result['cycles']} cycle(s), "
        f"{result['rate']:g} messages/s, {result['seconds']:.0f} s in all, commit {result['commit']}.",
        "",
        "| step | n | exit codes | downtime median | downtime max | bot not back | wall time (median) "
        "| lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["kinds"]:
        lines.append(
            f"| {row['kind']} | {row['n']} | {row['rc']} | {fmt(row['downtime_median'])} | "
            f"{fmt(row['downtime_max'])} | {row['no_resume']} | {fmt(row['seconds_median'])} "
            f"| {row['lost']} |"
        )
    lines += [
        "",
        f"Messages: {counts['accepted']} accepted by the sandbox, {counts['stored']} stored, "
        f"**{counts['lost']} lost** (goal 0), **{counts['duplicated']} duplicated** (goal 0), "
        f"{counts['stored_not_accepted']} stored whose push was not answered, "
        f"{result['push_errors']} pushes refused or unanswered; lost messages are counted against the step "
        f"running when they were pushed (lost before the first step: {counts['lost_before_first_step']}). "
        f"Sandbox: {sandbox} "
        f"(update ids {result['sandbox_ids'][0]} -> {result['sandbox_ids'][1]}).",
        "",
        "site.yml before the cycles: skipped (--skip-site)."
        if result["site_converge_s"] is None
        else f"site.yml converge before the cycles: {result['site_converge_s']:.0f} s "
        f"(changed={result['site_changed']}; 0 would be a no-op converge).",
        "",
        f"Goals: deploy downtime <= {GOAL_DEPLOY_DOWNTIME:g} s, failed release -> previous live <= "
        f"{GOAL_FAILED_TO_PREVIOUS:g} s, 0 lost, 0 duplicated.",
        END,
    ]
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench drill", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cycles", type=int, default=20, help="cycles of the four steps (default: %(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="chat messages per second (default: %(default)s)"
    )
    parser.add_argument("--host", default="d81", help="lab host name (default: %(default)s)")
    parser.add_argument("--keep-host", action="store_true", help="reuse a running host and leave it up")
    parser.add_argument(
        "--skip-site", action="store_true", help="with --keep-host: the host is converged, skip site.yml"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    if not 1 <= args.cycles <= 1000:
        parser.error("--cycles must be between 1 and 1000")
    if not 0.5 <= args.rate <= 200:
        parser.error("--rate must be between 0.5 and 200 messages per second")
    os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    drill = Drill(args.host)
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab",
            "up",
            args.host,
            "--image",
            "postgres",
            *(["--reuse"] if args.keep_host else []),
        ],
        cwd=REPO,
        text=True,
        capture_output=True,
    )
    if up.returncode != 0:
        print(f"lab up {args.host} failed:\n{up.stdout}{up.stderr}", file=sys.stderr)
        return 1
    pusher = None
    try:
        with tempfile.TemporaryDirectory(prefix="drill-") as tmp:
            trees = {"good": source_tree(Path(tmp), "good"), "broken": source_tree(Path(tmp), "broken", True)}
            log(f"converging {args.host} with site.yml{' (skipped)' if args.skip_site else ''}")
            converge_start = time.monotonic()
            rc, out = (0, "skipped") if args.skip_site and args.keep_host else drill.playbook("site", {})
            converge_s = time.monotonic() - converge_start
            if rc != 0:
                raise RuntimeError(f"site.yml failed ({rc}):\n{out[-3000:]}")
            sandbox_pid, first_id = drill.sandbox_pid(), drill.sandbox("/control/health")["last_update_id"]
            stop = f"/run/drill-{drill.run}.stop"
            max_s = args.cycles * 1200 + 600
            log(f"run {drill.run}: pushing {args.rate:g} messages/s to chat {CHAT_ID}")
            pusher = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lab",
                    "ssh",
                    args.host,
                    f"python3 -c {shlex.quote(PUSHER)} {SANDBOX} "
                    f"{args.rate} {max_s} {drill.run} {CHAT_ID} {stop}",
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
            )
            lines: list[str] = []  # drained all along: a full pipe would stall the pusher
            reader = threading.Thread(target=lambda: lines.extend(pusher.stdout), daemon=True)
            reader.start()
            started = time.time()
            time.sleep(3)  # a few seconds of steady traffic before the first step
            for number in range(1, args.cycles + 1):
                cycle(drill, number, trees)
            time.sleep(3)
            drill.ssh(f"touch {stop}")
            pusher.wait(60)
            reader.join(30)
            accepted = {int(p[1]): float(p[3]) for p in (ln.split() for ln in lines) if p and p[0] == "ok"}
            errors = sum(1 for ln in lines if ln.startswith("err"))
            counts, lost = count_messages(drill, accepted)
            counts["lost_before_first_step"] = blame(drill.steps, [accepted[seq] for seq in lost])
            last_id = drill.sandbox("/control/health")["last_update_id"]
            result = {
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "host": args.host,
                "cycles": args.cycles,
                "rate": args.rate,
                "seconds": time.time() - started,
                "commit": subprocess.run(
                    ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
                ).stdout.strip(),
                "kinds": summarize(drill.steps),
                "steps": [s.__dict__ for s in drill.steps],
                "messages": counts,
                "lost_ranges": ranges(lost),
                "push_errors": errors,
                "sandbox_survived": drill.sandbox_pid() == sandbox_pid and last_id >= first_id,
                "sandbox_ids": [first_id, last_id],
                "site_converge_s": None if out == "skipped" else converge_s,
                "site_changed": out.rsplit("changed=", 1)[-1].split()[0] if "changed=" in out else "?",
            }
        out_dir = REPO / ".cache" / "drill"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{drill.run}.json").write_text(json.dumps(result, indent=2))
        block = render(result)
        print(block)
        if not args.no_doc:
            write_doc(block)
        ok = counts["lost"] == 0 and counts["duplicated"] == 0 and result["sandbox_survived"]
        return 0 if ok else 2
    finally:
        if pusher is not None and pusher.poll() is None:
            subprocess.run(
                [sys.executable, "-m", "lab", "ssh", args.host, f"touch /run/drill-{drill.run}.stop"],
                cwd=REPO,
                capture_output=True,
                timeout=60,
            )
            pusher.kill()
            pusher.wait(10)
        if not args.keep_host:
            subprocess.run([sys.executable, "-m", "lab", "down", args.host, "--missing-ok"], cwd=REPO)
