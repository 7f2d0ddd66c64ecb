"""`psychochauffeur db ...` against a real PostgreSQL database."""

from __future__ import annotations

import psycopg
import pytest

from bot.db import migration_files
from bot.ops.dbadmin import EXPECTED_INDEXES, migration_index_names, parse_duration
from bot.ops.report import OpsError


def _index_names(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _seed_old_and_new(dsn: str) -> None:
    """One row 40 days old and one fresh row in every table `db truncate` prunes."""
    with psycopg.connect(dsn) as conn:
        for age, mid in (("40 days", 1), ("1 minute", 2)):
            conn.execute(
                "INSERT INTO messages (chat_id, message_id, user_id, text, timestamp)"
                " VALUES (-100, %s, 7, 'hi', now() - %s::interval)",
                (mid, age),
            )
            conn.execute(
                "INSERT INTO analysis_cache (chat_id, period, content_hash, summary, created_at)"
                " VALUES (-100, 'today', %s, 's', now() - %s::interval)",
                (str(mid), age),
            )
            conn.execute(
                "INSERT INTO error_events (ts, code, logger, message)"
                " VALUES (now() - %s::interval, 'DB001', 'x', 'm')",
                (age,),
            )


def test_migrate_check_then_apply(run_cli, app_dir, database_url):
    env = {"DATABASE_URL": database_url, "BOT_APP_DIR": str(app_dir)}
    names = [name for _, name, _ in migration_files()]

    pending = run_cli(env, "db", "migrate", "--check", "--json")
    assert pending.code == 1
    assert pending.json() == {"check": True, "pending": names, "up_to_date": False}
    with psycopg.connect(database_url) as conn:  # --check changed nothing
        assert conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None

    applied = run_cli(env, "db", "migrate")
    assert applied.code == 0 and all(n in applied.out for n in names)

    again = run_cli(env, "--json", "db", "migrate")
    assert again.code == 0 and again.json()["applied"] == []
    check = run_cli(env, "db", "migrate", "--check")
    assert check.code == 0 and "up to date" in check.out


@pytest.mark.parametrize("verb, column", [("vacuum", "n_dead_tup"), ("analyze", "n_mod_since_analyze")])
def test_vacuum_and_analyze_every_table(run_cli, db_env, verb, column):
    dsn = db_env["DATABASE_URL"]
    _seed_old_and_new(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM messages")  # dead tuples for VACUUM to reclaim

    result = run_cli(db_env, "db", verb, "--json")

    assert result.code == 0
    data = result.json()
    tables = {t["table"] for t in data["tables"]}
    assert tables >= {"messages", "chats", "users", "analysis_cache", "error_events"}
    with psycopg.connect(dsn) as conn:
        field = "last_vacuum" if verb == "vacuum" else "last_analyze"
        done = conn.execute(f"SELECT {field} FROM pg_stat_user_tables WHERE relname = 'messages'").fetchone()
    assert done[0] is not None
    assert all(column in t for t in data["tables"])


def test_stats_counts_rows(run_cli, db_env):
    _seed_old_and_new(db_env["DATABASE_URL"])
    result = run_cli(db_env, "db", "stats", "--json")
    assert result.code == 0
    data = result.json()
    rows = {t["table"]: t["rows"] for t in data["tables"]}
    assert rows["messages"] == 2 and rows["error_events"] == 2 and rows["chats"] == 0
    assert data["schema_version"] == max(v for v, _, _ in migration_files())
    assert data["size_bytes"] > 0 and data["connections"] >= 1
    text = run_cli(db_env, "db", "stats")
    assert text.code == 0 and "messages" in text.out and "schema version" in text.out


def test_index_analysis_and_create_indexes_are_idempotent(run_cli, db_env):
    dsn = db_env["DATABASE_URL"]
    before = run_cli(db_env, "db", "index-analysis", "--json").json()
    missing = {(m["table"], tuple(m["columns"])) for m in before["missing"]}
    present_names = _index_names(dsn)
    expected_missing = {(table, cols) for name, table, cols in EXPECTED_INDEXES if name not in present_names}
    assert missing == expected_missing and missing  # the migrations leave some for create-indexes

    created = run_cli(db_env, "db", "create-indexes", "--json")
    assert created.code == 0
    assert len(created.json()["created"]) == len(missing)
    assert {name for name, _, _ in EXPECTED_INDEXES} <= _index_names(dsn)

    again = run_cli(db_env, "db", "create-indexes", "--json")
    assert again.code == 0 and again.json()["created"] == []
    after = run_cli(db_env, "db", "index-analysis", "--json").json()
    assert after["missing"] == []
    assert any(ix["expected"] for ix in after["indexes"])


def test_create_indexes_reuses_an_equivalent_index_under_another_name(run_cli, db_env):
    dsn = db_env["DATABASE_URL"]
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE INDEX my_own_ts_index ON messages (timestamp)")
    result = run_cli(db_env, "db", "create-indexes", "--json").json()
    assert "messages_timestamp_idx" in result["present"]
    assert "messages_timestamp_idx" not in _index_names(dsn)


def test_create_indexes_reports_a_name_taken_by_another_index(run_cli, db_env):
    dsn = db_env["DATABASE_URL"]
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE INDEX messages_timestamp_idx ON messages (user_id)")  # right name, wrong columns
    result = run_cli(db_env, "db", "create-indexes", "--json")
    assert result.code == 1
    (skipped,) = result.json()["skipped"]
    assert skipped["name"] == "messages_timestamp_idx" and "taken" in skipped["reason"]
    assert "analysis_cache_created_at_idx" in result.json()["created"]


def test_cleanup_indexes_dry_run_by_default_then_apply(run_cli, db_env):
    dsn = db_env["DATABASE_URL"]
    run_cli(db_env, "db", "create-indexes")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE INDEX adhoc_users_first_name ON users (first_name)")
        conn.execute("CREATE UNIQUE INDEX adhoc_users_username ON users (username)")
    schema_before = _index_names(dsn)

    dry = run_cli(db_env, "db", "cleanup-indexes", "--json")
    assert dry.code == 0
    assert dry.json()["candidates"] == ["adhoc_users_first_name"]  # unique, expected, pk, migrations: kept
    assert _index_names(dsn) == schema_before

    applied = run_cli(db_env, "db", "cleanup-indexes", "--apply")
    assert applied.code == 0 and "adhoc_users_first_name" in applied.out
    assert _index_names(dsn) == schema_before - {"adhoc_users_first_name"}
    assert migration_index_names() <= _index_names(dsn)

    contradiction = run_cli(db_env, "db", "cleanup-indexes", "--apply", "--dry-run")
    assert contradiction.code == 2


def test_slow_queries_without_the_extension_says_how_to_enable_it(run_cli, db_env):
    result = run_cli(db_env, "db", "slow-queries", "--json")
    assert result.code == 0
    data = result.json()
    assert data["available"] is False and "shared_preload_libraries" in data["note"]
    assert run_cli(db_env, "db", "slow-queries", "--limit", "0").code == 2


def test_slow_queries_extension_installed_but_not_loaded(run_cli, db_env):
    with psycopg.connect(db_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    result = run_cli(db_env, "db", "slow-queries", "--json")
    assert result.code == 0
    data = result.json()
    assert data["available"] is False and "not loaded" in data["note"]


def test_slow_queries_with_the_extension_loaded(run_cli, db_env, pg_server):
    dsn = db_env["DATABASE_URL"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    pg_server.stop()
    pg_server.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("SELECT count(*) FROM generate_series(1, 50000)")
        result = run_cli(db_env, "db", "slow-queries", "--limit", "3", "--json")
        text = run_cli(db_env, "db", "slow-queries")
        everything = run_cli(db_env, "db", "slow-queries", "--limit", "1000", "--json").json()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET shared_preload_libraries")
        pg_server.stop()
        pg_server.start()
    assert result.code == 0
    data = result.json()
    assert data["available"] is True and 1 <= len(data["queries"]) <= 3
    assert all({"query", "calls", "mean_ms", "total_ms"} <= q.keys() for q in data["queries"])
    assert any("generate_series" in q["query"] for q in everything["queries"])
    assert text.code == 0 and "mean execution time" in text.out


def test_truncate_dry_run_then_delete(run_cli, db_env):
    dsn = db_env["DATABASE_URL"]
    _seed_old_and_new(dsn)

    dry = run_cli(db_env, "db", "truncate", "--older-than", "30d", "--dry-run", "--json")
    assert dry.code == 0
    assert dry.json()["counts"] == {"messages": 1, "analysis_cache": 1, "error_events": 1}
    assert _count(dsn, "messages") == 2  # nothing deleted
    assert _count(dsn, "usage_rollup") == _count(dsn, "error_rollup") == 0  # nor counted

    real = run_cli(db_env, "db", "truncate", "--older-than", "30d")
    assert real.code == 0 and "deleted" in real.out
    assert [_count(dsn, t) for t in ("messages", "analysis_cache", "error_events")] == [1, 1, 1]
    assert [_count(dsn, t) for t in ("usage_rollup", "error_rollup")] == [1, 1]  # the deleted, per hour
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT message_id FROM messages").fetchone()[0] == 2  # the fresh one stays


BAD_DURATIONS = [
    "0d",
    "30",
    "3x",
    "-1d",
    "",
    "30 days",
    "99999999d",
    "1.5d",
    "$(id)",
    "30d; DELETE FROM users",
]


def test_truncate_rejects_bad_durations_and_changes_nothing(run_cli, db_env):
    dsn = db_env["DATABASE_URL"]
    _seed_old_and_new(dsn)
    for bad in BAD_DURATIONS:
        result = run_cli(db_env, "db", "truncate", f"--older-than={bad}")
        assert result.code == 2, bad
        assert "duration" in result.err, bad
    assert _count(dsn, "messages") == 2


def test_truncate_on_an_unmigrated_database_says_to_migrate(run_cli, app_dir, database_url):
    result = run_cli({"DATABASE_URL": database_url, "BOT_APP_DIR": str(app_dir)},
                     "db", "truncate", "--older-than", "30d")  # fmt: skip
    assert result.code == 1 and "db migrate" in result.err


def test_parse_duration_units():
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("2w").days == 14
    assert parse_duration("12h").total_seconds() == 12 * 3600
    with pytest.raises(OpsError):
        parse_duration("3651d")


def test_missing_database_url_says_what_to_set(run_cli, app_dir):
    result = run_cli({"BOT_APP_DIR": str(app_dir)}, "db", "stats")
    assert result.code == 2 and "DATABASE_URL" in result.err and "set it" in result.err
    as_json = run_cli({"BOT_APP_DIR": str(app_dir)}, "db", "stats", "--json")
    assert as_json.code == 2 and "DATABASE_URL" in as_json.json()["error"]


def test_malformed_database_url_is_not_echoed(run_cli, app_dir):
    env = {"BOT_APP_DIR": str(app_dir), "DATABASE_URL": "password=hunter2secret garbage"}
    result = run_cli(env, "db", "stats")
    assert result.code == 2 and "hunter2secret" not in result.err + result.out


def test_stopped_database_fails_with_db001(run_cli, db_env, pg_server):
    pg_server.stop()
    try:
        result = run_cli(db_env, "db", "stats", "--json")
    finally:
        pg_server.start()
    assert result.code == 1
    assert "DB001" in result.json()["error"]
    assert run_cli(db_env, "db", "stats").code == 0  # back once the server is
