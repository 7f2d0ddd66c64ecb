"""`python -m bot.sandbox` as a process: help, state file, env lines, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from bot.sandbox.server import SandboxServer


def test_help_documents_the_options():
    result = subprocess.run(
        [sys.executable, "-m", "bot.sandbox", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for option in ("--host", "--port", "--state-file"):
        assert option in result.stdout


def test_bad_port_is_refused():
    result = subprocess.run(
        [sys.executable, "-m", "bot.sandbox", "--port", "70000"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "--port" in result.stderr


def test_runs_writes_state_file_prints_env_and_stops_on_sigterm(tmp_path):
    state_file = tmp_path / "sandbox.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", "0", "--state-file", str(state_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not state_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        assert state["port"] > 0 and state["url"] == f"http://127.0.0.1:{state['port']}"
        assert state["env"]["TELEGRAM_BASE_URL"] == f"{state['url']}/bot"
        assert requests.get(f"{state['url']}/control/health", timeout=10).json()["ok"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"TELEGRAM_BASE_URL={state['url']}/bot" in output
    assert f"OPENAI_BASE_URL={state['url']}/openai/v1" in output
    assert f"WEATHER_BASE_URL={state['url']}/weather" in output
    assert not state_file.exists()


def test_two_servers_get_their_own_ports_and_state():
    with SandboxServer() as one, SandboxServer() as two:
        assert one.port != two.port
        requests.post(f"{one.url}/control/updates", json={"text": "only here"}, timeout=10)
        assert requests.get(f"{one.url}/control/health", timeout=10).json()["pending_updates"] == 1
        assert requests.get(f"{two.url}/control/health", timeout=10).json()["pending_updates"] == 0


def test_keys_come_from_the_environment_and_are_never_printed(tmp_path):
    """A command line is readable by every user of the host, and stdout lands in the journal."""
    state_file = tmp_path / "sandbox.json"
    env = {**os.environ, "OPENAI_API_KEY": "sk-from-env-4711", "WEATHER_API_KEY": "weather-from-env-4711"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", "0", "--state-file", str(state_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not state_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        url = state["url"]
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        ok = requests.post(f"{url}/openai/v1/chat/completions", json=chat, timeout=10,
                           headers={"Authorization": "Bearer sk-from-env-4711"})
        wrong = requests.post(f"{url}/openai/v1/chat/completions", json=chat, timeout=10,
                              headers={"Authorization": "Bearer sk-sandbox"})
        assert (ok.status_code, wrong.status_code) == (200, 401)
        weather = requests.get(f"{url}/weather/data/2.5/weather", timeout=10,
                               params={"q": "Kyiv", "appid": "weather-from-env-4711"})
        assert weather.status_code == 200
        assert "from-env-4711" not in state_file.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert "OPENAI_API_KEY is set" in output and "WEATHER_API_KEY is set" in output
    assert "from-env-4711" not in output


def test_keys_on_the_command_line_are_refused():
    result = subprocess.run([sys.executable, "-m", "bot.sandbox", "--openai-key", "sk-x"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--openai-key" in result.stderr


def test_the_sandbox_unit_takes_the_keys_from_its_environment_file():
    """The role's unit: the keys reach the sandbox through EnvironmentFile=, not ExecStart (ps shows that)."""
    unit = (Path(__file__).parents[3] / "roles/bot/templates/psychochauffeur-sandbox.service.j2").read_text()
    exec_start = unit.split("\nExecStart=", 1)[1].split("\n# ", 1)[0]
    assert "EnvironmentFile={{ bot_env_file }}" in unit
    assert "KEY" not in exec_start.upper() and "${" not in exec_start
