"""JSON-lines logs: three files, redaction everywhere, reopen after rotation, tolerant reading."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import logs

TOKEN = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq"
OPENAI_KEY = "sk-proj-verysecret-0123456789"


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    logs.setup_logging(tmp_path, secrets=[TOKEN, OPENAI_KEY])
    try:
        yield tmp_path
    finally:
        logs.close_logging()


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_json_lines_with_contract_fields(log_dir: Path) -> None:
    logging.getLogger("bot.test").info("hello %s", "world", extra={"chat_id": -100, "user_id": 7})
    logging.getLogger("bot.test").error("db gone", extra={"code": "DB001"})
    general = lines(log_dir / "general.log")
    assert [r["msg"] for r in general] == ["hello world", "db gone"]
    first = general[0]
    assert first["level"] == "INFO" and first["logger"] == "bot.test"
    assert first["chat_id"] == -100 and first["user_id"] == 7 and "code" not in first
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    errors = lines(log_dir / "error.log")
    assert [(r["msg"], r["code"]) for r in errors] == [("db gone", "DB001")]


def test_chat_lines_go_to_chat_log_only(log_dir: Path) -> None:
    logging.getLogger(logs.CHAT_LOGGER).info("שלום \u200b мир", extra={"chat_id": 5, "user_id": 5})
    assert lines(log_dir / "chat.log")[0]["msg"] == "שלום \u200b мир"
    assert (log_dir / "general.log").read_text() == ""


def test_secrets_are_redacted_in_messages_args_and_tracebacks(log_dir: Path) -> None:
    log = logging.getLogger("bot.test")
    log.info("POST http://127.0.0.1/bot%s/getUpdates key=%s", TOKEN, OPENAI_KEY)
    log.warning("some other bot token 1234567:%s", "Z" * 35)
    try:
        raise RuntimeError(f"failed with Authorization: Bearer {OPENAI_KEY}")
    except RuntimeError:
        log.exception("boom", extra={"code": "APP000"})
    text = "".join(p.read_text() for p in log_dir.glob("*.log"))
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    assert OPENAI_KEY not in text
    assert "Z" * 35 not in text
    assert "/bot***/getUpdates" in text and "1234567:***" in text  # redacted, still recognisable
    assert "Traceback" in lines(log_dir / "error.log")[0]["exc"]


@given(st.text(max_size=40), st.text(max_size=40))
def test_property_redactor_never_leaks_a_configured_secret(prefix: str, suffix: str) -> None:
    redact = logs.Redactor([OPENAI_KEY, TOKEN])
    out = redact(prefix + OPENAI_KEY + suffix + TOKEN)
    assert OPENAI_KEY not in out and TOKEN not in out


def test_reopen_after_logrotate_moves_the_file(log_dir: Path) -> None:
    log = logging.getLogger("bot.test")
    log.info("before rotation")
    (log_dir / "general.log").rename(log_dir / "general.log.1")
    log.info("still into the old inode")
    logs.reopen_logs()
    log.info("after reopen")
    old = [r["msg"] for r in lines(log_dir / "general.log.1")]
    new = [r["msg"] for r in lines(log_dir / "general.log")]
    assert old == ["before rotation", "still into the old inode"]
    assert new[-1] == "after reopen" and "before rotation" not in new


def test_read_records_skips_garbage_and_filters_by_time(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    path = tmp_path / "error.log"
    path.write_text("\n".join([
        json.dumps({"ts": (now - timedelta(days=2)).isoformat(), "msg": "old", "code": "DB001"}),
        "not json at all",
        '{"truncated": ',
        "[1, 2, 3]",
        json.dumps({"ts": "yesterday", "msg": "bad ts"}),
        json.dumps({"ts": now.isoformat(), "msg": "new", "code": "API001"}),
        json.dumps({"ts": now.replace(tzinfo=None).isoformat(), "msg": "naive"}),
    ]) + "\n")
    assert [r["msg"] for r in logs.read_records(path)] == ["old", "bad ts", "new", "naive"]
    assert [r["msg"] for r in logs.read_records(path, since=now - timedelta(hours=1))] == ["new", "naive"]
    assert list(logs.read_records(tmp_path / "missing.log")) == []


def test_setup_is_idempotent(tmp_path: Path) -> None:
    logs.setup_logging(tmp_path)
    logs.setup_logging(tmp_path)
    try:
        logging.getLogger("bot.test").info("once")
        assert len(lines(tmp_path / "general.log")) == 1
    finally:
        logs.close_logging()


@pytest.mark.parametrize(("text", "secret"), [
    ("GET https://api.openweathermap.org/data/2.5/weather?q=Kyiv&appid=0123456789abcdef&units=metric",
     "0123456789abcdef"),
    ("connection to postgresql://bot:s3cr3t-pw@db.example:5432/bot failed", "s3cr3t-pw"),
    ("invalid dsn: host=/run/postgresql user=bot password=s3cr3t-pw dbname=bot", "s3cr3t-pw"),
    ("GET https://example.org/v1?api_key=k-0123456789&x=1", "k-0123456789"),
    ("GET https://example.org/v1?token=t0123456789", "t0123456789"),
    ("Authorization: Bearer sk-abcdefghijklmnop", "sk-abcdefghijklmnop"),
    (f"The token `{TOKEN}` was rejected by the server.", TOKEN.split(":")[1]),
])
def test_redact_without_configured_secrets(text: str, secret: str) -> None:
    out = logs.redact(text)
    assert secret not in out and "***" in out


def test_redact_removes_a_short_rejected_token_it_was_given() -> None:
    """The token regex needs 30+ characters; a malformed token is only caught as a configured secret."""
    assert logs.redact("The token `123:not-a-valid-token` was rejected", ["123:not-a-valid-token"]) == (
        "The token `***` was rejected")


def test_one_token_pattern_for_logs_stderr_and_the_audit() -> None:
    from bot.ops import audit, report

    assert audit.SECRET_PATTERNS["Telegram bot token"] is logs.TOKEN_RE
    assert not hasattr(report, "redact")  # the CLI and ops commands use bot.logs.redact
