"""`psychochauffeur config generate|show` and `psychochauffeur admins`."""

from __future__ import annotations

import json

import psycopg
import pytest

from bot.settings import GLOBAL_CONFIG_RELPATH, default_global_config


def test_generate_creates_then_keeps(run_cli, app_dir):
    env = {"BOT_APP_DIR": str(app_dir)}
    path = app_dir / GLOBAL_CONFIG_RELPATH

    created = run_cli(env, "config", "generate", "--json")
    assert created.code == 0 and created.json()["action"] == "created"
    assert json.loads(path.read_text()) == default_global_config()

    path.write_text(json.dumps({"timezone": "Europe/Kyiv"}))
    kept = run_cli(env, "config", "generate")
    assert kept.code == 0 and "--reset" in kept.out
    assert json.loads(path.read_text()) == {"timezone": "Europe/Kyiv"}
    assert not (app_dir / "config_backup").exists()


def test_generate_reset_backs_up_the_previous_file(run_cli, app_dir):
    env = {"BOT_APP_DIR": str(app_dir)}
    path = app_dir / GLOBAL_CONFIG_RELPATH
    path.parent.mkdir(parents=True)
    path.write_text('{"timezone": "Europe/Kyiv"}')

    result = run_cli(env, "config", "generate", "--reset", "--json")

    assert result.code == 0 and result.json()["action"] == "reset"
    assert json.loads(path.read_text()) == default_global_config()
    backups = sorted((app_dir / "config_backup").iterdir())
    assert len(backups) == 2  # the runbook's restore name and a timestamped copy
    assert all(json.loads(b.read_text()) == {"timezone": "Europe/Kyiv"} for b in backups)
    assert (app_dir / "config_backup" / "global_config.json") in backups


@pytest.mark.runbook("Config recovery | Every config change backed up (site.yml, config set)")
def test_set_backs_up_every_change_and_validates(run_cli, app_dir):
    env = {"BOT_APP_DIR": str(app_dir)}
    path = app_dir / GLOBAL_CONFIG_RELPATH
    backups = app_dir / "config_backup"
    assert run_cli(env, "config", "generate").code == 0

    changed = run_cli(env, "config", "set", "video.max_parallel_downloads", "4", "--json")
    assert changed.code == 0 and changed.json()["action"] == "changed", changed.err
    assert json.loads(path.read_text())["video"]["max_parallel_downloads"] == 4
    # the file before the change, under the restore name and a timestamped one
    assert json.loads((backups / "global_config.json").read_text()) == default_global_config()
    assert len(list(backups.glob("global_config.*Z.json"))) == 1

    second = run_cli(env, "config", "set", "video.max_parallel_downloads", "6", "--json")
    assert second.code == 0 and second.json()["old"] == 4
    assert json.loads((backups / "global_config.json").read_text())["video"]["max_parallel_downloads"] == 4
    assert len(list(backups.glob("global_config.*Z.json"))) == 2

    same = run_cli(env, "config", "set", "video.max_parallel_downloads", "6", "--json")
    assert same.code == 0 and same.json()["action"] == "unchanged"
    assert len(list(backups.glob("global_config.*Z.json"))) == 2  # no change, no backup

    before = path.read_text()
    bad = run_cli(env, "config", "set", "video.max_parallel_downloads", "1000")
    assert bad.code == 2 and "nothing changed" in bad.err and "max_parallel_downloads" in bad.err
    unknown = run_cli(env, "config", "set", "video.max_paralel_downloads", "3")
    assert unknown.code == 2 and "unknown config key" in unknown.err
    assert "max_parallel_downloads" in unknown.err  # the keys it could have meant
    assert path.read_text() == before
    assert len(list(backups.glob("global_config.*Z.json"))) == 2


def test_set_text_value(run_cli, app_dir):
    env = {"BOT_APP_DIR": str(app_dir)}
    result = run_cli(env, "config", "set", "video.youtube_reply", "#yt", "--json")
    assert result.code == 0 and result.json()["value"] == "#yt"
    cfg = json.loads((app_dir / GLOBAL_CONFIG_RELPATH).read_text())
    assert cfg["video"]["youtube_reply"] == "#yt"
    assert not (app_dir / "config_backup").exists()  # there was no file to back up


def test_generate_into_a_blocked_path_fails_cleanly(run_cli, app_dir):
    (app_dir / "config").write_text("a file where the config directory should be")
    result = run_cli({"BOT_APP_DIR": str(app_dir)}, "config", "generate")
    assert result.code == 1 and "cannot write" in result.err and "Traceback" not in result.err


def test_show_masks_secrets(run_cli, app_dir):
    env = {
        "BOT_APP_DIR": str(app_dir),
        "BOT_TOKEN": "123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "OPENAI_API_KEY": "sk-secretsecretsecretsecret",
        "DATABASE_URL": "postgresql://u:pw0rdX@h/db",
    }
    result = run_cli(env, "config", "show", "--json")
    assert result.code == 0
    data = result.json()
    assert data["file_exists"] is False and data["global_config"] == default_global_config()
    assert data["environment"]["BOT_TOKEN"] == "set" and data["environment"]["WEATHER_API_KEY"] == "not set"
    text = run_cli(env, "config", "show")
    for secret in ("AAAAAAAAAAAAAAAA", "sk-secret", "pw0rdX"):
        assert secret not in result.out + text.out


def test_show_reports_a_broken_file(run_cli, app_dir):
    path = app_dir / GLOBAL_CONFIG_RELPATH
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    result = run_cli({"BOT_APP_DIR": str(app_dir)}, "config", "show")
    assert result.code == 1 and "APP001" in result.err


def test_admins_lists_ids_with_known_names(run_cli, db_env):
    with psycopg.connect(db_env["DATABASE_URL"]) as conn:
        conn.execute("INSERT INTO users (user_id, username, first_name) VALUES (42, 'boss', 'Olena')")
    env = {**db_env, "BOT_ADMIN_IDS": "42, 7"}
    data = run_cli(env, "admins", "--json").json()
    assert data["bot_admins"] == [{"user_id": 7}, {"user_id": 42, "username": "boss", "first_name": "Olena"}]
    text = run_cli(env, "admins")
    assert text.code == 0 and "@boss" in text.out and "7" in text.out


def test_admins_none_configured_and_bad_ids(run_cli, app_dir):
    none = run_cli({"BOT_APP_DIR": str(app_dir)}, "admins")
    assert none.code == 0 and "none configured" in none.out
    bad = run_cli({"BOT_APP_DIR": str(app_dir), "BOT_ADMIN_IDS": "12,-x"}, "admins")
    assert bad.code == 2 and "BOT_ADMIN_IDS" in bad.err
