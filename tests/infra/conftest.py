"""Whole-host testinfra suite: a host after playbooks/site.yml.

Two modes:
- Lab (default, `pytest tests/infra`): the session fixture `lab_site` boots a fresh lab host `infra1`,
  converges site.yml on it with inventories/lab (the bot talks to the sandbox unit on the host), asserts that
  `--check --diff` then reports changed=0, and removes the host at the end, also on failure.
- Real inventory: `pytest tests/infra --hosts=ansible://bot_hosts --ansible-inventory=inventories/production`
  (add `--sudo` when the SSH user is not root, and `--force-ansible` when connection variables are Jinja
  templates, as in inventories/lab: testinfra's own SSH does not template them). Nothing is booted or
  converged; every test runs read-only checks on each host (sandbox-only tests skip themselves).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_HOST = "infra1"
SITE = REPO / "playbooks" / "site.yml"
LAB_INVENTORY = REPO / "inventories" / "lab"
RELEASE_VERSION = REPO / "roles" / "bot" / "files" / "release_version.py"
# Upper bounds for the subprocesses (a hung SSH must not hang the suite).
CONVERGE_TIMEOUT_S = 1800
LAB_TIMEOUT_S = 600


LAB_MODE = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """No --hosts: lab mode. The placeholder host only names the tests ([ssh://infra1]); the fixtures below
    hand them the converged lab host."""
    config.stash[LAB_MODE] = config.option.hosts is None
    if config.stash[LAB_MODE]:
        config.option.hosts = f"ssh://{LAB_HOST}"


def lab_mode(config: pytest.Config) -> bool:
    return config.stash.get(LAB_MODE, False)


def _run(cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run cmd from the repo root, output to log; fail with the log's tail when it fails."""
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                              env=env, check=False)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-60:])
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode} (log {log}):\n{tail}", pytrace=False)
    return text


def recap(text: str, host: str) -> dict[str, int]:
    """The PLAY RECAP counters of one host from ansible-playbook's output."""
    match = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", text.split("PLAY RECAP")[-1], re.MULTILINE)
    assert match, f"no PLAY RECAP line for {host}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture(scope="session")
def lab_site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Fresh lab host infra1 converged with site.yml (lab mode only); removed at the end even on failure."""
    if not lab_mode(request.config):
        yield {}
        return
    logs = tmp_path_factory.mktemp("infra-logs")
    python = sys.executable
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_NOCOLOR": "1"}
    lab = [python, "-m", "lab"]
    subprocess.run([*lab, "down", "--missing-ok", LAB_HOST], cwd=REPO, check=False, timeout=LAB_TIMEOUT_S,
                   capture_output=True)
    try:
        _run([*lab, "up", "--image", "base", LAB_HOST], logs / "lab-up.log", LAB_TIMEOUT_S)
        status = json.loads(subprocess.run([*lab, "status", "--json", LAB_HOST], cwd=REPO, check=True,
                                           capture_output=True, text=True, timeout=60).stdout)[0]
        # One release name for both runs, so a bot/ edit in between cannot make a second release.
        version = subprocess.run([python, str(RELEASE_VERSION), str(REPO)], check=True, capture_output=True,
                                 text=True, timeout=60).stdout.strip()

        def ansible(tool: str, *args: str, log: str) -> str:
            """`tool` (ansible-playbook, or ansible with the pattern all) with the lab inventory on the lab
            host only; its output, or the test fails with the tail of logs/<log>."""
            cmd = [str(Path(python).with_name(tool)), "-i", str(LAB_INVENTORY), "--limit", LAB_HOST, *args]
            return _run(cmd, logs / log, CONVERGE_TIMEOUT_S, env)

        site = [str(SITE), "-e", f"bot_version={version}"]
        converge = ansible("ansible-playbook", *site, log="converge.log")
        check = ansible("ansible-playbook", *site, "--check", "--diff", log="check.log")
        yield {"status": status, "version": version, "converge": recap(converge, LAB_HOST),
               "check": recap(check, LAB_HOST), "check_log": check, "logs": logs, "host": LAB_HOST,
               "ansible": ansible, "recap": lambda text: recap(text, LAB_HOST)}
    finally:
        subprocess.run([*lab, "down", "--missing-ok", LAB_HOST], cwd=REPO, check=False,
                       timeout=LAB_TIMEOUT_S, capture_output=True)


@pytest.fixture(scope="module")
def _testinfra_host(request: pytest.FixtureRequest, lab_site: dict) -> testinfra.host.Host:
    """testinfra's per-host parameter; in lab mode the converged lab host instead of the local one."""
    if not lab_site:
        return request.param
    s = lab_site["status"]
    return testinfra.get_host(
        f"ssh://{s['user']}@{s['address']}:{s['port']}",
        ssh_identity_file=s["identity_file"],
        ssh_extra_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
    )


@pytest.fixture(scope="session")
def site_roles() -> list[str]:
    """Roles playbooks/site.yml applies, in order (tests of roles not there yet skip)."""
    names = []
    for play in yaml.safe_load(SITE.read_text()):
        for role in play.get("roles", []):
            names.append(role["role"] if isinstance(role, dict) else role)
    return names


@pytest.fixture(scope="module")
def require_role(site_roles: list[str]):
    def require(name: str) -> None:
        if name not in site_roles:
            pytest.skip(f"role {name} is not in playbooks/site.yml yet")

    return require


@pytest.fixture(scope="module")
def sh(host: testinfra.host.Host):
    """Run a command on the host, fail with its output unless it exits 0; returns stdout."""

    def run(cmd: str) -> str:
        out = host.run(cmd)
        assert out.rc == 0, f"{cmd}: rc={out.rc}\n{out.stdout}\n{out.stderr}"
        return out.stdout

    return run
