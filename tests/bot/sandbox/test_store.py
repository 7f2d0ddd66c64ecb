"""--data-file: the sandbox keeps its queue and its update/message ids across its own restarts
(SIGTERM and kill -9), so a drill can tell a message the bot lost from one the sandbox lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from bot.sandbox.server import SANDBOX_BOT_TOKEN

CHAT = -100777


def start(tmp_path: Path, data_file: Path) -> tuple[subprocess.Popen, str]:
    state_file = tmp_path / "sandbox.json"
    state_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", "0", "--state-file", str(state_file)]
        + ["--data-file", str(data_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not state_file.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr and proc.stderr.read()
        time.sleep(0.05)
    return proc, json.loads(state_file.read_text())["url"]


def push(url: str, texts: list[str]) -> list[dict]:
    body = [{"text": t, "chat_id": CHAT, "user_id": 42, "title": "drill"} for t in texts]
    response = requests.post(f"{url}/control/updates", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def get_updates(url: str, offset: int) -> list[dict]:
    response = requests.post(
        f"{url}/bot{SANDBOX_BOT_TOKEN}/getUpdates", json={"offset": offset, "timeout": 0}, timeout=10
    )
    return response.json()["result"]


def test_queue_and_ids_survive_sigterm_and_kill_9(tmp_path):
    data = tmp_path / "state" / "sandbox.sqlite"
    proc, url = start(tmp_path, data)
    try:
        first = push(url, ["a1", "a2", "a3"])
        got = get_updates(url, 0)
        assert [u["message"]["text"] for u in got] == ["a1", "a2", "a3"]
        assert get_updates(url, first[1]["update_id"] + 1)[0]["message"]["text"] == "a3"  # a1, a2 handled
        reply = requests.post(
            f"{url}/bot{SANDBOX_BOT_TOKEN}/sendMessage", json={"chat_id": CHAT, "text": "hi"}, timeout=10
        ).json()["result"]
        sent_before = requests.get(f"{url}/control/health", timeout=10).json()["last_sent_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    proc, url = start(tmp_path, data)
    try:
        health = requests.get(f"{url}/control/health", timeout=10).json()
        assert health["persistent"] is True
        assert health["last_update_id"] == first[-1]["update_id"]
        assert health["last_sent_id"] == sent_before
        assert [u["message"]["text"] for u in get_updates(url, 0)] == ["a3"]  # the queue, not a1/a2
        second = push(url, ["b1"])[0]
        assert second["update_id"] == first[-1]["update_id"] + 1  # ids never go back
        assert second["message_id"] == reply["message_id"] + 1  # nor the chat's message ids
        # the bot can still answer in the chat it knew before the restart
        answer = requests.post(
            f"{url}/bot{SANDBOX_BOT_TOKEN}/sendMessage", json={"chat_id": CHAT, "text": "again"}, timeout=10
        ).json()
        assert answer["ok"] is True, answer
    finally:
        proc.kill()  # kill -9: what was answered is on disk already
        proc.wait(30)

    proc, url = start(tmp_path, data)
    try:
        texts = [u["message"]["text"] for u in get_updates(url, 0)]
        assert texts == ["a3", "b1"]
        assert push(url, ["c1"])[0]["update_id"] == second["update_id"] + 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_confirmations_say_when_updates_were_handled(tmp_path):
    proc, url = start(tmp_path, tmp_path / "sandbox.sqlite")
    try:
        since = time.time()
        pushed = push(url, ["x1", "x2"])
        get_updates(url, 0)
        assert requests.get(f"{url}/control/confirmations", timeout=10).json() == []
        get_updates(url, pushed[-1]["update_id"] + 1)
        items = requests.get(f"{url}/control/confirmations", params={"since": since}, timeout=10).json()
        assert [offset for _, offset in items] == [pushed[-1]["update_id"] + 1]
        bad = requests.get(f"{url}/control/confirmations", params={"since": "soon"}, timeout=10)
        assert bad.status_code == 400 and "unix time" in bad.json()["error"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_unwritable_data_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "bot.sandbox", "--data-file", str(blocker / "sub" / "x.sqlite")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot open the sandbox data file" in result.stderr and "--data-file" in result.stderr
