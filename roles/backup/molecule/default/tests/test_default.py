"""Role backup on the converged lab host: timers, real dumps through the systemd services, the manifest,
retention, the restore-verify job, and verify failing loudly on corrupted backups."""

import json

import pytest

DIR = "/var/backups/psychochauffeur-bot"
SCRIPT = "/usr/local/sbin/psychochauffeur-backup"
JOBS = ("daily", "weekly", "verify")
VERIFY_UNIT = "psychochauffeur-backup-verify.service"
COPY = "/var/lib/postgresql/backup-copy"
TABLES = {"public.chats": 7, "public.messages": 500, 'audit."Odd Name"': 3}


def as_postgres(host, script: str):
    return host.run("runuser -u postgres -- /bin/bash -c %s", f"set -euo pipefail; {script}")


def start(host, job: str):
    return host.run(f"systemctl start psychochauffeur-backup-{job}.service")


def cursor(host) -> str:
    """The journal's current position: later reads see only what was logged after it."""
    out = host.check_output("journalctl -n 1 --show-cursor -o cat --no-pager")
    return out.rsplit("-- cursor: ", 1)[1].strip()


def journal(host, after: str, **fields: str) -> str:
    """Messages logged after the cursor whose journal fields match (journalctl's own matches do not combine
    reliably with --after-cursor on systemd 252); --sync first, so everything logged so far is in."""
    host.run_test("journalctl --sync")
    out = host.check_output("journalctl --after-cursor %s -o json --no-pager", after)
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return "\n".join(
        str(e.get("MESSAGE", "")) for e in entries if all(e.get(k) == v for k, v in fields.items())
    )


@pytest.fixture(scope="module")
def today(host) -> str:
    return host.check_output("date +%Y%m%d")


@pytest.fixture(scope="module")
def backups(host, today):
    """One daily and one weekly backup taken through the real services."""
    for job in ("daily", "weekly"):
        out = start(host, job)
        assert out.rc == 0, out.stderr
    return {"daily": f"{DIR}/backup_{today}.sql", "weekly": f"{DIR}/backup_weekly_{today}.dump"}


@pytest.mark.parametrize("job", JOBS)
def test_timers_are_listed_and_active(host, job):
    timer = host.service(f"psychochauffeur-backup-{job}.timer")
    assert timer.is_enabled
    assert timer.is_running
    assert f"psychochauffeur-backup-{job}.timer" in host.check_output(
        "systemctl list-timers --all --no-pager"
    )
    assert (
        host.run(f"systemd-analyze verify /etc/systemd/system/psychochauffeur-backup-{job}.service").rc == 0
    )


def test_directory_and_settings(host):
    d = host.file(DIR)
    assert d.is_directory and d.user == "postgres" and d.mode == 0o700
    cfg = host.file("/etc/psychochauffeur-backup.json")
    assert cfg.mode == 0o640 and cfg.group == "postgres"
    settings = json.loads(cfg.content_string)
    assert settings["database"] == "psychochauffeur_bot"
    assert settings["keep"] == {"daily": 2, "weekly": 2}


def test_dumps_are_written_checked_and_listed(host, backups):
    for kind, path in backups.items():
        f = host.file(path)
        assert f.exists and f.size > 0
        assert (f.user, f.mode) == ("postgres", 0o600)
        rows = json.loads(host.file(path + ".rows.json").content_string)["rows"]
        assert rows == TABLES, f"{kind}: row counts of the dump's snapshot"
    assert host.file(backups["daily"]).contains("-- PostgreSQL database dump complete")
    listing = host.check_output(f"pg_restore --list {backups['weekly']}")
    assert "TABLE DATA public messages" in listing
    sums = host.file(f"{DIR}/SHA256SUMS").content_string
    for path in backups.values():
        name = path.rsplit("/", 1)[1]
        assert f"  {name}\n" in sums and f"  {name}.rows.json\n" in sums
    assert host.run(f"cd {DIR} && sha256sum --check --strict SHA256SUMS").rc == 0
    assert host.check_output(f"find {DIR} -name '.*tmp*' | wc -l") == "0", "no temp files left"


def test_verify_service_passes_and_drops_the_scratch_db(host, backups):
    mark = cursor(host)
    out = start(host, "verify")
    assert out.rc == 0, out.stderr
    log = journal(host, mark, _SYSTEMD_UNIT=VERIFY_UNIT)
    assert "verify ok" in log
    assert "public.messages: restored 500, live 500" in log
    dbs = host.check_output("runuser -u postgres -- psql -XAtc 'SELECT datname FROM pg_database'")
    assert "psychochauffeur_bot_verify" not in dbs.split()


def test_retention_keeps_the_newest(host, backups, today):
    # three older daily backups (copies of today's, listed in the manifest as if written on those days)
    as_postgres(
        host,
        f"cd {DIR}; for d in 20200101 20200102 20200103; do "
        f"cp -p backup_{today}.sql backup_$d.sql; "
        f"cp -p backup_{today}.sql.rows.json backup_$d.sql.rows.json; "
        f"sha256sum backup_$d.sql backup_$d.sql.rows.json >> SHA256SUMS; done",
    )
    assert start(host, "daily").rc == 0
    daily = host.check_output(f"cd {DIR} && ls backup_????????.sql").split()
    assert daily == ["backup_20200103.sql", f"backup_{today}.sql"]
    assert not host.file(f"{DIR}/backup_20200101.sql.rows.json").exists
    sums = host.file(f"{DIR}/SHA256SUMS").content_string
    assert "20200101" not in sums and "20200102" not in sums and "backup_20200103.sql\n" in sums
    assert host.run(f"cd {DIR} && sha256sum --check --strict SHA256SUMS").rc == 0
    as_postgres(host, f"cd {DIR}; rm backup_20200103.sql*; grep -v 20200103 SHA256SUMS > S; mv S SHA256SUMS")
    assert start(host, "verify").rc == 0


