"""Procedures that converge a state: the second run changes nothing."""

from __future__ import annotations

import pytest
from pbhelpers import host_sh, run_playbook

CONFIG = "/opt/psychochauffeur-bot/config/global/global_config.json"


@pytest.mark.parametrize("playbook", ["db-maintenance", "harden"])
def test_second_run_changes_nothing(lab_host, playbook):
    assert run_playbook(playbook).rc == 0
    second = run_playbook(playbook)
    assert second.rc == 0 and second.changed == 0, second.changed_tasks


def _host_state() -> str:
    """What a --check run must leave alone: live release, releases, history, config, the bot's process."""
    return host_sh(
        "readlink /opt/psychochauffeur-bot/current; ls /opt/psychochauffeur-bot/releases;"
        " cat /opt/psychochauffeur-bot/release-history 2>/dev/null; sha256sum < " + CONFIG + ";"
        " systemctl show --property=MainPID --value psychochauffeur-bot"
    ).stdout


def test_check_mode_is_safe(lab_host):
    """--check runs end without error and change nothing on the host (rollback --check: test_60)."""
    before = _host_state()
    for playbook, extra in [
        ("update", {}),
        ("db-maintenance", {}),
        ("weekly", {}),
        ("config-restore", {"reset": "true"}),
    ]:
        run = run_playbook(playbook, extra, check=True)
        assert run.rc == 0, (playbook, run.stdout[-2000:])
        assert _host_state() == before, playbook


def test_config_reset_and_restore(lab_host):
    is_default = (
        "/opt/psychochauffeur-bot/current/venv/bin/python -c 'import json, sys;"
        " from bot.settings import default_global_config as d;"
        f' sys.exit(0 if json.load(open("{CONFIG}")) == d() else 1)\''
    )
    edit = f"import json;p='{CONFIG}';d=json.load(open(p));d['ops_test']=1;json.dump(d,open(p,'w'))"
    host_sh(f"python3 -c {edit!r}")
    assert host_sh(is_default, check=False).returncode == 1
    reset = run_playbook("config-restore", {"reset": "true"})
    assert reset.rc == 0 and reset.changed > 0
    assert host_sh(is_default, check=False).returncode == 0  # the shipped defaults again
    assert run_playbook("config-restore", {"reset": "true"}).changed == 0
    # config_backup/ now holds the modified file: restoring brings it back, a second restore changes nothing
    restore = run_playbook("config-restore")
    assert restore.rc == 0 and "ops_test" in host_sh(f"cat {CONFIG}").stdout
    assert run_playbook("config-restore").changed == 0
    assert run_playbook("config-restore", {"reset": "true"}).rc == 0
