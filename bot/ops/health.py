"""`psychochauffeur health`: runbook checks and thresholds. Exit 0 ok, 1 warning, 2 critical."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests

from bot.logs import read_records, redact
from bot.metrics import METRICS_RELPATH, read_metrics
from bot.ops import dbadmin, system
from bot.ops.report import EXIT_CODES, Check, OpsError, Result, checks_text, worst
from bot.settings import Env

HTTP_TIMEOUT_S = 5
ERROR_WINDOW = timedelta(hours=1)
# metrics.json is rewritten every 15 s; six missed writes means the process is alive but not working: hung
# ("Application down/unresponsive", critical).
STALE_METRICS_S = 90
# A bot process must have started before it wrote started_at; more than this later means the pid was reused.
PID_START_SLACK_S = 5
# During a 409 Conflict the bot retries getUpdates at least every 30 s: a newer one means it goes on.
CONFLICT_RECENT_S = 120


@dataclass(frozen=True)
class Threshold:
    """Levels from the runbook's "Alert Thresholds"; a level of None is not used for that metric."""

    unit: str
    info: float | None
    warning: float | None
    critical: float | None
    higher_is_worse: bool = True


# The one table of runbook thresholds (Monitoring and Alerts). Values beyond a level get that status.
THRESHOLDS: dict[str, Threshold] = {
    # "should stay below 70%" (info), "CPU usage > 80%" (warning)
    "cpu_percent": Threshold("%", info=70, warning=80, critical=None),
    # "Memory usage > 80%" (warning), "> 90%" (critical)
    "memory_percent": Threshold("%", info=None, warning=80, critical=90),
    # "Disk space < 30%" free (warning), "at least 20% free" (critical below)
    "disk_free_percent": Threshold("%", info=None, warning=30, critical=20, higher_is_worse=False),
    # "should be < 1%" (info), "> 2%" (warning), "> 5%" (critical)
    "error_rate_percent": Threshold("%", info=1, warning=2, critical=5),
    # "95th percentile should be < 2 seconds" (warning above), "Response time > 5 seconds" (critical here)
    "handler_p95_seconds": Threshold("s", info=None, warning=2, critical=5),
    # "External API failures > 50%" (critical) over the configured external APIs (OpenAI, weather). The
    # runbook names no warning level: any failing API below that share is a warning (degraded service).
    "external_api_failure_percent": Threshold("%", info=None, warning=0, critical=50),
}


def metrics_path(app_dir: Path) -> Path:
    return app_dir / METRICS_RELPATH


def grade(metric: str, value: float) -> str:
    t = THRESHOLDS[metric]
    for status, level in (("critical", t.critical), ("warning", t.warning), ("info", t.info)):
        if level is not None and (value > level if t.higher_is_worse else value < level):
            return status
    return "ok"


def _parse_ts(value: Any) -> datetime | None:
    try:
        ts = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _age_s(value: Any, now: datetime) -> float | None:
    ts = _parse_ts(value) if value else None
    return None if ts is None else round((now - ts).total_seconds(), 1)


def bot_pid(metrics: dict[str, Any] | None) -> int | None:
    """The running bot's pid: systemd's MainPID, else metrics.json's pid if that process is the bot."""
    unit = system.systemd_unit()
    if unit is not None and unit.get("MainPID", "0") not in ("", "0"):
        return int(unit["MainPID"])
    if not metrics or not isinstance(metrics.get("pid"), int):
        return None
    pid = metrics["pid"]
    if not system.pid_alive(pid):
        return None
    started = _parse_ts(metrics.get("started_at"))
    proc_start = system.process_start_epoch(pid)
    if started and proc_start and proc_start > started.timestamp() + PID_START_SLACK_S:
        return None  # a newer process got the old pid
    return pid


# --- the checks ----------------------------------------------------------------------------------------


