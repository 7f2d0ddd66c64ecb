"""restore.yml: the newest backup that verifies (daily plain dumps included) brings back deleted rows, whole
or for single tables; the whole-database restore is staged, so a dump that fails mid-restore leaves the live
database as it was."""

from __future__ import annotations

import shlex

import pytest
from pbhelpers import host_sh, psql, run_playbook

DIR = "/var/backups/psychochauffeur-bot"


def _seed() -> None:
    psql(
        "INSERT INTO chats(chat_id, chat_type, title) VALUES (-4242, 'group', 'ops restore test') "
        "ON CONFLICT DO NOTHING"
    )
    psql("INSERT INTO users(user_id, username) VALUES (4242, 'opsrestore') ON CONFLICT DO NOTHING")


def _newest(pattern: str) -> str:
    return host_sh(f"ls -1t {DIR}/{pattern} | head -n 1").stdout.strip()


def _reseal(path: str) -> None:
    """Record the damaged file's sha256 in SHA256SUMS: a dump that was already bad when it was written."""
    name = path.rsplit("/", 1)[-1]
    host_sh(f"cd {DIR} && sed -i '/  {name}$/d' SHA256SUMS && sha256sum {name} >> SHA256SUMS")


@pytest.mark.runbook("Data recovery | Restore from latest backup")
def test_restore_whole_database(lab_host):
    """The daily plain dump taken after the weekly one is the restore point; newer objects are gone."""
    _seed()
    assert run_playbook("backup", {"kinds": "weekly"}).rc == 0
    host_sh(f"touch -d '-1 minute' {_newest('backup_weekly_*.dump')}")
    psql("INSERT INTO users(user_id, username) VALUES (4243, 'after weekly') ON CONFLICT DO NOTHING")
    assert run_playbook("backup", {"kinds": "daily"}).rc == 0
    daily = _newest("backup_*.sql")
    psql("DELETE FROM chats WHERE chat_id = -4242")
    psql("DELETE FROM users WHERE user_id IN (4242, 4243)")
    psql("CREATE TABLE ops_created_after_the_dump (id int)")
    run = run_playbook("restore")
    assert run.rc == 0, run.stdout[-3000:]
    assert f"use {daily.rsplit('/', 1)[-1]}" in run.text
    assert psql("SELECT count(*) FROM chats WHERE chat_id = -4242") == "1"
    assert psql("SELECT count(*) FROM users WHERE user_id IN (4242, 4243)") == "2"
    assert psql("SELECT to_regclass('ops_created_after_the_dump') IS NULL") == "t"
    assert psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'") == "0"


@pytest.mark.runbook("Data recovery | Restore from latest backup")
def test_restore_skips_a_corrupt_newest_backup(lab_host):
    _seed()
    assert run_playbook("backup", {"kinds": "weekly"}).rc == 0
    host_sh(f"touch -d '-1 minute' {_newest('backup_weekly_*.dump')}")
    assert run_playbook("backup", {"kinds": "daily"}).rc == 0
    daily = _newest("backup_*.sql")
    host_sh(f"cp -a {daily} /root/good.sql && truncate -s $(( $(stat -c %s {daily}) / 2 )) {daily}")
    try:
        psql("DELETE FROM users WHERE user_id = 4242")
        run = run_playbook("restore")
        assert run.rc == 0, run.stdout[-3000:]
        assert f"skip {daily.rsplit('/', 1)[-1]}: sha256 mismatch" in run.text
        assert "use backup_weekly_" in run.text
        assert psql("SELECT count(*) FROM users WHERE user_id = 4242") == "1"
    finally:
        host_sh(f"cp -a /root/good.sql {daily}")


BROKEN_DB = (
    "createdb ops_restore_fails"
    " && psql -X -q -d ops_restore_fails -c 'CREATE ROLE ops_gone; CREATE TABLE users (id int);"
    " INSERT INTO users VALUES (1); ALTER TABLE users OWNER TO ops_gone'"
)


@pytest.mark.runbook("Data recovery | Failed restore leaves the live database untouched")
@pytest.mark.parametrize("kind", ["weekly", "daily"])
def test_failing_restore_leaves_the_live_database(lab_host, kind):
    """A complete, listed dump (sha256 in the manifest, the archive lists, the trailer is there) that fails
    half-way through the restore: it was taken on a cluster with a role this one lacks, so its ALTER ... OWNER
    fails after the tables were created. The live database keeps every row; the bot runs again."""
    name = "backup_weekly_20000102.dump" if kind == "weekly" else "backup_20000102.sql"
    fmt = "-Fc" if kind == "weekly" else "-Fp"
    host_sh(f"cp -a {DIR}/SHA256SUMS /root/good.sums")
    as_pg = "runuser -u postgres -- bash -c"
    dump = f"pg_dump {fmt} -d ops_restore_fails -f {DIR}/{name}"
    drop = "dropdb ops_restore_fails && psql -X -q -c 'DROP ROLE ops_gone'"
    host_sh(f"{as_pg} {shlex.quote(f'{BROKEN_DB} && {dump} && {drop}')}")
    _reseal(f"{DIR}/{name}")
    psql("INSERT INTO users(user_id, username) VALUES (4244, 'after the dump') ON CONFLICT DO NOTHING")
    try:
        run = run_playbook("restore", {"dump": name})
        assert run.rc != 0
        assert "the live database psychochauffeur_bot was left as it was" in run.text, run.text[-3000:]
        assert psql("SELECT count(*) FROM users WHERE user_id = 4244") == "1"
        assert psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'") == "0"
        assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
    finally:
        host_sh(f"rm -f {DIR}/{name} && cp -a /root/good.sums {DIR}/SHA256SUMS")


@pytest.mark.runbook("Data recovery | Restore specific tables")
def test_restore_single_table(lab_host):
    _seed()
    assert run_playbook("backup", {"kinds": "daily"}).rc == 0
    psql("DELETE FROM users WHERE user_id = 4242")
    psql("UPDATE chats SET title = 'changed after the dump' WHERE chat_id = -4242")
    run = run_playbook("restore", {"tables": "users"})
    assert run.rc == 0, run.stdout[-3000:]
    assert psql("SELECT count(*) FROM users WHERE user_id = 4242") == "1"
    assert psql("SELECT title FROM chats WHERE chat_id = -4242") == "changed after the dump"  # untouched


def test_restore_rejects_bad_table_name(lab_host):
    run = run_playbook("restore", {"tables": "users; drop table chats"})
    assert run.rc != 0 and "tables must be comma-separated table names" in run.text
