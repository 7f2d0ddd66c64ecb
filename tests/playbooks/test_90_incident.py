"""incident.yml (last: it isolates the host): bot stopped, egress closed, evidence fetched; then lifted."""

from __future__ import annotations

import tarfile

import pytest
from pbhelpers import REPO, host_sh, run_playbook


def test_incident_needs_confirmation(lab_host):
    run = run_playbook("incident")
    assert run.rc != 0 and "-e confirm=yes" in run.text
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"


@pytest.mark.runbook("Security | Incident response: isolate, preserve evidence")
def test_incident_isolates_and_preserves_evidence(lab_host):
    run = run_playbook("incident", {"confirm": "yes"})
    assert run.rc == 0, run.stdout[-3000:]
    assert host_sh("systemctl is-active psychochauffeur-bot", check=False).stdout.strip() != "active"
    assert "psychochauffeur_incident" in host_sh("nft list tables").stdout
    bundle = sorted((REPO / "reports/evidence").glob(f"incident-*-{lab_host}.tar.gz"))[-1]
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    assert {"./db.dump", "./files.sha256", "./MANIFEST.sha256", "./logs"} <= names
    lifted = run_playbook("incident", {"release_isolation": "true"})
    assert lifted.rc == 0
    assert host_sh("systemctl is-active psychochauffeur-bot").stdout.strip() == "active"
