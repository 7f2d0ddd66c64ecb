"""Boot, inspect and remove lab hosts: one systemd-nspawn container per host, state in .lab/hosts/<name>/."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from lab import image, net, proxy
from lab.common import (
    HOME,
    HOSTS_DIR,
    REPO,
    SCOPE,
    SSH_KEY,
    LabError,
    locked,
    progress,
    require_root,
    require_tools,
    run,
)

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
LOCK = HOME / "hosts.lock"
BOOT_TIMEOUT = float(os.environ.get("LAB_BOOT_TIMEOUT", "90"))
SSH_OPTIONS = [
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "ConnectTimeout=3",
]


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise LabError(f"bad host name '{name}': use a-z, 0-9 and '-', start with a letter, at most 31 chars")


def machine_name(name: str) -> str:
    """The host's name for the machine (nspawn, cgroups): unique across checkouts."""
    return f"{SCOPE}-{name}"


def host_dir(name: str) -> Path:
    return HOSTS_DIR / name


def load(name: str) -> dict:
    f = host_dir(name) / "state.json"
    try:
        return json.loads(f.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab host '{name}' (see `python -m lab status`)") from None


def save(state: dict) -> None:
    f = host_dir(state["name"]) / "state.json"
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(f)


def names() -> list[str]:
    return sorted(p.parent.name for p in HOSTS_DIR.glob("*/state.json"))


def existing() -> list[dict]:
    """The state of every host, skipping one removed between the listing and the read (another part's
    `lab down`): otherwise the inventory script fails, and Ansible then warns and sees no lab host at all."""
    states = []
    for name in names():
        try:
            states.append(load(name))
        except LabError:
            continue
    return states


def _nspawn_alive(state: dict) -> bool:
    """True if state's pid is still our systemd-nspawn (guards against pid reuse)."""
    pid = state.get("pid")
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"systemd-nspawn") and state["root"].encode() in cmdline


def is_running(state: dict) -> bool:
    return _nspawn_alive(state)


def ensure_key() -> Path:
    """The lab's SSH key pair (per machine, never in the image): .lab/ssh/id_ed25519."""
    if not SSH_KEY.exists():
        with locked(HOME / "ssh.lock"):
            if not SSH_KEY.exists():
                SSH_KEY.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", str(SSH_KEY)],
                    capture=True,
                )
    return SSH_KEY


# --- cgroups: each nspawn gets its own subtree, else all containers would share /payload at the root.


