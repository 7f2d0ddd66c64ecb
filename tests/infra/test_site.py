"""playbooks/site.yml on a fresh lab host: it converges, then a --check --diff run changes nothing."""

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
