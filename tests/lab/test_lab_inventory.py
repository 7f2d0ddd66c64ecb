"""inventories/lab (python -m lab inventory) with real Ansible against the running hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lab_helpers import REPO, lab

BIN = Path(sys.executable).parent
ENV = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}


def test_inventory_lists_running_hosts_in_lab_and_bot_hosts(hosts):
    inv = json.loads(lab("inventory", "--list").stdout)
    for name, state in hosts.items():
        assert name in inv["lab"]["hosts"]
        assert name in inv["bot_hosts"]["hosts"]
        assert inv["_meta"]["hostvars"][name]["ansible_host"] == state["address"]
    assert json.loads(lab("inventory", "--host", "lab1").stdout)["ansible_host"] == hosts["lab1"]["address"]


def test_ansible_reaches_the_hosts_through_the_lab_inventory(hosts):
    proc = subprocess.run(
        [str(BIN / "ansible"), "-i", "inventories/lab", "lab1:lab2", "-m", "ansible.builtin.command",
         "-a", "cat /etc/hostname", "-o"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in hosts:
        assert f"{name} | CHANGED | rc=0 | (stdout) {name}" in proc.stdout


def test_lab_ssh_settings_live_only_in_the_lab_inventory():
    cfg = (REPO / "ansible.cfg").read_text()
    assert "StrictHostKeyChecking" not in cfg and "UserKnownHostsFile" not in cfg
    assert "StrictHostKeyChecking=no" in (REPO / "inventories/lab/group_vars/lab.yml").read_text()


def test_a_host_removed_while_the_inventory_is_read_is_left_out(tmp_path, monkeypatch):
    """Another part's `lab down` between the listing and the read: the others are still listed, no error."""
    from lab import cli, host

    monkeypatch.setattr(host, "HOSTS_DIR", tmp_path)
    (tmp_path / "alive").mkdir()
    alive = {"name": "alive", "address": "10.9.0.2", "image": "base", "gateway": "10.9.0.1"}
    alive["groups"] = ["lab9"]
    (tmp_path / "alive" / "state.json").write_text(json.dumps(alive))
    monkeypatch.setattr(host, "names", lambda: ["alive", "gone"])  # "gone" was listed, then removed
    monkeypatch.setattr(host, "is_running", lambda state: True)
    inv = cli.inventory(None)
    assert inv["lab"]["hosts"] == ["alive"] and inv["lab9"]["hosts"] == ["alive"]
    assert inv["_meta"]["hostvars"]["alive"]["ansible_host"] == "10.9.0.2"
