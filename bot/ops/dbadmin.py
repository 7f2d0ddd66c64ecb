"""`psychochauffeur db ...`: the runbook's database maintenance, with psycopg (sync)."""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bot.ops.report import OpsError, Result
from bot.ops.system import human_bytes

CONNECT_TIMEOUT_S = 5

# Indexes the bot's queries rely on, keyed by (table, columns). `create-indexes` adds any that are missing
# (an existing btree index on the same columns counts, whatever its name); `cleanup-indexes` never drops them.
EXPECTED_INDEXES: list[tuple[str, str, tuple[str, ...]]] = [
    ("messages_chat_id_timestamp_idx", "messages", ("chat_id", "timestamp")),  # /analyze, /stats
    ("messages_timestamp_idx", "messages", ("timestamp",)),  # db truncate
    ("analysis_cache_created_at_idx", "analysis_cache", ("created_at",)),  # db truncate
    ("error_events_ts_idx", "error_events", ("ts",)),  # /errors, db truncate
    ("usage_rollup_hour_idx", "usage_rollup", ("hour",)),  # usage, db truncate
    ("error_rollup_hour_idx", "error_rollup", ("hour",)),  # usage, db truncate
]

# What `db truncate` deletes: table -> its timestamp column.
RETENTION_TABLES = {"messages": "timestamp", "analysis_cache": "created_at", "error_events": "ts"}
COMMAND_RE = r"^/([A-Za-z0-9_]+)"  # a stored text that is a command (usage counts them by name)
# Before the retention deletes them, messages and error events are counted per hour (migration 002), so that
# `usage` can still compare a period with the one before; kept as long as `usage --days` can look back.
_ROLL_UP = {
    "messages": f"""
        INSERT INTO usage_rollup (hour, chat_id, user_id, command, messages)
        SELECT date_trunc('hour', timestamp), chat_id, user_id, lower(substring(text from '{COMMAND_RE}')),
               count(*)
        FROM messages WHERE timestamp < %(cutoff)s GROUP BY 1, 2, 3, 4""",
    "error_events": """
        INSERT INTO error_rollup (hour, errors)
        SELECT date_trunc('hour', ts), count(*) FROM error_events WHERE ts < %(cutoff)s GROUP BY 1""",
}
ROLLUP_KEEP = timedelta(days=2 * 366)  # usage --days 366 compares with the 366 days before

DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_RETENTION = timedelta(days=3650)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def connect(dsn: str | None, autocommit: bool = True) -> psycopg.Connection:
    if not dsn:
        raise OpsError(
            "DATABASE_URL is not set: set it to the bot's libpq connection string, "
            "e.g. DATABASE_URL=postgresql://psychochauffeur@localhost/psychochauffeur_bot",
            exit_code=2,
        )
    try:
        return psycopg.connect(
            dsn,
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="psychochauffeur-cli",
        )
    except psycopg.ProgrammingError:
        # The parser's message may quote parts of the string (a password), so it is not repeated here.
        raise OpsError("DATABASE_URL is not a valid libpq connection string", exit_code=2) from None
    except psycopg.OperationalError as exc:
        raise OpsError(f"database unreachable (DB001): {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def parse_duration(text: str) -> timedelta:
    """'30d' -> 30 days. Units s, m, h, d, w; positive; at most ten years."""
    m = re.fullmatch(r"\s*(\d{1,7})\s*([smhdw])\s*", text or "")
    if not m:
        raise OpsError(
            f"invalid duration {text!r}: use a number and a unit s, m, h, d or w (e.g. 30d, 12h, 2w)",
            exit_code=2,
        )
    delta = timedelta(**{DURATION_UNITS[m.group(2)]: int(m.group(1))})
    if delta <= timedelta(0):
        raise OpsError(f"invalid duration {text!r}: must be greater than zero", exit_code=2)
    if delta > MAX_RETENTION:
        raise OpsError(f"invalid duration {text!r}: at most {MAX_RETENTION.days} days", exit_code=2)
    return delta


def _public_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    ).fetchall()
    return [r[0] for r in rows]


def require_tables(conn: psycopg.Connection, tables: list[str]) -> None:
    missing = [
        t for t in tables if conn.execute("SELECT to_regclass(%s)", (f"public.{t}",)).fetchone()[0] is None
    ]
    if missing:
        raise OpsError(
            f"table(s) {', '.join(missing)} missing: run `psychochauffeur db migrate` first", exit_code=1
        )


# --- migrate ---------------------------------------------------------------------------------------------


