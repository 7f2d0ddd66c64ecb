"""Backups: a dump verifies; a corrupted dump (flipped bytes, truncated, empty) fails verification and is
refused by restore.yml when named (-e dump=...; without it restore.yml skips it for an older good one)."""

from __future__ import annotations

import pytest
from pbhelpers import host_sh, run_playbook

DIR = "/var/backups/psychochauffeur-bot"


@pytest.mark.runbook("Backups | Daily / weekly backup on demand")
def test_backup_then_verify(lab_host):
    assert run_playbook("backup").rc == 0
    run = run_playbook("verify-backup")
    assert run.rc == 0, run.stdout[-3000:]


@pytest.mark.runbook("Backups | Verify backup integrity")
@pytest.mark.runbook("Data recovery | Refuse a dump that fails verification")
@pytest.mark.parametrize("corruption", ["flip", "truncate", "empty"])
def test_corrupt_dump_fails_verification(lab_host, corruption):
    assert run_playbook("backup", {"kinds": "weekly"}).rc == 0
    dump = host_sh(f"ls -1 {DIR}/backup_weekly_*.dump | tail -n 1").stdout.strip()
    host_sh(f"cp -a {dump} /root/good.dump")
    damage = {
        "flip": f"printf '\\xff\\xff\\xff\\xff' | dd of={dump} bs=1 seek=200 conv=notrunc status=none",
        "truncate": f"truncate -s $(( $(stat -c %s {dump}) / 2 )) {dump}",
        "empty": f": > {dump}",
    }[corruption]
    host_sh(damage)
    try:
        assert run_playbook("verify-backup").rc != 0
        refused = run_playbook("restore", {"dump": dump.rsplit("/", 1)[-1]})
        assert refused.rc != 0 and "refusing to restore" in refused.text
        assert (
            host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
        )  # nothing stopped
    finally:
        host_sh(f"cp -a /root/good.dump {dump}")
