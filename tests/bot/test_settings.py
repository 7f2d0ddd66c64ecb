"""Env parsing, the global config file and the typed chat settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.errors import BotError
from bot.settings import (
    GLOBAL_CONFIG_RELPATH,
    ChatSettings,
    Env,
    default_global_config,
    load_global_config,
    setting_names,
    validate_setting,
    write_default_global_config,
)

TOKEN = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr"


def test_env_defaults_and_paths(tmp_path: Path) -> None:
    env = Env.from_environ({"BOT_APP_DIR": str(tmp_path)})
    assert env.telegram_base_url == "https://api.telegram.org/bot"
    assert env.openai_model == "gpt-4o-mini"
    assert env.app_dir == tmp_path.resolve()
    assert env.log_dir == tmp_path.resolve() / "logs"
    assert env.poll_timeout == 10
    assert env.admin_ids == frozenset()
    assert env.sandbox is False


def test_env_reads_everything(tmp_path: Path) -> None:
    env = Env.from_environ({
        "BOT_TOKEN": f" {TOKEN} ", "TELEGRAM_BASE_URL": "http://127.0.0.1:9/bot",
        "OPENAI_API_KEY": "sk-test-1234", "OPENAI_BASE_URL": "http://127.0.0.1:9/openai/v1",
        "OPENAI_MODEL": "gpt-x", "WEATHER_API_KEY": "wkey", "WEATHER_BASE_URL": "http://127.0.0.1:9/weather/",
        "DATABASE_URL": "postgresql:///x", "BOT_ADMIN_IDS": "1, 22,,333", "BOT_APP_DIR": str(tmp_path),
        "BOT_LOG_DIR": str(tmp_path / "l"), "BOT_SANDBOX": "1", "BOT_POLL_TIMEOUT": "3",
    })
    assert env.bot_token == TOKEN
    assert env.weather_base_url == "http://127.0.0.1:9/weather"
    assert env.admin_ids == {1, 22, 333}
    assert env.log_dir == (tmp_path / "l").resolve()
    assert env.sandbox and env.poll_timeout == 3
    assert set(env.secrets()) == {TOKEN, "sk-test-1234", "wkey"}
    assert TOKEN not in repr(env) and "sk-test" not in repr(env)


@pytest.mark.parametrize(("name", "value"), [
    ("BOT_ADMIN_IDS", "12,abc"), ("BOT_ADMIN_IDS", "1;2"), ("BOT_ADMIN_IDS", "$(id)"),
    ("BOT_POLL_TIMEOUT", "soon"), ("BOT_POLL_TIMEOUT", "-1"), ("BOT_POLL_TIMEOUT", "1000"),
    ("TELEGRAM_BASE_URL", "api.telegram.org/bot"), ("OPENAI_BASE_URL", "file:///etc/passwd"),
    ("WEATHER_BASE_URL", "http://"),
    ("BOT_DB_POOL_SIZE", "0"), ("BOT_DB_POOL_SIZE", "101"), ("BOT_DB_POOL_SIZE", "many"),
    ("REDIS_URL", "http://127.0.0.1:6379"), ("REDIS_URL", "redis://"), ("REDIS_URL", "redis://h:99999/0"),
    ("REDIS_URL", "unix://relative.sock"),
])
def test_env_rejects_bad_values_with_app001(name: str, value: str) -> None:
    with pytest.raises(BotError) as info:
        Env.from_environ({name: value})
    assert info.value.code == "APP001"
    assert name in str(info.value)


def test_global_config_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = load_global_config(tmp_path)
    assert cfg == default_global_config()
    assert "x.com" in cfg["link_rewrites"]
    assert cfg["video"]["max_bytes"] == 50 * 1024 * 1024


def test_generate_keeps_an_existing_file_unless_reset(tmp_path: Path) -> None:
    path = write_default_global_config(tmp_path)
    assert path == tmp_path / GLOBAL_CONFIG_RELPATH
    assert json.loads(path.read_text()) == default_global_config()
    path.write_text(json.dumps({"timezone": "Europe/Kyiv"}))
    write_default_global_config(tmp_path)
    assert json.loads(path.read_text()) == {"timezone": "Europe/Kyiv"}
    write_default_global_config(tmp_path, reset=True)
    assert json.loads(path.read_text()) == default_global_config()


def test_the_file_overrides_defaults_deeply(tmp_path: Path) -> None:
    path = tmp_path / GLOBAL_CONFIG_RELPATH
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"video": {"max_bytes": 1000}, "chat_defaults": {"gpt_temperature": 0.1}}))
    cfg = load_global_config(tmp_path)
    assert cfg["video"]["max_bytes"] == 1000
    assert cfg["video"]["allowed_domains"] == default_global_config()["video"]["allowed_domains"]
    assert ChatSettings.from_layers(cfg, {}).gpt_temperature == 0.1


@pytest.mark.parametrize("content", [
    "{not json", "[1, 2]", '"text"', json.dumps({"chat_defaults": {"gpt_temperature": 9}}),
    json.dumps({"chat_defaults": {"no_such_key": 1}}),
])
def test_a_broken_global_config_is_app001(tmp_path: Path, content: str) -> None:
    path = tmp_path / GLOBAL_CONFIG_RELPATH
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(BotError) as info:
        load_global_config(tmp_path)
    assert info.value.code == "APP001"
    assert str(path) in str(info.value)


def test_chat_layer_overrides_global_and_skips_bad_values() -> None:
    cfg = default_global_config()
    chat = {"gpt_temperature": 1.5, "gpt_model": "gpt-4o", "random_reply_probability": 7, "stale_key": True}
    settings = ChatSettings.from_layers(cfg, chat)
    assert settings.gpt_temperature == 1.5
    assert settings.gpt_model == "gpt-4o"
    assert settings.random_reply_probability == cfg["chat_defaults"]["random_reply_probability"]
    assert ChatSettings.from_layers(cfg, None) == ChatSettings.from_layers(cfg, {})


@pytest.mark.parametrize(("key", "raw", "value"), [
    ("gpt_enabled", "off", False), ("gpt_enabled", "YES", True), ("gpt_enabled", True, True),
    ("gpt_temperature", " 0.25 ", 0.25), ("gpt_temperature", 2, 2.0),
    ("gpt_history_messages", "0", 0), ("random_reply_min_messages", "3", 3),
    ("gpt_model", "gpt-4o-mini", "gpt-4o-mini"), ("gpt_system_prompt", "Be brief.\nВідповідай українською.",
                                                   "Be brief.\nВідповідай українською."),
])
def test_validate_setting_accepts(key: str, raw: object, value: object) -> None:
    assert validate_setting(key, raw) == value


@pytest.mark.parametrize(("key", "raw", "message"), [
    ("bogus", "1", "unknown setting"), ("gpt_enabled", "maybe", "true or false"),
    ("gpt_temperature", "hot", "must be a number"), ("gpt_temperature", "2.5", "at most 2"),
    ("gpt_temperature", "nan", "finite|at least"), ("gpt_temperature", True, "number"),
    ("gpt_history_messages", "1.5", "integer"), ("gpt_history_messages", "-1", "at least 0"),
    ("random_reply_probability", "1.01", "at most 1"), ("gpt_model", "$(id)", "only letters"),
    ("gpt_model", "a; rm -rf /", "only letters"), ("gpt_model", "x" * 101, "at most"),
    ("gpt_system_prompt", "a\x00b", "control"), ("gpt_system_prompt", "p" * 2001, "at most"),
])
def test_validate_setting_rejects_with_a_clear_message(key: str, raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_setting(key, raw)


@given(st.sampled_from(setting_names()), st.text(max_size=200))
def test_property_validate_setting_returns_the_field_type_or_raises_value_error(key: str, raw: str) -> None:
    try:
        value = validate_setting(key, raw)
    except ValueError:
        return
    default = getattr(ChatSettings(), key)
    assert isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int | float))
    # a validated value survives the chat layer unchanged
    assert getattr(ChatSettings.from_layers({}, {key: value}), key) == value


@pytest.mark.parametrize("value", ["١٢", "²", "--1", "1_000", "12,٣"])
def test_admin_ids_take_only_ascii_digits_and_never_end_in_a_bare_value_error(value: str) -> None:
    with pytest.raises(BotError) as info:
        Env.from_environ({"BOT_ADMIN_IDS": value})
    assert info.value.code == "APP001" and "BOT_ADMIN_IDS" in str(info.value)


@pytest.mark.parametrize("url", [
    "not a url", "postgresql://bot:s3cr3t-pw@[::1/db", "postgresql://bot:s3cr3t-pw@db.example:port/db",
    "host=/run/postgresql password=s3cr3t-pw sslmode", "postgresql://bot:s3cr3t-pw@db.example:99999/bot",
    "postgresql://bot:s3cr3t-pw@db.example/bot?sslmode=maybe", "postgresql://bot:s3cr3t-pw@db/bot?colour=blue",
])
def test_a_malformed_database_url_is_app001_without_the_password(url: str) -> None:
    with pytest.raises(BotError) as info:
        Env.from_environ({"DATABASE_URL": url})
    assert info.value.code == "APP001" and "DATABASE_URL" in str(info.value)
    assert "s3cr3t-pw" not in str(info.value)


def test_the_database_password_is_a_secret() -> None:
    env = Env.from_environ({"DATABASE_URL": "postgresql://bot:s3cr3t-pw@db.example:5432/bot"})
    assert "s3cr3t-pw" in env.secrets() and "s3cr3t-pw" not in repr(env)


@pytest.mark.parametrize(("override", "key"), [
    ({"video": {"max_parallel_downloads": 0}}, "video.max_parallel_downloads"),
    ({"video": {"allowed_domains": "x.com"}}, "video.allowed_domains"),
    ({"video": {"timeout_seconds": "soon"}}, "video.timeout_seconds"),
    ({"gpt": {"models": "gpt-4o"}}, "gpt.models"),
    ({"gpt": {"max_tokens": -5}}, "gpt.max_tokens"),
    ({"chat_defaults": {"gpt_model": "o1-pro"}}, "chat_defaults.gpt_model"),
    ({"rate_limits": {"gpt": {"per_user_per_minute": -1}}}, "rate_limits.gpt.per_user_per_minute"),
    ({"rate_limits": {"gpt": {"per_usr_per_minute": 1}}}, "rate_limits.gpt.per_usr_per_minute"),
    ({"link_rewrites": ["x.com"]}, "link_rewrites"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"metrics_interval_seconds": 0}, "metrics_interval_seconds"),
])
def test_a_bad_global_config_value_is_app001_naming_the_key(tmp_path: Path, override: dict, key: str) -> None:
    path = tmp_path / GLOBAL_CONFIG_RELPATH
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(override))
    with pytest.raises(BotError) as info:
        load_global_config(tmp_path)
    assert info.value.code == "APP001"
    assert f"{key}:" in str(info.value), str(info.value)


def test_gpt_model_must_be_on_the_allow_list() -> None:
    cfg = default_global_config()
    assert validate_setting("gpt_model", "gpt-4o", cfg["gpt"]["models"]) == "gpt-4o"
    assert validate_setting("gpt_model", "", cfg["gpt"]["models"]) == ""
    with pytest.raises(ValueError, match="must be one of the models this bot allows: gpt-4o-mini, gpt-4o"):
        validate_setting("gpt_model", "o1-pro", cfg["gpt"]["models"])
    # a chat row written before the allow-list (or before the operator shortened it) falls back to the default
    default = cfg["chat_defaults"]["gpt_model"]
    assert ChatSettings.from_layers(cfg, {"gpt_model": "o1-pro"}).gpt_model == default


@given(st.sampled_from(["BOT_ADMIN_IDS", "BOT_POLL_TIMEOUT", "DATABASE_URL", "BOT_SANDBOX",
                        "WEATHER_BASE_URL"]),
       st.text(st.sampled_from("0123456789-, ²١٣_x:/@?=.\u200b") | st.characters(), max_size=60))
@example("BOT_ADMIN_IDS", "1,²").via("a bare ValueError before")
@example("BOT_ADMIN_IDS", "--1").via("a bare ValueError before")
def test_property_any_environment_value_gives_env_or_app001(name: str, value: str) -> None:
    try:
        env = Env.from_environ({name: value})
    except BotError as exc:
        assert exc.code == "APP001" and name in str(exc)
        return
    if name == "BOT_ADMIN_IDS":
        assert all(isinstance(i, int) for i in env.admin_ids)
        assert value.replace(",", "").replace("-", "").strip().isascii()


def test_env_pool_size_and_redis_url() -> None:
    env = Env.from_environ({"BOT_DB_POOL_SIZE": "12", "REDIS_URL": "redis://:p%40ss-word@127.0.0.1:6379/0"})
    assert env.db_pool_size == 12 and env.secrets() == ["p@ss-word"]  # the Redis password is never logged
    assert "p%40ss" not in repr(env)
    assert Env.from_environ({}).db_pool_size == 5 and Env.from_environ({}).redis_url == ""
    socket = Env.from_environ({"REDIS_URL": "unix:///run/redis/redis-server.sock?password=sock-secret"})
    assert socket.secrets() == ["sock-secret"]
