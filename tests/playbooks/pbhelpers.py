"""Helpers of the runbook playbook tests (conftest.py holds the fixtures).

ONE lab host per session (PLAYBOOKS_LAB_HOST, default pb1; postgres image) is booted and converged with
site.yml once; every test of the session shares it. `make test` runs four sessions side by side
(scripts/test_parts.py PLAYBOOK_HOSTS: pb1 reports, pb2 update/rollback, pb3 sandbox/restore/incident/site,
pb4 state changes and alerts). Within a session files run in name order: report-only procedures first,
destructive ones last.
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


START_PROBE = """
import sys
from bot.sandbox.client import SandboxClient
client = SandboxClient("http://127.0.0.1:8081")
after = client.last_sent_id()
client.push("/start", chat_id=4711, user_id=4711, chat_type="private", username="opsprobe")
reply = client.wait_for(4711, count=1, timeout=60, after=after, method="sendMessage")[0]
print(reply["text"])
"""


def start_reply() -> str:
    """Push /start through the host's sandbox (fake Telegram) and return the live bot's reply text."""
    return host_sh(
        f"/opt/psychochauffeur-bot/current/venv/bin/python -c {shlex.quote(START_PROBE)}"
    ).stdout.strip()
