"""Three lab hosts on the lab bridge: db1 (db_hosts: the database host), bot1 (the active poller) and bot2
(a warm standby), converged together by playbooks/site.yml with the lab inventory (its multi-host mode: a
db_hosts host is up). Messages pushed through the sandbox (bot1's, the one fake Telegram of both bots) are
answered and stored on db1; failover.yml makes bot2 the poller with bot1 stopped first (no 409 Conflict in any
bot log); update.yml rolls through the standby first, then the active host; `--check --diff` changes nothing.

Its own lab home (.cache/lab-multihost, LAB_HOME) keeps these hosts out of the inventory of the other lab
tests of the checkout (the lab inventory lists every running host of a lab home). Run alone:
`.venv/bin/pytest tests/infra/test_multihost.py` (scripts/test_parts.py part `infra:multihost`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.drill import source_tree

REPO = Path(__file__).resolve().parents[2]
LAB_HOME = REPO / ".cache" / "lab-multihost"
# The image cache of the checkout's own lab home (built by `make image` / scripts/test_parts.py).
IMAGES = Path(os.environ.get("LAB_HOME", REPO / ".lab")) / "images"
PYTHON = sys.executable
ANSIBLE_PLAYBOOK = str(Path(PYTHON).with_name("ansible-playbook"))
RELEASE_VERSION = REPO / "roles" / "bot" / "files" / "release_version.py"
DB, ACTIVE, STANDBY = "db1", "bot1", "bot2"
TIMEOUT_S = 1800
CHAT = -1009900123  # a supergroup: every text message is stored
APP = "/opt/psychochauffeur-bot"
ENV = {**os.environ, "LAB_HOME": str(LAB_HOME), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
       "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}  # fmt: skip


def lab(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([PYTHON, "-m", "lab", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(f"lab {' '.join(args)}: {proc.stdout}{proc.stderr}", pytrace=False)
    return proc


def sh(host: str, command: str, check: bool = True) -> str:
    """Run a shell command as root on a lab host; its stdout (fails the test on a non-zero exit)."""
    proc = lab("ssh", host, "--", "bash", "-c", shlex.quote(command), check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"{host}: {command}: rc={proc.returncode}\n{proc.stdout}{proc.stderr}", pytrace=False)
    return proc.stdout.strip()


def playbook(name: str, *args: str, log: Path, check: bool = True) -> str:
    cmd = [ANSIBLE_PLAYBOOK, "-i", str(REPO / "inventories" / "lab"), str(REPO / "playbooks" / name), *args]
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT, timeout=TIMEOUT_S,
                              check=False)  # fmt: skip
    text = log.read_text(errors="replace")
    if check and proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-80:])
        pytest.fail(f"{name} {' '.join(args)} exited {proc.returncode} (log {log}):\n{tail}", pytrace=False)
    return text


def recap(text: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    lines = re.findall(r"^(\S+)\s*:\s*(ok=.*)$", text.split("PLAY RECAP")[-1], re.MULTILINE)
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)} for host, rest in lines}


def unit(host: str) -> tuple[str, str]:
    """(is-active, is-enabled) of the bot unit."""
    out = sh(
        host, "systemctl is-active psychochauffeur-bot; systemctl is-enabled psychochauffeur-bot", check=False
    )
    active, enabled = (out.splitlines() + ["", ""])[:2]
    return active, enabled


def db_rows(text: str) -> int:
    sql = f"SELECT count(*) FROM messages WHERE text = '{text}'"
    return int(
        sh(DB, f"runuser -u postgres -- psql -X -At -d psychochauffeur_bot -c {shlex.quote(sql)}") or 0
    )


def chat(via: str, *args: object) -> str:
    """`python -m bot.sandbox.chat ARGS` on `via` (any bot host) against bot1's sandbox, which listens on its
    bridge address only: start CHAT, say CHAT TEXT, last, sent CHAT --after N."""
    address = json.loads(lab("status", "--json", ACTIVE).stdout)[0]["address"]
    cli = f"{APP}/current/venv/bin/python -m bot.sandbox.chat --url http://{address}:8081"
    return sh(via, f"{cli} {shlex.join(map(str, args))}")


def message_flows(text: str, via: str) -> None:
    """Push /start and a group message through the sandbox (run on `via`, any bot host): /start is answered by
    whichever host polls, and the group message lands in db1's messages table."""
    assert chat(via, "start", 4712, "--username", "multihost"), "no answer to /start"
    chat(via, "say", CHAT, text, "--user", 4712, "--username", "multihost")
    deadline = time.monotonic() + 60
    while db_rows(text) != 1:
        assert time.monotonic() < deadline, f"{text!r} was not stored on {DB} within 60 s"
        time.sleep(1)


