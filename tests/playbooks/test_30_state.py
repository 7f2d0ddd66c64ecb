"""Procedures that converge a state: the second run changes nothing."""

from __future__ import annotations

import json

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


@pytest.mark.runbook("Config recovery | Restore configuration from backup")
@pytest.mark.runbook("Config recovery | Regenerate default configuration")
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


def _parallel() -> int:
    return json.loads(host_sh(f"cat {CONFIG}").stdout)["video"]["max_parallel_downloads"]


def _stamped_backups() -> int:
    out = host_sh("ls /opt/psychochauffeur-bot/config_backup/ | grep -c 'Z.json$' || true").stdout
    return int(out.strip() or 0)


@pytest.mark.runbook("Config recovery | Every config change backed up (site.yml, config set)")
def test_every_config_change_leaves_a_restorable_copy(lab_host):
    """site.yml (bot_global_config) and `psychochauffeur config set` each back the previous file up to
    config_backup/; config-restore.yml puts the copy back; the same setting again changes nothing (checked on
    the command the role runs, not a second site.yml run: that takes minutes)."""
    setting = {"bot_global_config": {"video.max_parallel_downloads": 3}}
    host_sh("psychochauffeur config set video.max_parallel_downloads 2")
    stamped = _stamped_backups()
    site = run_playbook("site", setting)
    assert site.rc == 0, site.text[-3000:]
    assert _parallel() == 3 and _stamped_backups() == stamped + 1
    # the role's changed_when reads this command's answer: the value it already has changes nothing
    same = host_sh("psychochauffeur --json config set video.max_parallel_downloads 3").stdout
    assert json.loads(same)["action"] == "unchanged" and _stamped_backups() == stamped + 1
    host_sh("psychochauffeur config set video.max_parallel_downloads 5")  # an operator's change
    assert _parallel() == 5 and _stamped_backups() == stamped + 2
    restore = run_playbook("config-restore")
    assert restore.rc == 0 and _parallel() == 3  # the file before the last change
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
    host_sh("psychochauffeur config set video.max_parallel_downloads 2")
