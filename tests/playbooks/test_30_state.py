"""Procedures that converge a state: the second run changes nothing."""

from __future__ import annotations

import json

import pytest
from pbhelpers import host_sh, psql, run_playbook

CONFIG = "/opt/psychochauffeur-bot/config/global/global_config.json"


APP = "/opt/psychochauffeur-bot"
STAT_SQL = (
    "SELECT coalesce(extract(epoch FROM last_vacuum), 0), coalesce(extract(epoch FROM last_analyze), 0)"
    " FROM pg_stat_user_tables"
)
INDEXES_SQL = "SELECT string_agg(indexname, ',') FROM pg_indexes WHERE schemaname = 'public'"


@pytest.mark.runbook("Database maintenance | Vacuum, analyze, create/cleanup indexes, old data")
@pytest.mark.runbook("Performance | Query optimisation, index management")
def test_db_maintenance_has_its_effects(lab_host):
    """The real conditions: an expected index missing, an unused ad-hoc index, a message older than 30 days;
    db-maintenance.yml recreates the one, drops the other, deletes the old row, and vacuums/analyzes."""
    before = psql(f"{STAT_SQL} WHERE relname = 'messages'")
    psql("DROP INDEX IF EXISTS messages_timestamp_idx")
    psql("CREATE INDEX IF NOT EXISTS fidelity_unused_idx ON users (city)")
    psql(
        "INSERT INTO messages (chat_id, message_id, user_id, text, timestamp) VALUES"
        " (-4244, 1, 7101, 'old', now() - interval '40 days'), (-4244, 2, 7101, 'new', now())"
    )
    try:
        run = run_playbook("db-maintenance", {"older_than": "30d", "ops_drop_unused_indexes": True})
        assert run.rc == 0, run.stdout[-3000:]
        indexes = psql(INDEXES_SQL).split(",")
        assert "messages_timestamp_idx" in indexes and "fidelity_unused_idx" not in indexes
        assert psql("SELECT string_agg(text, ',') FROM messages WHERE chat_id = -4244") == "new"
        vacuumed, analyzed = map(float, psql(f"{STAT_SQL} WHERE relname = 'messages'").split("|"))
        old_vacuum, old_analyze = map(float, before.split("|"))
        assert vacuumed > old_vacuum and analyzed > old_analyze, (before, vacuumed, analyzed)
    finally:
        psql("DROP INDEX IF EXISTS fidelity_unused_idx")
        psql("DELETE FROM messages WHERE chat_id = -4244")


@pytest.mark.runbook("Operations | Documented tags (site.yml: one per role; harden.yml: one per area)")
@pytest.mark.runbook("Security | Security hardening (file permissions, config secrets; --tags permissions)")
def test_harden_permissions_tag_corrects_bad_modes(lab_host):
    """The documented `--tags permissions` (the runbook's chmods) puts back modes an operator got wrong, and
    only those: the other areas' tasks do not run."""
    host_sh(
        f"install -m 0666 /dev/null {APP}/config/fidelity_probe.py && install -m 0600 /dev/null"
        f" {APP}/config/fidelity_probe.sh && chmod 0644 $(readlink -f {APP}/.env)"
    )
    try:
        run = run_playbook("harden", cmdline="--tags permissions")
        assert run.rc == 0 and run.changed >= 2, run.stdout[-3000:]  # the pattern and the secret modes
        assert all("ssh" not in t.lower() and "firewall" not in t.lower() for t in run.changed_tasks)
        modes = host_sh(
            f"stat -L -c %a {APP}/config/fidelity_probe.py {APP}/config/fidelity_probe.sh {APP}/.env"
        ).stdout.split()
        assert modes == ["644", "755", "600"]
        again = run_playbook("harden", cmdline="--tags permissions")
        assert again.rc == 0 and again.changed == 0, again.changed_tasks
    finally:
        host_sh(f"rm -f {APP}/config/fidelity_probe.py {APP}/config/fidelity_probe.sh")


@pytest.mark.runbook("Database maintenance | Vacuum, analyze, create/cleanup indexes, old data")
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
    site = run_playbook("site", setting, cmdline="--tags bot")  # the bot role only: not the rest
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