def conflicts(host: str, since: float) -> str:
    """409 / Conflict lines the bot wrote since `since` (journal and its log files)."""
    # the bot's own record of a 409 (API003) and PTB's "Conflict: terminated by other getUpdates request";
    # not a bare 409, which matches timestamps (".409+00:00")
    pattern, at = "'API003|conflict'", f"@{int(since)}"
    journal = f"journalctl -u psychochauffeur-bot --since={at} --no-pager -o cat | grep -iE {pattern}"
    files = f"find {APP}/shared/logs -name '*.log' -newermt {at} -exec grep -ihE {pattern} {{}} +"
    return sh(host, f"{journal}; {files}", check=False)


@pytest.fixture(scope="module")
def multihost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """db1, bot1, bot2 up on the bridge (own lab home), converged by site.yml; removed at the end."""
    logs = tmp_path_factory.mktemp("multihost-logs")
    LAB_HOME.mkdir(parents=True, exist_ok=True)
    images = LAB_HOME / "images"
    if not images.is_symlink():
        images.symlink_to(IMAGES.resolve())
    lab("down", "--missing-ok", DB, ACTIVE, STANDBY)
    try:
        groups = (["--image", "postgres", "--group", "db_hosts", DB], [ACTIVE, STANDBY])
        ups = [subprocess.Popen([PYTHON, "-m", "lab", "up", "--bridge", *args], cwd=REPO, env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for args in groups]  # fmt: skip
        for up in ups:
            out, _ = up.communicate(timeout=TIMEOUT_S)
            assert up.returncode == 0, out
        version = subprocess.run([PYTHON, str(RELEASE_VERSION), str(REPO)], check=True, capture_output=True,
                                 text=True, timeout=60).stdout.strip()  # fmt: skip
        converge = playbook("site.yml", "-e", f"bot_version={version}", log=logs / "converge.log")
        check = playbook(
            "site.yml", "-e", f"bot_version={version}", "--check", "--diff", log=logs / "check.log"
        )
        yield {"version": version, "converge": recap(converge), "check": recap(check), "logs": logs}
    finally:
        lab("down", "--missing-ok", DB, ACTIVE, STANDBY, check=False)


def test_converge_then_check_changes_nothing(multihost: dict):
    assert set(multihost["converge"]) == {DB, ACTIVE, STANDBY}
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in multihost["converge"].values())
    assert {h: r["changed"] for h, r in multihost["check"].items()} == {DB: 0, ACTIVE: 0, STANDBY: 0}


