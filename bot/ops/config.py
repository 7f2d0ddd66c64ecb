"""`psychochauffeur config generate|set|show` and `psychochauffeur admins`."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from typing import Any

import psycopg
import requests

from bot.errors import BotError
from bot.logs import redact
from bot.ops import dbadmin
from bot.ops.report import OpsError, Result
from bot.settings import (
    GLOBAL_CONFIG_RELPATH,
    Env,
    default_global_config,
    load_global_config,
    merge_config,
    validate_global_config,
    write_default_global_config,
)

BACKUP_DIRNAME = "config_backup"
MAX_CHATS = 100
HTTP_TIMEOUT_S = 10


def backup(env: Env) -> list[str]:
    """Copy the live global config to config_backup/: a timestamped copy and global_config.json (what the
    runbook's restore step copies back). Nothing to copy: []. Every change of the file goes through here."""
    path = env.app_dir / GLOBAL_CONFIG_RELPATH
    if not path.exists():
        return []
    backup_dir = env.app_dir / BACKUP_DIRNAME
    backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    targets = (backup_dir / f"global_config.{stamp}.json", backup_dir / "global_config.json")
    for target in targets:
        shutil.copy2(path, target)
    return [str(t) for t in targets]


def generate(env: Env, reset: bool) -> Result:
    """Create the global config from the defaults; --reset first backs the old file up (backup())."""
    path = env.app_dir / GLOBAL_CONFIG_RELPATH
    existed = path.exists()
    backups: list[str] = []
    try:
        if existed and reset:
            backups = backup(env)
        written = write_default_global_config(env.app_dir, reset=reset)
    except OSError as exc:
        raise OpsError(f"cannot write the global config under {env.app_dir}: {exc.strerror or exc}") from None
    if existed and not reset:
        text = f"kept the existing {written} (use --reset to overwrite it with the defaults)"
        action = "kept"
    elif existed:
        text = f"reset {written} to the defaults; previous file backed up to {backups[-1]} and {backups[0]}"
        action = "reset"
    else:
        text = f"created {written} from the defaults"
        action = "created"
    return Result({"path": str(written), "action": action, "backups": backups}, text)


def _parse_value(raw: str) -> Any:
    """JSON when it parses (2, true, [..], {..}, "text"), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def set_value(env: Env, key: str, raw_value: str) -> Result:
    """Set one dotted key (video.max_parallel_downloads) in the global config file. The result is validated
    before anything is written; the previous file is backed up to config_backup/ first (backup()); setting
    the value it already has changes nothing."""
    path = env.app_dir / GLOBAL_CONFIG_RELPATH
    parts = key.split(".")
    effective: Any = default_global_config()
    for depth, part in enumerate(parts):
        if not isinstance(effective, dict) or part not in effective:
            known = ", ".join(sorted(effective)) if isinstance(effective, dict) else "(not a section)"
            where = ".".join(parts[:depth]) or "the top level"
            raise OpsError(f"unknown config key {key!r}: {where} has {known}", exit_code=2)
        effective = effective[part]
    try:
        current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else default_global_config()
    except (OSError, ValueError) as exc:
        raise OpsError(f"cannot read {path}: {exc} (config-restore.yml puts a backup back)") from None
    value = _parse_value(raw_value)
    updated = json.loads(json.dumps(current))
    node = updated
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    old = node.get(parts[-1], effective)
    if path.exists() and parts[-1] in node and node[parts[-1]] == value:
        data = {"key": key, "value": value, "action": "unchanged", "backups": []}
        return Result(data, f"{key} is already {value!r}")
    node[parts[-1]] = value
    try:
        validate_global_config(merge_config(default_global_config(), updated))
    except ValueError as exc:
        raise OpsError(f"{key}={raw_value!r} rejected, nothing changed: {exc}", exit_code=2) from None
    try:
        backups = backup(env)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(updated, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OpsError(f"cannot write the global config under {env.app_dir}: {exc.strerror or exc}") from None
    text = f"{key}: {old!r} -> {value!r} in {path}"
    text += f"; previous file backed up to {backups[0]}" if backups else ""
    return Result({"key": key, "value": value, "old": old, "action": "changed", "backups": backups}, text)


def show(env: Env) -> Result:
    path = env.app_dir / GLOBAL_CONFIG_RELPATH
    try:
        cfg = load_global_config(env.app_dir)
    except BotError as exc:
        raise OpsError(f"configuration error ({exc.code}): {exc}") from None

    def state(value: str) -> str:
        return "set" if value else "not set"

    environment = {
        "BOT_TOKEN": state(env.bot_token),
        "TELEGRAM_BASE_URL": redact(env.telegram_base_url, env.secrets()),
        "OPENAI_API_KEY": state(env.openai_api_key),
        "OPENAI_BASE_URL": env.openai_base_url or "(openai default)",
        "OPENAI_MODEL": env.openai_model,
        "WEATHER_API_KEY": state(env.weather_api_key),
        "WEATHER_BASE_URL": env.weather_base_url,
        "DATABASE_URL": state(env.database_url),
        "BOT_ADMIN_IDS": ",".join(str(i) for i in sorted(env.admin_ids)),
        "BOT_APP_DIR": str(env.app_dir),
        "BOT_LOG_DIR": str(env.log_dir),
        "BOT_SANDBOX": "1" if env.sandbox else "0",
        "BOT_POLL_TIMEOUT": str(env.poll_timeout),
    }
    data = {"path": str(path), "file_exists": path.exists(), "global_config": cfg, "environment": environment}
    text = "\n".join(
        [
            f"global config: {path}" + ("" if path.exists() else " (missing: showing the shipped defaults)"),
            json.dumps(cfg, indent=2, ensure_ascii=False),
            "environment:",
        ]
        + [f"  {k}={v}" for k, v in environment.items()]
    )
    return Result(data, text)


def _known_users(env: Env, ids: list[int]) -> tuple[dict[int, dict[str, Any]], str | None]:
    if not env.database_url or not ids:
        return {}, None
    try:
        with dbadmin.connect(env.database_url) as conn:
            if conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is None:
                return {}, "users table missing (run db migrate)"
            rows = conn.execute(
                "SELECT user_id, username, first_name FROM users WHERE user_id = ANY(%s)", (ids,)
            ).fetchall()
    except (OpsError, psycopg.Error) as exc:
        return {}, str(exc)
    return {r[0]: {"username": r[1], "first_name": r[2]} for r in rows}, None


def _chat_admins(env: Env) -> tuple[list[dict[str, Any]], list[str]]:
    """Ask the Bot API for the admins of each group chat the bot has stored (at most MAX_CHATS)."""
    if not env.bot_token:
        raise OpsError("BOT_TOKEN is not set: --chats asks the Bot API, set BOT_TOKEN", exit_code=2)
    try:
        with dbadmin.connect(env.database_url) as conn:
            chats = conn.execute(
                "SELECT chat_id, title FROM chats WHERE chat_type IN ('group', 'supergroup') "
                "ORDER BY chat_id LIMIT %s",
                (MAX_CHATS,),
            ).fetchall()
    except psycopg.Error as exc:
        raise OpsError(f"cannot list the stored chats: {exc} (run db migrate?)") from None
    out, problems = [], []
    for chat_id, title in chats:
        url = f"{env.telegram_base_url}{env.bot_token}/getChatAdministrators"
        try:
            resp = requests.get(url, params={"chat_id": chat_id}, timeout=HTTP_TIMEOUT_S)
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            problems.append(redact(f"chat {chat_id}: {type(exc).__name__}: {exc}", env.secrets()))
            continue
        if not body.get("ok"):
            problems.append(f"chat {chat_id}: {body.get('description', f'HTTP {resp.status_code}')}")
            continue
        admins = [
            {"user_id": m["user"]["id"], "username": m["user"].get("username"), "status": m.get("status")}
            for m in body.get("result", [])
        ]
        out.append({"chat_id": chat_id, "title": title, "admins": admins})
    return out, problems


def admins(env: Env, chats: bool) -> Result:
    ids = sorted(env.admin_ids)
    known, db_note = _known_users(env, ids)
    bot_admins = [{"user_id": i, **known.get(i, {})} for i in ids]
    data: dict[str, Any] = {"bot_admins": bot_admins, "source": "BOT_ADMIN_IDS"}
    lines = [f"bot admins (BOT_ADMIN_IDS): {len(ids)}" + ("" if ids else " - none configured")]
    for a in bot_admins:
        name = f" @{a['username']}" if a.get("username") else ""
        lines.append(f"  {a['user_id']}{name}{' ' + a['first_name'] if a.get('first_name') else ''}")
    if db_note:
        data["note"] = db_note
        lines.append(f"  (names not looked up: {db_note})")
    exit_code = 0
    if chats:
        chat_admins, problems = _chat_admins(env)
        data["chat_admins"] = chat_admins
        data["problems"] = problems
        lines.append(f"chat admins ({len(chat_admins)} group chat(s), from the Bot API):")
        for c in chat_admins:
            names = ", ".join(
                f"{a['user_id']}" + (f" @{a['username']}" if a["username"] else "") + f" ({a['status']})"
                for a in c["admins"]
            )
            lines.append(f"  {c['chat_id']} {c['title'] or ''}: {names or '-'}")
        lines += [f"  PROBLEM {p}" for p in problems]
        exit_code = 1 if problems else 0
    return Result(data, "\n".join(lines), exit_code)
