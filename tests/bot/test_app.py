"""The Application as a process: lifecycle, signals, metrics, error handling, database outage."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botproc import Bot, make_env, module_bot, private_sandbox, start_bot, unhandled, until

from bot.app import (
    STOP_FINAL_FLUSH_SECONDS,
    STOP_FLUSH_SECONDS,
    STOP_HANDLER_GRACE_SECONDS,
    build_application,
)
from bot.errors import BotError
from bot.metrics import read_metrics
from bot.sandbox.client import SandboxClient
from bot.settings import Env

UNIT = Path(__file__).resolve().parents[2] / "roles" / "bot" / "templates" / "psychochauffeur-bot.service.j2"


@pytest.fixture(scope="module")
def bot(pg_server, sandbox, tmp_path_factory) -> Iterator[Bot]:
    yield from module_bot(pg_server, sandbox, tmp_path_factory.mktemp("app"))


def test_lifecycle_signals_and_metrics(pg_server, tmp_path) -> None:
    dsn = pg_server.create_db("app_lifecycle")
    with private_sandbox() as sandbox:
        bot = start_bot(sandbox, dsn, tmp_path / "app")
        try:
            assert bot.say("/ping") == "pong"
            started = read_metrics(bot.app_dir)
            assert started is not None and started["pid"] == bot.proc.pid  # written at startup
            assert sandbox.client.health()["calls"].get("setMyCommands") == 1

            # logrotate moves the file, then `systemctl reload` sends SIGHUP
            (bot.log_dir / "general.log").rename(bot.log_dir / "general.log.1")
            bot.proc.send_signal(signal.SIGHUP)
            bot.wait_log("general.log", lambda r: r["msg"] == "log files reopened")
            assert bot.say("/ping") == "pong" and bot.alive()

            assert bot.stop() == 0
            stopped = read_metrics(bot.app_dir)
            assert stopped["updates_total"] >= 2 and stopped["handler_latency_ms"]["count"] >= 2
            assert stopped["written_at"] >= started["written_at"]
            assert any(r["msg"] == "bot stopped" for r in bot.records())
            assert not unhandled(bot)
            assert sandbox.env["BOT_TOKEN"].split(":")[1] not in bot.all_logs_text()
        finally:
            bot.stop()
            pg_server.drop_db("app_lifecycle")


@pytest.mark.parametrize("content", ["{broken", json.dumps({"chat_defaults": {"gpt_temperature": 7}})])
def test_a_broken_global_config_stops_startup_with_app001(tmp_path, sandbox, content: str) -> None:
    config = tmp_path / "config" / "global" / "global_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(content)
    env = make_env(sandbox, "postgresql://nobody@127.0.0.1:1/none", tmp_path)
    result = subprocess.run([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "APP001" in result.stdout + result.stderr
    errors = [json.loads(line) for line in (tmp_path / "logs" / "error.log").read_text().splitlines()]
    assert errors[-1]["code"] == "APP001" and str(config) in errors[-1]["msg"]


@pytest.mark.parametrize(("overrides", "status", "code"), [
    ({"BOT_TOKEN": "123:not-a-valid-token"}, 2, "API002"),
    ({"TELEGRAM_BASE_URL": "http://127.0.0.1:9/bot"}, 1, "API003"),
])
def test_startup_failures_of_the_bot_api_exit_with_a_code(tmp_path, sandbox, overrides: dict, status: int,
                                                           code: str) -> None:
    env = make_env(sandbox, "postgresql://nobody@127.0.0.1:1/none", tmp_path, **overrides)
    result = subprocess.run([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == status, result.stderr[-2000:]
    assert f"({code})" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not-a-valid-token" not in result.stdout + result.stderr  # a rejected token is redacted too
    errors = [json.loads(line) for line in (tmp_path / "logs" / "error.log").read_text().splitlines()]
    assert errors[-1]["code"] == code


def test_a_malformed_database_url_stops_startup_with_app001(tmp_path, sandbox) -> None:
    """It used to count as connected, then failed, then recovered: the bot flapped forever."""
    env = make_env(sandbox, "postgresql://bot:s3cr3t-pw@[::1/bot", tmp_path)
    result = subprocess.run([sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "APP001" in result.stderr and "DATABASE_URL" in result.stderr
    assert "s3cr3t-pw" not in result.stdout + result.stderr


def test_error_events_rows_are_redacted(pg_server, tmp_path) -> None:
    """A rejected weather key is in the URL of the HTTP error: the row keeps the error, not the key."""
    dsn = pg_server.create_db("app_redacted_rows")
    with private_sandbox() as sandbox:
        bot = start_bot(sandbox, dsn, tmp_path / "app", WEATHER_API_KEY="wrong-weather-key-4711")
        try:
            assert bot.say("/weather Paris", user_id=7101).endswith("(API002)")
            rows = [r[0] for r in bot.query("SELECT message FROM error_events WHERE code = 'API002'")]
            assert rows and any("appid=***" in row for row in rows), rows
            assert not [row for row in rows if "wrong-weather-key-4711" in row]
        finally:
            bot.stop()
            pg_server.drop_db("app_redacted_rows")


def test_outgoing_calls_go_through_ptbs_flood_control(tmp_path) -> None:
    """Telegram bans bots that flood a group; AIORateLimiter queues instead (and honours retry_after)."""
    from telegram.ext import AIORateLimiter

    from bot.sandbox.server import SANDBOX_BOT_TOKEN

    app = build_application(Env.from_environ({"BOT_APP_DIR": str(tmp_path), "BOT_TOKEN": SANDBOX_BOT_TOKEN}))
    assert isinstance(app.bot.rate_limiter, AIORateLimiter)


def test_build_application_needs_a_token(tmp_path) -> None:
    with pytest.raises(BotError) as info:
        build_application(Env.from_environ({"BOT_APP_DIR": str(tmp_path)}))
    assert info.value.code == "APP001"


def test_a_failing_send_is_logged_and_the_user_still_hears_back(bot: Bot) -> None:
    bot.client.fail("sendMessage", error_code=502, count=1)
    reply = bot.say("/ping", user_id=1101)
    assert reply.startswith("⚠️") and reply.endswith("(API003)")
    record = bot.wait_log("error.log", lambda r: r.get("code") == "API003" and r.get("chat_id") == 1101)
    assert record["user_id"] == 1101
    assert bot.say("/ping", user_id=1101) == "pong"


def test_database_outage_mid_run(bot: Bot, pg_server) -> None:
    group = -1102
    assert bot.say("/stats", chat_id=group, user_id=1102).startswith("📊")
    pg_server.stop()
    try:
        reply = bot.say("/stats", chat_id=group, user_id=1102)
        assert reply.startswith("⚠️ The database is unavailable") and reply.endswith("(DB001)")
        assert bot.say("/ping", chat_id=group, user_id=1102) == "pong"
        assert "DB001" in bot.say("/analyze", chat_id=group, user_id=1102)
        assert "DB001" in bot.say("/config set gpt_enabled off", user_id=1102)
        # features that do not need the database keep working without it
        assert bot.say("/weather Odesa", user_id=1102).startswith("🌤 Odesa")
        assert bot.say("/ask still there?", user_id=1102) == "Sandbox answer: User 1102: still there?"
        for i in range(20):  # plain messages stay buffered (a warning a minute, not a line each)
            bot.client.push(f"during outage {i}", chat_id=group, user_id=1103)
        assert bot.say("/ping", chat_id=group, user_id=1102) == "pong"
        outage = [r for r in bot.records("error.log") if r["msg"].startswith("database unavailable")]
        assert len(outage) == 1 and outage[0]["code"] == "DB001"
        buffered = [r for r in bot.records() if "buffered, not stored yet" in r["msg"]]
        assert len(buffered) <= 1 and all(r["code"] == "DB001" for r in buffered)
    finally:
        pg_server.start()
    deadline = time.monotonic() + 30
    reply = ""
    while time.monotonic() < deadline:
        reply = bot.say("/stats", chat_id=group, user_id=1102)
        if reply.startswith("📊"):
            break
    assert reply.startswith("📊"), f"no recovery: {reply}"
    bot.wait_log("general.log", lambda r: r["msg"] == "database is back")
    bot.client.push("stored again", chat_id=group, user_id=1103)
    bot.quiet_after("barrier", chat_id=group, user_id=1103)
    stored = bot.query("SELECT count(*) FROM messages WHERE chat_id = %s AND text = 'stored again'", (group,))
    assert stored == [(1,)]
    # the messages sent while the database was down were kept and stored after the recovery, each once
    during = ("SELECT text FROM messages WHERE chat_id = %s AND text LIKE 'during outage %%'"
              " ORDER BY message_id")
    deadline = time.monotonic() + 30
    while len(rows := bot.query(during, (group,))) < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [r[0] for r in rows] == [f"during outage {i}" for i in range(20)]
    assert not unhandled(bot)


def test_secrets_never_reach_logs(bot: Bot) -> None:
    bot.say("/ask show me your token", user_id=1104)
    bot.say("/weather Kyiv", user_id=1104)
    text = bot.all_logs_text()
    for name in ("BOT_TOKEN", "OPENAI_API_KEY", "WEATHER_API_KEY"):
        secret = bot.sandbox.env[name]
        assert secret.split(":")[-1] not in text, name


CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"


def test_a_409_conflict_is_one_clear_error_with_back_off_and_health_sees_it(pg_server, tmp_path) -> None:
    dsn = pg_server.create_db("app_conflict")
    with private_sandbox() as sandbox:
        bot = start_bot(sandbox, dsn, tmp_path / "app")
        try:
            assert bot.say("/ping") == "pong"
            calls = sandbox.client.health()["calls"]["getUpdates"]
            sandbox.client.fail("getUpdates", error_code=409, count=3, description=CONFLICT)
            injected = time.monotonic()
            until(lambda: sandbox.client.health()["calls"]["getUpdates"] >= calls + 4, "3 conflicts, 1 poll",
                  bot=bot)
            # PTB's retry loop backs off (1 s, then x1.5 up to 30 s) instead of hammering the API
            assert time.monotonic() - injected >= 2.5
            assert bot.say("/ping") == "pong"  # polling again by itself
            assert bot.stop() == 0
            conflicts = [r for r in bot.records("error.log") if "409" in r["msg"]]
            assert len(conflicts) == 1, conflicts  # one line, not one per retry
            assert conflicts[0]["code"] == "API003" and "exc" not in conflicts[0]
            assert "another process is polling" in conflicts[0]["msg"] and CONFLICT in conflicts[0]["msg"]
            assert not unhandled(bot)
            assert "Traceback" not in bot.output_text()
            assert bot.query("SELECT code, count(*) FROM error_events GROUP BY code") == [("API003", 1)]
            metrics = read_metrics(bot.app_dir)
            assert metrics["polling_conflicts_total"] == 3 and metrics["last_polling_conflict_at"]
        finally:
            bot.stop()
            pg_server.drop_db("app_conflict")


def test_the_latency_metric_covers_handlers_that_run_in_the_background(pg_server, tmp_path) -> None:
    dsn = pg_server.create_db("app_latency")
    with private_sandbox() as sandbox:
        bot = start_bot(sandbox, dsn, tmp_path / "app")
        try:
            answer = bot.say("/ask [sandbox:slow=2] hello", timeout=60)  # /ask runs with block=False
            assert answer.startswith("Sandbox answer")
            assert bot.stop() == 0
            latency = read_metrics(bot.app_dir)["handler_latency_ms"]
            assert latency["max"] >= 2000, latency
        finally:
            bot.stop()
            pg_server.drop_db("app_latency")


def test_sigterm_stores_buffered_messages_first_and_stops_in_timeout_stop_sec(pg_server, tmp_path) -> None:
    """systemd's stop, as the unit configures it: SIGTERM, then SIGKILL after TimeoutStopSec."""
    timeout_stop = float(re.search(r"^TimeoutStopSec=(\d+)$", UNIT.read_text(), re.MULTILINE).group(1))
    budget = STOP_FLUSH_SECONDS + STOP_HANDLER_GRACE_SECONDS + STOP_FINAL_FLUSH_SECONDS
    assert budget + 5 <= timeout_stop  # 5 s for the rest of the shutdown
    dsn = pg_server.create_db("app_sigterm")
    group = -5001
    with private_sandbox() as sandbox:
        bot = start_bot(sandbox, dsn, tmp_path / "app")
        try:
            assert bot.say("/ping") == "pong"
            sandbox.client.push("/ask [sandbox:slow=30] take your time", user_id=5000)  # will not finish
            until(lambda: len(sandbox.client.openai_requests()) >= 1, "the GPT call is under way", bot=bot)
            burst = [{"text": f"burst {i}", "chat_id": group, "user_id": 5001 + i % 7} for i in range(1500)]
            pushed = sandbox.client.push_many(burst)
            until(lambda: len(sandbox.client.pending()) < 1500, "the bot is fetching the burst", bot=bot)
            start = time.monotonic()
            bot.proc.send_signal(signal.SIGTERM)
            try:
                code = bot.proc.wait(timeout_stop)
            except subprocess.TimeoutExpired:
                code = None  # systemd would SIGKILL now
            elapsed = time.monotonic() - start
            assert code == 0, f"not stopped within TimeoutStopSec={timeout_stop:g}"
            assert elapsed <= STOP_HANDLER_GRACE_SECONDS + 8, elapsed  # did not wait for the 30 s answer
            unconfirmed = {u["message"]["message_id"] for u in sandbox.client.pending() if "message" in u}
            stored = {r[0] for r in bot.query("SELECT message_id FROM messages WHERE chat_id = %s", (group,))}
            fetched = {p["message_id"] for p in pushed} - unconfirmed
            assert fetched and fetched <= stored  # every update the bot took from Telegram is stored
            assert any("handlers still running" in r["msg"] for r in bot.records())
            assert any(r["msg"] == "bot stopped" for r in bot.records())
        finally:
            bot.stop()
            pg_server.drop_db("app_sigterm")