def test_database_host_serves_the_bot_hosts_only_over_tls(multihost: dict):
    addresses = {s["name"]: s["address"] for s in json.loads(lab("status", "--json").stdout)}
    listening = sh(DB, "ss -Hltn 'sport = :5432' | awk '{print $4}'")
    assert f"{addresses[DB]}:5432" in listening.split()
    hba = [
        line.split()
        for line in sh(DB, "grep -v '^#' /etc/postgresql/15/main/pg_hba.conf").splitlines()
        if line
    ]
    tcp = [entry for entry in hba if entry[0].startswith("host")]
    remote = sorted(entry[3] for entry in tcp if not entry[3].startswith(("127.", "::1")))
    assert remote == sorted(f"{addresses[h]}/32" for h in (ACTIVE, STANDBY))
    assert all(entry[0] == "hostssl" and entry[4] == "scram-sha-256" for entry in tcp if entry[3] in remote)
    assert sh(DB, "stat -c '%a %U' /etc/postgresql/15/main/tls/server.key") == "600 postgres"
    for host in (ACTIVE, STANDBY):
        env = sh(host, f"grep ^DATABASE_URL= {APP}/shared/.env")
        assert f"@{addresses[DB]}:5432/psychochauffeur_bot?sslmode=require" in env
        assert sh(host, f"stat -c %a {APP}/shared/.env") == "600"
        # The bot's own URL logs in over TLS; no PostgreSQL server on the bot hosts.
        ssl = sh(host, f"set -a; . {APP}/.env; runuser -u psychochauffeur -- psql -X -At \"$DATABASE_URL\""
                       " -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'")  # fmt: skip
        assert ssl == "t"
        assert sh(host, "test -e /usr/lib/postgresql/15/bin/postgres && echo server || echo none") == "none"
    # A host that is not a bot host (the lab's control node on the bridge) is refused by pg_hba.
    url = sh(ACTIVE, f"grep ^DATABASE_URL= {APP}/shared/.env | cut -d'\"' -f2")
    refused = subprocess.run(["psql", "-X", "-At", url, "-c", "SELECT 1"], capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert refused.returncode != 0 and "no pg_hba.conf entry" in refused.stderr, refused.stderr


def test_one_active_poller_and_a_warm_standby(multihost: dict):
    assert unit(ACTIVE) == ("active", "enabled")
    assert unit(STANDBY)[0] != "active" and unit(STANDBY)[1] != "enabled"
    release = f"{APP}/releases/{multihost['version']}"
    for host in (ACTIVE, STANDBY):
        assert sh(host, f"readlink -f {APP}/current") == release
    # The standby's release answers through the CLI: database and Bot API ok.
    health = json.loads(sh(STANDBY, "psychochauffeur health --json || true"))
    assert {c["name"]: c["status"] for c in health["checks"]}.keys() >= {"database", "bot_api"}
    assert all(c["status"] == "ok" for c in health["checks"] if c["name"] in ("database", "bot_api"))
    # Its stopped unit is the standby's normal state: info, not the critical its monitoring would page for.
    [process] = [c for c in health["checks"] if c["name"] == "process"]
    assert process["status"] == "info" and f"{ACTIVE} polls" in process["summary"], process
    active = json.loads(sh(ACTIVE, "psychochauffeur health --json || true"))
    assert [c["status"] for c in active["checks"] if c["name"] == "process"] == ["ok"]
    # One fake Telegram for both: only bot1 runs the sandbox.
    assert sh(ACTIVE, "systemctl is-active psychochauffeur-sandbox") == "active"
    assert sh(STANDBY, "systemctl is-active psychochauffeur-sandbox", check=False) != "active"
    message_flows("multihost before failover", via=STANDBY)


@pytest.mark.runbook("Outage | Resolution: fail over to a warm standby (old poller stopped first, no 409)")
@pytest.mark.runbook(
    "Update | Several bot hosts: standbys first (release verified with the CLI), then the active poller"
)
def test_failover_then_rolling_update(multihost: dict):
    logs = multihost["logs"]
    started = time.time() - 1
    playbook("failover.yml", "-e", f"failover_to={STANDBY}", log=logs / "failover.yml.log")
    assert unit(ACTIVE)[0] != "active" and unit(ACTIVE)[1] != "enabled"
    assert unit(STANDBY) == ("active", "enabled")
    message_flows("multihost after failover", via=ACTIVE)
    # A start on the standby (outage.yml, `fab restart`, a hand) is skipped by the unit's ExecCondition.
    sh(ACTIVE, "systemctl start psychochauffeur-bot")
    assert unit(ACTIVE)[0] != "active"
    for host in (ACTIVE, STANDBY):
        assert sh(host, "cat /etc/psychochauffeur/active-host") == STANDBY
        assert not conflicts(host, started), f"409 Conflict on {host} during the failover"
    old_active = json.loads(sh(ACTIVE, "psychochauffeur health --json || true"))  # a standby now
    assert [c["status"] for c in old_active["checks"] if c["name"] == "process"] == ["info"], old_active
    # Rolling update: the standby (now bot1) first, then the active poller (bot2).
    new = f"{multihost['version']}-rolled"
    chat(ACTIVE, "start", 1001, "--username", "opsadmin")  # the sandbox only sends to chats it has seen
    before = chat(ACTIVE, "last")
    text = playbook("update.yml", "-e", f"bot_version={new}", log=logs / "update.yml.log")
    main_play = text.split("PLAY [Update | one host at a time", 1)[1]  # serial: one header per batch
    first_seen = [m.group(1) for m in re.finditer(r"^(?:ok|changed): \[(bot\d)\]", main_play, re.MULTILINE)]
    assert first_seen and first_seen[0] == ACTIVE and first_seen[-1] == STANDBY, first_seen[:3]
    for host in (ACTIVE, STANDBY):
        assert sh(host, f"readlink -f {APP}/current") == f"{APP}/releases/{new}"
        assert not conflicts(host, started), f"409 Conflict on {host} during the update"
    assert unit(STANDBY) == ("active", "enabled") and unit(ACTIVE)[0] != "active"
    # notify users: one notice, from the host that went live (a standby's release is not live)
    notices = [t for t in json.loads(chat(ACTIVE, "sent", 1001, "--after", before)) if "updated from" in t]
    assert len(notices) == 1 and f"on {STANDBY} updated from" in notices[0], notices
    message_flows("multihost after the update", via=ACTIVE)


def test_failed_update_restores_the_shared_database(multihost: dict, tmp_path: Path):
    """The database on db1: the active poller's go-live dumps it after the stop with the bot's login (TLS),
    migrates, crashes; the rollback moves the dump to db1, restores it there (staged, swapped by rename) and
    the previous release answers again."""
    active = sh(ACTIVE, "cat /etc/psychochauffeur/active-host")
    standby = ACTIVE if active == STANDBY else STANDBY
    before = sh(active, f"readlink -f {APP}/current")
    broken = f"{multihost['version']}-broken"
    text = playbook("update.yml", "--limit", active, "-e", f"bot_version={broken}",
                    "-e", f"bot_source_dir={source_tree(tmp_path, 'broken', break_it=True, marker='ops')}",
                    log=multihost["logs"] / "update-broken.log", check=False)  # fmt: skip
    assert re.search(rf"rolled back to {re.escape(before.rsplit('/', 1)[1])} in", text), text[-3000:]
    assert "ROLLBACK FAILED" not in text and "database restored from" in text
    assert sh(active, f"readlink -f {APP}/current") == before
    assert unit(active) == ("active", "enabled")
    sql = "SELECT to_regclass('ops_broken_marker') IS NULL"
    assert sh(DB, f"runuser -u postgres -- psql -X -At -d psychochauffeur_bot -c {shlex.quote(sql)}") == "t"
    dump = f"/var/backups/psychochauffeur-bot/pre-update/{broken}.dump"
    assert sh(DB, f"stat -c '%a %U' {dump}") == "600 postgres"
    assert sh(active, f"test -e {dump} && echo here || echo moved") == "moved"
    message_flows("multihost after a rollback", via=standby)


def db_sql(sql: str) -> str:
    return sh(DB, f"runuser -u postgres -- psql -X -At -d psychochauffeur_bot -c {shlex.quote(sql)}")


@pytest.mark.runbook("Data recovery | Point-in-time recovery on the database host (three hosts)")
def test_point_in_time_restore_on_the_database_host(multihost: dict):
    """restore.yml -e target_time on the three hosts: pgBackRest restores db1 (the active bot host's play,
    delegated to the DB host) to a moment between two writes; the bot hosts keep answering from it."""
    a, b = -7601, -7602
    db_sql(f"DELETE FROM chats WHERE chat_id IN ({a}, {b})")
    db_sql(f"INSERT INTO chats(chat_id, chat_type, title) VALUES ({a}, 'group', 'pitr A: before T')")
    target = db_sql("SELECT clock_timestamp()")  # after A's commit, before B's
    db_sql(f"INSERT INTO chats(chat_id, chat_type, title) VALUES ({b}, 'group', 'pitr B: after T')")
    pitr = json.dumps({"target_time": target})  # one extra var: the time has a space in it
    playbook("restore.yml", "-e", pitr, log=multihost["logs"] / "restore-pitr.log")
    assert db_sql(f"SELECT count(*) FROM chats WHERE chat_id = {a}") == "1"
    assert db_sql(f"SELECT count(*) FROM chats WHERE chat_id = {b}") == "0"
    assert db_sql("SELECT pg_is_in_recovery()") == "f"
    active = sh(ACTIVE, "cat /etc/psychochauffeur/active-host")
    message_flows("multihost after a point-in-time restore", via=active)
