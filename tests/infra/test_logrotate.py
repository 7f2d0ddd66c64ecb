"""Role logrotate on the host: the runbook's /etc/logrotate.d/psychochauffeur-bot, accepted by logrotate."""

import pytest

CONF = "/etc/logrotate.d/psychochauffeur-bot"


@pytest.fixture(autouse=True)
def _applied(require_role):
    require_role("logrotate")


def test_config_as_the_runbook_gives_it(host):
    conf = host.file(CONF)
    assert conf.exists
    for directive in ("daily", "rotate 30", "compress", "delaycompress", "missingok", "notifempty"):
        assert conf.contains(rf"^\s*{directive}\s*$"), directive
    assert conf.contains(r"^\s*create 0*644 psychochauffeur psychochauffeur\s*$")
    assert conf.contains("systemctl reload psychochauffeur-bot")


def test_logrotate_parses_it(sh):
    sh(f"logrotate -d {CONF}")  # debug mode: parse and plan only, rotates nothing
