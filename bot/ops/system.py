"""Host and process figures read straight from /proc and statvfs (no psutil needed on Linux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
SERVICE_NAME = "psychochauffeur-bot"


def _kv_file(path: Path) -> dict[str, int]:
    """Parse `Key:   123 kB` lines (meminfo, status, smaps_rollup) into bytes (plain numbers stay as is)."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        value = int(parts[0])
        out[key.strip()] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def memory_percent() -> float:
    """Share of RAM in use, as the kernel sees it (MemTotal - MemAvailable)."""
    info = _kv_file(PROC / "meminfo")
    total = info["MemTotal"]
    return round(100.0 * (total - info["MemAvailable"]) / total, 1)


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def cpu_percent(interval: float = 0.5) -> float:
    """Whole-host CPU busy share over `interval` seconds (a measurement window, not a wait)."""
    total1, idle1 = _cpu_times()
    time.sleep(interval)
    total2, idle2 = _cpu_times()
    busy = (total2 - total1) - (idle2 - idle1)
    return round(100.0 * busy / max(total2 - total1, 1), 1)


def disk_free_percent(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return round(100.0 * usage.free / usage.total, 1)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0) but is not running.
    state = process_state(pid)
    return state is not None and state != "Z"


def process_state(pid: int) -> str | None:
    """The process state letter of /proc/PID/stat (R, S, D, T stopped, t traced, Z, ...); None if gone."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_start_epoch(pid: int) -> float | None:
    """When the process started (seconds since the epoch), to tell a reused pid from the bot's own."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        btime = next(
            int(line.split()[1])
            for line in (PROC / "stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration, IndexError):
        return None
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessMemory:
    rss_bytes: int
    vms_bytes: int
    peak_rss_bytes: int
    swap_bytes: int
    pss_bytes: int | None
    anon_bytes: int | None
    file_bytes: int | None
    threads: int


def process_memory(pid: int) -> ProcessMemory | None:
    try:
        status = _kv_file(PROC / str(pid) / "status")
    except OSError:
        return None
    try:
        rollup: dict[str, int] = _kv_file(PROC / str(pid) / "smaps_rollup")
    except OSError:
        rollup = {}
    return ProcessMemory(
        rss_bytes=status.get("VmRSS", 0),
        vms_bytes=status.get("VmSize", 0),
        peak_rss_bytes=status.get("VmHWM", 0),
        swap_bytes=status.get("VmSwap", 0),
        pss_bytes=rollup.get("Pss"),
        anon_bytes=status.get("RssAnon"),
        file_bytes=status.get("RssFile"),
        threads=status.get("Threads", 0),
    )


def systemd_running() -> bool:
    """sd_booted(): systemd is PID 1 and can answer systemctl."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def systemd_unit(name: str = SERVICE_NAME) -> dict[str, str] | None:
    """LoadState/ActiveState/MainPID of a unit, or None when systemd is not running or the unit is unknown."""
    if not systemd_running():
        return None
    try:
        proc = subprocess.run(
            ["systemctl", "show", name, "--property=LoadState,ActiveState,SubState,MainPID"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    props = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if props.get("LoadState") != "loaded":
        return None
    return props


def human_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
