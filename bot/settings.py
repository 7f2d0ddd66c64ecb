"""Settings: environment (secrets, endpoints), global JSON config, and typed per-chat settings.

Three layers, resolved by one function each: the global file (defaults shipped in bot/defaults/),
the chat layer (chats.config JSONB, see ChatSettings.from_layers) and the user layer (users row).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bot.errors import BotError

log = logging.getLogger(__name__)

GLOBAL_CONFIG_RELPATH = Path("config/global/global_config.json")
DEFAULTS_DIR = Path(__file__).parent / "defaults"  # package data, shipped with the wheel


# pydantic's wording for the common cases, said the way a chat admin or an operator acts on it.
_MESSAGES = {
    "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "int_parsing": "must be an integer", "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number", "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "greater_than_equal": "must be at least {ge}", "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}", "string_too_long": "must be at most {max_length} characters",
    "string_too_short": "must not be empty", "string_type": "must be text (a JSON string)",
    "list_type": "must be a list (a JSON array)", "dict_type": "must be an object (a JSON {{...}})",
    "model_type": "must be an object (a JSON {{...}})", "missing": "is missing",
}


def describe(exc: ValidationError, prefix: str = "", show_input: bool = True) -> str:
    """One line per problem, each naming its key (``video.max_parallel_downloads: ...``).

    show_input=False for the environment: its values may be secrets.
    """
    problems = []
    for error in exc.errors():
        key = prefix + ".".join(str(part) for part in error["loc"])
        template = _MESSAGES.get(error["type"])
        message = template.format(**error.get("ctx", {})) if template else error["msg"]
        message = message.removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif show_input and not isinstance(error["input"], dict | list):
            message += f" (got {str(error['input'])[:40]!r})"
        problems.append(f"{key}: {message}" if key else message)
    return "; ".join(problems)


# --- environment ----------------------------------------------------------------------------------


def _admin_ids(raw: Any) -> Any:
    """'1, 22,,333' -> [1, 22, 333]; only ASCII digits (int() would take '١٢' and '1_000' too)."""
    if not isinstance(raw, str):
        return raw
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    bad = [part for part in parts if not re.fullmatch(r"-?[0-9]{1,20}", part)]
    if bad:
        raise ValueError(f"must be comma-separated numeric Telegram ids (ASCII digits), got {bad[0][:40]!r}")
    return [int(part) for part in parts]


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _database_url(raw: str) -> str:
    """A DSN libpq can parse, with a numeric port: anything else would make the bot flap forever."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(raw)
    except psycopg.ProgrammingError as exc:
        # libpq's message quotes the input, password included: say what is wrong without it
        raise ValueError("is not a valid PostgreSQL URL; expected "
                         "postgresql://user:password@host:port/dbname (percent-encode special characters "
                         "in the password)") from exc
    for port in str(params.get("port") or "").split(","):
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"has an invalid port {port[:10]!r}; expected a number from 1 to 65535")
    if params.get("sslmode") not in (None, *_SSLMODES):
        raise ValueError(f"has an invalid sslmode; expected one of {', '.join(_SSLMODES)}")
    return raw


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return raw


HttpURL = Annotated[str, AfterValidator(_http_url)]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url(raw: str) -> str:
    """redis://[:password@]host:port/db, rediss://... or unix:///path.sock?password=...; empty: no Redis."""
    if not raw:
        return raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid Redis URL; expected redis://:password@127.0.0.1:6379/0 or "
                         "unix:///run/redis/redis-server.sock?password=...") from None
    if parts.scheme not in _REDIS_SCHEMES:
        raise ValueError(f"must start with one of {', '.join(s + '://' for s in _REDIS_SCHEMES)}")
    if parts.scheme == "unix" and not parts.path.startswith("/"):
        raise ValueError("must name the socket by its absolute path (unix:///run/redis/redis-server.sock)")
    if parts.scheme != "unix" and (not parts.hostname or port == 0):
        raise ValueError("must name a host (and a port from 1 to 65535), e.g. redis://127.0.0.1:6379/0")
    return raw


def redis_password(url: str) -> str:
    """The password of a Redis URL (user-info or ?password=), for the list of values never logged."""
    parts = urlsplit(url)
    query = dict(pair.partition("=")[::2] for pair in parts.query.split("&") if pair)
    return unquote(parts.password or query.get("password") or "")


def _stripped(raw: Any) -> Any:
    return raw.strip() if isinstance(raw, str) else raw


Secret = Annotated[str, BeforeValidator(_stripped), Field(repr=False)]


