"""Role postgresql on the host: PostgreSQL 15, socket only, peer login of the bot, pg_stat_statements."""

import pytest

DB = "psychochauffeur_bot"


@pytest.fixture(autouse=True)
def _applied(require_role):
    require_role("postgresql")


@pytest.fixture(scope="module")
def psql(sh):
    def query(sql, user="postgres"):
        cmd = f"cd /tmp && runuser -u {user} -- psql -X -A -t -v ON_ERROR_STOP=1 -d {DB} -c {sql!r}"
        return sh(cmd).strip()

    return query


def test_cluster_running_and_enabled(host):
    assert host.service("postgresql@15-main").is_running
    assert host.service("postgresql").is_enabled


def test_unix_socket_and_no_tcp_listener(host, psql):
    assert host.socket("unix:///var/run/postgresql/.s.PGSQL.5432").is_listening
    assert not host.socket("tcp://5432").is_listening
    assert psql("SHOW listen_addresses") == ""


def test_bot_user_logs_in_by_peer(psql):
    assert psql("SELECT current_user", user="psychochauffeur") == "psychochauffeur"


def test_pg_stat_statements_loaded(psql):
    assert "pg_stat_statements" in psql("SHOW shared_preload_libraries")
    assert int(psql("SELECT count(*) FROM pg_stat_statements", user="psychochauffeur")) >= 0


def test_no_pending_restart_or_config_errors(psql):
    assert psql("SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
    assert psql("SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == "0"
