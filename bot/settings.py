"""Settings: environment (secrets, endpoints), global JSON config, and typed per-chat settings.

Three layers, resolved by one function each: the global file (defaults shipped in bot/defaults/),
the chat layer (chats.config JSONB, see ChatSettings.from_layers) and the user layer (users row).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import BotError

log = logging.getLogger(__name__)

GLOBAL_CONFIG_RELPATH = Path("config/global/global_config.json")
DEFAULTS_DIR = Path(__file__).parent / "defaults"  # package data, shipped with the wheel


def _parse_ids(raw: str) -> frozenset[int]:
    ids = set()
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        if not part.lstrip("-").isdigit():
            raise BotError("APP001", f"BOT_ADMIN_IDS must be comma-separated numeric ids, got {part!r}")
        ids.add(int(part))
    return frozenset(ids)


@dataclass(frozen=True)
class Env:
    """Everything the bot reads from the environment, read once."""

    bot_token: str = ""
    telegram_base_url: str = "https://api.telegram.org/bot"
    openai_api_key: str = ""
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    weather_api_key: str = ""
    weather_base_url: str = "https://api.openweathermap.org"
    database_url: str = ""
    admin_ids: frozenset[int] = field(default_factory=frozenset)
    app_dir: Path = field(default_factory=Path.cwd)
    log_dir: Path = field(default_factory=lambda: Path.cwd() / "logs")
    sandbox: bool = False
    poll_timeout: int = 10

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Env:
        e = os.environ if environ is None else environ
        app_dir = Path(e.get("BOT_APP_DIR") or Path.cwd()).resolve()
        try:
            poll_timeout = int(e.get("BOT_POLL_TIMEOUT") or 10)
        except ValueError as exc:
            raise BotError("APP001", "BOT_POLL_TIMEOUT must be an integer number of seconds") from exc
        if not 0 <= poll_timeout <= 120:
            raise BotError("APP001", "BOT_POLL_TIMEOUT must be between 0 and 120 seconds")
        return cls(
            bot_token=e.get("BOT_TOKEN", "").strip(),
            telegram_base_url=e.get("TELEGRAM_BASE_URL") or cls.telegram_base_url,
            openai_api_key=e.get("OPENAI_API_KEY", "").strip(),
            openai_base_url=e.get("OPENAI_BASE_URL") or None,
            openai_model=e.get("OPENAI_MODEL") or cls.openai_model,
            weather_api_key=e.get("WEATHER_API_KEY", "").strip(),
            weather_base_url=(e.get("WEATHER_BASE_URL") or cls.weather_base_url).rstrip("/"),
            database_url=e.get("DATABASE_URL", "").strip(),
            admin_ids=_parse_ids(e.get("BOT_ADMIN_IDS", "")),
            app_dir=app_dir,
            log_dir=Path(e.get("BOT_LOG_DIR") or app_dir / "logs").resolve(),
            sandbox=e.get("BOT_SANDBOX", "") == "1",
            poll_timeout=poll_timeout,
        )

    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        return [s for s in (self.bot_token, self.openai_api_key, self.weather_api_key) if len(s) >= 4]

    def __repr__(self) -> str:  # keep secrets out of tracebacks and debug output
        return (f"Env(app_dir={str(self.app_dir)!r}, sandbox={self.sandbox}, "
                f"admin_ids={sorted(self.admin_ids)})")


# --- global layer ---------------------------------------------------------------------------------


def default_global_config() -> dict[str, Any]:
    return json.loads((DEFAULTS_DIR / "global_config.json").read_text(encoding="utf-8"))


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_global_config(app_dir: Path | str) -> dict[str, Any]:
    """Shipped defaults overlaid with $app_dir/config/global/global_config.json when it exists.

    A broken file is a configuration error (APP001), not something to guess around.
    """
    cfg = default_global_config()
    path = Path(app_dir) / GLOBAL_CONFIG_RELPATH
    if not path.exists():
        return cfg
    try:
        user_cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BotError("APP001", f"cannot read {path}: {exc}") from exc
    if not isinstance(user_cfg, dict):
        raise BotError("APP001", f"{path} must contain a JSON object")
    cfg = _merge(cfg, user_cfg)
    bad = []
    for key, value in cfg.get("chat_defaults", {}).items():
        try:
            validate_setting(key, value)
        except ValueError as exc:
            bad.append(str(exc))
    if bad:
        raise BotError("APP001", f"{path}: chat_defaults: " + "; ".join(bad))
    return cfg


def write_default_global_config(app_dir: Path | str, reset: bool = False) -> Path:
    """Create the global config file from the shipped defaults; keep an existing one unless reset."""
    path = Path(app_dir) / GLOBAL_CONFIG_RELPATH
    if path.exists() and not reset:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(default_global_config(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# --- chat layer -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatSettings:
    """Per-chat settings: global chat_defaults overridden by the chat's JSONB config."""

    gpt_enabled: bool = True
    gpt_model: str = ""  # empty: OPENAI_MODEL from the environment
    gpt_system_prompt: str = "You are a helpful assistant in a Telegram chat."
    gpt_temperature: float = 0.7
    gpt_history_messages: int = 10
    random_reply_enabled: bool = False
    random_reply_min_messages: int = 50
    random_reply_probability: float = 0.02
    video_enabled: bool = True
    link_rewrite_enabled: bool = True
    weather_tip_enabled: bool = True

    @classmethod
    def from_layers(cls, global_cfg: Mapping[str, Any], chat_cfg: Mapping[str, Any] | None) -> ChatSettings:
        values: dict[str, Any] = {}
        for layer in (global_cfg.get("chat_defaults", {}), chat_cfg or {}):
            for key, raw in layer.items():
                try:
                    values[key] = validate_setting(key, raw)
                except ValueError as exc:  # a stale/unknown key in a chat row must not break the chat
                    log.warning("ignoring chat setting: %s", exc)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_LIMITS: dict[str, tuple[float, float]] = {
    "gpt_temperature": (0.0, 2.0),
    "gpt_history_messages": (0, 50),
    "random_reply_min_messages": (1, 100_000),
    "random_reply_probability": (0.0, 1.0),
}
_MAX_TEXT = {"gpt_model": 100, "gpt_system_prompt": 2000}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def setting_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ChatSettings)]


def validate_setting(key: str, raw: Any) -> Any:
    """Turn a raw value (text from /config set, or JSON) into the typed value, or raise ValueError."""
    types = {f.name: f.type for f in dataclasses.fields(ChatSettings)}
    if key not in types:
        raise ValueError(f"unknown setting {key!r}; known settings: {', '.join(setting_names())}")
    kind = types[key]
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{key} must be true or false, got {str(raw)[:40]!r}")
    if kind in ("int", "float"):
        if isinstance(raw, bool):
            raise ValueError(f"{key} must be a number")
        try:
            value: float = int(str(raw).strip()) if kind == "int" else float(str(raw).strip())
        except ValueError:
            raise ValueError(f"{key} must be {'an integer' if kind == 'int' else 'a number'}, "
                             f"got {str(raw)[:40]!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{key} must be a finite number")
        low, high = _LIMITS[key]
        if not low <= value <= high:
            raise ValueError(f"{key} must be between {low:g} and {high:g}, got {value:g}")
        return value
    text = str(raw)
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise ValueError(f"{key} must not contain control characters")
    if len(text) > _MAX_TEXT[key]:
        raise ValueError(f"{key} must be at most {_MAX_TEXT[key]} characters")
    if key == "gpt_model" and text and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]*", text):
        raise ValueError("gpt_model may contain only letters, digits and - . _ : /, "
                         "starting with a letter or digit")
    return text