class Env(BaseModel):
    """Everything the bot reads from the environment, read once; fields are named by their variable."""

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True)

    bot_token: Secret = Field("", alias="BOT_TOKEN")
    telegram_base_url: HttpURL = Field("https://api.telegram.org/bot", alias="TELEGRAM_BASE_URL")
    openai_api_key: Secret = Field("", alias="OPENAI_API_KEY")
    openai_base_url: HttpURL | None = Field(None, alias="OPENAI_BASE_URL")
    openai_model: str = Field("gpt-4o-mini", alias="OPENAI_MODEL")
    weather_api_key: Secret = Field("", alias="WEATHER_API_KEY")
    weather_base_url: HttpURL = Field("https://api.openweathermap.org", alias="WEATHER_BASE_URL")
    database_url: Annotated[Secret, AfterValidator(_database_url)] = Field("", alias="DATABASE_URL")
    admin_ids: Annotated[frozenset[int], BeforeValidator(_admin_ids)] = Field(frozenset(),
                                                                               alias="BOT_ADMIN_IDS")
    app_dir: Path = Field(default_factory=Path.cwd, alias="BOT_APP_DIR")
    log_dir: Path = Field(default_factory=lambda: Path.cwd() / "logs", alias="BOT_LOG_DIR")
    sandbox: bool = Field(False, alias="BOT_SANDBOX")
    poll_timeout: int = Field(10, ge=0, le=120, alias="BOT_POLL_TIMEOUT")
    # The runbook's fix for DB003 (connection pool exhausted): more connections. PostgreSQL's
    # max_connections (100 by default) bounds it for every client together.
    db_pool_size: int = Field(5, ge=1, le=100, alias="BOT_DB_POOL_SIZE")
    redis_url: Annotated[Secret, AfterValidator(_redis_url)] = Field("", alias="REDIS_URL")  # empty: no Redis
    # Several bot hosts (one active poller, warm standbys): this host's inventory name and the file naming the
    # active one (roles/bot bot_active_record_file). Empty: one host, always active.
    host_name: str = Field("", alias="BOT_HOST_NAME")
    active_host_file: Path | None = Field(None, alias="BOT_ACTIVE_HOST_FILE")

    @field_validator("weather_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Env:
        """Read the variables (empty means default); BotError("APP001") names a bad variable."""
        e = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            value = e.get(info.alias or name, "")
            if value.strip():
                raw[info.alias or name] = value
        app_dir = Path(raw.get("BOT_APP_DIR") or Path.cwd()).resolve()
        raw["BOT_APP_DIR"] = app_dir
        raw["BOT_LOG_DIR"] = Path(raw.get("BOT_LOG_DIR") or app_dir / "logs").resolve()
        raw["BOT_SANDBOX"] = raw.get("BOT_SANDBOX") == "1"
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise BotError("APP001", describe(exc, show_input=False)) from None

    def standby_for(self) -> str | None:
        """The active poller's name when this host is a warm standby, else None."""
        if not (self.host_name and self.active_host_file):
            return None
        try:
            active = self.active_host_file.read_text().strip()
        except OSError:
            return None  # no record yet: the unit's ExecCondition lets it start too
        return active if active and active != self.host_name else None

    def secrets(self) -> list[str]:
        """Values that must never reach a log line (the database password included)."""
        password = ""
        if self.database_url:
            password = psycopg.conninfo.conninfo_to_dict(self.database_url).get("password") or ""
        secrets = (self.bot_token, self.openai_api_key, self.weather_api_key, str(password),
                   redis_password(self.redis_url) if self.redis_url else "")
        return [s for s in secrets if len(s) >= 4]


# --- chat layer -----------------------------------------------------------------------------------


def _no_bool(raw: Any) -> Any:
    """pydantic reads true as 1; for a number setting that is a mistake, not a value."""
    if isinstance(raw, bool):
        raise ValueError("must be a number, not true/false")
    return raw


def _printable(text: str) -> str:
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise ValueError("must not contain control characters")
    return text


def _model_name(name: str, info: ValidationInfo) -> str:
    """A model the operator allows (gpt.models in the global config); empty means OPENAI_MODEL."""
    if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]*", name):
        raise ValueError("may contain only letters, digits and - . _ : /, starting with a letter or digit")
    allowed = (info.context or {}).get("models")
    if name and allowed is not None and name not in allowed:
        choices = ", ".join(allowed) or "none besides the default"
        raise ValueError(f"must be one of the models this bot allows: {choices}; "
                         "or reset it to use the default")
    return name


Number = BeforeValidator(_no_bool)


