"""Pieces that need no lab host: report templates, the ops filters, Fabric's helpers, playbook syntax."""

from __future__ import annotations

import importlib.util
import json
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
    apis = {"name": "external_apis", "status": "critical", "summary": "100.0% failing", "value": 100.0}
    thresholds = {"external_api_failure_percent": {"warning": 0, "critical": 50, "higher_is_worse": True}}
    (row,) = ops.ops_figures({"checks": [apis], "thresholds": thresholds})
    assert (row["unit"], row["warn"], row["crit"], row["status"]) == ("% failing", 0, 50, "CRITICAL")
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


def _bot_unit(**overrides) -> str:
    """psychochauffeur-bot.service as role bot renders it (its sandboxing.j2 included)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(REPO / "roles/bot/templates"), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    values = {"ansible_managed": "managed", "bot_user": "psychochauffeur", "bot_group": "psychochauffeur",
              "bot_current_link": "/opt/x/current", "bot_env_file": "/opt/x/.env", "bot_log_dir": "/l",
              "bot_data_dir": "/d", "bot_shared_dir": "/s", "bot_sandbox_enabled": False,
              "bot_private_users": True, "bot_ip_deny_private": True, "bot_ip_allow": [],
              "bot_dns_servers": [], "bot_sandbox_here": False, "bot_peers": ["h1"],
              "inventory_hostname": "h1", "bot_active_record_file": "/etc/ps/active"} | overrides
    # vars/main.yml adds a database or sandbox on another host to bot_ip_allow
    values.setdefault("bot_ip_allow_effective", values["bot_ip_allow"])
    return env.get_template("psychochauffeur-bot.service.j2").render(**values)


def test_bot_unit_starts_only_on_the_recorded_active_peer():
    """Several peers: ExecCondition skips a start on a standby (one poller per token); one host: none."""
    assert "ExecCondition" not in _bot_unit()
    unit = _bot_unit(bot_peers=["h1", "h2"])
    lines = [line for line in unit.splitlines() if line.startswith("ExecCondition=")]
    assert lines == ["ExecCondition=/bin/sh -c 'test ! -e /etc/ps/active || grep -qx h1 /etc/ps/active'"]


def test_bot_unit_denies_private_destinations():
    """Defence in depth against SSRF: the kernel refuses the LAN and metadata even if the bot is fooled."""
    import ipaddress

    unit = _bot_unit()
    denied = [ipaddress.ip_network(n) for line in unit.splitlines() if line.startswith("IPAddressDeny=")
              for n in line.split("=", 1)[1].split()]
    for address in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                    "224.0.0.1", "fd00::1", "fe80::1", "ff02::1"):
        assert any(ipaddress.ip_address(address) in net for net in denied), address
    for address in ("127.0.0.1", "::1", "149.154.167.220", "2001:67c:4e8:f004::9"):  # loopback, Telegram
        assert not any(ipaddress.ip_address(address) in net for net in denied), address
    assert "IPAddressAllow" not in unit
    allowing = _bot_unit(bot_ip_allow=["10.0.5.20"], bot_dns_servers=["192.168.1.1", "10.0.5.20"])
    assert [line for line in allowing.splitlines() if line.startswith("IPAddressAllow=")] == [
        "IPAddressAllow=10.0.5.20", "IPAddressAllow=192.168.1.1"]
    assert "IPAddressDeny" not in _bot_unit(bot_ip_deny_private=False)


def _ansible(tmp_path, playbook: str, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "play.yml"
    path.write_text(playbook)
    return subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", "-c", "local", str(path), *extra],
        cwd=REPO, capture_output=True, text=True,
        env={"PATH": f"{REPO / '.venv/bin'}:/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
             "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})


@pytest.mark.parametrize("bad", [
    {"redis_password": ""},
    {"redis_password": "short"},
    {"redis_password": "has a space in it 0123"},
    {"redis_bind": ["0.0.0.0"]},
    {"redis_bind": ["127.0.0.1", "10.0.0.5"]},
    {"redis_maxmemory": "lots"},
    {"redis_port": 70000},
])
def test_role_redis_refuses_bad_input_before_changing_anything(tmp_path, bad):
    values = {"redis_password": "a-good-password-0123456"} | bad
    play = ("- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: redis\n      vars:\n"
            + "".join(f"        {k}: {json.dumps(v)}\n" for k, v in values.items()))
    proc = _ansible(tmp_path, play)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "role redis: redis_password must be set" in out and "Nothing was changed" in out
    assert "changed=0" in out and "Install redis-server" not in out
    assert values["redis_password"] not in out or not values["redis_password"]


def test_role_bot_derives_redis_url_only_when_redis_is_enabled(tmp_path):
    defaults = REPO / "roles/bot/defaults/main.yml"
    play = (f"- hosts: localhost\n  gather_facts: false\n  vars_files: [{defaults}]\n  tasks:\n"
            "    - ansible.builtin.debug:\n        msg: \"URL=[{{ bot_redis_url | trim }}]\"\n")
    assert "URL=[]" in _ansible(tmp_path, play).stdout
    enabled = _ansible(tmp_path, play, "-e", "redis_enabled=true", "-e", "redis_password=p/w@x-0123456789ab",
                       "-e", "redis_port=6380").stdout
    assert "URL=[redis://:p%2Fw%40x-0123456789ab@127.0.0.1:6380/0]" in enabled, enabled

def _list_tasks(playbook: str, tags: str) -> list[str]:
    """`ansible-playbook --list-tasks --tags TAGS`: the task lines it would run (role and name)."""
    proc = subprocess.run(
        [
            str(REPO / ".venv/bin/ansible-playbook"),
            "--list-tasks",
            "--tags",
            tags,
            "-i",
            "localhost,",
            f"playbooks/{playbook}.yml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # argument spec validation is tagged `always`: it runs with any tag, for every role
    lines = [line.strip() for line in proc.stdout.splitlines() if "TAGS: [" in line]
    return [line for line in lines if not line.startswith("play #") and "always" not in line]


@pytest.mark.runbook("Operations | Documented tags (site.yml: one per role; harden.yml: one per area)")
def test_documented_tags_select_their_tasks():
    """harden.yml documents --tags permissions (and ssh, sysctl, firewall); site.yml tags roles by name."""
    areas = {
        "permissions": "Application file permissions",
        "ssh": "SSH daemon",
        "sysctl": "Kernel network parameters",
        "firewall": "Firewall (nftables)",
    }
    for area, name in areas.items():
        tasks = _list_tasks("harden", area)
        assert len(tasks) == 1 and name in tasks[0], (area, tasks)
    bot = _list_tasks("site", "bot")
    assert any(t.startswith("bot : ") for t in bot), bot
    assert all(t.startswith("bot : ") or "Verify the bot answers" in t for t in bot), bot
    for role in ("base", "postgresql", "logrotate", "backup", "monitoring"):
        tasks = _list_tasks("site", role)
        assert tasks and all(t.startswith(f"{role} : ") for t in tasks), (role, tasks)


def test_usage_rows():
    """`psychochauffeur usage` in a report: a failed run is a WARNING with its error, a trend note INFO."""
    failed = ops.ops_usage_check({"rc": 1, "data": {}, "error": "database unreachable (DB001): refused"})
    assert failed["status"] == "WARNING" and failed["detail"] == "database unreachable (DB001): refused"
    trend = {"current": 4, "previous": 2, "change_percent": 100.0}
    data = {
        "trends": {"active_users": trend, "commands": trend, "errors": trend},
        "active_users": {"daily_average": 1.5},
        "top_commands": [{"command": "weather", "uses": 4}],
        "notes": ["command usage up 100.0% (2 -> 4)"],
    }
    row = ops.ops_usage_check({"rc": 0, "data": data})
    assert row["status"] == "INFO" and "top /weather 4" in row["detail"]
    assert row["detail"].endswith("command usage up 100.0% (2 -> 4)")
    assert ops.ops_usage_check({"rc": 0, "data": {**data, "notes": []}})["status"] == "OK"
    assert ops.ops_usage_summary({"error": "x"}) == {"error": "x"}