def check_process(env: Env, metrics: dict[str, Any] | None, now: datetime) -> Check:
    """systemd's view of the unit when systemd runs it, else metrics.json's pid; then metrics freshness."""
    path = metrics_path(env.app_dir)
    written_age = _age_s((metrics or {}).get("written_at"), now)
    unit = system.systemd_unit()
    if unit is not None:
        state, sub = unit.get("ActiveState", "unknown"), unit.get("SubState", "?")
        main_pid = unit.get("MainPID")
        details: dict[str, Any] = {"source": "systemd", **unit, "metrics_age_s": written_age}
        active_peer = env.standby_for()
        if state != "active" and active_peer:
            return Check("process", "info", f"warm standby: {system.SERVICE_NAME} is {state} ({sub}) here, "
                         f"{active_peer} polls (failover.yml makes this host active)",
                         details={**details, "standby_for": active_peer})  # fmt: skip
        if state != "active":
            return Check("process", "critical", f"systemd unit {system.SERVICE_NAME} is {state} ({sub})",
                         details=details)  # fmt: skip
        if metrics is None:
            return Check("process", "warning", f"unit active (pid {main_pid}) but no readable {path}: "
                         "is BOT_APP_DIR the bot's app dir?", details=details)  # fmt: skip
    else:
        if metrics is None:
            return Check("process", "critical",
                         f"bot not running: no readable {path} (the bot rewrites it while it runs)",
                         details={"source": "metrics.json"})  # fmt: skip
        main_pid = metrics.get("pid")
        details = {"source": "metrics.json", "pid": main_pid, "metrics_age_s": written_age}
        if bot_pid(metrics) is None:
            return Check("process", "critical",
                         f"bot not running: pid {main_pid} from metrics.json is gone "
                         f"(file last written {written_age} s ago)", details=details)  # fmt: skip
    state = system.process_state(int(main_pid)) if str(main_pid).isdigit() else None
    if state in ("T", "t"):
        return Check("process", "critical",
                     f"pid {main_pid} is stopped (state {state}: SIGSTOP or a debugger): it neither "
                     f"polls nor answers; `kill -CONT {main_pid}` or restart the service",
                     details=details)  # fmt: skip
    if written_age is None or written_age > STALE_METRICS_S:
        return Check("process", "critical",
                     f"pid {main_pid} alive but {path.name} not rewritten for {written_age} s: the bot is "
                     "hung (not polling, not answering); restart the service", details=details)  # fmt: skip
    uptime = _age_s(metrics.get("started_at"), now)
    return Check("process", "ok", f"running, pid {main_pid}, up {uptime} s ({details['source']})",
                 details={**details, "uptime_s": uptime})  # fmt: skip


def check_database(env: Env) -> tuple[Check, psycopg.Connection | None]:
    t0 = time.perf_counter()
    try:
        conn = dbadmin.connect(env.database_url)
        conn.execute("SELECT 1").fetchone()
    except (OpsError, psycopg.Error) as exc:
        return Check("database", "critical", str(exc)), None
    ms = round((time.perf_counter() - t0) * 1000, 1)
    return Check("database", "ok", f"reachable, connect + SELECT 1 in {ms} ms", value=ms), conn


def _http_check(
    name: str, url: str, secrets: list[str], **kwargs: Any
) -> tuple[requests.Response | None, str]:
    try:
        resp = requests.get(url, timeout=HTTP_TIMEOUT_S, **kwargs)
    except requests.RequestException as exc:
        return None, redact(f"{name} unreachable: {type(exc).__name__}: {exc}", secrets)
    return resp, ""


def check_bot_api(env: Env) -> Check:
    if not env.bot_token:
        return Check("bot_api", "critical", "BOT_TOKEN is not set: set it to the token from @BotFather")
    resp, err = _http_check("Bot API", f"{env.telegram_base_url}{env.bot_token}/getMe", env.secrets())
    if resp is None:
        return Check("bot_api", "critical", err)
    if resp.status_code in (401, 404):
        return Check(
            "bot_api",
            "critical",
            f"Bot API rejected the token (HTTP {resp.status_code}, API002); "
            "check BOT_TOKEN and TELEGRAM_BASE_URL",
        )
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code != 200 or not body.get("ok"):
        return Check("bot_api", "critical", f"Bot API getMe failed (HTTP {resp.status_code}, API003)")
    username = body.get("result", {}).get("username", "?")
    ms = round(resp.elapsed.total_seconds() * 1000, 1)
    return Check("bot_api", "ok", f"getMe ok as @{username} in {ms} ms", value=ms)