def migrate(dsn: str | None, check: bool) -> Result:
    from bot.db import migrate as core_migrate  # CORE's migration runner

    connect(dsn).close()  # clear error for a missing/unreachable DB before CORE's runner starts
    try:
        names = list(core_migrate(dsn, check=check))
    except psycopg.Error as exc:
        raise OpsError(f"migration failed: {_first_line(exc)}") from None
    if check:
        text = (
            f"{len(names)} pending migration(s): {', '.join(names)}"
            if names
            else "database schema is up to date (no pending migrations)"
        )
        return Result({"check": True, "pending": names, "up_to_date": not names}, text, 1 if names else 0)
    text = (
        f"applied {len(names)} migration(s): {', '.join(names)}" if names else "nothing to apply: up to date"
    )
    return Result({"check": False, "applied": names}, text)


# --- vacuum / analyze ----------------------------------------------------------------------------------


# What each maintenance verb works off, from pg_stat_user_tables, shown per table before it runs.
_MAINTAIN_STAT = {"VACUUM": "n_dead_tup", "ANALYZE": "n_mod_since_analyze"}


def _maintain(dsn: str | None, verb: str) -> Result:
    stat_col = _MAINTAIN_STAT[verb]
    with connect(dsn) as conn:
        tables = _public_tables(conn)
        before = dict(
            conn.execute(
                sql.SQL("SELECT relname, {} FROM pg_stat_user_tables WHERE schemaname = 'public'").format(
                    sql.Identifier(stat_col)
                )
            ).fetchall()
        )
        done = []
        for table in tables:
            t0 = time.perf_counter()
            conn.execute(sql.SQL(verb + " {}").format(sql.Identifier("public", table)))
            done.append(
                {
                    "table": table,
                    stat_col: before.get(table, 0),
                    "seconds": round(time.perf_counter() - t0, 3),
                }
            )
    lines = [f"{verb.lower()}: {len(done)} table(s)"]
    lines += [f"  {d['table']:20} {stat_col} before: {d[stat_col]:>8}" for d in done]
    return Result({"operation": verb.lower(), "tables": done}, "\n".join(lines))


def vacuum(dsn: str | None) -> Result:
    return _maintain(dsn, "VACUUM")


def analyze(dsn: str | None) -> Result:
    return _maintain(dsn, "ANALYZE")


# --- indexes ------------------------------------------------------------------------------------------

INDEX_QUERY = """
SELECT ic.relname, t.relname, am.amname,
       array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord),
       i.indisunique, i.indisprimary,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid),
       coalesce(s.idx_scan, 0), pg_relation_size(i.indexrelid), pg_get_indexdef(i.indexrelid),
       i.indexprs IS NOT NULL OR i.indpred IS NOT NULL, i.indisvalid
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE n.nspname = 'public'
ORDER BY t.relname, ic.relname
"""


def _indexes(conn: psycopg.Connection) -> list[dict[str, Any]]:
    keys = (
        "index",
        "table",
        "method",
        "columns",
        "unique",
        "primary",
        "backs_constraint",
        "scans",
        "size_bytes",
        "definition",
        "partial_or_expression",
        "valid",
    )
    return [dict(zip(keys, row, strict=True)) for row in conn.execute(INDEX_QUERY).fetchall()]


