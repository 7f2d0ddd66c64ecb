"""Role backup on the host: the pg_dump timers are scheduled and their units are valid."""

import pytest

UNITS = ["psychochauffeur-backup-daily", "psychochauffeur-backup-weekly", "psychochauffeur-backup-verify"]


@pytest.fixture(autouse=True)
def _applied(require_role):
    require_role("backup")


@pytest.mark.parametrize("unit", UNITS)
def test_timer_scheduled(host, sh, unit):
    timer = host.service(f"{unit}.timer")
    assert timer.is_enabled
    assert timer.is_running  # a timer unit is "active (waiting)"
    assert sh(f"systemctl show -P NextElapseUSecRealtime {unit}.timer").strip() != ""
    sh(f"systemd-analyze verify /etc/systemd/system/{unit}.service /etc/systemd/system/{unit}.timer")
