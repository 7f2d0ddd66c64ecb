"""Role base on the host: the service account, base packages, bounded journald."""

import pytest


@pytest.fixture(autouse=True)
def _applied(require_role):
    require_role("base")


def test_service_account(host):
    user = host.user("psychochauffeur")
    assert user.exists
    assert user.group == "psychochauffeur"
    assert user.home == "/opt/psychochauffeur-bot"
    assert user.shell in ("/usr/sbin/nologin", "/bin/false")
    assert user.uid < 1000, "a system account"


@pytest.mark.parametrize("name", ["acl", "ca-certificates", "curl", "logrotate", "tzdata"])
def test_base_packages(host, name):
    assert host.package(name).is_installed


def test_journald_is_bounded(host):
    dropin = host.file("/etc/systemd/journald.conf.d/50-psychochauffeur.conf")
    assert dropin.exists
    assert dropin.contains("^SystemMaxUse=")
    assert host.service("systemd-journald").is_running


def test_timezone_is_set(host):
    assert host.file("/etc/localtime").linked_to.startswith("/usr/share/zoneinfo/")