def migration_index_names() -> set[str]:
    """Index names created by bot/migrations/*.sql: the schema's own, never dropped by cleanup."""
    pattern = re.compile(
        r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)\"?", re.I
    )
    names: set[str] = set()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        names.update(m.lower() for m in pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    return names


def _is_expected(ix: dict[str, Any]) -> bool:
    return any(
        ix["table"] == table
        and tuple(ix["columns"]) == cols
        and ix["method"] == "btree"
        and not ix["partial_or_expression"]
        and ix["valid"]
        for _, table, cols in EXPECTED_INDEXES
    )


def _stats_reset(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return row[0].isoformat() if row and row[0] else None


def _removable(ix: dict[str, Any], schema_names: set[str]) -> bool:
    return not (
        ix["primary"]
        or ix["unique"]
        or ix["backs_constraint"]
        or ix["scans"] > 0
        or _is_expected(ix)
        or ix["index"].lower() in schema_names
    )


def index_analysis(dsn: str | None) -> Result:
    schema_names = migration_index_names()
    with connect(dsn) as conn:
        indexes = _indexes(conn)
        tables = set(_public_tables(conn))
        since = _stats_reset(conn)
    for ix in indexes:
        ix["expected"] = _is_expected(ix)
        ix["from_migrations"] = ix["index"].lower() in schema_names
        ix["unused"] = ix["scans"] == 0
        ix["removable"] = _removable(ix, schema_names)
    present = {(ix["table"], tuple(ix["columns"])) for ix in indexes if ix["expected"]}
    missing = [
        {"name": name, "table": table, "columns": list(cols)}
        for name, table, cols in EXPECTED_INDEXES
        if table in tables and (table, cols) not in present
    ]
    lines = [f"{len(indexes)} index(es) in schema public (scans counted since {since or 'cluster start'})"]
    for ix in indexes:
        flags = [f for f in ("expected", "from_migrations", "unused", "removable") if ix[f]]
        lines.append(
            f"  {ix['table']:18} {ix['index']:48} scans={ix['scans']:<8} {human_bytes(ix['size_bytes']):>10}"
            f"  {','.join(flags)}"
        )
    lines.append(
        "missing expected indexes: "
        + (", ".join(f"{m['table']}({', '.join(m['columns'])})" for m in missing) or "none")
    )
    return Result({"stats_since": since, "indexes": indexes, "missing": missing}, "\n".join(lines))


def create_indexes(dsn: str | None) -> Result:
    created, present, skipped = [], [], []
    with connect(dsn) as conn:
        tables = set(_public_tables(conn))
        indexes = _indexes(conn)
        existing = {(ix["table"], tuple(ix["columns"])) for ix in indexes if _is_expected(ix)}
        invalid = {ix["index"] for ix in indexes if not ix["valid"]}
        for name, table, cols in EXPECTED_INDEXES:
            if table not in tables:
                skipped.append({"name": name, "table": table, "reason": "table missing (run db migrate)"})
                continue
            if (table, cols) in existing:
                present.append(name)
                continue
            if name in invalid:  # left behind by an interrupted CREATE INDEX CONCURRENTLY: rebuild it
                conn.execute(sql.SQL("DROP INDEX CONCURRENTLY {}").format(sql.Identifier("public", name)))
            elif conn.execute("SELECT to_regclass(%s)", (f"public.{name}",)).fetchone()[0] is not None:
                reason = f"the name {name} is taken by another index or relation"
                skipped.append({"name": name, "table": table, "reason": reason})
                continue
            # CONCURRENTLY: no write lock on a live bot's tables (needs autocommit, which connect() sets).
            conn.execute(
                sql.SQL("CREATE INDEX CONCURRENTLY {} ON {} ({})").format(
                    sql.Identifier(name),
                    sql.Identifier("public", table),
                    sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                )
            )
            created.append(name)
    lines = [
        f"created {len(created)} index(es): {', '.join(created) or '-'}",
        f"already present: {len(present)}",
    ]
    lines += [f"skipped {s['name']}: {s['reason']}" for s in skipped]
    return Result(
        {"created": created, "present": present, "skipped": skipped}, "\n".join(lines), 1 if skipped else 0
    )


def cleanup_indexes(dsn: str | None, apply: bool) -> Result:
    """Drop unused indexes that are not the schema's own. Dry run unless `apply`."""
    schema_names = migration_index_names()
    with connect(dsn) as conn:
        since = _stats_reset(conn)
        candidates = [ix for ix in _indexes(conn) if _removable(ix, schema_names)]
        dropped = []
        if apply:
            for ix in candidates:
                conn.execute(
                    sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                        sql.Identifier("public", ix["index"])
                    )
                )
                dropped.append(ix["index"])
    names = [ix["index"] for ix in candidates]
    if apply:
        text = f"dropped {len(dropped)} unused index(es): {', '.join(dropped) or '-'}"
    else:
        text = (
            f"dry run: {len(names)} unused index(es) would be dropped: {', '.join(names) or '-'}\n"
            f"(scans counted since {since or 'cluster start'}; run with --apply to drop them)"
        )
    return Result({"dry_run": not apply, "candidates": names, "dropped": dropped, "stats_since": since}, text)


# --- slow queries / stats ------------------------------------------------------------------------------


def slow_queries(dsn: str | None, limit: int = 10) -> Result:
    enable_hint = (
        "to enable it: set shared_preload_libraries = 'pg_stat_statements' in postgresql.conf, restart "
        "PostgreSQL, then run CREATE EXTENSION pg_stat_statements; in the bot's database"
    )
    with connect(dsn) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone() is None:
            note = "pg_stat_statements is not installed in this database; " + enable_hint
            return Result({"available": False, "note": note, "queries": []}, note)
        try:
            rows = conn.execute(
                """SELECT query, calls, mean_exec_time, total_exec_time, rows FROM pg_stat_statements
                   WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                   ORDER BY mean_exec_time DESC LIMIT %s""",
                (limit,),
            ).fetchall()
        except psycopg.errors.ObjectNotInPrerequisiteState:
            note = "pg_stat_statements is installed but not loaded; " + enable_hint
            return Result({"available": False, "note": note, "queries": []}, note)
    queries = [
        {"query": q, "calls": c, "mean_ms": round(m, 3), "total_ms": round(t, 3), "rows": r}
        for q, c, m, t, r in rows
    ]
    lines = [f"top {len(queries)} queries by mean execution time"]
    for q in queries:
        one_line = " ".join(q["query"].split())
        lines.append(f"  {q['mean_ms']:>10.2f} ms  x{q['calls']:<6} {one_line[:150]}")
    return Result({"available": True, "queries": queries}, "\n".join(lines))


def db_stats(conn: psycopg.Connection) -> dict[str, Any]:
    name, size, version = conn.execute(
        "SELECT current_database(), pg_database_size(current_database()), current_setting('server_version')"
    ).fetchone()
    connections = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    ).fetchone()[0]
    hit, read = conn.execute(
        "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    tables = []
    for table in _public_tables(conn):
        rows = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table))
        ).fetchone()
        size_row = conn.execute(
            "SELECT pg_total_relation_size(%s::regclass)", (f"public.{table}",)
        ).fetchone()
        tables.append({"table": table, "rows": rows[0], "size_bytes": size_row[0]})
    version_row = None
    if any(t["table"] == "schema_migrations" for t in tables):
        version_row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    return {
        "database": name,
        "server_version": version,
        "size_bytes": size,
        "connections": connections,
        "cache_hit_ratio": round(hit / (hit + read), 4) if hit + read else None,
        "schema_version": version_row,
        "tables": tables,
    }


