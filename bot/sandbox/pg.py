"""A throw-away PostgreSQL cluster (initdb + pg_ctl) for tests, the benchmark and local demos.

Unix socket in its own directory plus 127.0.0.1:<free port>, trust auth. When run as root the
server runs as the `postgres` user through runuser (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

PG_USER = "postgres"
DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Test clusters trade durability for speed; the benchmark keeps PostgreSQL's defaults.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def pg_bindir() -> Path:
    """Newest /usr/lib/postgresql/<version>/bin that has initdb."""
    candidates = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    if not candidates:
        raise FileNotFoundError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "run `make deps` (scripts/install-deps.sh)"
        )
    return max(candidates, key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One cluster in a fresh temporary directory; call destroy() to stop it and delete everything."""

    def __init__(self, bindir: Path | None = None, durable: bool = False, max_connections: int = 200) -> None:
        self.bindir = bindir or pg_bindir()
        self.durable = durable
        self.max_connections = max_connections
        self.as_root = os.geteuid() == 0
        self.base = Path(tempfile.mkdtemp(prefix="pgtest-"))
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log_file = self.base / "postgres.log"
        self.socket_dir.mkdir()
        if self.as_root:
            shutil.chown(self.base, PG_USER, PG_USER)
            shutil.chown(self.socket_dir, PG_USER, PG_USER)
        self.port = 0
        self.user = PG_USER if self.as_root else os.environ.get("USER", PG_USER)

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", PG_USER, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if check and result.returncode != 0:
            output = f"{result.stdout}\n{result.stderr}\n{self.log_tail()}"
            raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{output}")
        return result

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "postgres.log:\n" + "\n".join(
                self.log_file.read_text(errors="replace").splitlines()[-lines:]
            )
        return ""

    def init(self) -> PgServer:
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            *([] if self.durable else ["--no-sync"]),
        )
        return self

    def start(self) -> PgServer:
        """Start (again) on the same port, or on a new free port the first time."""
        if self.is_running():
            return self
        attempts = 1 if self.port else 3
        settings = ["listen_addresses=127.0.0.1", f"max_connections={self.max_connections}"]
        if not self.durable:
            settings += FAST_SETTINGS
        for attempt in range(attempts):
            port = self.port or free_port()
            options = f"-p {port} -k {self.socket_dir} " + " ".join(f"-c {s}" for s in settings)
            result = self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
                check=False,
            )
            if result.returncode == 0:
                self.port = port
                return self
            if attempt == attempts - 1:
                raise RuntimeError(
                    f"pg_ctl start failed:\n{result.stdout}\n{result.stderr}\n{self.log_tail()}"
                )
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_db(self, name: str) -> str:
        """CREATE DATABASE name; returns its DSN."""
        if not DB_NAME_RE.match(name):
            raise ValueError(f"database name {name!r} must match {DB_NAME_RE.pattern}")
        self._admin(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_db(self, name: str) -> None:
        if not DB_NAME_RE.match(name):
            raise ValueError(f"database name {name!r} must match {DB_NAME_RE.pattern}")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
