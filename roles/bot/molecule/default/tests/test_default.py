"""Role bot, verified on the lab host after converge, idempotence and side_effect.yml (second version).

The sandbox (python -m bot.sandbox) runs on the host; the bot's Telegram/OpenAI/weather traffic goes there.
"""

import json
import re
import shlex

import pytest

APP = "/opt/psychochauffeur-bot"
SANDBOX = "http://127.0.0.1:8081"
SECURITY_MAX = 2.0


def sh(host, cmd):
    out = host.run(cmd)
    assert out.rc == 0, f"{cmd}: rc={out.rc}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def sandbox(host, method, path, body=None):
    """Call the sandbox control API from inside the host (it listens on 127.0.0.1 only)."""
    cmd = f"curl -sS --fail-with-body -X {method} {SANDBOX}{path}"
    if body is not None:
        cmd += f" -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}"
    return json.loads(sh(host, cmd))


def main_pid(host, unit):
    return int(sh(host, f"systemctl show -P MainPID {unit}").strip())


@pytest.fixture(scope="module")
def releases(host):
    current = host.file(f"{APP}/current")
    previous = host.file(f"{APP}/previous")
    return current.linked_to, previous.linked_to


def test_current_is_the_second_version_and_previous_the_first(host, releases):
    current, previous = releases
    assert current.startswith(f"{APP}/releases/") and current.endswith("-m2")
    assert previous == current.removesuffix("-m2")
    for release in (current, previous):
        assert host.file(f"{release}/.release-complete").exists
        assert host.file(f"{release}/venv/bin/python").exists
        assert host.file(release).user == "root"
    assert host.file(f"{APP}/current").linked_to == current
    # relative link, so the app dir could move
    assert sh(host, f"readlink {APP}/current").strip() == "releases/" + current.rsplit("/", 1)[1]


def test_old_releases_pruned_to_five(host, releases):
    names = sorted(sh(host, f"ls -1 {APP}/releases").split())
    current, previous = (r.rsplit("/", 1)[1] for r in releases)
    assert len(names) == 5, names
    assert {current, previous, "old-3", "old-4", "old-5"} == set(names)


def test_release_venv_was_installed_offline_from_its_wheelhouse(host, releases):
    current, _ = releases
    assert host.file(f"{current}/wheelhouse/SHA256SUMS").exists
    sh(host, f"cd {current}/wheelhouse && sha256sum --check --quiet SHA256SUMS")
    freeze = sh(host, f"{current}/venv/bin/pip freeze --disable-pip-version-check")
    assert "psychochauffeur-bot" in freeze
    assert "python-telegram-bot==" in freeze


def test_shared_links(host, releases):
    current, _ = releases
    for name in ("logs", "config", "config_backup", "data", ".env"):
        assert host.file(f"{APP}/{name}").linked_to == f"{APP}/shared/{name}"
        assert host.file(f"{current}/{name}").linked_to == f"{APP}/shared/{name}"
    assert host.file(f"{APP}/shared/config/private").mode == 0o700
    assert host.file(f"{APP}/shared/config/global/global_config.json").exists


def test_env_file_is_private(host):
    env = host.file(f"{APP}/shared/.env")
    assert env.user == "psychochauffeur"
    assert env.group == "psychochauffeur"
    assert env.mode == 0o600
    assert env.contains(f'^TELEGRAM_BASE_URL="{SANDBOX}/bot"$')
    assert env.contains('^DATABASE_URL="postgresql://psychochauffeur@/psychochauffeur_bot')


@pytest.mark.parametrize("unit", ["psychochauffeur-bot", "psychochauffeur-sandbox"])
def test_units_active_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize("unit", ["psychochauffeur-bot", "psychochauffeur-sandbox"])
def test_units_verify_and_security_score(host, unit):
    sh(host, f"systemd-analyze verify /etc/systemd/system/{unit}.service")
    report = host.run(f"systemd-analyze security --no-pager {unit}.service")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", report.stdout)
    assert match, report.stdout + report.stderr
    assert float(match.group(1)) <= SECURITY_MAX, report.stdout
    props = sh(host, f"systemctl show -p User -p ProtectSystem -p CapabilityBoundingSet -p Restart {unit}")
    assert "User=psychochauffeur" in props
    assert "ProtectSystem=strict" in props
    assert "Restart=on-failure" in props
    assert "CapabilityBoundingSet=\n" in props + "\n"


def test_bot_runs_the_current_release_as_the_service_user_once(host, releases):
    current, _ = releases
    pid = main_pid(host, "psychochauffeur-bot")
    assert pid > 0
    assert sh(host, f"readlink /proc/{pid}/cwd").strip() == current
    assert sh(host, f"ps -o user= -p {pid}").strip() == "psychochauffeur"
    # exactly one poller for the token
    assert sh(host, "pgrep -c -u psychochauffeur -f -- '-m bo[t] run'").strip() == "1"


def test_no_tcp_listener_but_the_loopback_sandbox(host):
    assert host.socket("tcp://127.0.0.1:8081").is_listening
    assert not host.socket("tcp://0.0.0.0:8081").is_listening


def test_migrations_applied(host):
    out = json.loads(sh(host, "psychochauffeur --json db migrate --check"))
    assert out["up_to_date"] is True


def test_cli_health_answers(host):
    out = host.run("psychochauffeur --json health")
    assert out.rc in (0, 1), out.stderr  # 1 = a warning (e.g. CPU of the shared lab machine)
    report = json.loads(out.stdout)
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks["process"] == "ok"
    assert checks["database"] == "ok"
    assert checks["bot_api"] == "ok"


def test_cli_refuses_other_users(host):
    out = host.run("runuser -u nobody -- psychochauffeur health")
    assert out.rc != 0
    assert "run as root or as psychochauffeur" in out.stderr


def test_bot_answers_start_through_the_sandbox(host):
    last = sandbox(host, "GET", "/control/health")["last_sent_id"] or 0
    sandbox(host, "POST", "/control/updates",
            {"text": "/start", "chat_id": 4242, "user_id": 4242, "chat_type": "private", "first_name": "Mol"})
    sent = sandbox(host, "GET", f"/control/wait?chat_id=4242&count=1&timeout=30&after={last}")
    assert sent[0]["method"] == "sendMessage"
    assert "Hi Mol" in sent[0]["params"]["text"]


def test_reload_reopens_logs_without_restart(host):
    pid = main_pid(host, "psychochauffeur-bot")
    logs = f"{APP}/shared/logs"
    sh(host, f"mv {logs}/general.log {logs}/general.log.1")
    sh(host, "systemctl reload psychochauffeur-bot")
    last = sandbox(host, "GET", "/control/health")["last_sent_id"] or 0
    sandbox(host, "POST", "/control/updates", {"text": "/ping", "chat_id": 4243, "user_id": 4243,
                                               "chat_type": "private"})
    sandbox(host, "GET", f"/control/wait?chat_id=4243&count=1&timeout=30&after={last}")
    assert main_pid(host, "psychochauffeur-bot") == pid
    log = host.file(f"{logs}/general.log")
    assert log.exists
    assert log.user == "psychochauffeur"
    for line in log.content_string.splitlines():
        json.loads(line)  # JSON lines
