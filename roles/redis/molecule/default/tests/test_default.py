"""Role redis on the lab host after converge (redis, then the bot with Redis enabled) and idempotence.

The sandbox (psychochauffeur-sandbox.service) stands in for Telegram/OpenAI; the bot talks to the real Redis.
"""

import json
import shlex

import pytest

PASSWORD = "molecule-redis-password-0123"  # noqa: S105 - converge.yml, a lab host
SANDBOX = "http://127.0.0.1:8081"
ENV_FILE = "/opt/psychochauffeur-bot/shared/.env"


def sh(host, cmd):
    out = host.run(cmd)
    assert out.rc == 0, f"{cmd}: rc={out.rc}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def redis(host, *args, auth=True, address="127.0.0.1"):
    env = f"REDISCLI_AUTH={PASSWORD} " if auth else ""
    return host.run(f"{env}redis-cli --no-auth-warning -h {address} -p 6379 {shlex.join(args)}")


def sandbox(host, method, path, body=None):
    cmd = f"curl -sS --fail-with-body -X {method} {SANDBOX}{path}"
    if body is not None:
        cmd += f" -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}"
    return json.loads(sh(host, cmd))


def test_redis_runs_and_starts_at_boot(host):
    service = host.service("redis-server")
    assert service.is_running and service.is_enabled


def test_every_command_needs_the_password(host):
    refused = redis(host, "PING", auth=False)
    assert "NOAUTH" in refused.stdout + refused.stderr
    assert redis(host, "PING").stdout.strip() == "PONG"
    wrong = host.run("REDISCLI_AUTH=wrong-password-000000 redis-cli --no-auth-warning -h 127.0.0.1 PING")
    assert "WRONGPASS" in wrong.stdout + wrong.stderr


def test_bound_to_loopback_only(host):
    listening = [s for s in host.socket.get_listening_sockets() if s.endswith(":6379")]
    assert listening and all(s.startswith(("tcp://127.0.0.1:", "tcp://::1:")) for s in listening), listening
    outside = sh(host, "hostname -I").split()[0]  # the host's own non-loopback address
    out = redis(host, "PING", address=outside)
    assert out.stdout.strip() != "PONG" and "refused" in (out.stdout + out.stderr).lower()


def test_config_holds_the_password_privately_and_caps_memory(host):
    conf = host.file("/etc/redis/redis.conf")
    assert conf.mode == 0o640 and conf.user == "redis" and conf.group == "redis"
    assert redis(host, "CONFIG", "GET", "maxmemory").stdout.split() == ["maxmemory", str(32 * 2**20)]
    policy = redis(host, "CONFIG", "GET", "maxmemory-policy").stdout.split()
    assert policy == ["maxmemory-policy", "allkeys-lru"]


def test_the_bot_env_points_at_redis_and_sets_the_pool(host):
    env = sh(host, f"cat {ENV_FILE}")
    assert f'REDIS_URL="redis://:{PASSWORD}@127.0.0.1:6379/0"' in env
    assert 'BOT_DB_POOL_SIZE="8"' in env


@pytest.mark.runbook("Performance | Caching (Redis, optional)")
def test_the_bot_answers_and_counts_its_quota_in_redis(host):
    assert redis(host, "--scan", "--pattern", "psychochauffeur:quota:gpt:*").stdout.strip() == ""
    last = sandbox(host, "GET", "/control/health")["last_sent_id"] or 0
    sandbox(host, "POST", "/control/updates",
            {"text": "/ask hello", "chat_id": 4342, "user_id": 4342, "chat_type": "private"})
    sent = sandbox(host, "GET", f"/control/wait?chat_id=4342&count=1&timeout=30&after={last}")
    assert sent[0]["params"]["text"].startswith("Sandbox answer:"), sent
    keys = redis(host, "--scan", "--pattern", "psychochauffeur:quota:gpt:*").stdout.split()
    assert "psychochauffeur:quota:gpt:per_user_per_minute:4342" in keys, keys
    logs = sh(host, "cat /opt/psychochauffeur-bot/shared/logs/general.log")
    assert "redis is up" in logs