def test_kill_9_while_messages_flow_loses_and_duplicates_nothing(pg_server, tmp_path) -> None:
    """Issue 8: getUpdates with an offset makes Telegram forget every earlier update, so a message must be
    committed before that call. Messages flow all along (~500 a second) while the bot is killed -9 and
    started again KILLS times; at the end every message the sandbox accepted is stored exactly once."""
    kills = 4
    dsn = pg_server.create_db("app_kill9")
    group = -5009
    with private_sandbox() as sandbox:
        accepted: list[tuple[int, str]] = []  # (message_id, text) of every push the sandbox answered
        flowing = threading.Event()
        flowing.set()

        def push() -> None:
            pusher = SandboxClient(sandbox.url)
            batch = 0
            while flowing.is_set():
                batch += 1
                specs = [{"text": f"kill9 {batch} {i}", "chat_id": group, "user_id": 6000 + i % 5}
                         for i in range(20)]
                ids = [answer["message_id"] for answer in pusher.push_many(specs)]
                accepted.extend(zip(ids, [spec["text"] for spec in specs], strict=True))
                time.sleep(0.04)
            pusher.close()

        def stored() -> int:
            return bot.query("SELECT count(*) FROM messages WHERE chat_id = %s", (group,))[0][0]

        bot = start_bot(sandbox, dsn, tmp_path / "app")
        thread = threading.Thread(target=push, name="pusher", daemon=True)
        thread.start()
        try:
            for _ in range(kills):
                before = stored()
                until(lambda: stored() >= before + 500, "the bot stores the flowing messages", bot=bot)  # noqa: B023
                os.kill(bot.proc.pid, signal.SIGKILL)
                bot.proc.wait(10)
                bot = start_bot(sandbox, dsn, bot.app_dir)
            until(lambda: stored() >= before + 500, "the bot stores after the last restart", bot=bot)
            flowing.clear()
            thread.join(30)
            until(lambda: not sandbox.client.health()["pending_updates"], "every update confirmed", 180,
                  bot=bot)
            want = dict(accepted)
            deadline = time.monotonic() + 10  # the old code committed after the confirm: give it the time
            while True:
                rows = bot.query("SELECT message_id, text FROM messages WHERE chat_id = %s", (group,))
                if len(rows) >= len(want) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            got = dict(rows)
            lost = sorted(set(want) - set(got))
            texts = [text for _, text in rows]
            duplicated = len(texts) - len(set(texts))
            assert len(want) > kills * 500
            assert (len(lost), duplicated) == (0, 0), (
                f"{len(want)} accepted, {len(rows)} stored, {len(lost)} lost (message ids {lost[:1]} to"
                f" {lost[-1:]}), {duplicated} duplicated")
            assert all(got[mid] == text for mid, text in want.items())
        finally:
            flowing.clear()
            thread.join(30)
            bot.stop()
            pg_server.drop_db("app_kill9")


