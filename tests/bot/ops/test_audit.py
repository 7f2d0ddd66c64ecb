"""`psychochauffeur audit [--quick-scan]` on real files."""

from __future__ import annotations

import gzip
import os

import pytest

TOKEN = "987654321:AAH7nE0xq5Zp0v9xY8s7R6q5P4o3N2m1L0k"  # token-shaped, not a real one
OPENAI_KEY = "sk-test-0123456789abcdefghijkl"


@pytest.fixture
def env(app_dir):
    return {"BOT_APP_DIR": str(app_dir), "BOT_ADMIN_IDS": "42"}


def _findings(result, check):
    return [f for f in result.json()["findings"] if f["check"] == check]


def test_clean_app_dir_passes(run_cli, env, app_dir, log):
    (app_dir / ".env").write_text("BOT_TOKEN=x\n")
    os.chmod(app_dir / ".env", 0o600)
    (app_dir / "config" / "private").mkdir(parents=True)
    (app_dir / "config" / "private" / "key.json").write_text("{}")
    os.chmod(app_dir / "config" / "private" / "key.json", 0o600)
    os.chmod(app_dir / "config" / "private", 0o700)
    log("general.log", 5, msg="sent via bot123456:*** and appid=***")  # redacted lines are fine

    result = run_cli(env, "audit", "--json")

    assert result.code == 0, result.out
    data = result.json()
    assert data["summary"]["high"] == 0 and data["summary"]["medium"] == 0
    assert data["admins"] == [42]
    assert str(app_dir / "logs" / "general.log") in data["files_scanned"]


def test_loose_file_modes_are_high(run_cli, env, app_dir):
    (app_dir / ".env").write_text("BOT_TOKEN=x\n")
    os.chmod(app_dir / ".env", 0o644)
    private = app_dir / "config" / "private"
    private.mkdir(parents=True)
    (private / "key.json").write_text("{}")
    os.chmod(private / "key.json", 0o640)

    result = run_cli(env, "audit", "--quick-scan", "--json")

    assert result.code == 1
    messages = [f["message"] for f in _findings(result, "file_modes") if f["severity"] == "high"]
    assert any(".env has mode 0644" in m for m in messages)
    assert any("key.json has mode 0640" in m for m in messages)
    text = run_cli(env, "audit", "--quick-scan")
    assert text.code == 1 and "chmod 600" in text.out


def test_secrets_in_logs_are_found_but_not_printed(run_cli, env, log):
    log("general.log", 1, msg=f"GET https://api.telegram.org/bot{TOKEN}/getMe")
    log("error.log", 1, level="ERROR", msg=f"openai said no for key {OPENAI_KEY}")
    result = run_cli({**env, "OPENAI_API_KEY": OPENAI_KEY}, "audit", "--quick-scan", "--json")
    assert result.code == 1
    found = _findings(result, "secrets_in_logs")
    assert {f["severity"] for f in found} == {"high"}
    assert any("general.log:1" in f["locations"] for f in found)
    assert any("configured OPENAI_API_KEY" in f["message"] for f in found)
    text = run_cli({**env, "OPENAI_API_KEY": OPENAI_KEY}, "audit", "--quick-scan")
    for secret in (TOKEN, TOKEN.split(":")[1], OPENAI_KEY):
        assert secret not in result.out + text.out + text.err


def test_failed_auth_counts_and_severity(run_cli, env, log):
    log("error.log", 3, level="ERROR", msg="openai: authentication failed", code="API002")
    few = run_cli(env, "audit", "--quick-scan", "--json")
    assert few.json()["counts"]["failed_auth"] == 3
    assert [f["severity"] for f in _findings(few, "failed_auth")] == ["medium"]
    assert few.code == 0

    log("general.log", 10, msg="Unauthorized attempt to run /config")
    many = run_cli(env, "audit", "--quick-scan", "--json")
    assert many.json()["counts"]["failed_auth"] == 13
    assert [f["severity"] for f in _findings(many, "failed_auth")] == ["high"]
    assert many.code == 1


def test_suspicious_patterns(run_cli, env, log):
    log("chat.log", 2, msg="'; DROP TABLE users; -- sql injection", logger="chat")
    log("chat.log", 1, msg="please run $(id)", logger="chat")
    log("chat.log", 4, msg="good morning", logger="chat")
    result = run_cli(env, "audit", "--quick-scan", "--json")
    assert result.json()["counts"]["suspicious"] == 3
    (finding,) = _findings(result, "suspicious_patterns")
    assert finding["severity"] == "medium" and finding["locations"][0] == "chat.log:1"


def test_full_scan_reads_rotated_logs_quick_scan_does_not(run_cli, env, app_dir):
    logs = app_dir / "logs"
    (logs / "general.log.1").write_text(f'{{"msg": "{TOKEN}"}}\n')
    with gzip.open(logs / "general.log.2.gz", "wt") as fh:
        fh.write("exploit attempt\n")
    quick = run_cli(env, "audit", "--quick-scan", "--json")
    assert quick.code == 0 and not _findings(quick, "secrets_in_logs")

    full = run_cli(env, "audit", "--json")
    assert full.code == 1
    assert _findings(full, "secrets_in_logs")[0]["locations"] == ["general.log.1:1"]
    assert _findings(full, "suspicious_patterns")[0]["locations"] == ["general.log.2.gz:1"]


def test_unreadable_logs_are_findings_not_crashes(run_cli, env, app_dir):
    (app_dir / "logs" / "general.log").mkdir()  # a directory where a log should be
    (app_dir / "logs" / "error.log").write_bytes(b'{"msg": "\xff\xfe broken utf-8"}\n\x00\x00')
    (app_dir / "logs" / "chat.log.1.gz").write_bytes(b"not gzip at all")
    result = run_cli(env, "audit", "--json")
    assert result.code == 0, result.out
    messages = [f["message"] for f in _findings(result, "logs")]
    assert any("general.log is not a regular file" in m for m in messages)
    assert any("cannot read" in m and "chat.log.1.gz" in m for m in messages)
    assert str(app_dir / "logs" / "error.log") in result.json()["files_scanned"]


def test_world_writable_files_in_full_scan(run_cli, env, app_dir):
    script = app_dir / "deploy.sh"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o777)
    assert run_cli(env, "audit", "--quick-scan").code == 0
    full = run_cli(env, "audit", "--json")
    assert full.code == 1
    assert _findings(full, "file_integrity")[0]["locations"] == ["deploy.sh"]


def test_no_admins_is_reported(run_cli, app_dir):
    result = run_cli({"BOT_APP_DIR": str(app_dir)}, "audit", "--quick-scan", "--json")
    assert [f["severity"] for f in _findings(result, "admins")] == ["low"]
