"""update.yml and rollback.yml: happy path, same version again, the gate's reasons, interrupted before the
switch, a broken release rolled back automatically (DB restored when its migration ran, no stored message
lost, the previous release answering), a failing second migration, rollback twice, a failed restore."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
from pbhelpers import (
    DIES_LATER_STORED,
    HOST,
    REPO,
    commit,
    current,
    git,
    host_sh,
    psql,
    reuse_wheelhouse,
    run_playbook,
    source_tree,
    start_reply,
)


@pytest.fixture(scope="module")
def releases(lab_host, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("releases")
    good = source_tree(tmp, "good")
    git(good, "init", "-q")
    commit(good, "ops: first release")
    return {
        "good": good,
        "broken": source_tree(tmp, "broken", break_it=True),
        "bad-migration": source_tree(tmp, "bad-migration", bad_migration=True),
        "dies-later": source_tree(tmp, "dies-later", dies_after=4),
    }


def update(version: str, src, **extra):
    """update.yml to `version` built from `src` (pruning keeps the default bot_keep_releases)."""
    return run_playbook("update", {"bot_version": version, "bot_source_dir": str(src), **extra})


@pytest.mark.runbook("Update | Update process (deploy → deps → tests → stop → backup → migrate → start → verify; stop → start is one command, `roles/bot/files/go_live.sh`)")  # noqa: E501
@pytest.mark.runbook("Update | Pre-update checklist (backup DB, disk, health)")
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


@pytest.mark.runbook("Update | Pre-checks refuse: the failing checks with their figures, nothing changed")
def test_update_gate_names_the_failing_check_and_its_figure(releases):
    """A stopped bot makes health critical: the gate names the check and why, with health's disk figure."""
    host_sh("systemctl stop psychochauffeur-bot")
    try:
        run = update("ops-good-gate", releases["good"])
        health = json.loads(host_sh("psychochauffeur health --json", check=False).stdout)
    finally:
        host_sh("systemctl start psychochauffeur-bot")
    assert run.rc != 0 and "nothing was changed" in run.text, run.text[-2000:]
    reason = "health critical (critical: process: systemd unit psychochauffeur-bot is inactive"
    assert reason in run.text, run.text[-2000:]
    disk = next(c for c in health["checks"] if c["name"] == "disk")["value"]
    figure = float(re.search(r"disk ([0-9.]+)% free on the app dir's filesystem", run.text).group(1))
    assert abs(figure - disk) <= 0.2, (figure, disk)  # one measurement, stated the same way
    assert current() != "ops-good-gate"


@pytest.mark.runbook("Update | Interrupted before the switch → current unchanged")
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
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert current() == before
    assert host_sh("systemctl is-active psychochauffeur-bot", check=False).stdout.strip() == "active"


PUSHER = """
import os, sys, time
import psycopg
from bot.sandbox.client import SandboxClient
client = SandboxClient("http://127.0.0.1:8081", timeout=5)
out = open("/tmp/ops-pusher.stored", "w", buffering=1)
deadline = time.monotonic() + 600
i, chat, last_id = 0, -4343, 0
while time.monotonic() < deadline and not os.path.exists("/tmp/ops-pusher.stop"):
    i += 1
    text = f"ops-keep-{i}"
    try:
        message_id = client.push(text, chat_id=chat, user_id=4343, chat_type="group")["message_id"]
    except Exception:
        time.sleep(0.5)
        continue
    if message_id <= last_id:  # the sandbox restarted: its ids start again, this row replaced an older one
        out.write(f"overwrote {chat} {message_id}\\n")
        chat, last_id = chat - 1, 0
        continue
    last_id = message_id
    until = time.monotonic() + 5
    while time.monotonic() < until:
        try:
            with psycopg.connect("dbname=psychochauffeur_bot", connect_timeout=2) as conn:
                if conn.execute("SELECT 1 FROM messages WHERE text = %s", (text,)).fetchone():
                    out.write(f"{text} {chat} {message_id}\\n")
                    break
        except psycopg.Error:
            pass
        time.sleep(0.2)
out.close()
os.rename("/tmp/ops-pusher.stored", "/tmp/ops-pusher.done")
"""


def start_pusher() -> None:
    """Chat messages pushed through the sandbox all along; each one seen stored in the DB is written down."""
    host_sh("rm -f /tmp/ops-pusher.*")
    host_sh(f"cat > /tmp/ops-pusher.py <<'EOF'\n{PUSHER}\nEOF")
    host_sh(
        "cd /tmp && setsid -f runuser -u postgres --"
        " $(readlink -f /opt/psychochauffeur-bot/current)/venv/bin/python /tmp/ops-pusher.py"
        " > /tmp/ops-pusher.log 2>&1 < /dev/null"
    )