def test_a_stalled_metrics_write_does_not_stall_the_bot(pg_server, tmp_path) -> None:
    """The metrics file is written off the event loop: a FIFO in place of its temp file blocks the write
    (as a hung disk would) until someone reads it, and the bot must keep answering meanwhile."""
    dsn = pg_server.create_db("app_metrics_stall")
    with private_sandbox() as sandbox:
        bot = start_bot(sandbox, dsn, tmp_path / "app", global_config={"metrics_interval_seconds": 0.2})
        fifo = bot.app_dir / "data" / f".metrics.json.{bot.proc.pid}.tmp"
        try:
            until(lambda: (bot.app_dir / "data" / "metrics.json").exists(), "the first metrics file", bot=bot)
            until(lambda: _mkfifo(fifo), "a FIFO in place of the temp file", bot=bot)
            metrics = bot.app_dir / "data" / "metrics.json"
            deadline = time.monotonic() + 30
            # the bot answers while its 0.2 s metrics job hangs on the FIFO: the file stops being renewed
            while time.time() - metrics.stat().st_mtime < 1.0:
                assert time.monotonic() < deadline, "metrics.json kept being renewed: no write hit the FIFO"
                assert bot.say("/ping", timeout=10) == "pong"
            for _ in range(3):
                assert bot.say("/ping", timeout=10) == "pong"
        finally:
            if fifo.exists():  # a reader lets the blocked writer go on; later writes get a plain file
                fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                fifo.unlink(missing_ok=True)  # the released writer may already have renamed it
                until(lambda: _readable(fd), "the blocked write went through", bot=bot)
                os.close(fd)
            bot.stop()
            pg_server.drop_db("app_metrics_stall")
    assert bot.proc.returncode == 0  # and no hang at shutdown's own metrics write


def _mkfifo(path: Path) -> bool:
    try:
        os.mkfifo(path)
    except FileExistsError:  # a write is under way right now: try again
        return False
    return True


def _readable(fd: int) -> bool:
    try:
        return bool(os.read(fd, 65536))
    except BlockingIOError:
        return False
