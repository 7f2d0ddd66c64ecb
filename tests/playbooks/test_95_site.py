"""site.yml on a host that already runs the bot: a new release goes live only through the guarded path (a
broken one is rolled back), a token the Bot API refuses fails the converge, re-running it after the start
limit recovers. Runs last: the refused token leaves Bot API 401s in error.log, which weekly/security reports
flag as failed authentication."""

from __future__ import annotations

import time

import pytest
from pbhelpers import host_sh, run_playbook, start_reply
from test_60_update import current, source_tree

REFUSED_TOKEN = "123456789:refused"  # not <digits>:<35 chars>: the sandbox answers 401 like the Bot API


def unit_state() -> str:
    return host_sh("systemctl show --property=ActiveState --value psychochauffeur-bot").stdout.strip()


@pytest.mark.runbook("Update | site.yml changes the live release only through the same guarded path")
def test_site_puts_a_new_release_live_only_through_the_guarded_path(lab_host, tmp_path):
    before = current()
    broken = source_tree(tmp_path, "broken", break_it=True)
    run = run_playbook("site", {"bot_version": "ops-site-broken", "bot_source_dir": str(broken)})
    assert run.rc != 0 and f"rolled back to {before}" in run.text, run.text[-3000:]
    assert current() == before
    assert start_reply()


@pytest.mark.runbook("Security | Deploy refreshes the integrity baseline")
def test_deploy_refreshes_the_integrity_baseline_and_tampering_is_caught(lab_host, tmp_path):
    """A release converged with site.yml is not flagged by the next daily check; a file changed later is."""
    assert run_playbook("security-checks", {"update_baseline": "true"}).rc == 0
    src = source_tree(tmp_path, "good")
    run = run_playbook("site", {"bot_version": "ops-site-baseline", "bot_source_dir": str(src)})
    assert run.rc == 0 and current() == "ops-site-baseline", run.text[-3000:]
    check = run_playbook("security-checks")
    assert check.rc == 0, check.text[-3000:]
    assert "files_changed_since_baseline: []" in check.text
    find = "find -L /opt/psychochauffeur-bot/current/venv -path '*/bot/app.py' | head -n 1"
    app = host_sh(find).stdout.strip()
    host_sh(f"cp -a {app} /root/app.py.good && echo '# tampered' >> {app}")
    try:
        caught = run_playbook("security-checks")
        assert caught.rc != 0 and "files changed since the baseline" in caught.text and app in caught.text
    finally:
        host_sh(f"cp -a /root/app.py.good {app}")


@pytest.mark.runbook("Update | site.yml ends verified; re-running it recovers a unit at its start limit")
def test_site_fails_when_the_token_is_refused_and_recovers_after_the_start_limit(lab_host):
    run = run_playbook("site", {"bot_token": REFUSED_TOKEN})
    assert run.rc != 0 and "verification failed" in run.text, run.text[-3000:]
    deadline = time.monotonic() + 240  # RestartSec=5, StartLimitBurst=10: failed within about a minute
    while unit_state() != "failed" and time.monotonic() < deadline:
        time.sleep(2)
    assert unit_state() == "failed"  # systemd gave up: "Start request repeated too quickly" from now on
    fixed = run_playbook("site")  # the operator fixes the token and converges again
    assert fixed.rc == 0, fixed.text[-3000:]
    assert unit_state() == "active"
    assert start_reply()
