#!/bin/bash
# The bot role's critical sections of going live (roles/bot/tasks/go_live.yml), each one command so that the
# bot's downtime is the work itself, not Ansible's per-task round trips. Root only; prints key=value lines.
#
#   in UNIT APP_DIR VERSION CLI DB DUMP
#       stop UNIT → when DUMP is given (the new release has migrations): the newest message id, pg_dump -Fc of
#       DB after the stop (checked with pg_restore --list), all pending migrations in one transaction with the
#       new release → previous → the live release, current → releases/VERSION (atomic rename) → reset-failed
#       + start. DUMP '' (no pending migration): stop → switch → reset-failed + start; the caller took the
#       dump while the old release ran (the schema does not move, so no rollback restores it).
#   aside UNIT DB SCHEMA_BEFORE RESTORE MAX_MESSAGE KEEP_FILE
#       stop UNIT; restore=true when RESTORE is true and the applied migrations differ from SCHEMA_BEFORE;
#       then the messages with id > MAX_MESSAGE (stored after the dump) are copied to KEEP_FILE.
#   back UNIT APP_DIR VERSION DB KEEP_FILE
#       stop UNIT, put the messages of KEEP_FILE back (when it exists; ON CONFLICT DO NOTHING), current →
#       releases/VERSION, reset-failed + start UNIT (go_live's rescue and rollback.yml; KEEP_FILE may be '').
#
# The database: here, as postgres over the Unix socket; or, when the caller sets PGHOST (database on another
# host: PGHOST, PGPORT, PGUSER, PGSSLMODE and PGPASSFILE, the bot's own login), over TCP as that user, which
# owns the bot database. Dumps and KEEP_FILE are files on this host either way.
set -euo pipefail
cd /

pg() {  # pg CLIENT ARGS: a PostgreSQL client as postgres here, or with the caller's PG* connection
    if [ -n "${PGHOST:-}" ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

q() {  # q DB SQL: one value from psql
    pg psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

schema() {  # applied migrations, "1,2,900" ("" before the first one)
    if [ "$(q "$1" "SELECT to_regclass('schema_migrations') IS NOT NULL")" = t ]; then
        q "$1" "SELECT coalesce(string_agg(version::text, ',' ORDER BY version), '') FROM schema_migrations"
    fi
}

max_message() {  # newest message id, -1 without a messages table
    if [ "$(q "$1" "SELECT to_regclass('messages') IS NOT NULL")" = t ]; then
        q "$1" "SELECT coalesce(max(id), 0) FROM messages"
    else
        echo -1
    fi
}

switch() {  # switch APP_DIR VERSION: previous → the outgoing release, current → releases/VERSION (atomic)
    local app=$1 version=$2 live
    test -f "$app/releases/$version/.release-complete" || { echo "no complete release $version" >&2; exit 3; }
    live=$(readlink "$app/current" || true)
    if [ -n "$live" ] && [ "$live" != "releases/$version" ]; then
        ln -sfn "$live" "$app/previous.new" && mv -Tf "$app/previous.new" "$app/previous"
    fi
    ln -sfn "releases/$version" "$app/current.new" && mv -Tf "$app/current.new" "$app/current"
    echo "current=$version"
}

start() {  # a unit at its start limit refuses to start until reset-failed
    systemctl reset-failed "$1" 2>/dev/null || true
    systemctl start "$1"
    echo "started=$(date +%s.%N)"
}

command=${1:-}
shift || true
case "$command" in
in)
    [ $# -eq 6 ] || { echo "usage: $0 in UNIT APP_DIR VERSION CLI DB DUMP" >&2; exit 2; }
    unit=$1 app=$2 version=$3 cli=$4 db=$5 dump=$6
    systemctl stop "$unit"
    echo "stopped=$(date +%s.%N)"
    if [ -n "$dump" ]; then
        max=$(max_message "$db")
        echo "max_message=$max"
        pg pg_dump -Fc -f "$dump.part" "$db"
        pg_restore --list "$dump.part" > /dev/null
        mv -f "$dump.part" "$dump"
        echo "dump=$dump"
        migrated=$(PSYCHOCHAUFFEUR_RELEASE="$app/releases/$version" "$cli" --json db migrate)
        echo "migrate=${migrated//$'\n'/ }"
    fi
    switch "$app" "$version"
    start "$unit"
    ;;
aside)
    [ $# -eq 6 ] || { echo "usage: $0 aside UNIT DB SCHEMA_BEFORE RESTORE MAX_MESSAGE KEEP_FILE" >&2; exit 2; }
    unit=$1 db=$2 before=$3 restore=$4 max=$5 keep=$6
    systemctl stop "$unit"
    now=$(schema "$db")
    echo "schema_now=$now"
    rm -f "$keep"
    if [ "$restore" = true ] && [ "$now" != "$before" ]; then
        echo "restore=true"
        if [ "$max" -ge 0 ]; then
            pg psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "\\copy (SELECT chat_id, message_id,
                user_id, text, timestamp FROM messages WHERE id > $max) TO '$keep'"
            echo "set_aside=$(wc -l < "$keep")"
        fi
    else
        echo "restore=false"
    fi
    ;;
back)
    [ $# -eq 5 ] || { echo "usage: $0 back UNIT APP_DIR VERSION DB KEEP_FILE" >&2; exit 2; }
    unit=$1 app=$2 version=$3 db=$4 keep=$5
    test -f "$app/releases/$version/.release-complete" || { echo "no complete release $version" >&2; exit 3; }
    systemctl stop "$unit"
    if [ -n "$keep" ] && [ -f "$keep" ]; then
        pg psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <<SQL | sed 's/^/kept=/'
CREATE TEMP TABLE kept (chat_id bigint, message_id bigint, user_id bigint, text text, timestamp timestamptz);
\\copy kept FROM '$keep'
WITH ins AS (INSERT INTO messages (chat_id, message_id, user_id, text, timestamp) SELECT * FROM kept
  ON CONFLICT (chat_id, message_id) DO NOTHING RETURNING 1) SELECT count(*) FROM ins;
SQL
        rm -f "$keep"
    fi
    switch "$app" "$version"
    start "$unit"
    ;;
*)
    echo "usage: $0 in|aside|back ARGS (see the head of this script)" >&2
    exit 2
    ;;
esac
