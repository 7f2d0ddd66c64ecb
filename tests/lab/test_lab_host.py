"""lab/host.py on real hosts: boot, logins, identity, errors and a teardown that leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from lab_helpers import REPO, down_quietly, lab, ssh, status

from lab import image
from lab.common import HOSTS_DIR
from lab.host import machine_name

FACTS = REPO / ".cache" / "ansible-facts"


def test_systemd_reaches_running(hosts):
    for state in hosts.values():
        assert state["running"]
        assert ssh(state, "systemctl is-system-running").stdout.strip() == "running"
        assert ssh(state, "hostname").stdout.strip() == state["name"]


def test_key_login_as_root_and_lab_with_passwordless_sudo(lab1):
    assert ssh(lab1, "id -un").stdout.strip() == "root"
    assert ssh(lab1, "id -un", user="lab").stdout.strip() == "lab"
    assert ssh(lab1, "sudo -n id -u", user="lab").stdout.strip() == "0"


def test_password_login_is_refused(lab1):
    proc = subprocess.run(
        [
            "ssh",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "BatchMode=yes",
            "-o",
            "PubkeyAuthentication=no",
            f"root@{lab1['address']}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 255
    assert "Permission denied" in proc.stderr


def test_machine_id_is_unique_per_host(hosts):
    ids = [ssh(s, "cat /etc/machine-id").stdout.strip() for s in hosts.values()]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_host_keys_are_generated_per_host(hosts):
    keys = []
    for state in hosts.values():
        scan = subprocess.run(
            ["ssh-keyscan", "-t", "ed25519", state["address"]],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        keys.append(scan.stdout.split()[-1])
    assert len(set(keys)) == len(keys)
    # none comes from the image: the tarball holds no host keys
    listing = subprocess.run(
        ["tar", "-I", "zstd", "-tf", str(image.tarball("base"))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "etc/ssh/sshd_config" in listing
    assert "ssh_host_" not in listing


def test_lab_ssh_command(lab1):
    proc = lab("ssh", "lab1", "--user", "lab", "id", "-un")
    assert proc.stdout.strip() == "lab"


def test_up_refuses_a_name_in_use_and_changes_nothing(hosts):
    before = status("lab1")["lab1"]
    proc = lab("up", "lab1", check=False)
    assert proc.returncode == 1
    assert "name in use" in proc.stderr
    after = status("lab1")["lab1"]
    assert (after["pid"], after["address"], after["running"]) == (before["pid"], before["address"], True)


def test_up_reuse_keeps_the_running_host(hosts):
    before = status("lab1")["lab1"]
    lab("up", "--reuse", "lab1")
    assert status("lab1")["lab1"]["pid"] == before["pid"]


def test_bad_names_are_refused_before_anything_happens():
    for bad in ("Lab1", "1lab", "lab_1", "x" * 40, "../etc"):
        proc = lab("up", bad, check=False)
        assert proc.returncode == 1, bad
        assert "bad host name" in proc.stderr
        assert not (REPO / ".lab" / "hosts" / bad).exists()


def test_not_root_is_a_clear_error():
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-m", "lab", "up", "lab9"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "LAB_HOME": "/nonexistent"},
    )
    assert proc.returncode == 1
    assert "need root" in proc.stderr


def _traces(state: dict) -> dict[str, bool]:
    """What a host leaves on the control node while it exists."""
    link = state["link"]
    pids = subprocess.run(
        ["pgrep", "-f", f"systemd-nspawn.*{state['root']}"], capture_output=True, text=True, check=False
    ).stdout.split()
    return {
        "netns": Path("/run/netns", link["netns"]).exists(),
        "veth": Path("/sys/class/net", link["veth"]).exists(),
        "nspawn": bool(pids),
        "tree": Path(state["root"]).exists(),
        "mount": state["root"] in Path("/proc/self/mountinfo").read_text(),
        "state": (HOSTS_DIR / state["name"]).exists(),
        # Ansible's fact cache (its file names carry a schema prefix, e.g. s1_lab5)
        "facts": any(re.fullmatch(rf"(s\d+_)?{state['name']}", f.name) for f in FACTS.glob("*")),
        "cgroup": any(
            Path(base, "lab", machine_name(state["name"])).exists()
            for base in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup")
        ),
    }


def test_bridge_hosts_reach_each_other_and_down_leaves_nothing_behind():
    names = ["lab3", "lab4"]
    try:
        lab("up", "--bridge", *names)
        lab("up", "lab5")
        states = status(*names, "lab5")
        a, b, p2p = states["lab3"], states["lab4"], states["lab5"]
        assert a["link"]["mode"] == b["link"]["mode"] == "bridge"
        assert p2p["link"]["mode"] == "p2p" and p2p["link"]["prefix"] == 30
        assert Path("/sys/class/net/labbr0").exists()
        # lab3 opens lab4's SSH port across the bridge
        probe = f"exec 3<>/dev/tcp/{b['address']}/22 && head -c 7 <&3"
        assert ssh(a, f"bash -c '{probe}'").stdout == "SSH-2.0"
        ansible = [str(Path(sys.executable).parent / "ansible"), "-i", "inventories/lab", ",".join(states)]
        setup = [*ansible, "-m", "ansible.builtin.setup", "-a", "gather_subset=min"]
        subprocess.run(setup, cwd=REPO, check=True, capture_output=True)  # writes the fact cache
        for s in states.values():
            assert all(_traces(s).values()), _traces(s)
        pid = p2p["pid"]
        lab("down", *names, "lab5")
        for s in states.values():
            left = {k: v for k, v in _traces(s).items() if v}
            assert not left, f"{s['name']} left {left}"
        assert not Path(f"/proc/{pid}").exists() or b"nspawn" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        ports = Path("/sys/class/net/labbr0/brif")  # other checkouts' bridged hosts may still use it
        assert not ports.exists() or any(ports.iterdir())
    finally:
        down_quietly(*names, "lab5")


def test_two_checkouts_run_hosts_of_the_same_name(lab1, tmp_path):
    """A second lab home (another checkout) boots its own 'lab1' while ours runs; each keeps its own."""
    other = tmp_path / "lab-home"
    other.mkdir()
    (other / "images").symlink_to(image.IMAGES_DIR)  # share the built image, nothing else
    env = {**os.environ, "LAB_HOME": str(other)}
    try:
        lab("up", "lab1", env=env)
        theirs = json.loads(lab("status", "--json", "lab1", env=env).stdout)[0]
        assert theirs["link"]["netns"] != lab1["link"]["netns"]
        assert theirs["address"] != lab1["address"]
        assert ssh(theirs, "hostname").stdout.strip() == "lab1"
        lab("down", "lab1", env=env)
        assert status("lab1")["lab1"]["running"]
        assert ssh(lab1, "true").returncode == 0
    finally:
        lab("down", "lab1", "--missing-ok", env=env, check=False)
