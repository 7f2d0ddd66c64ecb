"""restore.yml -e target_time=...: point-in-time recovery with pgBackRest (roles/pgbackrest archives the WAL).

Write A, note the time T, write B, restore to T: A is there, B is gone, the bot answers. A target_time that
is not a time, lies before the oldest backup or in the future is refused, nothing changed."""

from __future__ import annotations

import pytest
from pbhelpers import host_sh, psql, run_playbook, start_reply

A, B, C = -7501, -7502, -7503


def _chat(chat_id: int, title: str) -> None:
    psql(f"INSERT INTO chats(chat_id, chat_type, title) VALUES ({chat_id}, 'group', '{title}')")


def _present(chat_id: int) -> bool:
    return psql(f"SELECT count(*) FROM chats WHERE chat_id = {chat_id}") == "1"


def _bot_pid() -> str:
    return host_sh("systemctl show --property=MainPID --value psychochauffeur-bot").stdout.strip()


@pytest.mark.runbook("Data recovery | Point-in-time recovery (pgBackRest, WAL archiving)")
def test_restore_to_a_point_in_time(lab_host):
    psql(f"DELETE FROM chats WHERE chat_id IN ({A}, {B})")
    _chat(A, "pitr A: before T")
    target = psql("SELECT clock_timestamp()")  # after A's commit, before B's
    _chat(B, "pitr B: after T")
    run = run_playbook("restore", {"target_time": target})
    assert run.rc == 0, run.stdout[-3000:]
    assert _present(A)
    assert not _present(B)
    assert psql("SELECT pg_is_in_recovery()") == "f"
    assert start_reply()  # the bot answers a user's /start after the restore


@pytest.mark.parametrize(
    ("target_time", "error"),
    [
        ("yesterday-ish", "is not a time"),
        ("2001-02-03 04:05:06+00", "it is before the oldest backup"),
        ("2999-01-01 00:00:00+00", "it is in the future"),
    ],
)
@pytest.mark.runbook("Data recovery | Point-in-time recovery: a bad target_time is refused, nothing changed")
def test_bad_target_time_changes_nothing(lab_host, target_time, error):
    psql(f"DELETE FROM chats WHERE chat_id = {C}")
    _chat(C, "written before the refused restore")
    pid = _bot_pid()
    run = run_playbook("restore", {"target_time": target_time})
    assert run.rc != 0
    assert error in run.text, run.text[-2000:]
    assert "nothing was changed" in run.text
    assert _present(C)
    assert _bot_pid() == pid  # the bot was never stopped


@pytest.mark.runbook("Backups | Verify backup integrity")
def test_verify_backup_fails_on_a_corrupted_pgbackrest_file(lab_host):
    """verify-backup.yml runs pgbackrest check and verify; a backup file changed after the backup fails it
    (pgBackRest 2.45's verify exits 0 even then: the playbook reads its summary)."""
    assert run_playbook("backup").rc == 0
    good = run_playbook("verify-backup")
    assert good.rc == 0, good.text[-3000:]
    assert "pgBackRest stanza psychochauffeur checked and verified" in good.text
    newest_full = "ls -d /var/lib/pgbackrest/backup/psychochauffeur/*F | tail -n 1"
    target = host_sh(
        f"find $({newest_full})/pg_data -type f -printf '%s %p\\n' | sort -n | tail -n 1 | cut -d' ' -f2-"
    ).stdout.strip()
    host_sh(f"cp -p {target} /root/pristine-backup-file")
    try:
        host_sh(f"printf 'garbage' | dd of={target} bs=1 seek=64 conv=notrunc status=none")
        bad = run_playbook("verify-backup")
        assert bad.rc != 0
        assert "pgBackRest verify FAILED" in bad.text, bad.text[-3000:]
        assert "status: invalid" in bad.text
    finally:
        host_sh(f"cp -p /root/pristine-backup-file {target}")