class ChatSettings(BaseModel):
    """Per-chat settings: global chat_defaults overridden by the chat's JSONB config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpt_enabled: bool = True
    gpt_model: Annotated[str, Field(max_length=100), AfterValidator(_model_name)] = ""  # empty: OPENAI_MODEL
    gpt_system_prompt: Annotated[str, Field(max_length=2000), AfterValidator(_printable)] = (
        "You are a helpful assistant in a Telegram chat.")
    gpt_temperature: Annotated[float, Number, Field(ge=0, le=2, allow_inf_nan=False)] = 0.7
    gpt_history_messages: Annotated[int, Number, Field(ge=0, le=50)] = 10
    random_reply_enabled: bool = False
    random_reply_min_messages: Annotated[int, Number, Field(ge=1, le=100_000)] = 50
    random_reply_probability: Annotated[float, Number, Field(ge=0, le=1, allow_inf_nan=False)] = 0.02
    video_enabled: bool = True
    link_rewrite_enabled: bool = True
    weather_tip_enabled: bool = True

    @classmethod
    def from_layers(cls, global_cfg: Mapping[str, Any], chat_cfg: Mapping[str, Any] | None) -> ChatSettings:
        models = allowed_models(global_cfg)
        values: dict[str, Any] = {}
        for layer in (global_cfg.get("chat_defaults", {}), chat_cfg or {}):
            for key, raw in layer.items():
                try:
                    values[key] = validate_setting(key, raw, models)
                except ValueError as exc:  # a stale/unknown key in a chat row must not break the chat
                    log.warning("ignoring chat setting: %s", exc)
        return cls.model_validate(values)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


def setting_names() -> list[str]:
    return list(ChatSettings.model_fields)


def allowed_models(global_cfg: Mapping[str, Any]) -> list[str] | None:
    """gpt.models of the global config; None (no allow-list) only for a config without a gpt section."""
    gpt = global_cfg.get("gpt")
    return list(gpt.get("models", [])) if isinstance(gpt, Mapping) else None


def validate_setting(key: str, raw: Any, models: Collection[str] | None = None) -> Any:
    """Turn a raw value (text from /config set, or JSON) into the typed value, or raise ValueError.

    models: the allowed gpt_model values (None: any well-formed name).
    """
    if key not in ChatSettings.model_fields:
        raise ValueError(f"unknown setting {key[:40]!r}; known settings: {', '.join(setting_names())}")
    try:
        return getattr(ChatSettings.model_validate({key: raw}, context={"models": models}), key)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None


# --- global layer ---------------------------------------------------------------------------------

Seconds = Annotated[float, Number, Field(gt=0, le=86_400, allow_inf_nan=False)]
Count = Annotated[int, Number, Field(ge=1)]
Limit = Annotated[int, Number, Field(ge=0, le=1_000_000)]  # 0: no limit


def _zone_name(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not an IANA time zone name such as UTC or Europe/Kyiv") from None
    return name


class _Section(BaseModel):
    # Keys this model does not name are kept as they are (features may read more keys than listed here).
    model_config = ConfigDict(extra="allow")


class VideoConfig(_Section):
    allowed_domains: list[Annotated[str, Field(min_length=1, max_length=253)]]
    max_bytes: Count
    timeout_seconds: Seconds
    socket_timeout_seconds: Seconds
    max_parallel_downloads: Annotated[int, Number, Field(ge=1, le=32)]
    youtube_reply: str


class GptConfig(_Section):
    models: list[Annotated[str, Field(min_length=1, max_length=100)]]
    timeout_seconds: Seconds
    max_tokens: Annotated[int, Number, Field(ge=1, le=100_000)]
    analyze_max_messages: Annotated[int, Number, Field(ge=1, le=10_000)]
    analyze_system_prompt: str


class TimeoutConfig(_Section):
    timeout_seconds: Seconds


class CatConfig(TimeoutConfig):
    url: str
    max_bytes: Count


class RateLimit(BaseModel):
    """Calls allowed per user and per chat; the day quota bounds what a chat can cost. 0: no limit."""

    model_config = ConfigDict(extra="forbid")

    per_user_per_minute: Limit = 0
    per_chat_per_minute: Limit = 0
    per_chat_per_day: Limit = 0


class RateLimits(_Section):
    gpt: RateLimit
    analyze: RateLimit
    video: RateLimit


class GlobalConfig(_Section):
    chat_defaults: ChatSettings
    video: VideoConfig
    link_rewrites: dict[str, str]
    gpt: GptConfig
    weather: TimeoutConfig
    cat: CatConfig
    rate_limits: RateLimits
    timezone: Annotated[str, AfterValidator(_zone_name)]
    metrics_interval_seconds: Seconds


def default_global_config() -> dict[str, Any]:
    return json.loads((DEFAULTS_DIR / "global_config.json").read_text(encoding="utf-8"))


def merge_config(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """base overlaid with override, nested dicts merged key by key (deep copies)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_global_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The typed, checked config as a plain dict; ValueError naming every bad key."""
    models = cfg.get("gpt", {}).get("models") if isinstance(cfg.get("gpt"), Mapping) else None
    context = {"models": models} if isinstance(models, list) else None
    try:
        return GlobalConfig.model_validate(cfg, context=context).model_dump()
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None


def load_global_config(app_dir: Path | str) -> dict[str, Any]:
    """Shipped defaults overlaid with $app_dir/config/global/global_config.json when it exists.

    A broken file is a configuration error (APP001), not something to guess around.
    """
    cfg = default_global_config()
    path = Path(app_dir) / GLOBAL_CONFIG_RELPATH
    if not path.exists():
        return validate_global_config(cfg)
    try:
        user_cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BotError("APP001", f"cannot read {path}: {exc}") from exc
    if not isinstance(user_cfg, dict):
        raise BotError("APP001", f"{path} must contain a JSON object")
    try:
        return validate_global_config(merge_config(cfg, user_cfg))
    except ValueError as exc:
        raise BotError("APP001", f"{path}: {exc}") from None


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
