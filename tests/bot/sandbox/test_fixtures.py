"""The shared fixtures of tests/bot/conftest.py: real PostgreSQL, sandbox reset, bot_env."""

from __future__ import annotations

import os
import pwd

import psycopg
import pytest


def test_pg_server_runs_as_non_root_on_loopback(pg_server):
    with psycopg.connect(pg_server.dsn("postgres")) as conn:
        (user,) = conn.execute("select current_user").fetchone()
        (listen,) = conn.execute("show listen_addresses").fetchone()
        (sockets,) = conn.execute("show unix_socket_directories").fetchone()
    assert listen == "127.0.0.1" and sockets == str(pg_server.socket_dir)
    owner = pwd.getpwuid(os.stat(pg_server.data_dir).st_uid).pw_name
    assert owner != "root" and user == owner


def test_database_url_is_a_fresh_empty_database(database_url, pg_server):
    with psycopg.connect(database_url) as conn:
        tables = conn.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone()[0]
        conn.execute("create table scratch (id int)")
    assert tables == 0
    assert database_url.startswith(pg_server.dsn("").rstrip("/"))


def test_database_url_differs_per_test(database_url):
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("select to_regclass('public.scratch')").fetchone()[0]
    assert exists is None


def test_stop_and_start_simulate_an_outage(pg_server, database_url):
    pg_server.stop()
    assert not pg_server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(database_url, connect_timeout=3)
    pg_server.start()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_create_db_refuses_bad_names(pg_server):
    with pytest.raises(ValueError, match="must match"):
        pg_server.create_db('x"; drop database postgres; --')


def test_sandbox_is_reset_between_tests_part_1(sandbox):
    sandbox.client.push("left over")
    assert sandbox.client.health()["pending_updates"] == 1


def test_sandbox_is_reset_between_tests_part_2(sandbox):
    assert sandbox.client.health()["pending_updates"] == 0


def test_bot_env_points_at_sandbox_db_and_tmp_app_dir(bot_env, sandbox, database_url, tmp_path):
    assert bot_env["TELEGRAM_BASE_URL"] == f"{sandbox.url}/bot"
    assert bot_env["OPENAI_BASE_URL"] == f"{sandbox.url}/openai/v1"
    assert bot_env["WEATHER_BASE_URL"] == f"{sandbox.url}/weather"
    assert bot_env["DATABASE_URL"] == database_url
    assert bot_env["BOT_APP_DIR"].startswith(str(tmp_path))
    assert all(isinstance(v, str) for v in bot_env.values())
