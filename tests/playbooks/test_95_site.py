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
