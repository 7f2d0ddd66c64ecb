"""`psychochauffeur usage`: the runbook's business metrics from the stored messages and error events.

Active users (daily average and peak, weekly, over the period), command usage (the most used commands: every
message is stored, so a command is a stored text starting with "/"), the same figures for the previous period
of equal length with the change in percent (trends), the period cut into equal buckets (trend within the
period) and the chats that have their own configuration but sent nothing in the period. The bot's own stored
replies (user id = the numeric prefix of BOT_TOKEN) are not users.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bot.ops import dbadmin
from bot.ops.dbadmin import COMMAND_RE
from bot.ops.report import OpsError, Result
from bot.settings import Env

MAX_DAYS = 366
MAX_BUCKETS = 12
TOP_COMMANDS = 10
# Trends worth a look in the daily review (runbook "Info alerts": performance degradation trends, high usage).
RISE_PERCENT = 50.0
ERROR_RATE_FLOOR = 1.0  # error events per 100 messages: below this a rise is noise

# The stored messages of a period plus the hourly counts of those the retention deleted (`db truncate`,
# migration 002): a period is then exact to the hour, however long ago it was.
_MESSAGES = f"""
SELECT timestamp AS ts, chat_id, user_id, lower(substring(text from '{COMMAND_RE}')) AS command, 1 AS n
FROM messages
WHERE timestamp >= %(start)s AND timestamp < %(end)s AND user_id IS DISTINCT FROM %(bot)s::bigint
UNION ALL
SELECT hour, chat_id, user_id, command, messages
FROM usage_rollup
WHERE hour >= %(start)s AND hour < %(end)s AND user_id IS DISTINCT FROM %(bot)s::bigint
"""
_PERIOD_SQL = f"""
SELECT coalesce(sum(n), 0)::bigint AS messages, count(DISTINCT user_id) AS active_users,
       count(DISTINCT chat_id) AS active_chats,
       coalesce(sum(n) FILTER (WHERE command IS NOT NULL), 0)::bigint AS commands
FROM ({_MESSAGES}) AS m
"""
_ERRORS_SQL = """
SELECT (SELECT count(*) FROM error_events WHERE ts >= %(start)s AND ts < %(end)s)
     + (SELECT coalesce(sum(errors), 0) FROM error_rollup WHERE hour >= %(start)s AND hour < %(end)s)
       AS errors
"""
_DAILY_SQL = f"""
SELECT date_trunc('day', ts AT TIME ZONE 'UTC')::date AS day, count(DISTINCT user_id) AS users,
       sum(n)::bigint AS messages
FROM ({_MESSAGES}) AS m
GROUP BY 1 ORDER BY 1
"""
_COMMANDS_SQL = f"""
SELECT command, sum(n)::bigint AS uses, count(DISTINCT user_id) AS users
FROM ({_MESSAGES}) AS m
WHERE command IS NOT NULL
GROUP BY 1 ORDER BY uses DESC, command
"""
_SILENT_SQL = """
SELECT c.chat_id, c.title, (SELECT max(timestamp) FROM messages m WHERE m.chat_id = c.chat_id) AS last_message
FROM chats c
WHERE c.config <> '{}'::jsonb AND NOT EXISTS (
    SELECT 1 FROM messages m WHERE m.chat_id = c.chat_id AND m.timestamp >= %(start)s
      AND m.user_id IS DISTINCT FROM %(bot)s::bigint)
ORDER BY c.chat_id
"""


def bot_user_id(env: Env) -> int | None:
    """The bot's own user id: the digits before the colon of its token."""
    head = (env.bot_token or "").partition(":")[0]
    return int(head) if head.isdigit() else None


def _period(
    cur: psycopg.Cursor[dict[str, Any]], start: datetime, end: datetime, bot: int | None
) -> dict[str, Any]:
    args = {"start": start, "end": end, "bot": bot}
    cur.execute(_PERIOD_SQL, args)
    figures = dict(cur.fetchone() or {})
    cur.execute(_ERRORS_SQL, args)
    figures["errors"] = (cur.fetchone() or {}).get("errors", 0)
    figures["error_rate_percent"] = (
        round(100 * figures["errors"] / figures["messages"], 2) if figures["messages"] else None
    )
    return {"start": start.isoformat(timespec="seconds"), "end": end.isoformat(timespec="seconds"), **figures}


def change_percent(current: float | None, previous: float | None) -> float | None:
    """Change from previous to current in percent; None when there is nothing to compare with."""
    if current is None or not previous:
        return None
    return round(100 * (current - previous) / previous, 1)


