"""Process metrics written to $BOT_APP_DIR/data/metrics.json for the operator CLI (health, perf)."""

from __future__ import annotations

import gc
import json
import os
import resource
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

METRICS_RELPATH = Path("data/metrics.json")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Metrics:
    """Counters and a window of recent handler latencies (enough for p50/p95 without growing forever)."""

    def __init__(self, window: int = 2048) -> None:
        self.pid = os.getpid()
        self.started_at = time.time()
        self.last_update_at: float | None = None
        self.updates_total = 0
        self.errors_total = 0
        self.latencies_ms: deque[float] = deque(maxlen=window)
        self.conflicts_total = 0  # 409 Conflict from getUpdates: another poller uses the token
        self.last_conflict_at: float | None = None
        self.last_logged_conflict_at = 0.0

    def record_update(self, latency_ms: float) -> None:
        self.updates_total += 1
        self.last_update_at = time.time()
        self.latencies_ms.append(latency_ms)

    def record_error(self) -> None:
        self.errors_total += 1

    def record_conflict(self) -> None:
        self.conflicts_total += 1
        self.last_conflict_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        values = sorted(self.latencies_ms)
        return {
            "pid": self.pid,
            "started_at": _iso(self.started_at),
            "written_at": _iso(time.time()),
            "last_update_at": _iso(self.last_update_at),
            "updates_total": self.updates_total,
            "errors_total": self.errors_total,
            "polling_conflicts_total": self.conflicts_total,
            "last_polling_conflict_at": _iso(self.last_conflict_at),
            "handler_latency_ms": {
                "count": len(values),
                "p50": round(_percentile(values, 0.50), 3),
                "p95": round(_percentile(values, 0.95), 3),
                "max": round(values[-1], 3) if values else 0.0,
            },
            "rss_bytes": rss_bytes(),
            "gc_objects": len(gc.get_objects()),
        }

    def write(self, app_dir: Path | str) -> Path:
        return self.write_snapshot(self.snapshot(), app_dir)

    @staticmethod
    def write_snapshot(snapshot: dict[str, Any], app_dir: Path | str) -> Path:
        """Rewrite the metrics file atomically (write a temp file, then rename over)."""
        path = Path(app_dir) / METRICS_RELPATH
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{snapshot['pid']}.tmp")
        tmp.write_text(json.dumps(snapshot, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def read_metrics(app_dir: Path | str) -> dict[str, Any] | None:
    """The last metrics the bot wrote, or None when there is no (readable) file."""
    try:
        data = json.loads((Path(app_dir) / METRICS_RELPATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
