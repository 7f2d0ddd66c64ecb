"""Role hardening on the converged lab host: real SSH logins from the controller, the effective sshd settings,
sysctls, the runbook's file modes and the nftables firewall seen from outside; and the role refusing settings
that would lock the deploying user out (run through ansible-playbook, checking nothing changed)."""

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

APP = "/opt/psychochauffeur-bot"
DROPIN = "/etc/ssh/sshd_config.d/00-hardening.conf"
ROLES = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def login(host):
    """How the controller reaches the host (the lab inventory's SSH settings)."""
    v = host.ansible.get_variables()
    return {
        "address": v["ansible_host"],
        "key": v.get("ansible_private_key_file") or v["ansible_ssh_private_key_file"],
        "common": v.get("ansible_ssh_common_args", ""),
    }


def ssh(login, user: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        "ssh",
        "-i",
        login["key"],
        *login["common"].split(),
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
    ]
    cmd += [*extra, f"{user}@{login['address']}", "true"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def run_role(login, tmp_path, extra_vars: dict) -> subprocess.CompletedProcess:
    """The role applied again from the controller with other settings (hardening_ssh only)."""
    inventory = tmp_path / "inventory.yml"
    hostvars = {
        "ansible_host": login["address"],
        "ansible_user": "root",
        "ansible_ssh_private_key_file": login["key"],
        "ansible_ssh_common_args": login["common"],
    }
    inventory.write_text(json.dumps({"all": {"hosts": {"hd1": hostvars}}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        json.dumps([{"hosts": "all", "gather_facts": False, "roles": [{"role": "hardening", **extra_vars}]}])
    )
    env = {
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
    }
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(playbook), "--tags", "hardening_ssh"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


# --- ssh -------------------------------------------------------------------------------------------


def test_dropin_sorts_first_and_parses(host):
    assert host.check_output("ls /etc/ssh/sshd_config.d | head -1") == "00-hardening.conf"
    f = host.file(DROPIN)
    assert (f.user, f.mode) == ("root", 0o644)
    assert host.run("sshd -t").rc == 0


@pytest.mark.parametrize(
    "line",
    [
        "permitrootlogin without-password",  # sshd -T's name for prohibit-password
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitemptypasswords no",
        "x11forwarding no",
        "allowtcpforwarding no",
        "allowagentforwarding no",
        "maxauthtries 3",
        "logingracetime 30",
        "loglevel VERBOSE",
        "allowusers root",
        "allowusers lab",
        "ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
        "aes256-ctr,aes192-ctr,aes128-ctr",
    ],
)
def test_effective_sshd_settings(host, line):
    assert line in host.check_output("sshd -T").splitlines()


@pytest.mark.parametrize("user", ["root", "lab"])
def test_allowed_users_log_in_with_their_key(login, user):
    out = ssh(login, user)
    assert out.returncode == 0, out.stderr


def test_user_outside_allowusers_is_refused(login):
    out = ssh(login, "intruder")
    assert out.returncode == 255
    assert "Permission denied" in out.stderr


def test_passwords_are_not_offered(login):
    methods = "PreferredAuthentications=password,keyboard-interactive"
    out = ssh(login, "root", "-o", methods, "-o", "PubkeyAuthentication=no")
    assert out.returncode == 255
    assert "Permission denied (publickey)" in out.stderr


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        ({"hardening_ssh_allow_users": ["somebody"]}, "would lock out the deploying user 'root'"),
        ({"hardening_ssh_permit_root_login": "no"}, "would lock out the deploying user 'root'"),
        ({"hardening_ssh_allow_groups": ["staff"]}, "would lock out the deploying user 'root'"),
        ({"hardening_ssh_extra_options": {"NoSuchOption": "yes"}}, "failed to validate"),
    ],
)
def test_lockout_and_invalid_settings_are_refused(host, login, tmp_path, extra_vars, expected):
    before = host.file(DROPIN).sha256sum
    out = run_role(login, tmp_path, extra_vars)
    assert out.returncode != 0
    output = out.stdout + out.stderr
    assert expected in output, output[-3000:]
    assert host.file(DROPIN).sha256sum == before
    assert ssh(login, "root").returncode == 0


# --- sysctl ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("net.ipv4.conf.all.accept_redirects", "0"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.all.rp_filter", "1"),
        ("net.ipv4.tcp_syncookies", "1"),
        ("net.ipv4.icmp_echo_ignore_broadcasts", "1"),
        ("net.ipv4.conf.all.log_martians", "1"),
    ],
)
def test_net_sysctls_are_live_and_persisted(host, name, value):
    assert host.sysctl(name) == int(value)
    assert host.file("/etc/sysctl.d/60-hardening-net.conf").contains(f"^{name}={value}$")


def test_kernel_sysctls_are_off_in_the_lab(host):
    assert not host.file("/etc/sysctl.d/60-hardening-kernel.conf").exists


# --- permissions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("releases/v1/bot/wrong.py", 0o644),
        ("releases/v1/bot/right.py", 0o644),
        ("releases/v1/scripts/wrong.sh", 0o755),
        ("releases/v1/scripts/right.sh", 0o755),
        ("shared/config/private/token.json", 0o600),
        ("shared/.env", 0o600),
        # untouched: not directly in config/private, not a secret
        ("shared/config/private/sub/deep.json", 0o644),
        ("shared/config/global/global_config.json", 0o644),
    ],
)
def test_runbook_modes(host, path, mode):
    assert host.file(f"{APP}/{path}").mode == mode


def test_symlinks_are_not_followed_out_of_the_app_dir(host):
    assert host.file(f"{APP}/releases/v1/bot/escape.py").is_symlink
    assert host.file("/etc/shadow").mode == 0o640


# --- firewall --------------------------------------------------------------------------------------


def test_ruleset_is_loaded_and_persisted(host):
    assert host.service("nftables").is_enabled
    table = host.check_output("nft list table inet hardening")
    assert "policy drop" in table
    assert "tcp dport 22 ct state new accept" in table
    assert host.run("nft -c -f /etc/nftables.conf").rc == 0


def test_closed_port_is_dropped_from_outside_but_open_on_loopback(host, login):
    fetch = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8099/')"
    assert host.run("python3 -c %s", fetch).rc == 0
    with pytest.raises(TimeoutError):  # dropped, not refused: the connect times out
        socket.create_connection((login["address"], 8099), timeout=3)


def test_ssh_port_is_open_from_outside(login):
    socket.create_connection((login["address"], 22), timeout=5).close()
