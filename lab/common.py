"""Paths, errors, locking and small process helpers shared by the lab modules."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("LAB_HOME") or REPO / ".lab")
HOSTS_DIR = HOME / "hosts"
IMAGES_DIR = HOME / "images"
SSH_KEY = HOME / "ssh" / "id_ed25519"
# Machine-wide names (network namespaces, cgroups, nspawn machine names) carry a prefix derived from the lab
# home, so two checkouts can run hosts of the same name side by side; LAB_SCOPE overrides it.
SCOPE = os.environ.get("LAB_SCOPE") or hashlib.sha256(str(HOME.resolve()).encode()).hexdigest()[:4]
# Locks for what every checkout on this machine shares: veth names, addresses, the bridge, the apt proxy.
MACHINE_LOCKS = Path("/run/lab")
RECIPE_DIR = Path(__file__).resolve().parent / "recipe"


class LabError(Exception):
    """An error the user can act on; printed without a traceback."""


def progress(msg: str) -> None:
    print(f">> {msg}", file=sys.stderr, flush=True)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("lab hosts need root (network namespaces, systemd-nspawn): run as root")


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)}: run `make deps` (scripts/install-deps.sh)")


def run(cmd: list[str], *, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run a command; on failure raise LabError with its stderr."""
    if capture:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
    proc = subprocess.run(cmd, check=False, **kw)
    if check and proc.returncode != 0:
        detail = (proc.stderr or "").strip() if capture else ""
        raise LabError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}" + (f"\n{detail}" if detail else "")
        )
    return proc


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive flock on ``path``; several users may run the tool at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
