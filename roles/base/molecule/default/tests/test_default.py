"""Role base, verified on the converged lab host (values from converge.yml)."""

import pytest


def test_service_account(host):
    user = host.user("psychochauffeur")
    assert user.exists
    assert user.group == "psychochauffeur"
    assert user.home == "/opt/psychochauffeur-bot"
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000, "a system account"
    assert host.run("sudo -n -u psychochauffeur true").rc == 0


@pytest.mark.parametrize("name", ["acl", "ca-certificates", "curl", "logrotate", "rsync", "tzdata", "less"])
def test_packages(host, name):
    assert host.package(name).is_installed


def test_timezone(host):
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Kyiv"
    assert host.run("date +%Z").stdout.strip() in ("EET", "EEST")


def test_journald_limits_are_live(host):
    conf = host.file("/etc/systemd/journald.conf.d/50-psychochauffeur.conf")
    assert conf.contains("^SystemMaxUse=64M$")
    assert conf.contains("^MaxRetentionSec=2week$")
    assert host.file("/var/log/journal").is_directory
    # The restarted journald writes to the persistent journal.
    marker = "base-role-verify-marker"
    host.run(f"logger -t verify {marker}")
    out = host.run(f"journalctl --flush; journalctl -t verify -o cat --no-pager | grep -c {marker}")
    assert out.rc == 0
    assert host.run("find /var/log/journal -name 'system*.journal' | grep -q .").rc == 0


def test_unattended_upgrades(host):
    assert host.package("unattended-upgrades").is_installed
    dump = host.run("apt-config dump").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    patterns = [line for line in dump.splitlines() if line.startswith("Unattended-Upgrade::Origins-Pattern")]
    assert any("Debian-Security" in line for line in patterns)
    # the packaged 50unattended-upgrades list is replaced (#clear), not extended
    assert not any('label=Debian"' in line for line in patterns)
    assert host.service("apt-daily-upgrade.timer").is_enabled
    dry = host.run("unattended-upgrade --dry-run")
    assert dry.rc == 0, dry.stderr
