"""Role bot on the host: the live release, shared state, the sandboxed unit, the operator CLI, and (where the
sandbox unit runs) the bot answering /start through it."""

import json
import re
import shlex

import pytest

APP = "/opt/psychochauffeur-bot"
UNIT = "psychochauffeur-bot"
SANDBOX_UNIT = "psychochauffeur-sandbox"
SECURITY_MAX = 2.0
KEEP_RELEASES = 5


@pytest.fixture(autouse=True)
def _applied(require_role):
    require_role("bot")


@pytest.fixture(scope="module")
def current(host):
    link = host.file(f"{APP}/current")
    assert link.is_symlink
    return link.linked_to


def test_current_is_a_complete_release(host, sh, current, lab_site):
    assert re.fullmatch(rf"{APP}/releases/[A-Za-z0-9][A-Za-z0-9._+-]*", current)
    assert host.file(f"{current}/.release-complete").exists
    assert host.file(f"{current}/venv/bin/python").exists
    assert host.file(current).user == "root", "code is not writable by the service user"
    if lab_site:
        assert current.rsplit("/", 1)[1] == lab_site["version"]
    sh(f"cd {current}/wheelhouse && sha256sum --check --quiet SHA256SUMS")


def test_at_most_the_kept_releases(sh):
    assert 1 <= len(sh(f"ls -1 {APP}/releases").split()) <= KEEP_RELEASES


@pytest.mark.parametrize("name", ["logs", "config", "config_backup", "data", ".env"])
def test_runbook_paths_resolve_into_shared(host, current, name):
    assert host.file(f"{APP}/{name}").linked_to == f"{APP}/shared/{name}"
    assert host.file(f"{current}/{name}").linked_to == f"{APP}/shared/{name}"


def test_env_file_is_private(host):
    env = host.file(f"{APP}/shared/.env")
    assert (env.user, env.group, env.mode) == ("psychochauffeur", "psychochauffeur", 0o600)
    assert env.contains("^BOT_TOKEN=")
    assert host.file(f"{APP}/shared/config/private").mode == 0o700


def test_unit_active_enabled_and_verified(host, sh):
    service = host.service(UNIT)
    assert service.is_running
    assert service.is_enabled
    sh(f"systemd-analyze verify /etc/systemd/system/{UNIT}.service")
    props = sh(f"systemctl show -p Restart -p User -p ExecReload -p After {UNIT}")
    assert "Restart=on-failure" in props
    assert "User=psychochauffeur" in props
    assert "/bin/kill -HUP" in props
    assert "postgresql.service" in props


def test_unit_security_exposure(sh):
    report = sh(f"systemd-analyze security --no-pager {UNIT}.service")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", report)
    assert match, report
    assert float(match.group(1)) <= SECURITY_MAX, report


def test_one_poller_from_the_live_release(sh, current):
    pid = int(sh(f"systemctl show -P MainPID {UNIT}").strip())
    assert pid > 0
    assert sh(f"readlink /proc/{pid}/cwd").strip() == current
    assert sh(f"ps -o user= -p {pid}").strip() == "psychochauffeur"
    # [t]: the pattern must not match the shell running pgrep itself
    assert sh("pgrep -c -u psychochauffeur -f -- '-m bo[t] run'").strip() == "1"


def test_operator_cli(host, sh):
    migrations = json.loads(sh("psychochauffeur --json db migrate --check"))
    assert migrations["up_to_date"] is True
    health = host.run("psychochauffeur --json health")
    assert health.rc in (0, 1), health.stderr  # 1 = warning (e.g. CPU on a busy machine), 2 = critical
    checks = {c["name"]: c["status"] for c in json.loads(health.stdout)["checks"]}
    assert checks["process"] == "ok"
    assert checks["database"] == "ok"
    assert checks["bot_api"] == "ok"


def test_bot_answers_start_through_the_sandbox(host, sh):
    if not host.file(f"/etc/systemd/system/{SANDBOX_UNIT}.service").exists:
        pytest.skip("no sandbox on this host (bot_sandbox_enabled is false)")
    assert host.service(SANDBOX_UNIT).is_running
    env = host.file(f"{APP}/shared/.env").content_string
    base = re.search(r'^TELEGRAM_BASE_URL="(http://127\.0\.0\.1:\d+)/bot"$', env, re.MULTILINE)
    assert base, "the .env does not point the bot at the local sandbox"
    url = base.group(1)

    def api(method, path, body=None):
        cmd = f"curl -sS --fail-with-body -X {method} {url}{path}"
        if body is not None:
            cmd += f" -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}"
        return json.loads(sh(cmd))

    after = api("GET", "/control/health")["last_sent_id"] or 0
    api("POST", "/control/updates",
        {"text": "/start", "chat_id": 7001, "user_id": 7001, "chat_type": "private", "first_name": "Infra"})
    sent = api("GET", f"/control/wait?chat_id=7001&count=1&timeout=30&after={after}")
    assert sent[0]["method"] == "sendMessage"
    assert "Hi Infra" in sent[0]["params"]["text"]
