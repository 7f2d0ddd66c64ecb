"""Pieces that need no lab host: report templates, the ops filters, Fabric's helpers, playbook syntax."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import jinja2
import pytest
from invoke.exceptions import Exit
from pbhelpers import REPO

spec = importlib.util.spec_from_file_location("ops_filters", REPO / "playbooks/filter_plugins/ops.py")
ops = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ops)
sys.path.insert(0, str(REPO))
import fabfile  # noqa: E402

KINDS = ["daily", "weekly", "monthly", "diagnose", "outage", "logs"]


def _report(status: str) -> dict:
    checks = [{"name": "process", "status": status, "detail": "systemd unit | active"}]
    figures = ops.ops_evaluate([{"name": "memory", "value": 85.0, "unit": "%", "warn": 80, "crit": 90}])
    host = {
        "name": "pb1",
        "figures": figures,
        "checks": checks,
        "sections": [{"title": "Errors", "body": "x"}],
    }
    host["verdict"] = ops.ops_verdict(figures + checks)
    return {
        "title": "T",
        "generated_at": "now",
        "command": "c",
        "hosts": [host],
        "verdict": host["verdict"],
        "symptom": "memory",
        "evidence": ["/tmp/e.tar.gz"],
    }


@pytest.mark.parametrize("kind", KINDS)
def test_templates_render(kind):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(REPO / "templates"), trim_blocks=True, undefined=jinja2.StrictUndefined
    )
    text = env.get_template(f"{kind}.md.j2").render(report=_report("CRITICAL"))
    lines = text.splitlines()
    assert lines[0] == "# T"
    assert "CRITICAL" in lines[2]  # verdict first, before any detail
    assert text.index("Verdict") < text.index("| memory | 85.0%")
    assert "| memory | 85.0% | warn > 80%, crit > 90% | ⚠️ WARNING |" in text
    assert "systemd unit \\| active" in text  # table cells are escaped


def test_status_and_verdict():
    assert ops.ops_status(91, 80, 90) == "CRITICAL"
    assert ops.ops_status(85, 80, 90) == "WARNING"
    assert ops.ops_status(25, 30, 20, "higher") == "WARNING"
    assert ops.ops_status(None, 1, 2) == "UNKNOWN"
    assert ops.ops_verdict(["OK", "info", {"status": "WARNING"}]) == "WARNING"
    assert ops.ops_verdict([]) == "OK"
    with pytest.raises(ValueError):
        ops.ops_status(1, 2, 3, "sideways")


def test_history_align():
    assert ops.ops_history_align("a\nb\nc\n", "b") == ["a", "b"]
    assert ops.ops_history_align("", "c", "b") == ["b", "c"]
    assert ops.ops_history_align("a\nb\n", "c", "b") == ["a", "b", "c"]


def test_health_rows():
    health = {
        "status": "warning",
        "checks": [
            {"name": "memory", "status": "warning", "summary": "85% used", "value": 85.0},
            {"name": "process", "status": "ok", "summary": "running", "value": None},
        ],
        "thresholds": {"memory_percent": {"warning": 80, "critical": 90, "higher_is_worse": True}},
    }
    assert ops.ops_figures(health) == [
        {
            "name": "memory",
            "value": 85.0,
            "unit": "%",
            "warn": 80,
            "crit": 90,
            "better": "lower",
            "status": "WARNING",
        }
    ]
    assert ops.ops_health_check(health) == {"name": "health", "status": "WARNING", "detail": "85% used"}
    assert ops.ops_checks(None)[0]["status"] == "CRITICAL"


def test_fabfile_helpers():
    assert fabfile.parse_extra("symptom=memory, release=v2") == {"symptom": "memory", "release": "v2"}
    with pytest.raises(Exit):
        fabfile.parse_extra("nonsense")
    assert {"daily", "update", "rollback", "diagnose"} <= set(fabfile.procedures())


def test_fab_run_unknown_procedure_is_a_clear_error():
    proc = subprocess.run(
        [str(REPO / ".venv/bin/fab"), "run", "nope"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "unknown procedure 'nope'" in proc.stderr + proc.stdout


@pytest.mark.parametrize("playbook", sorted(p.name for p in (REPO / "playbooks").glob("*.yml")))
def test_playbook_syntax(playbook):
    proc = subprocess.run(
        [
            str(REPO / ".venv/bin/ansible-playbook"),
            "--syntax-check",
            "-i",
            "localhost,",
            f"playbooks/{playbook}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
