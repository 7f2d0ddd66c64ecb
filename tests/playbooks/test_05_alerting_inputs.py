"""site.yml's required inputs, on the control node only (no lab host): alerting must have a channel of its own
outside the lab, and a malformed webhook URL is refused without being printed."""

from __future__ import annotations

import pytest
from pbhelpers import control_node_playbook


@pytest.mark.runbook("Monitoring | Alerting is a required input outside the lab (refused before any change)")
@pytest.mark.parametrize("inventory", ["production", "staging"])
def test_site_refuses_an_inventory_without_alerting(inventory):
    """The shipped example inventories set no webhook: site.yml stops on the control node with the variable's
    name and an example, before any host is contacted (their addresses are documentation ranges)."""
    rc, out = control_node_playbook(inventory, "site")
    assert rc != 0, out
    assert "monitoring_alert_webhook_url is required for this inventory" in out
    assert 'e.g. monitoring_alert_webhook_url: "{{ vault_monitoring_alert_webhook_url }}"' in out
    assert "Gathering Facts" not in out
    recap = out.split("PLAY RECAP")[-1]
    assert "changed=0" in recap and "unreachable=0" in recap and "failed=1" in recap


def test_site_refuses_a_malformed_webhook_without_printing_it():
    rc, out = control_node_playbook(
        "production", "site", "-e", "monitoring_alert_webhook_url=ftp://hooks.example.org/secretTokenPart"
    )
    assert rc != 0, out
    assert "monitoring_alert_webhook_url must be an http(s) URL (e.g. https://hooks.example.org/" in out
    assert "secretTokenPart" not in out
    assert "Gathering Facts" not in out and "changed=0" in out.split("PLAY RECAP")[-1]
