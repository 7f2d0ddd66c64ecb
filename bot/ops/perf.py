"""`psychochauffeur perf`: measured figures of the running bot (from /proc and metrics.json) and of the DB."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import psycopg

from bot.metrics import read_metrics
from bot.ops import dbadmin, system
from bot.ops.health import bot_pid
from bot.ops.report import OpsError, Result
from bot.settings import Env

QUICK_PINGS = 5
FULL_PINGS = 50
MAX_MONITOR_COUNT = 10_000


def _process_figures(pid: int | None) -> dict[str, Any] | None:
    mem = system.process_memory(pid) if pid else None
    if mem is None:
        return None
    return {"pid": pid, "rss_bytes": mem.rss_bytes, "vms_bytes": mem.vms_bytes, "threads": mem.threads}


def _db_figures(env: Env, pings: int, tables: bool) -> tuple[dict[str, Any] | None, str | None]:
    try:
        conn = dbadmin.connect(env.database_url)
    except OpsError as exc:
        if exc.exit_code == 2:  # DATABASE_URL missing or malformed: the operator must fix the setting
            raise
        return None, str(exc)
    try:
        with conn:
            figures: dict[str, Any] = {"latency": dbadmin.ping(conn, pings)}
            if tables:
                figures["stats"] = dbadmin.db_stats(conn)
    except psycopg.Error as exc:
        return None, f"database error: {exc}"
    return figures, None


def _handler_latency(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    return (metrics or {}).get("handler_latency_ms")


def report(env: Env, full: bool) -> Result:
    """--quick (full=False) or --full-report (full=True)."""
    metrics = read_metrics(env.app_dir)
    pid = bot_pid(metrics)
    proc = _process_figures(pid)
    db, db_error = _db_figures(env, FULL_PINGS if full else QUICK_PINGS, tables=full)
    data: dict[str, Any] = {
        "mode": "full-report" if full else "quick",
        "measured_at": datetime.now(UTC).isoformat(),
        "process": proc,
        "gc_objects": (metrics or {}).get("gc_objects"),
        "handler_latency_ms": _handler_latency(metrics),
        "database": db,
        "problems": [],
    }
    if proc is None:
        data["problems"].append("bot process not running (no live pid from systemd or data/metrics.json)")
    if db_error:
        data["problems"].append(db_error)
    if full:
        data["system"] = {
            "memory_percent": system.memory_percent(),
            "cpu_percent": system.cpu_percent(0.5),
            "disk_free_percent": system.disk_free_percent(env.app_dir) if env.app_dir.is_dir() else None,
        }
        if metrics:
            data["counters"] = {
                k: metrics.get(k)
                for k in ("started_at", "written_at", "last_update_at", "updates_total", "errors_total")
            }
    return Result(data, _report_text(data), 1 if data["problems"] else 0)


def _report_text(data: dict[str, Any]) -> str:
    hb = system.human_bytes
    lines = [f"performance ({data['mode']}) at {data['measured_at']}"]
    proc = data["process"]
    lines.append(
        f"  process      pid {proc['pid']}: RSS {hb(proc['rss_bytes'])}, VMS {hb(proc['vms_bytes'])}, "
        f"{proc['threads']} threads"
        if proc
        else "  process      not running"
    )
    lines.append(
        f"  gc objects   {data['gc_objects'] if data['gc_objects'] is not None else 'n/a (no metrics.json)'}"
    )
    lat = data["handler_latency_ms"]
    lines.append(
        f"  handlers     p50 {lat.get('p50')} ms, p95 {lat.get('p95')} ms, max {lat.get('max')} ms "
        f"over the last {lat.get('count')} updates"
        if lat
        else "  handlers     n/a (no metrics.json)"
    )
    db = data["database"]
    if db:
        lat_db = db["latency"]
        lines.append(
            f"  db latency   {lat_db['count']} pings: min {lat_db['min_ms']} ms, "
            f"median {lat_db['median_ms']} ms, "
            f"p95 {lat_db['p95_ms']} ms, max {lat_db['max_ms']} ms"
        )
        for t in db.get("stats", {}).get("tables", []):
            lines.append(f"  table        {t['table']:20} {t['rows']:>10} rows {hb(t['size_bytes']):>12}")
    else:
        lines.append("  db latency   n/a")
    if "system" in data:
        s = data["system"]
        lines.append(
            f"  system       memory {s['memory_percent']}%, cpu {s['cpu_percent']}%, "
            f"disk free {s['disk_free_percent']}%"
        )
    if "counters" in data:
        c = data["counters"]
        lines.append(
            f"  counters     {c['updates_total']} updates, {c['errors_total']} errors since "
            f"{c['started_at']}, last update {c['last_update_at']}"
        )
    lines += [f"  PROBLEM      {p}" for p in data["problems"]]
    return "\n".join(lines)


def monitor(env: Env, interval: float, count: int, emit: Callable[[str], None] | None = None) -> Result:
    """`count` samples `interval` seconds apart: RSS, process CPU %, update rate, one DB ping each."""
    if not 1 <= count <= MAX_MONITOR_COUNT:
        raise OpsError(f"--count must be between 1 and {MAX_MONITOR_COUNT}, got {count}", exit_code=2)
    if not 0 < interval <= 3600:
        raise OpsError(f"--interval must be > 0 and at most 3600 seconds, got {interval}", exit_code=2)
    try:
        conn: psycopg.Connection | None = dbadmin.connect(env.database_url)
    except OpsError as exc:
        if exc.exit_code == 2:
            raise
        conn = None
    samples: list[dict[str, Any]] = []
    prev: tuple[float, float | None, int | None] | None = None
    try:
        for i in range(count + 1):  # one extra leading sample: rates need a previous point
            metrics = read_metrics(env.app_dir)
            pid = bot_pid(metrics)
            now = time.monotonic()
            cpu_s = system.process_cpu_seconds(pid) if pid else None
            updates = (metrics or {}).get("updates_total")
            if prev is not None:
                wall = now - prev[0]
                mem = system.process_memory(pid) if pid else None
                sample = {
                    "ts": datetime.now(UTC).isoformat(timespec="seconds"),
                    "pid": pid,
                    "rss_bytes": mem.rss_bytes if mem else None,
                    "cpu_percent": (
                        round(100 * (cpu_s - prev[1]) / wall, 1)
                        if cpu_s is not None and prev[1] is not None
                        else None
                    ),
                    "updates_per_s": (
                        round((updates - prev[2]) / wall, 2)
                        if updates is not None and prev[2] is not None
                        else None
                    ),
                    "db_ms": None,
                }
                if conn is not None:
                    try:
                        sample["db_ms"] = dbadmin.ping(conn, 1)["median_ms"]
                    except psycopg.Error:
                        conn = None
                samples.append(sample)
                if emit:
                    emit(_sample_text(sample))
            prev = (now, cpu_s, updates)
            if i < count:
                time.sleep(interval)  # the sampling period the operator asked for
    finally:
        if conn is not None:
            conn.close()
    missing = [s for s in samples if s["pid"] is None or s["db_ms"] is None]
    text = "\n".join(_sample_text(s) for s in samples) if emit is None else f"{len(samples)} sample(s)"
    return Result({"mode": "monitor", "interval_s": interval, "samples": samples}, text, 1 if missing else 0)


def _sample_text(s: dict[str, Any]) -> str:
    def fmt(v: Any, unit: str = "") -> str:
        return "n/a" if v is None else f"{v}{unit}"

    return (
        f"{s['ts']} pid {fmt(s['pid'])} rss {system.human_bytes(s['rss_bytes'])} "
        f"cpu {fmt(s['cpu_percent'], '%')} updates/s {fmt(s['updates_per_s'])} db {fmt(s['db_ms'], ' ms')}"
    )


def memory_profile(env: Env) -> Result:
    metrics = read_metrics(env.app_dir)
    pid = bot_pid(metrics)
    mem = system.process_memory(pid) if pid else None
    data: dict[str, Any] = {
        "mode": "memory-profile",
        "pid": pid,
        "process": None if mem is None else asdict(mem),
        "gc_objects": (metrics or {}).get("gc_objects"),
        "rss_reported_by_bot": (metrics or {}).get("rss_bytes"),
        "system_memory_percent": system.memory_percent(),
    }
    hb = system.human_bytes
    if mem is None:
        text = f"bot process not running; system memory {data['system_memory_percent']}% used"
        return Result(data, text, 1)
    text = "\n".join(
        [
            f"memory profile of pid {pid}",
            f"  RSS {hb(mem.rss_bytes)} (peak {hb(mem.peak_rss_bytes)}), VMS {hb(mem.vms_bytes)}, "
            f"swap {hb(mem.swap_bytes)}",
            f"  PSS {hb(mem.pss_bytes)}, anonymous {hb(mem.anon_bytes)}, file-backed {hb(mem.file_bytes)}, "
            f"{mem.threads} threads",
            f"  GC objects {data['gc_objects'] if data['gc_objects'] is not None else 'n/a'}",
            f"  system memory {data['system_memory_percent']}% used",
        ]
    )
    return Result(data, text)