def stats(dsn: str | None) -> Result:
    with connect(dsn) as conn:
        data = db_stats(conn)
    ratio = data["cache_hit_ratio"]
    lines = [
        f"database {data['database']} (PostgreSQL {data['server_version']}): "
        f"{human_bytes(data['size_bytes'])}, "
        f"{data['connections']} connection(s), cache hit ratio "
        f"{'n/a' if ratio is None else f'{ratio:.1%}'}, schema version {data['schema_version']}",
    ]
    lines += [
        f"  {t['table']:20} {t['rows']:>10} rows {human_bytes(t['size_bytes']):>12}" for t in data["tables"]
    ]
    return Result(data, "\n".join(lines))


def ping(conn: psycopg.Connection, n: int) -> dict[str, float]:
    """Round-trip latency of `SELECT 1` over an open connection, n times."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "count": n,
        "min_ms": round(samples[0], 3),
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[max(0, round(0.95 * n) - 1)], 3),
        "max_ms": round(samples[-1], 3),
    }


# --- truncate -----------------------------------------------------------------------------------------


def truncate(dsn: str | None, older_than: str, dry_run: bool) -> Result:
    delta = parse_duration(older_than)  # validated before touching the DB
    with connect(dsn, autocommit=False) as conn:
        require_tables(conn, [*RETENTION_TABLES, "usage_rollup", "error_rollup"])
        cutoff = conn.execute("SELECT now() - %s::interval", (delta,)).fetchone()[0]
        counts: dict[str, int] = {}
        for table, column in RETENTION_TABLES.items():
            if not dry_run and table in _ROLL_UP:
                conn.execute(_ROLL_UP[table], {"cutoff": cutoff})
            if dry_run:
                query = sql.SQL("SELECT count(*) FROM {} WHERE {} < %s")
                counts[table] = conn.execute(
                    query.format(sql.Identifier("public", table), sql.Identifier(column)), (cutoff,)
                ).fetchone()[0]
            else:
                query = sql.SQL("DELETE FROM {} WHERE {} < %s")
                counts[table] = conn.execute(
                    query.format(sql.Identifier("public", table), sql.Identifier(column)), (cutoff,)
                ).rowcount
        if dry_run:
            conn.rollback()
        else:
            for table in ("usage_rollup", "error_rollup"):
                conn.execute(sql.SQL("DELETE FROM {} WHERE hour < now() - %s::interval").format(
                    sql.Identifier("public", table)), (ROLLUP_KEEP,))
        # leaving the `with` block commits the deletes (and the hourly counts of what they delete) as one
    verb = "would delete" if dry_run else "deleted"
    lines = [
        f"{'dry run: ' if dry_run else ''}{verb} rows older than {older_than} (before {cutoff.isoformat()})"
    ]
    lines += [f"  {table:15} {n}" for table, n in counts.items()]
    if not dry_run and (counts["messages"] or counts["error_events"]):
        lines.append("  (messages and error events counted per hour first: `usage` trends keep them)")
    return Result(
        {
            "dry_run": dry_run,
            "older_than": older_than,
            "cutoff": cutoff.isoformat(),
            "counts": counts,
            "total": sum(counts.values()),
        },
        "\n".join(lines),
    )
