"""update.yml and rollback.yml: happy path, same version again, interrupted before the switch, a broken
release rolled back automatically (DB restored when its migration ran), rollback twice."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest
from pbhelpers import HOST, REPO, host_sh, psql, run_playbook, start_reply


def current() -> str:
    return host_sh("readlink /opt/psychochauffeur-bot/current").stdout.strip().split("/")[-1]


def source_tree(tmp_path, name: str, break_it: bool = False):
    """A copy of the bot source (a release); break_it makes the bot exit at start and adds a migration."""
    src = tmp_path / name
    for item in ("bot", "pyproject.toml", "README.md", "constraints.txt"):
        (shutil.copytree if (REPO / item).is_dir() else shutil.copy)(REPO / item, src / item)
    if break_it:
        (src / "bot/migrations/900_ops_broken_release.sql").write_text(
            "CREATE TABLE ops_broken_marker (id int);\n"
        )
        app = src / "bot/app.py"
        app.write_text(
            app.read_text() + "\n\ndef run(env):  # deliberately broken release\n    raise SystemExit(3)\n"
        )
    return src


@pytest.fixture(scope="module")
def releases(lab_host, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("releases")
    return {"good": source_tree(tmp, "good"), "broken": source_tree(tmp, "broken", break_it=True)}


def update(version: str, src, **extra):
    return run_playbook("update", {"bot_version": version, "bot_source_dir": str(src), **extra})


def test_update_happy_path(releases):
    before = current()
    run = update("ops-good-1", releases["good"])
    assert run.rc == 0, run.stdout[-4000:]
    assert current() == "ops-good-1"
    assert start_reply()
    assert host_sh("cat /opt/psychochauffeur-bot/release-history").stdout.split()[-2:] == [
        before,
        "ops-good-1",
    ]
    again = update("ops-good-1", releases["good"])
    assert again.rc == 0 and again.changed == 0, again.changed_tasks


def test_update_interrupted_before_switch(releases):
    before = current()
    proc = subprocess.Popen(
        [
            str(REPO / ".venv/bin/ansible-playbook"),
            "playbooks/update.yml",
            "--limit",
            HOST,
            "-e",
            "bot_version=ops-good-2",
            "-e",
            f"bot_source_dir={releases['good']}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        if "phase 3, upload the release" in line or time.monotonic() > deadline:
            break
    import os

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert current() == before
    assert host_sh("systemctl is-active psychochauffeur-bot", check=False).stdout.strip() == "active"


def test_broken_release_rolls_back(releases):
    before = current()
    run = update("ops-broken-1", releases["broken"])
    assert run.rc != 0
    assert f"rolled back to {before}" in run.text
    assert current() == before
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
    assert psql("select to_regclass('ops_broken_marker') is null") == "t"  # the pre-update dump was restored
    assert run_playbook("verify").rc == 0  # bot answering: health, getMe, DB query
    assert start_reply()  # and a user's /start gets an answer through the (fake) Telegram API


def test_rollback_twice(releases):
    assert update("ops-good-3", releases["good"]).rc == 0
    history = host_sh("cat /opt/psychochauffeur-bot/release-history").stdout.split()
    assert history[-1] == "ops-good-3" and len(history) >= 3
    assert run_playbook("rollback").rc == 0
    assert current() == history[-2]
    assert run_playbook("rollback").rc == 0
    assert current() == history[-3]
    named = run_playbook("rollback", {"release": "ops-good-3"})
    assert named.rc == 0 and current() == "ops-good-3"
    again = run_playbook("rollback", {"release": "ops-good-3"})
    assert again.rc == 0 and again.changed == 0, again.changed_tasks
    dry = run_playbook("rollback", check=True)  # would go back to history[-2], changes nothing
    assert dry.rc == 0 and current() == "ops-good-3", dry.stdout[-2000:]
    unknown = run_playbook("rollback", {"release": "no-such-release"})
    assert unknown.rc != 0 and "nothing was changed" in unknown.text
    assert current() == "ops-good-3"
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
