"""Role monitoring on the host: the health-check timer is scheduled and its service unit is valid."""

import pytest

UNIT = "psychochauffeur-monitor"


@pytest.fixture(autouse=True)
def _applied(require_role):
    require_role("monitoring")


def test_health_timer_scheduled(host, sh):
    timer = host.service(f"{UNIT}.timer")
    assert timer.is_enabled
    assert timer.is_running
    sh(f"systemd-analyze verify /etc/systemd/system/{UNIT}.service /etc/systemd/system/{UNIT}.timer")
