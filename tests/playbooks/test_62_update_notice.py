"""update.yml's notify-users step (runbook "Application Updates"): after an update verified live the admin
chats get one message naming the old and the new release and the changelog between them; a failed update
(rolled back) gets a different one saying so and why; a no-op update sends nothing. Asserted on what the
host's sandbox (the fake Bot API) received for the admin chat, not on Ansible's output. Not on pb2
(test_60_update.py): three releases, one of them broken; their wheelhouses share the checkout's cache, so each
build makes only the bot's own wheel."""

from __future__ import annotations

import json

import pytest
from pbhelpers import REPO, commit, current, git, run_playbook, sandbox, source_tree

ADMIN_CHAT = 1001  # inventories/lab/group_vars/bot_hosts.yml ops_admin_chat_ids


@pytest.fixture(scope="module")
def tree(lab_host, tmp_path_factory):
    """A release source with its own git history (the releases' .release-log, hence the changelog)."""
    src = source_tree(tmp_path_factory.mktemp("notice"), "good")
    git(src, "init", "-q")
    commit(src, "ops: notice base")
    sandbox("start", ADMIN_CHAT, "--username", "opsadmin")
    return src


def update(version: str, src, **extra):
    """update.yml to `version` built from `src`, with the dependency wheels site.yml already built."""
    cache = str(REPO / ".cache" / "wheelhouse")
    extravars = {"bot_version": version, "bot_source_dir": str(src), "bot_wheelhouse_cache_dir": cache}
    return run_playbook("update", {**extravars, **extra})


def told_admins(after: int) -> list[str]:
    return json.loads(sandbox("sent", ADMIN_CHAT, "--after", after))


def head(src) -> str:
    return git(src, "log", "-1", "--format=%h").strip()


@pytest.mark.runbook("Update | Notify users (admin chats: old → new release, changelog; a rollback told so)")
def test_update_tells_the_admins_old_new_and_changelog_and_a_noop_tells_nothing(lab_host, tree):
    before = current()
    after = int(sandbox("last"))
    first = update("ops-notice-1", tree)
    assert first.rc == 0, first.text[-3000:]
    (text,) = told_admins(after)
    headline = f"PsychoChauffeur on {lab_host} updated from {before} to ops-notice-1 (verified live)."
    assert text.startswith(headline), text
    assert f"- {head(tree)} ops: notice base" in text.splitlines(), text

    commit(tree, "ops: notice second")
    after = int(sandbox("last"))
    second = update("ops-notice-2", tree)
    assert second.rc == 0, second.text[-3000:]
    (text,) = told_admins(after)
    assert "updated from ops-notice-1 to ops-notice-2 (verified live)" in text, text
    changes = text.split("Changes:\n", 1)[1].splitlines()
    assert changes == [f"- {head(tree)} ops: notice second"], text  # only what is new since ops-notice-1

    after = int(sandbox("last"))
    noop = update("ops-notice-2", tree)
    assert noop.rc == 0 and noop.changed == 0, noop.changed_tasks
    assert told_admins(after) == []


@pytest.mark.runbook("Update | Notify users (admin chats: old → new release, changelog; a rollback told so)")
def test_a_failed_update_tells_the_admins_it_was_rolled_back_and_why(lab_host, tree, tmp_path):
    before = current()
    broken = source_tree(tmp_path, "broken", break_it=True)
    after = int(sandbox("last"))
    run = update("ops-notice-broken", broken, ops_start_timeout=150, bot_verify_timeout=150)
    assert run.rc != 0 and f"rolled back to {before}" in run.text, run.text[-3000:]
    assert current() == before
    (text,) = told_admins(after)
    assert f"from {before} to ops-notice-broken FAILED, rolled back to {before} (verified)." in text, text
    assert f"Why: ops-notice-broken failed on {lab_host} (" in text, text
    assert "updated from" not in text
