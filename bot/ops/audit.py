"""`psychochauffeur audit`: the runbook's security checks. Exit 1 when a high-severity finding exists.

--quick-scan: file modes, the current logs, admins. The full scan also reads rotated logs (plain and .gz) and
looks for group/world-writable files in the app dir.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.logs import TOKEN_RE
from bot.ops.report import Result
from bot.settings import Env

SEVERITIES = ("info", "low", "medium", "high")
MAX_LOCATIONS = 10
MAX_WALK_FILES = 20_000
FAILED_AUTH_HIGH = 10  # this many failed authentications in the scanned logs is an attack or a broken key
SKIP_DIRS = {".venv", "venv", ".git", "__pycache__", "node_modules", "logs"}

SECRET_PATTERNS = {
    "Telegram bot token": TOKEN_RE,
    "OpenAI-style API key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    "credential assignment": re.compile(
        r"(?i)\b(?:api[_-]?key|appid|access[_-]?token|password|passwd|secret)\b[\"']?\s*[=:]\s*[\"']?"
        r"(?!\*\*\*)[A-Za-z0-9_\-/+]{12,}"
    ),
}
FAILED_AUTH = re.compile(r"(?i)authentication failed|unauthori[sz]ed|\bAPI002\b")
# The runbook's `grep -E "(injection|exploit|attack)"`, plus common payload shapes.
SUSPICIOUS = re.compile(r"(?i)injection|exploit|attack|\bunion\s+select\b|<script|\.\./\.\./|\$\([a-z]")


@dataclass
class Finding:
    severity: str
    check: str
    message: str
    locations: list[str] = field(default_factory=list)


def _mode_findings(env: Env) -> list[Finding]:
    findings: list[Finding] = []
    private_dir = env.app_dir / "config" / "private"
    targets = [env.app_dir / ".env"]
    if private_dir.is_dir():
        targets += sorted(p for p in private_dir.rglob("*") if not p.is_dir())
    else:
        findings.append(Finding("info", "file_modes", f"{private_dir} does not exist"))
    for path in targets:
        try:
            st = path.lstat()
        except FileNotFoundError:
            findings.append(Finding("info", "file_modes", f"{path} does not exist"))
            continue
        except OSError as exc:
            findings.append(Finding("medium", "file_modes", f"cannot stat {path}: {exc.strerror}"))
            continue
        if not stat.S_ISREG(st.st_mode):
            findings.append(Finding("medium", "file_modes", f"{path} is not a regular file"))
            continue
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            findings.append(
                Finding("high", "file_modes", f"{path} has mode {mode:04o}, must be 0600 (chmod 600 {path})")
            )
    if private_dir.is_dir() and stat.S_IMODE(private_dir.stat().st_mode) & 0o007:
        findings.append(
            Finding("high", "file_modes", f"{private_dir} is accessible to others (chmod 700 {private_dir})")
        )
    return findings


def _log_files(log_dir: Path, rotated: bool) -> list[Path]:
    if not log_dir.is_dir():
        return []
    pattern = re.compile(r".+\.log(\.\d+(\.gz)?)?$" if rotated else r".+\.log$")
    return sorted(p for p in log_dir.iterdir() if pattern.fullmatch(p.name))


def _lines(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            yield from fh
    else:
        with open(path, encoding="utf-8", errors="replace") as fh:
            yield from fh


def _scan_logs(env: Env, rotated: bool) -> tuple[list[Finding], dict[str, Any]]:
    findings: list[Finding] = []
    secret_hits: dict[str, list[str]] = {}
    auth_hits: list[str] = []
    suspicious_hits: list[str] = []
    configured = {
        name: value
        for name, value in (
            ("BOT_TOKEN", env.bot_token),
            ("OPENAI_API_KEY", env.openai_api_key),
            ("WEATHER_API_KEY", env.weather_api_key),
        )
        if len(value) >= 4
    }
    scanned = []
    for path in _log_files(env.log_dir, rotated):
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                findings.append(Finding("medium", "logs", f"{path} is not a regular file; not scanned"))
                continue
            for lineno, line in enumerate(_lines(path), 1):
                where = f"{path.name}:{lineno}"
                for name, value in configured.items():
                    if value in line:
                        secret_hits.setdefault(f"configured {name} value", []).append(where)
                for name, pattern in SECRET_PATTERNS.items():
                    if pattern.search(line):
                        secret_hits.setdefault(name, []).append(where)
                if FAILED_AUTH.search(line):
                    auth_hits.append(where)
                if SUSPICIOUS.search(line):
                    suspicious_hits.append(where)
            scanned.append(str(path))
        except (OSError, EOFError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            findings.append(Finding("medium", "logs", f"cannot read {path}: {reason}"))
    for name, where in sorted(secret_hits.items()):
        findings.append(
            Finding(
                "high",
                "secrets_in_logs",
                f"{len(where)} line(s) with a {name} (redaction failed; rotate the secret)",
                where[:MAX_LOCATIONS],
            )
        )
    if auth_hits:
        severity = "high" if len(auth_hits) >= FAILED_AUTH_HIGH else "medium"
        findings.append(
            Finding(
                severity,
                "failed_auth",
                f"{len(auth_hits)} failed-authentication line(s)",
                auth_hits[:MAX_LOCATIONS],
            )
        )
    if suspicious_hits:
        findings.append(
            Finding(
                "medium",
                "suspicious_patterns",
                f"{len(suspicious_hits)} line(s) matching injection/exploit/attack patterns; review",
                suspicious_hits[:MAX_LOCATIONS],
            )
        )
    counts = {
        "failed_auth": len(auth_hits),
        "suspicious": len(suspicious_hits),
        "secret_lines": sum(len(v) for v in secret_hits.values()),
    }
    if not env.log_dir.is_dir():
        findings.append(Finding("info", "logs", f"log dir {env.log_dir} does not exist; nothing scanned"))
    return findings, {"files_scanned": scanned, "counts": counts}


def _writable_findings(env: Env) -> list[Finding]:
    hits: list[str] = []
    seen = 0
    for root, dirs, files in os.walk(env.app_dir):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files + dirs:
            seen += 1
            path = Path(root) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o002:
                hits.append(str(path.relative_to(env.app_dir)))
        if seen > MAX_WALK_FILES:
            break
    if not hits:
        return []
    return [
        Finding(
            "high",
            "file_integrity",
            f"{len(hits)} world-writable file(s) in the app dir",
            hits[:MAX_LOCATIONS],
        )
    ]


def _admin_findings(env: Env) -> list[Finding]:
    if not env.admin_ids:
        return [
            Finding(
                "low",
                "admins",
                "BOT_ADMIN_IDS is empty: only Telegram chat admins can run admin "
                "commands, and nobody can run bot-wide ones",
            )
        ]
    return [
        Finding(
            "info",
            "admins",
            f"{len(env.admin_ids)} bot admin(s): {', '.join(str(i) for i in sorted(env.admin_ids))}",
        )
    ]


def audit(env: Env, quick: bool) -> Result:
    findings = _mode_findings(env)
    log_findings, log_info = _scan_logs(env, rotated=not quick)
    findings += log_findings + _admin_findings(env)
    if not quick:
        findings += _writable_findings(env)
    findings.sort(key=lambda f: -SEVERITIES.index(f.severity))
    summary = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    exit_code = 1 if summary["high"] else 0
    data = {
        "scan": "quick" if quick else "full",
        "app_dir": str(env.app_dir),
        "log_dir": str(env.log_dir),
        "admins": sorted(env.admin_ids),
        "summary": summary,
        "findings": [asdict(f) for f in findings],
        **log_info,
    }
    lines = [
        f"security audit ({data['scan']} scan): "
        + ", ".join(f"{summary[s]} {s}" for s in reversed(SEVERITIES))
    ]
    for f in findings:
        where = f" [{', '.join(f.locations)}]" if f.locations else ""
        lines.append(f"  {f.severity.upper():7} {f.check:20} {f.message}{where}")
    return Result(data, "\n".join(lines), exit_code)