def _cgroup_dirs(name: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():  # pure cgroup v2
        bases = [root]
    else:  # v1 or hybrid (this machine): nspawn uses name=systemd and, if mounted, the v2 "unified" tree
        bases = [p for p in (root / "systemd", root / "unified") if (p / "cgroup.procs").exists()]
    return [b / "lab" / machine_name(name) for b in bases]


def _cgroup_pids(d: Path) -> list[int]:
    pids: list[int] = []
    for procs in d.rglob("cgroup.procs") if d.exists() else []:
        try:
            pids += [int(x) for x in procs.read_text().split()]
        except OSError:
            pass
    return pids


def _cgroup_clean(name: str) -> None:
    for d in _cgroup_dirs(name):
        deadline = time.monotonic() + 10
        while pids := _cgroup_pids(d):
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise LabError(f"processes {pids} in {d} survive SIGKILL")
            time.sleep(0.05)
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [d]:
            if sub.exists():
                sub.rmdir()


# --- up


def _prepare_tree(state: dict) -> None:
    """The host's root: an overlay of the shared unpacked image (read-only) and a per-host upper layer."""
    root = Path(state["root"])
    layers = root.parent
    for d in ("upper", "work", "root"):
        (layers / d).mkdir()
    opts = f"lowerdir={state['lower']},upperdir={layers / 'upper'},workdir={layers / 'work'}"
    run(["mount", "-t", "overlay", "overlay", "-o", opts, str(root)], capture=True)
    name, gateway = state["name"], state["link"]["gateway"]
    (root / "etc/hostname").write_text(name + "\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    (root / "etc/apt/apt.conf.d/01lab-proxy").write_text(
        f'Acquire::http::Proxy "http://{gateway}:{proxy.PORT}/";\n'
    )
    pub = SSH_KEY.with_suffix(".pub").read_text()
    uid = gid = 0
    for line in (root / "etc/passwd").read_text().splitlines():
        if line.startswith("lab:"):
            uid, gid = (int(x) for x in line.split(":")[2:4])
    for home, owner in ((root / "root", (0, 0)), (root / "home/lab", (uid, gid))):
        keys = home / ".ssh/authorized_keys"
        keys.write_text(pub)
        keys.chmod(0o600)
        os.chown(keys, *owner)


def _launch(state: dict) -> int:
    name, root = state["name"], state["root"]
    cgroups = _cgroup_dirs(name)
    with locked(LOCK):  # down() removes the shared parent "lab" under the same lock
        for d in cgroups:
            d.mkdir(parents=True, exist_ok=True)

    def enter_cgroup() -> None:  # runs in the child before exec
        for d in cgroups:
            (d / "cgroup.procs").write_text("0")

    cmd = [
        "systemd-nspawn",
        "--quiet",
        "-b",
        "--register=no",
        "--keep-unit",
        "-D",
        root,
        "-M",
        machine_name(name),
        f"--hostname={name}",
        f"--network-namespace-path=/run/netns/{state['link']['netns']}",
        # The host owns its netns: it may manage it (nftables, net.* sysctls) as with --private-network;
        # SYSTEMD_NSPAWN_API_VFS_WRITABLE=network below leaves /proc/sys/net writable.
        "--capability=CAP_NET_ADMIN",
        "--console=read-only",
        "--timezone=off",
        "--resolv-conf=off",
        "--link-journal=no",
        "--kill-signal=SIGRTMIN+4",
    ]
    log = open(host_dir(name) / "console.log", "wb")  # noqa: SIM115 - handed to the daemon
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=enter_cgroup,
        close_fds=True,
        env={**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"},
    )  # noqa: PLW1509
    log.close()
    return proc.pid


def _leader(state: dict, deadline: float) -> int:
    """PID of the container's systemd (nspawn's child)."""
    pid = state["pid"]
    while time.monotonic() < deadline:
        if not _nspawn_alive(state):
            raise LabError(
                f"{state['name']}: systemd-nspawn exited during boot\n{console_tail(state['name'])}"
            )
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        for child in children:
            if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                return int(child)
        time.sleep(0.05)
    raise LabError(f"{state['name']}: container init did not start\n{console_tail(state['name'])}")


def nsenter(state: dict, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["nsenter", "-t", str(state["leader"]), "-m", "-u", "-i", "-n", "-p", "--", *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def console_tail(name: str, lines: int = 20) -> str:
    try:
        text = (host_dir(name) / "console.log").read_text(errors="replace")
    except OSError:
        return ""
    return "console log tail:\n" + "\n".join(text.splitlines()[-lines:])


def _wait_ready(state: dict) -> None:
    name = state["name"]
    deadline = time.monotonic() + BOOT_TIMEOUT
    state["leader"] = _leader(state, deadline)
    save(state)
    # --wait blocks while systemd is starting; right after launch systemctl may not reach systemd yet
    # (empty output, "Failed to connect to bus"), so that is retried.
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabError(f"{name}: boot did not finish in {BOOT_TIMEOUT:.0f} s\n{console_tail(name)}")
        try:
            res = nsenter(state, "systemctl", "is-system-running", "--wait", timeout=left)
        except subprocess.TimeoutExpired:
            continue
        status = res.stdout.strip()
        if status == "running":
            break
        if status in ("degraded", "maintenance", "stopping"):
            failed = nsenter(state, "systemctl", "--failed", "--no-legend", "--plain").stdout.strip()
            raise LabError(f"{name}: systemd is '{status}' (want running); failed units:\n{failed or '-'}")
        if not _nspawn_alive(state):
            raise LabError(f"{name}: systemd-nspawn exited during boot\n{console_tail(name)}")
        time.sleep(0.1)
    while True:
        probe = subprocess.run(["ssh", *ssh_args(state), "true"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise LabError(f"{name}: SSH on {state['address']} does not answer: {probe.stderr.strip()}")
        time.sleep(0.2)


def ssh_args(state: dict, user: str = "root") -> list[str]:
    return ["-i", str(SSH_KEY), *SSH_OPTIONS, f"{user}@{state['address']}"]


def _reserve(name: str, variant: str, bridge: bool, groups: list[str], reuse: bool) -> dict | str | None:
    """Claim the name and an address under the lock. None: reuse the running host; "stale": replace it."""
    with locked(LOCK):
        d = host_dir(name)
        if (d / "state.json").exists():
            old = load(name)
            running = is_running(old)
            if reuse and running:
                if old["image"] != variant:
                    raise LabError(f"{name} is running with image '{old['image']}', not '{variant}'")
                return None
            if reuse:
                return "stale"
            hint = (
                "`python -m lab down NAME` first"
                if running
                else "it is stale: `python -m lab down NAME` cleans up"
            )
            raise LabError(
                f"name in use: lab host '{name}' exists ({old['address']}); {hint.replace('NAME', name)}"
            )
        if d.exists():
            raise LabError(f"name in use: {d} exists without state; remove it or pick another name")
        link = net.allocate(name, bridge)
        try:
            d.mkdir(parents=True)
        except BaseException:
            net.destroy(link.to_dict())
            raise
        state = {
            "name": name,
            "image": variant,
            "root": str(d / "root"),
            "address": link.address,
            "gateway": link.gateway,
            "link": link.to_dict(),
            "groups": groups or ["bot_hosts"],
            "pid": None,
            "leader": None,
            "created": time.time(),
        }
        save(state)
        return state


def up(
    names_: list[str],
    variant: str = "base",
    bridge: bool = False,
    groups: list[str] | None = None,
    reuse: bool = False,
) -> list[dict]:
    """Boot hosts (in parallel once launched); on any failure remove the hosts this call created."""
    require_root()
    require_tools("systemd-nspawn", "ip", "nsenter", "mount", "tar", "zstd", "ssh", "ssh-keygen")
    for n in names_:
        check_name(n)
    if len(set(names_)) != len(names_):
        raise LabError("a host name is given twice")
    lower = image.tree(variant)
    proxy.ensure()
    ensure_key()
    started: list[dict] = []
    result: list[dict] = []
    try:
        for n in names_:
            state = _reserve(n, variant, bridge, groups or [], reuse)
            if state == "stale":
                progress(f"{n}: replacing stale host")
                down([n])
                state = _reserve(n, variant, bridge, groups or [], reuse)
            if state is None:
                progress(f"{n}: already running, reused")
                result.append(load(n))
                continue
            started.append(state)
            t0 = time.monotonic()
            state["lower"] = str(lower)
            save(state)
            _prepare_tree(state)
            state["pid"] = _launch(state)
            save(state)
            progress(f"{n}: root ready, booting ({time.monotonic() - t0:.1f} s), {state['address']}")
        for state in started:
            _wait_ready(state)
            progress(f"{state['name']}: systemd running, SSH answers")
            result.append(state)
    except BaseException:
        for state in started:
            if os.environ.get("LAB_KEEP_FAILED"):
                progress(f"{state['name']}: kept for inspection (LAB_KEEP_FAILED)")
                continue
            try:
                down([state["name"]])
            except LabError as e:
                progress(f"cleanup of {state['name']} failed: {e}")
        raise
    return result


# --- down


def down(names_: list[str]) -> None:
    require_root()
    for n in names_:
        check_name(n)
        state = load(n)
        if _nspawn_alive(state):
            os.kill(state["pid"], signal.SIGTERM)  # nspawn passes SIGRTMIN+4 (poweroff) to the container
            deadline = time.monotonic() + 30
            while _nspawn_alive(state) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _nspawn_alive(state):
                progress(f"{n}: clean poweroff timed out, killing")
                os.kill(state["pid"], signal.SIGKILL)
        _cgroup_clean(n)
        net.destroy(state["link"])
        propagate = Path("/run/systemd/nspawn/propagate") / machine_name(n)
        if propagate.is_dir():
            propagate.rmdir()
        root = Path(state["root"])
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mnt = line.split()[4]
            if mnt == str(root) or mnt.startswith(str(root) + "/"):
                run(["umount", "-l", mnt], check=False)
        run(["rm", "-rf", "--one-file-system", str(host_dir(n))])
        # Ansible's fact cache (ansible.cfg) would hand the next host of this name stale facts; its files
        # are named after the host, with a schema prefix since ansible-core 2.19 (s1_NAME).
        for f in (REPO / ".cache" / "ansible-facts").glob(f"*{n}"):
            if re.fullmatch(rf"(s\d+_)?{re.escape(n)}", f.name):
                f.unlink(missing_ok=True)
        with locked(LOCK):
            net.drop_bridge_if_unused()
            for d in _cgroup_dirs(n):
                try:
                    d.parent.rmdir()  # the shared "lab" parent, once no host uses it
                except OSError:
                    pass
        progress(f"{n}: down")


def down_all() -> None:
    down(names())