def check_disk(env: Env) -> Check:
    if not env.app_dir.is_dir():
        return Check("disk", "critical", f"app dir {env.app_dir} does not exist (set BOT_APP_DIR)")
    free = system.disk_free_percent(env.app_dir)
    return Check(
        "disk", grade("disk_free_percent", free), f"{free}% free on the app dir's filesystem", value=free
    )


def check_memory() -> Check:
    used = system.memory_percent()
    return Check("memory", grade("memory_percent", used), f"{used}% of RAM in use", value=used)


def check_cpu(interval: float) -> Check:
    busy = system.cpu_percent(interval)
    return Check("cpu", grade("cpu_percent", busy), f"{busy}% busy over {interval} s", value=busy)


def check_error_rate(env: Env, metrics: dict[str, Any] | None, now: datetime) -> Check:
    since = now - ERROR_WINDOW
    try:
        errors = sum(
            1
            for r in read_records(env.log_dir / "error.log", since)
            if r.get("level") in ("ERROR", "CRITICAL")
        )
        updates = sum(1 for _ in read_records(env.log_dir / "chat.log", since))
    except OSError as exc:
        return Check("error_rate", "warning", f"cannot read the logs in {env.log_dir}: {exc.strerror or exc}")
    source = "logs, last hour"
    if updates == 0 and metrics and metrics.get("updates_total"):
        # No chat traffic logged in the window: fall back to the bot's counters since it started.
        errors, updates, source = (
            int(metrics.get("errors_total", 0)),
            int(metrics["updates_total"]),
            "metrics.json",
        )
    details = {"errors": errors, "updates": updates, "source": source}
    if updates == 0:
        if errors:
            return Check(
                "error_rate", "warning", f"{errors} error(s) in the last hour and no updates", details=details
            )
        return Check(
            "error_rate", "ok", "no updates and no errors in the last hour", value=0.0, details=details
        )
    rate = round(100.0 * errors / updates, 2)
    return Check(
        "error_rate",
        grade("error_rate_percent", rate),
        f"{rate}% ({errors} errors / {updates} updates, {source})",
        value=rate,
        details=details,
    )


def check_latency(metrics: dict[str, Any] | None) -> Check:
    latency = (metrics or {}).get("handler_latency_ms") or {}
    if not latency.get("count"):
        return Check("latency", "ok", "no handler timings recorded yet")
    p95_s = round(float(latency.get("p95", 0)) / 1000, 3)
    return Check(
        "latency",
        grade("handler_p95_seconds", p95_s),
        f"handler p95 {p95_s} s (p50 {latency.get('p50')} ms, {latency['count']} handled)",
        value=p95_s,
        details=latency,
    )


def check_last_update(metrics: dict[str, Any] | None, now: datetime) -> Check:
    if not metrics:
        return Check("last_update", "info", "unknown: no metrics.json")
    age = _age_s(metrics.get("last_update_at"), now)
    if age is None:
        return Check("last_update", "info", "no update received since the bot started")
    return Check("last_update", "ok", f"last update {age} s ago", value=age)


def check_polling(metrics: dict[str, Any] | None, now: datetime) -> Check:
    """409 Conflict from getUpdates means a second process polls with the same BOT_TOKEN: updates are lost."""
    total = int((metrics or {}).get("polling_conflicts_total") or 0)
    age = _age_s((metrics or {}).get("last_polling_conflict_at"), now)
    if not total or age is None:
        return Check("polling", "ok", "no 409 Conflict from getUpdates", value=0)
    if age <= CONFLICT_RECENT_S:
        return Check("polling", "critical",
                     f"another process is polling with this BOT_TOKEN: {total} x 409 Conflict, the last"
                     f" {age} s ago (API003); stop the other instance (or revoke the token in @BotFather)",
                     value=total, details={"conflicts": total, "last_age_s": age})
    return Check("polling", "ok", f"no 409 Conflict in the last {CONFLICT_RECENT_S} s ({total} before,"
                 f" the last {age} s ago)", value=total, details={"conflicts": total, "last_age_s": age})


