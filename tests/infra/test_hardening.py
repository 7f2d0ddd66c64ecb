"""Role hardening on the host: sshd accepts its drop-in (sorting first), the firewall lets SSH in."""

import pytest


@pytest.fixture(autouse=True)
def _applied(require_role):
    require_role("hardening")


def test_ssh_dropin_sorts_first_and_is_valid(host, sh):
    dropins = sh("ls -1 /etc/ssh/sshd_config.d/").split()
    assert dropins and dropins[0].startswith("00-"), dropins
    sh("sshd -t")
    effective = sh("sshd -T -C user=root,host=localhost,addr=127.0.0.1")
    assert "passwordauthentication no" in effective
    assert "x11forwarding no" in effective
    assert host.service("ssh").is_running


def test_firewall_allows_ssh(host, sh):
    if not host.service("nftables").is_enabled:
        pytest.skip("firewall area disabled on this host")
    ruleset = sh("nft list ruleset")
    assert "tcp dport 22" in ruleset
