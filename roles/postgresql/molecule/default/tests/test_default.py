"""Role postgresql, verified on the converged lab host (values from converge.yml)."""

import pytest

DB = "psychochauffeur_bot"
SOCKET = "/var/run/postgresql/.s.PGSQL.5432"


def psql(host, sql, user="postgres", db=DB):
    """Run one query over the Unix socket as an OS user (peer authentication)."""
    cmd = host.run(f"runuser -u {user} -- psql -X -A -t -v ON_ERROR_STOP=1 -d {db} -c {sql!r}")
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def test_service_active_and_enabled(host):
    assert host.service("postgresql@15-main").is_running
    assert host.service("postgresql").is_enabled
    assert host.package("postgresql-15").is_installed
    assert host.package("python3-psycopg2").is_installed


def test_socket_exists(host):
    assert host.socket(f"unix://{SOCKET}").is_listening


def test_no_tcp_listener(host):
    assert not host.socket("tcp://5432").is_listening
    assert not host.socket("tcp://0.0.0.0:5432").is_listening
    assert not host.socket("tcp://:::5432").is_listening
    assert psql(host, "SHOW listen_addresses") == ""
    # nothing else either: no TCP socket at all owned by postgres
    assert host.run("ss -Htlnp | grep -c postgres").stdout.strip() == "0"


def test_peer_login_as_the_bot_user(host):
    out = psql(host, "SELECT current_user || ' ' || current_database()", user="psychochauffeur")
    assert out == f"psychochauffeur {DB}"


def test_other_os_users_are_refused(host):
    cmd = host.run(f"runuser -u nobody -- psql -X -d {DB} -U psychochauffeur -c 'SELECT 1'")
    assert cmd.rc != 0
    assert "authentication failed" in cmd.stderr or "no pg_hba.conf entry" in cmd.stderr


def test_database_owner_and_encoding(host):
    out = psql(host, f"SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate "
                     f"FROM pg_database WHERE datname = '{DB}'")
    assert out == "psychochauffeur|UTF8|C.UTF-8"
    assert psql(host, "SELECT rolsuper FROM pg_roles WHERE rolname = 'psychochauffeur'") == "f"


def test_pg_stat_statements_loaded(host):
    assert "pg_stat_statements" in psql(host, "SHOW shared_preload_libraries")
    assert psql(host, "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'") == \
        "pg_stat_statements"
    # the view only works when the library is preloaded; the bot user can read it
    count = psql(host, "SELECT count(*) FROM pg_stat_statements", user="psychochauffeur")
    assert int(count) >= 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("shared_buffers", "64MB"),
        ("work_mem", "8MB"),
        ("max_connections", "50"),
        ("idle_in_transaction_session_timeout", "10min"),
        ("password_encryption", "scram-sha-256"),
    ],
)
def test_tuning_is_live(host, name, value):
    assert psql(host, f"SHOW {name}") == value


def test_config_files_have_no_errors(host):
    assert psql(host, "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == "0"
    assert psql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"
    assert psql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
    dropin = host.file("/etc/postgresql/15/main/conf.d/50-psychochauffeur.conf")
    assert dropin.user == "postgres"
    assert dropin.contains("^shared_preload_libraries = 'pg_stat_statements'$")
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf")
    assert hba.mode == 0o640
    assert not hba.contains("^host")  # no password/TCP lines without a password