def stop_pusher() -> list[str]:
    """Stop the pusher; the messages it saw stored (less rows a restarted sandbox's reused ids replaced: the
    sandbox restarting is not what these tests are about)."""
    host_sh("touch /tmp/ops-pusher.stop")
    for _ in range(60):
        if host_sh("test -f /tmp/ops-pusher.done", check=False).returncode == 0:
            lines = [line.split() for line in host_sh("cat /tmp/ops-pusher.done").stdout.splitlines()]
            replaced = {tuple(f[1:]) for f in lines if f[0] == "overwrote"}
            return [f[0] for f in lines if f[0] != "overwrote" and tuple(f[1:]) not in replaced]
        time.sleep(0.5)
    raise AssertionError("pusher did not stop: " + host_sh("cat /tmp/ops-pusher.log", check=False).stdout)


def kept_messages() -> set[str]:
    return set(psql("SELECT text FROM messages WHERE chat_id BETWEEN -4443 AND -4343").split())


@pytest.mark.runbook("Update | Failed verification → automatic rollback (dump after the stop, reset-failed, previous release verified)")  # noqa: E501
def test_broken_release_rolls_back(releases):
    """Crash at start + a migration: rollback restores the dump, resets the start limit, the previous release
    answers, and no message stored before the rollback is lost (the dump is taken after the stop)."""
    before = current()
    start_pusher()
    try:
        started = time.monotonic()
        # a patient verify: waiting the whole time runs a crash loop into systemd's start limit (10 starts in
        # 300 s), which the rollback must clear; the wait has to end at the first restart instead
        run = update("ops-broken-1", releases["broken"], ops_start_timeout=150, bot_verify_timeout=150)
        took = time.monotonic() - started
    finally:
        stored = stop_pusher()
    assert run.rc != 0
    assert f"rolled back to {before}" in run.text, run.text[-3000:]
    assert "ROLLBACK FAILED" not in run.text
    print(
        f"update.yml to a crash-looping release, start → rolled back and verified: {took:.1f} s;",
        re.search(r"rolled back to \S+ in [0-9.]+ s", run.text),
    )
    assert current() == before
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
    assert psql("select to_regclass('ops_broken_marker') is null") == "t"  # the pre-update dump was restored
    assert run_playbook("verify").rc == 0  # bot answering: health, getMe, DB query
    assert start_reply()  # and a user's /start gets an answer through the (fake) Telegram API
    assert stored, host_sh("cat /tmp/ops-pusher.log", check=False).stdout
    kept = kept_messages()
    lost = sorted(set(stored) - kept)
    assert not lost, f"{len(lost)} stored before the rollback, gone after it: {lost[:10]}"


def test_messages_the_failed_release_stored_survive_the_restore(releases):
    """A release that stores messages, answers for a few seconds, then dies: the rollback restores the dump
    (its migration ran) and puts back the messages the failed release stored after the dump."""
    before = current()
    start_pusher()
    try:
        run = update("ops-dies-later-1", releases["dies-later"])
    finally:
        stored = stop_pusher()
    assert run.rc != 0 and f"rolled back to {before}" in run.text, run.text[-3000:]
    put_back = re.search(r"messages kept: ([0-9]+)", run.text)
    assert put_back and int(put_back.group(1)) >= len(DIES_LATER_STORED), run.text[-3000:]
    assert psql("select to_regclass('ops_dies_later') is null") == "t"
    own = psql("SELECT text FROM messages WHERE chat_id = -4999 ORDER BY message_id").split()
    assert own == DIES_LATER_STORED  # stored by the failed release after the dump, there after the restore
    assert current() == before
    kept = kept_messages()
    lost = sorted(set(stored) - kept)
    assert not lost, f"{len(lost)} stored before the rollback, gone after it: {lost[:10]}"
    assert start_reply()


@pytest.mark.runbook("Update | A failing migration leaves the schema as it was (one transaction)")
def test_failing_second_migration_leaves_the_schema_as_it_was(releases):
    """Migrations 1 of 2 succeeds, 2 of 2 fails: the update rolls back with the schema unchanged."""
    before = current()
    versions = psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
    run = update("ops-bad-migration-1", releases["bad-migration"])
    assert run.rc != 0 and f"rolled back to {before}" in run.text, run.text[-3000:]
    assert psql("select to_regclass('ops_first_of_two') is null") == "t"
    assert psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations") == versions
    assert current() == before
    assert start_reply()


def changelog(run) -> str:
    return re.search(r"msg: 'changelog: ([^']*)'", run.text).group(1)