def check_openai(env: Env) -> Check:
    if not env.openai_api_key:
        return Check("openai", "info", "not configured (OPENAI_API_KEY unset): /ask and /analyze disabled")
    base = (env.openai_base_url or "https://api.openai.com/v1").rstrip("/")
    resp, err = _http_check(
        "OpenAI", f"{base}/models", env.secrets(), headers={"Authorization": f"Bearer {env.openai_api_key}"}
    )
    return _grade_api("openai", resp, err)


def check_weather(env: Env) -> Check:
    if not env.weather_api_key:
        return Check("weather", "info", "not configured (WEATHER_API_KEY unset): /weather disabled")
    resp, err = _http_check(
        "weather API",
        f"{env.weather_base_url}/data/2.5/weather",
        env.secrets(),
        params={"q": "London", "appid": env.weather_api_key, "units": "metric"},
    )
    return _grade_api("weather", resp, err)


def _grade_api(name: str, resp: requests.Response | None, err: str) -> Check:
    """One external API is degraded service, not an outage: its own failure is a warning (external_apis
    turns the share of failing APIs into the runbook's critical level)."""
    if resp is None:
        return Check(name, "warning", f"{err} (API003)")
    code = resp.status_code
    if code in (401, 403):
        return Check(name, "warning", f"credentials rejected (HTTP {code}, API002)")
    if code == 429:
        return Check(name, "warning", "rate limited or quota exhausted (HTTP 429, API001/API004)")
    if code >= 500:
        return Check(name, "warning", f"service error (HTTP {code}, API003)")
    ms = round(resp.elapsed.total_seconds() * 1000, 1)
    return Check(name, "ok", f"reachable (HTTP {code}) in {ms} ms", value=ms)


def check_external_apis(api_checks: list[Check]) -> Check:
    """Runbook "External API failures > 50%": the share of the configured external APIs whose probe failed."""
    configured = [c for c in api_checks if c.status != "info"]  # info = not configured
    if not configured:
        return Check("external_apis", "ok", "no external API configured", value=0.0)
    failed = [c.name for c in configured if c.status != "ok"]
    share = round(100.0 * len(failed) / len(configured), 1)
    names = ", ".join(failed) if failed else "none"
    return Check("external_apis", grade("external_api_failure_percent", share),
                 f"{share}% failing ({len(failed)} of {len(configured)}: {names})", value=share,
                 details={"failed": failed, "configured": [c.name for c in configured]})  # fmt: skip


def check_db_stats(conn: psycopg.Connection | None) -> Check:
    if conn is None:
        return Check("db_stats", "info", "skipped: database unreachable")
    data = dbadmin.db_stats(conn)
    rows = {t["table"]: t["rows"] for t in data["tables"]}
    return Check(
        "db_stats",
        "ok",
        f"{system.human_bytes(data['size_bytes'])}, {data['connections']} connection(s), "
        f"schema version {data['schema_version']}, messages {rows.get('messages', 'n/a')}",
        details=data,
    )


def health(env: Env, comprehensive: bool = False, cpu_interval: float = 0.5) -> Result:
    now = datetime.now(UTC)
    metrics = read_metrics(env.app_dir)
    db_check, conn = check_database(env)
    checks = [
        check_process(env, metrics, now),
        db_check,
        check_bot_api(env),
        check_disk(env),
        check_memory(),
        check_cpu(cpu_interval),
        check_error_rate(env, metrics, now),
        check_latency(metrics),
        check_last_update(metrics, now),
        check_polling(metrics, now),
    ]
    api_checks = [check_openai(env), check_weather(env)]
    checks += [*api_checks, check_external_apis(api_checks)]
    try:
        if comprehensive:
            checks.append(check_db_stats(conn))
    finally:
        if conn is not None:
            conn.close()
    overall = worst(c.status for c in checks)
    data = {
        "status": overall,
        "exit_code": EXIT_CODES[overall],
        "checked_at": now.isoformat(),
        "checks": [c.to_dict() for c in checks],
        "thresholds": {k: asdict(v) for k, v in THRESHOLDS.items()},
    }
    return Result(data, checks_text("health", checks, overall), EXIT_CODES[overall])