CORRUPTIONS = {
    # name: (shell run inside the copy as postgres, rehash the manifest?, expected message)
    "flipped-bytes": (
        "f=$(echo backup_weekly_*.dump); "
        "printf XXXX | dd of=$f bs=1 seek=$(( $(stat -c %s $f) / 2 )) conv=notrunc",
        False,
        "sha256 mismatch",
    ),
    "truncated-custom": (
        "f=$(echo backup_weekly_*.dump); truncate -s $(( $(stat -c %s $f) / 2 )) $f",
        True,
        "pg_restore",
    ),
    "empty-custom": (": > backup_weekly_*.dump", True, "empty file"),
    "truncated-plain": (
        "f=$(echo backup_2*.sql); truncate -s $(( $(stat -c %s $f) * 2 / 3 )) $f",
        True,
        "truncated dump",
    ),
    "row-removed": (
        "sed -i '/^42\\t/d' backup_2*.sql",
        True,
        "public.messages: restored 499 rows, the dump held 500",
    ),
    "manifest-missing": ("rm SHA256SUMS", False, "SHA256SUMS: missing or empty"),
    "unlisted-backup": ("cp -p backup_2*.sql backup_20200101.sql", False, "not listed in SHA256SUMS"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_verify_fails_on_a_corrupted_copy(host, backups, name):
    script, rehash, expected = CORRUPTIONS[name]
    setup = f"rm -rf {COPY}; cp -a {DIR} {COPY}; cd {COPY}; {script}"
    if rehash:  # corruption before the dump was hashed: only the restore/row checks can catch it
        setup += "; sha256sum backup_* > SHA256SUMS"
    assert as_postgres(host, setup).rc == 0
    out = host.run(f"runuser -u postgres -- {SCRIPT} verify --dir {COPY}")
    assert out.rc == 1
    assert "BACKUP FAILED (verify)" in out.stderr
    assert expected in out.stderr
    # the pristine backups still verify
    assert host.run(f"runuser -u postgres -- {SCRIPT} verify --dir {DIR}").rc == 0


def test_failure_is_loud_through_systemd(host, backups):
    """A corrupted live backup: the verify unit fails, the journal says why, the alert hook fires."""
    weekly = backups["weekly"]
    as_postgres(host, f"cp -p {weekly} {COPY}.orig; printf XXXX | dd of={weekly} bs=1 seek=100 conv=notrunc")
    mark = cursor(host)
    try:
        assert start(host, "verify").rc != 0
        assert (
            host.run("systemctl is-failed psychochauffeur-backup-verify.service").stdout.strip() == "failed"
        )
        assert "sha256 mismatch" in journal(host, mark, _SYSTEMD_UNIT=VERIFY_UNIT)
        alerts = journal(host, mark, SYSLOG_IDENTIFIER="psychochauffeur-backup-alert")
        assert "verify on" in alerts and "sha256 mismatch" in alerts
    finally:
        as_postgres(host, f"mv {COPY}.orig {weekly}")
        host.run("systemctl reset-failed psychochauffeur-backup-verify.service")
    assert start(host, "verify").rc == 0


def test_verify_compares_with_the_live_database(host, backups):
    sql = "INSERT INTO chats SELECT g, 'group', 'new' FROM generate_series(100, 199) g"
    host.run_test("runuser -u postgres -- psql -X -d psychochauffeur_bot -c %s", sql)
    mark = cursor(host)
    try:
        out = start(host, "verify")
        assert out.rc != 0
        log = journal(host, mark, _SYSTEMD_UNIT=VERIFY_UNIT)
        assert "public.chats: restored 7 rows, live has 107" in log
    finally:
        sql = "DELETE FROM chats WHERE chat_id >= 100"
        host.run_test("runuser -u postgres -- psql -X -d psychochauffeur_bot -c %s", sql)
        host.run("systemctl reset-failed psychochauffeur-backup-verify.service")
    assert start(host, "verify").rc == 0


def test_bad_settings_fail_loudly_and_change_nothing(host, backups):
    host.run_test(
        "python3 -c %s",
        "import json; c = json.load(open('/etc/psychochauffeur-backup.json')); "
        "c['scratch_database'] = c['database']; json.dump(c, open('/etc/bad-backup.json', 'w'))",
    )
    host.run_test("chmod 644 /etc/bad-backup.json")
    before = host.check_output(f"ls -l --time-style=+%s {DIR} | md5sum")
    out = host.run(f"runuser -u postgres -- {SCRIPT} --config /etc/bad-backup.json dump daily")
    assert out.rc == 1 and "scratch_database must differ from database" in out.stderr
    assert host.check_output(f"ls -l --time-style=+%s {DIR} | md5sum") == before
    host.run("rm -f /etc/bad-backup.json")
