"""apt-cacher-ng on the control node: the lab hosts' apt proxy (no systemd here, so we daemonise it)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from lab.aptsources import SUITE, machine_proxy, machine_sources
from lab.common import MACHINE_LOCKS, LabError, locked, progress, require_tools, run

PORT = 3142
ACNG = "/usr/sbin/apt-cacher-ng"
RUNDIR = Path("/run/apt-cacher-ng")


def answering(host: str = "127.0.0.1", port: int = PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def upstream_options() -> list[str]:
    """Point apt-cacher-ng's Debian remaps at this machine's mirrors instead of its built-in backend list."""
    main = next(s.uri for s in machine_sources() if s.suite == SUITE)
    opts = [f"Remap-debrep=file:deb_mirror*.gz /debian ; {main.rstrip('/')}/"]
    security = [s.uri for s in machine_sources() if s.suite.endswith("-security")]
    if security:
        opts.append(
            "Remap-secdeb=security.debian.org security.debian.org/debian-security "
            f"deb.debian.org/debian-security /debian-security ; {security[0].rstrip('/')}/"
        )
    return opts


def ensure() -> None:
    """Start apt-cacher-ng (listening on all addresses, so every host-side veth reaches it) unless it runs."""
    if answering():
        return
    require_tools("apt-cacher-ng", "start-stop-daemon")
    with locked(MACHINE_LOCKS / "proxy.lock"):
        if answering():
            return
        progress(f"starting apt-cacher-ng on port {PORT}")
        RUNDIR.mkdir(exist_ok=True)
        run(["chown", "apt-cacher-ng:apt-cacher-ng", str(RUNDIR)])
        opts = [
            "-c",
            "/etc/apt-cacher-ng",
            f"pidfile={RUNDIR}/pid",
            f"SocketPath={RUNDIR}/socket",
            "foreground=0",
            f"Port={PORT}",
        ]
        opts += upstream_options()
        upstream = machine_proxy()
        if upstream:
            opts.append(f"Proxy={upstream}")
        run(
            [
                "start-stop-daemon",
                "--start",
                "--quiet",
                "--chuid",
                "apt-cacher-ng",
                "--group",
                "apt-cacher-ng",
                "--pidfile",
                f"{RUNDIR}/pid",
                "--exec",
                ACNG,
                "--",
                *opts,
            ],
            capture=True,
        )
        deadline = time.monotonic() + 15
        while not answering():
            if time.monotonic() > deadline:
                raise LabError(
                    f"apt-cacher-ng did not answer on 127.0.0.1:{PORT}; see /var/log/apt-cacher-ng/"
                )
            time.sleep(0.1)
