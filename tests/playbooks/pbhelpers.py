"""Helpers of the runbook playbook tests (conftest.py holds the fixtures).

ONE lab host per session (PLAYBOOKS_LAB_HOST, default pb1; postgres image) is booted and converged with
site.yml once; every test of the session shares it. `make test` runs four sessions side by side
(scripts/test_parts.py PLAYBOOK_HOSTS: pb1 reports, pb2 update/rollback, pb3 sandbox/restore/incident/site,
pb4 state changes, update notices and alerts). Within a session files run in name order: report-only
procedures first, destructive ones last.
Every playbook runs through ansible-runner (the engine AWX and cron use); runs are recorded so
test_80_awx_runs.py can prove each AWX job template's playbook ran.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.drill import source_tree as bench_source_tree

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
HOST = os.environ.get("PLAYBOOKS_LAB_HOST", "pb1")
RUNNER_DIR = REPO / ".cache" / f"runner-tests-{HOST}"  # one per lab host: sessions may run side by side
RUNS: dict[str, list[int]] = {}  # playbook name -> exit codes of its ansible-runner runs this session


@dataclass
class Run:
    playbook: str
    rc: int
    status: str
    stdout: str
    changed_tasks: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)  # set_stats data (what AWX stores as the job's artifacts)

    @property
    def text(self) -> str:
        """stdout without colours, whitespace collapsed (the yaml callback wraps long messages)."""
        return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", self.stdout).split())

    @property
    def changed(self) -> int:
        return sum((self.stats.get("changed") or {}).values())


def run_playbook(
    name: str,
    extravars: dict | None = None,
    limit: str = HOST,
    check: bool = False,
    cmdline: str = "",
    extra_inventories: list[str] | None = None,
) -> Run:
    """playbooks/<name>.yml through ansible-runner against the lab inventory (plus extra_inventories)."""
    import ansible_runner

    RUNNER_DIR.mkdir(parents=True, exist_ok=True)
    # ansible-runner keeps extravars and cmdline in <dir>/env/ and reads them back on the next run when that
    # run passes none: without this, one test's -e symptom=... or --check leaks into every later run.
    shutil.rmtree(RUNNER_DIR / "env", ignore_errors=True)
    result = ansible_runner.run(
        private_data_dir=str(RUNNER_DIR),
        project_dir=str(REPO),
        playbook=f"playbooks/{name}.yml",
        inventory=[str(REPO / "inventories" / "lab"), *(extra_inventories or [])],
        extravars=extravars or {},
        limit=limit or None,
        cmdline=" ".join(filter(None, ["--check --diff" if check else "", cmdline])) or None,
        envvars={
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        quiet=True,
        rotate_artifacts=10,
    )
    changed = [
        e["event_data"].get("task", "")
        for e in result.events
        if e.get("event") == "runner_on_ok" and e.get("event_data", {}).get("res", {}).get("changed")
    ]
    stats_events = [e for e in result.events if e.get("event") == "playbook_on_stats"]
    artifacts = stats_events[0]["event_data"].get("artifact_data", {}) if stats_events else {}
    stdout = result.stdout.read()
    RUNS.setdefault(name, []).append(result.rc)
    return Run(name, result.rc, result.status, stdout, changed, result.stats or {}, artifacts)


def host_sh(command: str, check: bool = True) -> subprocess.CompletedProcess:
    """A shell command on the lab host as root."""
    proc = subprocess.run(
        [PY, "-m", "lab", "ssh", HOST, command], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{command!r} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc


def psql(sql: str) -> str:
    return host_sh(
        f"runuser -u postgres -- psql -X -At -d psychochauffeur_bot -c {json.dumps(sql)}"
    ).stdout.strip()


def sandbox(*args: object) -> str:
    """`python -m bot.sandbox.chat ARGS` on the host (its sandbox is the bot's Telegram), with the live
    release's Python: `start CHAT` (the reply), `last` (newest sent id), `sent CHAT --after N` (texts)."""
    py = "/opt/psychochauffeur-bot/current/venv/bin/python"
    return host_sh(f"{py} -m bot.sandbox.chat {shlex.join(map(str, args))}").stdout.strip()


def start_reply() -> str:
    """Push /start through the host's sandbox (fake Telegram) and return the live bot's reply text."""
    return sandbox("start", 4711, "--username", "opsprobe")


def control_node_playbook(inventory: str, playbook: str, *args: str) -> tuple[int, str]:
    """ansible-playbook with inventories/<inventory> on the control node only (refusals that must come before
    any host is contacted): its exit code and output, whitespace collapsed."""
    proc = subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", f"inventories/{inventory}",
         f"playbooks/{playbook}.yml", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    return proc.returncode, " ".join((proc.stdout + proc.stderr).split())


def current() -> str:
    return host_sh("readlink /opt/psychochauffeur-bot/current").stdout.strip().split("/")[-1]


DIES_LATER_STORED = [f"ops-died-after-storing-{n}" for n in (1, 2, 3)]


def source_tree(
    tmp_path, name: str, break_it: bool = False, bad_migration: bool = False, dies_after: int = 0
):
    """A copy of the bot source (a release: bench/drill.py's source_tree); break_it makes the bot exit at
    start and adds a migration; bad_migration adds two migrations, the second of which fails; dies_after makes
    a working bot (with a migration) store DIES_LATER_STORED messages of its own, then exit after that many
    seconds (its own rows make the put-back of messages newer than the dump certain, whatever the load)."""
    src = bench_source_tree(tmp_path, name, break_it=break_it, marker="ops")
    if bad_migration:
        (src / "bot/migrations/901_ops_first.sql").write_text("CREATE TABLE ops_first_of_two (id int);\n")
        (src / "bot/migrations/902_ops_second.sql").write_text(
            "CREATE TABLE ops_second_of_two (id int); SELECT 1/0;\n"
        )
    if dies_after:
        (src / "bot/migrations/903_ops_dies_later.sql").write_text("CREATE TABLE ops_dies_later (id int);\n")
        app = src / "bot/app.py"
        app.write_text(
            app.read_text()
            + "\n\n_run = run\n\n\ndef run(env):  # stores messages, works, then dies\n"
            + "    import os, threading, psycopg\n"
            + "    with psycopg.connect(env.database_url) as conn:\n"
            + f"        for n, text in enumerate({DIES_LATER_STORED!r}, 1):\n"
            + "            conn.execute('INSERT INTO messages (chat_id, message_id, text)'\n"
            + "                         ' VALUES (-4999, %s, %s) ON CONFLICT DO NOTHING', (n, text))\n"
            + f"    threading.Timer({dies_after}, os._exit, (3,)).start()\n"
            + "    return _run(env)\n"
        )
    return src


def git(tree, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=ops", "-c", "user.email=ops@example.invalid", *args],
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def commit(tree, subject: str) -> None:
    """A commit touching the build inputs (the release's .release-log carries its subject)."""
    (tree / "bot/_ops_changelog_probe.py").write_text(f"# {subject}\n")
    git(tree, "add", "bot", "pyproject.toml", "README.md", "constraints.txt")
    git(tree, "commit", "-q", "-m", subject)


def reuse_wheelhouse(tree, version: str) -> None:
    """The tree's wheelhouse (built by its first update) under a new version name, hard-linked: the
    releases of this module differ in name and commit log, not in code."""
    cache = tree / ".cache" / "wheelhouse"
    built = sorted(p for p in cache.glob("*") if (p / "wheelhouse.tar").exists())
    if built and not (cache / version).exists():
        shutil.copytree(built[0], cache / version, copy_function=os.link)
