"""The lab sandbox (fake Telegram) outlives release switches and keeps its queue across its own restarts
(issue 8, item 7): otherwise a drill cannot tell a chat message the bot lost from one the sandbox lost."""

from __future__ import annotations

import json
import shlex
import shutil
import time

import pytest
from pbhelpers import REPO, host_sh, psql, run_playbook

UNIT = "psychochauffeur-sandbox"
CHAT = -1_006_500_000

GET = """
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(opener.open("http://127.0.0.1:8081" + sys.argv[1], timeout=10).read().decode())
"""
PUSH = """
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
body = [{"text": t, "chat_id": int(sys.argv[1]), "user_id": 4243, "title": "t65"} for t in sys.argv[2:]]
req = urllib.request.Request("http://127.0.0.1:8081/control/updates", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
print(opener.open(req, timeout=10).read().decode())
"""


def sandbox(path: str):
    return json.loads(host_sh(f"python3 -c {shlex.quote(GET)} {shlex.quote(path)}").stdout)


def push(*texts: str) -> list[dict]:
    return json.loads(
        host_sh(f"python3 -c {shlex.quote(PUSH)} {CHAT} {' '.join(map(shlex.quote, texts))}").stdout
    )


def sandbox_pid() -> str:
    return host_sh(f"systemctl show -P MainPID {UNIT}").stdout.strip()


def stored(prefix: str) -> dict[str, int]:
    rows = psql(f"select text || '=' || count(*) from messages where text like '{prefix}%' group by text")
    return {line.split("=")[0]: int(line.split("=")[1]) for line in rows.splitlines()}


def wait_stored(prefix: str, count: int) -> dict[str, int]:
    deadline = time.monotonic() + 60
    while True:
        rows = stored(prefix)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


@pytest.fixture(scope="module")
def good_tree(lab_host, tmp_path_factory):
    src = tmp_path_factory.mktemp("t65") / "good"
    for item in ("bot", "pyproject.toml", "README.md", "constraints.txt"):
        (shutil.copytree if (REPO / item).is_dir() else shutil.copy)(REPO / item, src / item)
    return src


def test_sandbox_runs_from_its_own_venv(lab_host):
    exec_start = host_sh(f"systemctl show -P ExecStart {UNIT}").stdout
    assert "/opt/psychochauffeur-bot/sandbox/venv/bin/python" in exec_start
    assert "/current/" not in exec_start and "--data-file" in exec_start


def test_release_switch_leaves_the_sandbox_running(good_tree):
    pid, before = sandbox_pid(), push("t65 switch before")[0]
    run = run_playbook("update", {"bot_version": "t65-switch", "bot_source_dir": str(good_tree)})
    assert run.rc == 0, run.stdout[-3000:]
    assert sandbox_pid() == pid  # not restarted by the switch
    after = push("t65 switch after")[0]
    assert after["update_id"] > before["update_id"] and after["message_id"] > before["message_id"]
    wait_stored("t65 switch", 2)


def test_sandbox_restart_keeps_queue_and_ids(lab_host):
    host_sh("systemctl stop psychochauffeur-bot")
    try:
        pushed = push("t65 queued 1", "t65 queued 2", "t65 queued 3")
        host_sh(f"systemctl restart {UNIT}")
        health = sandbox("/control/health")
        assert health["last_update_id"] == pushed[-1]["update_id"]  # ids did not start again from 0
        queued = [u["update_id"] for u in sandbox("/control/updates")]
        assert [p["update_id"] for p in pushed] == [i for i in queued if i >= pushed[0]["update_id"]]
        assert health["persistent"] is True
    finally:
        host_sh("systemctl start psychochauffeur-bot")
    rows = wait_stored("t65 queued", 3)
    assert rows == {"t65 queued 1": 1, "t65 queued 2": 1, "t65 queued 3": 1}