@pytest.mark.runbook("Update | Test run: smoke tests of the new release against the live DB (read-only) before the stop; changelog since the live release printed (`bot_go_live_changelog`)")  # noqa: E501
@pytest.mark.runbook("Rollback | Rollback process (previous or named release)")
def test_rollback_twice(releases):
    """Three updates (each prints the commits since the live release), then rollback walks back twice."""
    for number, subject in ((3, "ops: second change"), (4, "ops: third change"), (5, "ops: fourth change")):
        commit(releases["good"], subject)
        reuse_wheelhouse(releases["good"], f"ops-good-{number}")
        run = update(f"ops-good-{number}", releases["good"])
        assert run.rc == 0, run.stdout[-3000:]
        head = git(releases["good"], "log", "-1", "--format=%h").strip()
        # only the commit since the live release (ops-good-1 first: its own commit is not repeated)
        assert changelog(run).startswith(f"{head} {subject}"), run.text[-3000:]
        if number > 3:  # the live release was built from this tree by the update before: nothing older
            assert changelog(run) == f"{head} {subject}", run.text[-3000:]
    history = host_sh("cat /opt/psychochauffeur-bot/release-history").stdout.split()
    assert history[-3:] == ["ops-good-3", "ops-good-4", "ops-good-5"]
    assert run_playbook("rollback").rc == 0
    assert current() == "ops-good-4"
    assert run_playbook("rollback").rc == 0
    assert current() == "ops-good-3"
    named = run_playbook("rollback", {"release": "ops-good-5"})
    assert named.rc == 0 and current() == "ops-good-5"
    again = run_playbook("rollback", {"release": "ops-good-5"})
    assert again.rc == 0 and again.changed == 0, again.changed_tasks
    dry = run_playbook("rollback", check=True)  # would go back to ops-good-3, changes nothing
    assert dry.rc == 0 and current() == "ops-good-5", dry.stdout[-2000:]
    unknown = run_playbook("rollback", {"release": "no-such-release"})
    assert unknown.rc != 0 and "nothing was changed" in unknown.text
    assert current() == "ops-good-5"
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"


@pytest.mark.runbook("Rollback | A pruned release in the history is skipped: the newest one still installed")
def test_rollback_skips_history_entries_that_were_pruned(releases):
    """The history names a release pruning deleted: rollback goes to the newest one still installed."""
    live = current()
    complete = host_sh("ls /opt/psychochauffeur-bot/releases/*/.release-complete").stdout.split()
    # a working release (an ops-good-* of test_rollback_twice) other than the live one, pruned one between
    others = {path.split("/")[-2] for path in complete} - {live}
    target = sorted(others, key=lambda name: not name.startswith("ops-good"))[0]
    host_sh(f"printf '%s\\n' {target} ops-pruned-long-ago {live} > /opt/psychochauffeur-bot/release-history")
    run = run_playbook("rollback")
    assert run.rc == 0, run.text[-3000:]
    skipped = re.search(r"not installed any more, skipped: [^\"]*ops-pruned-long-ago", run.text)
    assert skipped, run.text[-3000:]
    assert current() == target
    assert start_reply()
    assert run_playbook("rollback", {"release": live}).rc == 0 and current() == live


@pytest.mark.runbook("Rollback | A failed restore → the release that was live runs again (rescue)")
def test_rollback_with_a_failed_restore_leaves_the_bot_running(releases):
    """rollback.yml -e restore_db=true with an unreadable dump: the rescue starts the live release again."""
    live = current()
    host_sh(f"echo garbage > /var/backups/psychochauffeur-bot/pre-update/{live}.dump")
    try:
        run = run_playbook("rollback", {"restore_db": True})
    finally:
        host_sh(f"rm -f /var/backups/psychochauffeur-bot/pre-update/{live}.dump")
    assert run.rc != 0 and "rollback failed" in run.text, run.text[-3000:]
    assert current() == live
    assert host_sh("systemctl is-active psychochauffeur-bot", check=False).stdout.strip() == "active"
    assert start_reply()


@pytest.mark.runbook("Rollback | Rollback with the database restore (-e restore_db=true)")
def test_rollback_with_db_restore_puts_back_the_database_of_before_the_update(releases):
    """runbook: restore the database if needed. rollback.yml -e restore_db=true restores the dump
    update.yml took before the live release went live: a row written after the update is gone, the
    previous release runs."""
    before = current()
    assert update("ops-good-restore-1", releases["good"]).rc == 0
    psql(
        "INSERT INTO messages (chat_id, message_id, user_id, text)"
        " VALUES (-4545, 1, 7201, 'written-after-the-update')"
    )
    run = run_playbook("rollback", {"restore_db": True})
    assert run.rc == 0, run.text[-3000:]
    assert current() == before
    assert psql("SELECT count(*) FROM messages WHERE chat_id = -4545") == "0"  # the dump of before the update
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
    assert start_reply()