def _trend_notes(now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    notes = []
    rate, old_rate = now["error_rate_percent"], before["error_rate_percent"]
    if rate is not None and rate >= ERROR_RATE_FLOOR and (old_rate is None or rate > old_rate * 1.5):
        notes.append(f"error events per 100 messages rose to {rate} (previous period {old_rate})")
    for key, label in (("commands", "command usage"), ("messages", "message volume")):
        change = change_percent(now[key], before[key])
        if change is not None and change >= RISE_PERCENT:
            notes.append(f"{label} up {change}% ({before[key]} -> {now[key]})")
    return notes


def usage(env: Env, days: int, buckets: int = 1, now: datetime | None = None) -> Result:
    if not 1 <= days <= MAX_DAYS:
        raise OpsError(f"--days must be between 1 and {MAX_DAYS}, got {days}", exit_code=2)
    if not 1 <= buckets <= min(MAX_BUCKETS, days):
        raise OpsError(
            f"--buckets must be between 1 and {min(MAX_BUCKETS, days)} (at most one per day), got {buckets}",
            exit_code=2,
        )
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    span = timedelta(days=days)
    start, prev_start = end - span, end - 2 * span
    bot = bot_user_id(env)
    with dbadmin.connect(env.database_url) as conn:
        dbadmin.require_tables(conn, ["messages", "chats", "error_events", "usage_rollup", "error_rollup"])
        cur = conn.cursor(row_factory=dict_row)
        current = _period(cur, start, end, bot)
        previous = _period(cur, prev_start, start, bot)
        week = _period(cur, max(start, end - timedelta(days=7)), end, bot)
        step = span / buckets
        split = [_period(cur, start + i * step, start + (i + 1) * step, bot) for i in range(buckets)]
        cur.execute(_DAILY_SQL, {"start": start, "end": end, "bot": bot})
        daily = [{"day": r["day"].isoformat(), "users": r["users"], "messages": r["messages"]} for r in cur]
        cur.execute(_COMMANDS_SQL, {"start": start, "end": end, "bot": bot})
        commands = cur.fetchall()
        cur.execute(_COMMANDS_SQL, {"start": prev_start, "end": start, "bot": bot})
        before = {r["command"]: r["uses"] for r in cur}
        cur.execute(_SILENT_SQL, {"start": start, "bot": bot})
        silent = [
            {
                "chat_id": r["chat_id"],
                "title": r["title"],
                "last_message": r["last_message"].isoformat(timespec="seconds")
                if r["last_message"]
                else None,
            }
            for r in cur
        ]
    top = [
        {
            **r,
            "previous_uses": before.get(r["command"], 0),
            "change_percent": change_percent(r["uses"], before.get(r["command"], 0)),
        }
        for r in commands[:TOP_COMMANDS]
    ]
    metrics = ("messages", "active_users", "active_chats", "commands", "errors", "error_rate_percent")
    data: dict[str, Any] = {
        "days": days,
        "period": current,
        "previous_period": previous,
        "trends": {
            k: {
                "current": current[k],
                "previous": previous[k],
                "change_percent": change_percent(current[k], previous[k]),
            }
            for k in metrics
        },
        "active_users": {
            "daily_average": round(sum(d["users"] for d in daily) / days, 1),
            "daily_peak": max((d["users"] for d in daily), default=0),
            "weekly": week["active_users"],
            "period": current["active_users"],
        },
        "daily": daily,
        "buckets": split,
        "top_commands": top,
        "distinct_commands": len(commands),
        "silent_configured_chats": silent,
        "notes": _trend_notes(current, previous),
    }
    return Result(data, _text(data))


def _text(data: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.1f}%"

    au = data["active_users"]
    lines = [
        f"usage over the last {data['days']} day(s), {data['period']['start']} .. {data['period']['end']}",
        f"  active users   daily average {au['daily_average']}, peak {au['daily_peak']}, last 7 days "
        f"{au['weekly']}, period {au['period']}",
    ]
    for key, t in data["trends"].items():
        lines.append(
            f"  {key:20} {t['current']!s:>8} (previous {t['previous']!s:>8}, {pct(t['change_percent'])})"
        )
    if len(data["buckets"]) > 1:
        lines.append("  trend by part of the period (start: messages / active users / commands / errors)")
        lines += [
            f"    {b['start']}  {b['messages']} / {b['active_users']} / {b['commands']} / {b['errors']}"
            for b in data["buckets"]
        ]
    lines.append(f"  top commands ({data['distinct_commands']} distinct)")
    lines += [
        f"    /{c['command']:18} {c['uses']:>6} uses by {c['users']} user(s) (previous {c['previous_uses']}, "
        f"{pct(c['change_percent'])})"
        for c in data["top_commands"]
    ]
    silent = data["silent_configured_chats"]
    lines.append(f"  configured but silent chats: {', '.join(str(c['chat_id']) for c in silent) or 'none'}")
    lines += [f"  NOTE           {n}" for n in data["notes"]]
    return "\n".join(lines)
