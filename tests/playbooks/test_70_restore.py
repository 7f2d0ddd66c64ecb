"""restore.yml: a good dump brings back deleted rows, whole or for single tables."""

from __future__ import annotations

import pytest
from pbhelpers import psql, run_playbook


def _seed() -> None:
    psql(
        "INSERT INTO chats(chat_id, chat_type, title) VALUES (-4242, 'group', 'ops restore test') "
        "ON CONFLICT DO NOTHING"
    )
    psql("INSERT INTO users(user_id, username) VALUES (4242, 'opsrestore') ON CONFLICT DO NOTHING")


@pytest.mark.runbook("Data recovery | Restore from latest backup")
def test_restore_whole_database(lab_host):
    _seed()
    assert run_playbook("backup", {"kinds": "weekly"}).rc == 0
    psql("DELETE FROM chats WHERE chat_id = -4242")
    psql("DELETE FROM users WHERE user_id = 4242")
    run = run_playbook("restore")
    assert run.rc == 0, run.stdout[-3000:]
    assert psql("SELECT count(*) FROM chats WHERE chat_id = -4242") == "1"
    assert psql("SELECT count(*) FROM users WHERE user_id = 4242") == "1"


@pytest.mark.runbook("Data recovery | Restore specific tables")
def test_restore_single_table(lab_host):
    _seed()
    assert run_playbook("backup", {"kinds": "weekly"}).rc == 0
    psql("DELETE FROM users WHERE user_id = 4242")
    psql("UPDATE chats SET title = 'changed after the dump' WHERE chat_id = -4242")
    run = run_playbook("restore", {"tables": "users"})
    assert run.rc == 0, run.stdout[-3000:]
    assert psql("SELECT count(*) FROM users WHERE user_id = 4242") == "1"
    assert psql("SELECT title FROM chats WHERE chat_id = -4242") == "changed after the dump"  # untouched


def test_restore_rejects_bad_table_name(lab_host):
    run = run_playbook("restore", {"tables": "users; drop table chats"})
    assert run.rc != 0 and "tables must be comma-separated table names" in run.text
