"""The metrics file the CLI reads: contract keys, percentiles, atomic rewrite."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bot.metrics import METRICS_RELPATH, Metrics, read_metrics


def test_snapshot_has_the_contract_keys_and_real_process_figures() -> None:
    metrics = Metrics()
    snap = metrics.snapshot()
    assert set(snap) == {"pid", "started_at", "written_at", "last_update_at", "updates_total", "errors_total",
                         "handler_latency_ms", "rss_bytes", "gc_objects", "polling_conflicts_total",
                         "last_polling_conflict_at"}
    assert snap["polling_conflicts_total"] == 0 and snap["last_polling_conflict_at"] is None
    assert snap["pid"] == os.getpid()
    assert snap["last_update_at"] is None and snap["updates_total"] == 0
    assert snap["handler_latency_ms"] == {"count": 0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    assert snap["rss_bytes"] > 10 * 1024 * 1024
    assert snap["gc_objects"] > 1000


def test_percentiles_over_recorded_latencies() -> None:
    metrics = Metrics()
    for ms in range(1, 101):
        metrics.record_update(float(ms))
    metrics.record_error()
    snap = metrics.snapshot()
    assert snap["updates_total"] == 100 and snap["errors_total"] == 1
    lat = snap["handler_latency_ms"]
    assert lat["count"] == 100 and lat["max"] == 100.0
    assert 49 <= lat["p50"] <= 52 and 94 <= lat["p95"] <= 96
    assert snap["last_update_at"] is not None


def test_the_window_is_bounded() -> None:
    metrics = Metrics(window=10)
    for ms in range(1000):
        metrics.record_update(float(ms))
    snap = metrics.snapshot()
    assert snap["updates_total"] == 1000
    assert snap["handler_latency_ms"]["count"] == 10 and snap["handler_latency_ms"]["p50"] >= 990


def test_write_is_atomic_and_readable(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.record_update(3.0)
    path = metrics.write(tmp_path)
    assert path == tmp_path / METRICS_RELPATH
    assert read_metrics(tmp_path)["updates_total"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp file left behind
    metrics.record_update(4.0)
    metrics.write(tmp_path)
    assert json.loads(path.read_text())["updates_total"] == 2


def test_read_metrics_tolerates_missing_and_corrupt_files(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) is None
    path = tmp_path / METRICS_RELPATH
    path.parent.mkdir(parents=True)
    path.write_text("{half")
    assert read_metrics(tmp_path) is None
    path.write_text("[]")
    assert read_metrics(tmp_path) is None
