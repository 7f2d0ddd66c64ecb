"""`psychochauffeur` (== `python -m bot`): run the bot, and the runbook's operator commands.

Every command prints human text, or one JSON document with --json. Exit codes: 0 success; 1 failure (or, for
`health`, warning; for `audit`, a high-severity finding; for `db migrate --check`, pending migrations);
2 bad input or missing configuration (and `health` critical).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from bot.errors import BotError
from bot.logs import redact
from bot.ops.report import OpsError, Result
from bot.settings import Env

# One paragraph per line; _Formatter wraps each to the terminal width.
EPILOG = "\n".join([
    "Configuration comes from the environment: BOT_TOKEN, TELEGRAM_BASE_URL, DATABASE_URL, OPENAI_API_KEY, "
    "OPENAI_BASE_URL, OPENAI_MODEL, WEATHER_API_KEY, WEATHER_BASE_URL, BOT_ADMIN_IDS, BOT_APP_DIR (default: "
    "the current directory), BOT_LOG_DIR (default: $BOT_APP_DIR/logs).",
    "",
    "exit codes: 0 ok | 1 failure, health warning, high audit finding, pending migrations | 2 bad input, "
    "missing configuration, health critical",
])  # fmt: skip


class _Formatter(argparse.HelpFormatter):
    """Wrap each line of a description as its own paragraph (argparse's default joins them all)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = text.splitlines()
        return "\n".join(
            textwrap.fill(ln, width, initial_indent=indent, subsequent_indent=indent) for ln in lines
        )


def _add(
    sub: Any, name: str, help_text: str, description: str, json_parent: argparse.ArgumentParser, **kwargs: Any
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=description,
        parents=[json_parent],
        formatter_class=_Formatter,
        **kwargs,
    )


def build_parser() -> argparse.ArgumentParser:
    # --json is accepted before or after the command; SUPPRESS keeps a subcommand from resetting it.
    json_parent = argparse.ArgumentParser(add_help=False)
    json_parent.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON document instead of text",
    )

    parser = argparse.ArgumentParser(
        prog="psychochauffeur",
        description="PsychoChauffeur Telegram bot and its operator commands.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--json", action="store_true", default=False, help="print one JSON document instead of text"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add(
        sub,
        "run",
        "run the bot (long polling) until SIGTERM/SIGINT",
        "Run the bot: long polling against TELEGRAM_BASE_URL with BOT_TOKEN. SIGHUP reopens the log files.",
        json_parent,
    )

    p = _add(
        sub,
        "health",
        "health check with the runbook thresholds (exit 0 ok, 1 warning, 2 critical)",
        "Check the bot process (systemd unit psychochauffeur-bot, else the pid in data/metrics.json), the "
        "database, the Bot API (getMe), disk free %, memory %, CPU %, the error rate of the last hour, the "
        "last update's age, the handler p95 latency, OpenAI and the weather API (each configured one).\n"
        "Thresholds (runbook): CPU >70% info, >80% warning; memory >80% warning, >90% critical; disk free "
        "<30% warning, <20% critical; error rate >1% info, >2% warning, >5% critical; p95 >2 s warning, "
        ">5 s critical; external API failures >0% warning, >50% critical; bot process stopped or not "
        "rewriting its metrics for 90 s (hung) critical.\nExit 0 ok (or info), 1 warning, 2 critical.",
        json_parent,
    )
    p.add_argument(
        "--comprehensive",
        action="store_true",
        help="also print database statistics",
    )

    p = _add(
        sub,
        "perf",
        "performance figures of the running bot and the database",
        "Measured figures: RSS/VMS of the bot process (from /proc), GC objects and handler latency p50/p95 "
        "(from data/metrics.json), database round-trip latency (SELECT 1 pings) and, with --full-report, "
        "table sizes.\nExit 1 when the bot process is not running or the database is unreachable.",
        json_parent,
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="a short report (5 DB pings)")
    mode.add_argument(
        "--full-report", action="store_true", help="everything, with 50 DB pings and table sizes"
    )
    mode.add_argument(
        "--monitor", action="store_true", help="print --count samples, --interval seconds apart"
    )
    mode.add_argument("--memory-profile", action="store_true", help="the bot process's memory in detail")
    p.add_argument(
        "--interval", type=float, default=5.0, help="seconds between --monitor samples (default 5)"
    )
    p.add_argument("--count", type=int, default=12, help="number of --monitor samples (default 12)")

    db = _add(
        sub,
        "db",
        "database maintenance (migrations, vacuum, indexes, stats, retention)",
        "Database maintenance on DATABASE_URL.",
        json_parent,
    )
    dbsub = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    p = _add(
        dbsub,
        "migrate",
        "apply pending schema migrations",
        "Apply pending migrations from bot/migrations. With --check only list them "
        "(exit 1 when some are pending).",
        json_parent,
    )
    p.add_argument("--check", action="store_true", help="list pending migrations, change nothing")
    _add(dbsub, "vacuum", "VACUUM every table", "VACUUM every table of schema public.", json_parent)
    _add(
        dbsub,
        "analyze",
        "ANALYZE every table (planner statistics)",
        "ANALYZE every table of schema public.",
        json_parent,
    )
    _add(
        dbsub,
        "index-analysis",
        "index usage, size and missing expected indexes",
        "List the indexes with their scan counts and sizes, flag unused ones, and name the expected indexes "
        "that are missing.",
        json_parent,
    )
    _add(
        dbsub,
        "create-indexes",
        "create the expected indexes that are missing (idempotent)",
        "Create the indexes the bot's queries rely on (CREATE INDEX CONCURRENTLY) when no index on the same "
        "columns exists.",
        json_parent,
    )
    p = _add(
        dbsub,
        "cleanup-indexes",
        "drop unused ad-hoc indexes (dry run unless --apply)",
        "Drop indexes with zero scans that are not primary keys, unique, constraint-backing, expected by "
        "the bot or created by its migrations.\nA dry run by default: pass --apply to drop.",
        json_parent,
    )
    p.add_argument("--apply", action="store_true", help="really drop the listed indexes")
    p.add_argument("--dry-run", action="store_true", help="only list (the default)")
    p = _add(
        dbsub,
        "slow-queries",
        "slowest queries from pg_stat_statements",
        "The queries with the highest mean execution time, from pg_stat_statements when that extension "
        "is installed and loaded (otherwise a note on how to enable it).",
        json_parent,
    )
    p.add_argument("--limit", type=int, default=10, help="how many queries (default 10)")
    _add(
        dbsub,
        "stats",
        "database size, connections and table row counts",
        "Database size, connections, cache hit ratio, schema version, and row count and size per table.",
        json_parent,
    )
    p = _add(
        dbsub,
        "truncate",
        "delete old messages, analysis cache and error events",
        "Delete rows older than --older-than from messages, analysis_cache and error_events, in one "
        "transaction, and print the counts. The deleted messages and error events are counted per hour "
        "first (usage_rollup, error_rollup), so `usage` still compares a period with the one before.",
        json_parent,
    )
    p.add_argument(
        "--older-than", required=True, metavar="DURATION", help="age like 30d, 12h, 2w (units s, m, h, d, w)"
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    p = _add(
        sub,
        "audit",
        "security audit (exit 1 on a high-severity finding)",
        "File modes of .env and config/private/* (must be 600), secrets leaked into the logs, the admin "
        "list, failed-authentication lines and suspicious patterns (injection|exploit|attack) in the logs.\n"
        "The full scan also reads rotated logs and looks for world-writable files in the app dir.",
        json_parent,
    )
    p.add_argument("--quick-scan", action="store_true", help="current logs only, no app dir walk")

    cfg = _add(
        sub,
        "config",
        "the global config file",
        "Manage $BOT_APP_DIR/config/global/global_config.json.",
        json_parent,
    )
    cfgsub = cfg.add_subparsers(dest="config_command", metavar="CONFIG_COMMAND", required=True)
    p = _add(
        cfgsub,
        "generate",
        "create the global config from the defaults",
        "Create config/global/global_config.json from the shipped defaults; an existing file is kept "
        "unless --reset, which first copies it to config_backup/.",
        json_parent,
    )
    p.add_argument("--reset", action="store_true", help="overwrite an existing file (after a backup)")
    p = _add(
        cfgsub,
        "set",
        "set one key of the global config (validated, previous file backed up)",
        'Set KEY (dotted, e.g. video.max_parallel_downloads) to VALUE (JSON: 2, true, "text", [..]; '
        "other text is taken as a string) in config/global/global_config.json. The result is validated "
        "first; the previous file is copied to config_backup/ (timestamped and global_config.json). "
        "Restart the bot to apply it.",
        json_parent,
    )
    p.add_argument("key", metavar="KEY", help="dotted key, e.g. video.max_parallel_downloads")
    p.add_argument("value", metavar="VALUE", help="JSON value, or plain text for a string")
    _add(
        cfgsub,
        "show",
        "the effective global config and the environment (secrets masked)",
        "Print the effective global config and which environment settings are set (secret values never).",
        json_parent,
    )

    p = _add(
        sub,
        "usage",
        "active users, command usage and trends (from the stored messages)",
        "Business metrics of the runbook from the database: active users (daily average and peak, last 7 "
        "days, the period), the most used commands, error events, each compared with the previous period of "
        "the same length (change in percent), the period cut into --buckets parts (trend within it) and the "
        "chats that have their own configuration but sent nothing in the period.",
        json_parent,
    )
    p.add_argument("--days", type=int, default=7, help="length of the period in days (default 7)")
    p.add_argument("--buckets", type=int, default=1, help="equal parts of the period to compare (default 1)")

    p = _add(
        sub,
        "admins",
        "the bot admins (BOT_ADMIN_IDS) and, with --chats, group chat admins",
        "List BOT_ADMIN_IDS (with names when the users table knows them). --chats also asks the Bot API "
        "for the admins of every stored group chat (at most 100).",
        json_parent,
    )
    p.add_argument("--chats", action="store_true", help="also list chat admins from the Bot API")
    return parser


def _load_env() -> Env:
    try:
        return Env.from_environ(os.environ)
    except BotError as exc:
        raise OpsError(f"configuration error ({exc.code}): {exc}", exit_code=2) from None


def _run_bot(env: Env) -> Result:
    if not env.bot_token:
        raise OpsError("BOT_TOKEN is not set: set it to the bot token from @BotFather", exit_code=2)
    from bot.app import run  # imported here so operator commands work without the bot's runtime deps loaded

    code = run(env)
    return Result({"stopped": True, "exit_code": code}, "bot stopped", code or 0)


def dispatch(args: argparse.Namespace) -> Result:
    from bot.ops import audit, config, dbadmin, health, perf, usage

    env = _load_env()
    dsn = env.database_url
    if args.command == "run":
        return _run_bot(env)
    if args.command == "health":
        return health.health(env, comprehensive=args.comprehensive)
    if args.command == "perf":
        if args.monitor:
            emit = None if args.json else (lambda line: print(line, flush=True))
            return perf.monitor(env, args.interval, args.count, emit)
        if args.memory_profile:
            return perf.memory_profile(env)
        return perf.report(env, full=args.full_report)
    if args.command == "db":
        match args.db_command:
            case "migrate":
                return dbadmin.migrate(dsn, args.check)
            case "vacuum":
                return dbadmin.vacuum(dsn)
            case "analyze":
                return dbadmin.analyze(dsn)
            case "index-analysis":
                return dbadmin.index_analysis(dsn)
            case "create-indexes":
                return dbadmin.create_indexes(dsn)
            case "cleanup-indexes":
                if args.apply and args.dry_run:
                    raise OpsError("--apply and --dry-run contradict each other", exit_code=2)
                return dbadmin.cleanup_indexes(dsn, apply=args.apply)
            case "slow-queries":
                if not 1 <= args.limit <= 1000:
                    raise OpsError("--limit must be between 1 and 1000", exit_code=2)
                return dbadmin.slow_queries(dsn, args.limit)
            case "stats":
                return dbadmin.stats(dsn)
            case "truncate":
                return dbadmin.truncate(dsn, args.older_than, args.dry_run)
    if args.command == "audit":
        return audit.audit(env, quick=args.quick_scan)
    if args.command == "config":
        if args.config_command == "generate":
            return config.generate(env, args.reset)
        if args.config_command == "set":
            return config.set_value(env, args.key, args.value)
        return config.show(env)
    if args.command == "admins":
        return config.admins(env, args.chats)
    if args.command == "usage":
        return usage.usage(env, args.days, args.buckets)
    raise OpsError(f"unknown command {args.command!r}", exit_code=2)  # argparse rejects these first


def cli(argv: Sequence[str] | None = None) -> int:
    """Parse, run, print; returns the exit code (main() exits with it)."""
    args = build_parser().parse_args(argv)
    secrets = [os.environ.get(k) for k in ("BOT_TOKEN", "OPENAI_API_KEY", "WEATHER_API_KEY", "DATABASE_URL")]
    try:
        result = dispatch(args)
    except OpsError as exc:
        message = redact(str(exc), secrets)
        if args.json:
            print(json.dumps({"error": message, "exit_code": exc.exit_code}))
        else:
            print(f"psychochauffeur: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so without leaking secrets, keep the traceback for the report
        print(redact(traceback.format_exc(), secrets), file=sys.stderr)
        message = redact(f"internal error: {type(exc).__name__}: {exc}", secrets)
        if args.json:
            print(json.dumps({"error": message, "exit_code": 1}))
        else:
            print(f"psychochauffeur: {message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.data, indent=2, default=str, ensure_ascii=False))
    else:
        print(result.text)
    return result.exit_code


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(cli(argv))
