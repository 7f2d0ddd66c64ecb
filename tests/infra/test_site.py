"""playbooks/site.yml on a fresh lab host: it converges, then a --check --diff run changes nothing."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def converged(lab_site):
    if not lab_site:
        pytest.skip("lab mode only: against a real inventory nothing is converged")
    return lab_site


def test_site_converged(converged):
    rc = converged["converge"]
    assert rc["failed"] == 0 and rc["unreachable"] == 0
    assert rc["changed"] > 0  # a fresh host: the play did the work


def test_check_diff_reports_no_change(converged):
    rc = converged["check"]
    assert rc["failed"] == 0 and rc["unreachable"] == 0
    assert rc["changed"] == 0, converged["check_log"][-4000:]


def test_secrets_never_in_the_playbook_output(converged):
    lab_vars = yaml.safe_load((REPO / "inventories/lab/group_vars/bot_hosts.yml").read_text())
    token = lab_vars["bot_token"]
    for name in ("converge.log", "check.log"):
        assert token not in (converged["logs"] / name).read_text(), f"bot_token printed in {name}"


def test_playbooks_run_as_a_sudo_user_as_in_production(converged):
    """Production inventories log in as a user and become root with sudo (ansible_become); the lab logs in as
    root. Over Mitogen (ansible.cfg), as the lab image's sudo user `lab`: the login is that user, become is
    root, and verify.yml (root-only reads: the 0600 env file, runuser) passes."""
    ansible, as_lab = converged["ansible"], ["-e", "ansible_user=lab"]
    whoami = ["all", *as_lab, "-m", "ansible.builtin.command", "-a", "id -un"]
    login = ansible("ansible", *whoami, log="as-lab.log")
    root = ansible("ansible", *whoami, "-b", log="as-lab-become.log")
    users = [re.search(r"rc=0 >>\s*(\S+)", out) for out in (login, root)]
    assert [u and u.group(1) for u in users] == ["lab", "root"], (login, root)
    verify = ansible("ansible-playbook", *as_lab, "-e", "ansible_become=true",
                     str(REPO / "playbooks/verify.yml"), log="verify-as-lab.log")
    counts = converged["recap"](verify)
    assert counts["failed"] == counts["unreachable"] == counts["changed"] == 0, verify[-3000:]
    assert counts["ok"] > 0
