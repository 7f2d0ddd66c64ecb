"""`psychochauffeur usage` against a real PostgreSQL database with messages planted at known ages."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

BOT_ID = 999000
TOKEN = f"{BOT_ID}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _msg(conn: psycopg.Connection, chat: int, user: int, text: str, age: str) -> None:
    conn.execute(
        "INSERT INTO messages (chat_id, message_id, user_id, text, timestamp)"
        " VALUES (%s, nextval('messages_id_seq'), %s, %s, now() - %s::interval)",
        (chat, user, text, age),
    )


def _seed(dsn: str) -> None:
    """This week: users 1, 2, 3 (and the bot's replies); the week before: user 1 only, fewer commands."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for user, text in (
            (1, "/weather Kyiv"),
            (1, "/gpt hi"),
            (2, "/weather@PsychoBot Lviv"),
            (2, "hello"),
            (3, "/stats"),
            (3, "/weather"),
        ):
            _msg(conn, -100, user, text, "1 day")
        _msg(conn, -100, BOT_ID, "/weather is a command the bot only quotes", "1 day")
        _msg(conn, -100, 1, "/weather", "8 days")
        _msg(conn, -100, 1, "plain", "9 days")
        for _ in range(3):
            conn.execute(
                "INSERT INTO error_events (ts, code, logger, message) VALUES (now() - '2 days'::interval,"
                " 'API003', 'x', 'm')"
            )
        conn.execute(
            "INSERT INTO chats (chat_id, chat_type, config) VALUES (-100, 'group', '{}'),"
            " (-200, 'group', %s), (-300, 'group', '{}')",
            (Jsonb({"gpt_enabled": False}),),
        )
        _msg(conn, -200, 4, "old talk", "20 days")


@pytest.mark.runbook("Weekly | 3. Performance review (full report) with active users, command usage, trends")
def test_usage_counts_active_users_commands_and_trends(run_cli, db_env):
    _seed(db_env["DATABASE_URL"])
    run = run_cli({**db_env, "BOT_TOKEN": TOKEN}, "--json", "usage", "--days", "7")
    assert run.code == 0, run.err
    data = run.json()
    assert data["active_users"]["period"] == 3  # the bot's own stored reply is not a user
    assert data["active_users"]["daily_peak"] == 3
    assert data["period"]["commands"] == 5
    top = {c["command"]: c for c in data["top_commands"]}
    assert top["weather"]["uses"] == 3 and top["weather"]["users"] == 3  # /weather@PsychoBot counts too
    assert top["weather"]["previous_uses"] == 1 and top["weather"]["change_percent"] == 200.0
    assert [c["command"] for c in data["top_commands"]] == ["weather", "gpt", "stats"]
    trends = data["trends"]
    assert trends["active_users"] == {"current": 3, "previous": 1, "change_percent": 200.0}
    assert trends["messages"]["previous"] == 2 and trends["errors"]["current"] == 3
    assert any("command usage up 400.0%" in n for n in data["notes"])
    assert any("error events per 100 messages rose to 50.0" in n for n in data["notes"])
    # -200 has its own configuration and said nothing this week; -300 has none; -100 talked
    assert [c["chat_id"] for c in data["silent_configured_chats"]] == [-200]


@pytest.mark.runbook("Monthly | 2. Full performance analysis: the month's trend and the previous 30 days")
def test_usage_buckets_show_the_trend_within_the_period(run_cli, db_env):
    _seed(db_env["DATABASE_URL"])
    run = run_cli({**db_env, "BOT_TOKEN": TOKEN}, "--json", "usage", "--days", "28", "--buckets", "4")
    assert run.code == 0, run.err
    buckets = run.json()["buckets"]
    assert [b["messages"] for b in buckets] == [0, 1, 2, 6]  # 20 days, 8-9 days, 1 day ago
    assert [b["active_users"] for b in buckets] == [0, 1, 1, 3]
    assert run.json()["previous_period"]["messages"] == 0
    text = run_cli({**db_env, "BOT_TOKEN": TOKEN}, "usage", "--days", "28", "--buckets", "4").out
    assert "trend by part of the period" in text and "/weather" in text


def test_usage_bad_input_is_a_clear_error(run_cli, db_env):
    for args, words in (
        (["--days", "0"], "--days must be between 1"),
        (["--days", "3", "--buckets", "4"], "--buckets must be between 1 and 3"),
    ):
        run = run_cli(db_env, "usage", *args)
        assert run.code == 2 and words in run.err, run.err


def test_usage_before_migrations_says_what_to_do(run_cli, app_dir, database_url):
    run = run_cli({"DATABASE_URL": database_url, "BOT_APP_DIR": str(app_dir)}, "usage")
    assert run.code == 1 and "psychochauffeur db migrate" in run.err


@pytest.mark.runbook("Monthly | 2. Full performance analysis: the month's trend and the previous 30 days")
def test_the_previous_30_days_survive_the_retention_that_deletes_their_messages(run_cli, db_env):
    """weekly.yml's retention (`db truncate --older-than 30d`) deletes the messages of the 30 days before the
    month; the monthly comparison reads the hourly counts the truncate kept of them, and a second truncate
    counts nothing twice."""
    dsn = db_env["DATABASE_URL"]
    _seed(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for user, text, age in (
            (5, "/weather Odesa", "35 days"),
            (5, "/ask why", "40 days"),
            (6, "/weather", "41 days"),
            (6, "hi", "45 days"),
            (BOT_ID, "/weather quoted by the bot", "40 days"),
        ):
            _msg(conn, -400, user, text, age)
        conn.execute("INSERT INTO error_events (ts, code, logger, message)"
                     " VALUES (now() - '50 days'::interval, 'API003', 'x', 'm')")
    env = {**db_env, "BOT_TOKEN": TOKEN}
    figures = ("messages", "active_users", "active_chats", "commands", "errors", "error_rate_percent")

    def month() -> tuple[dict, dict, dict]:
        run = run_cli(env, "--json", "usage", "--days", "30")
        assert run.code == 0, run.err
        data = run.json()
        previous = {k: data["previous_period"][k] for k in figures}
        return previous, data["trends"], {c["command"]: c["previous_uses"] for c in data["top_commands"]}

    before = month()
    assert before[0] == {"messages": 4, "active_users": 2, "active_chats": 1, "commands": 3, "errors": 1,
                         "error_rate_percent": 25.0}
    assert before[2]["weather"] == 2
    for first in (True, False):
        truncate = run_cli(env, "db", "truncate", "--older-than", "30d")
        assert truncate.code == 0, truncate.err
        assert ("counted per hour first" in truncate.out) is first, truncate.out
        with psycopg.connect(dsn) as conn:
            old = conn.execute("SELECT count(*) FROM messages WHERE timestamp < now() - '30 days'::interval")
            assert old.fetchone()[0] == 0  # the retention did delete them
        assert month() == before
