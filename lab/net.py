"""Per-host networking: a network namespace joined to the control node by a veth pair.

Default: a private /30 per host (control node .1, host .2) from LAB_SUBNET (10.213.0.0/16).
With ``--bridge`` the host's veth is a port of the shared bridge ``labbr0`` (LAB_BRIDGE_SUBNET,
10.214.0.0/24, control node .1), so hosts reach each other. Veth names, addresses and the bridge are
shared by every checkout on the machine: a slot is picked and its veth created under one machine-wide lock
(/run/lab/net.lock), so several users and checkouts may run ``up`` at once; the namespace name carries the
checkout's SCOPE.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.common import HOSTS_DIR, MACHINE_LOCKS, SCOPE, LabError, locked, run

SUBNET = ipaddress.ip_network(os.environ.get("LAB_SUBNET", "10.213.0.0/16"))
BRIDGE_SUBNET = ipaddress.ip_network(os.environ.get("LAB_BRIDGE_SUBNET", "10.214.0.0/24"))
BRIDGE = "labbr0"


@dataclass
class Link:
    """What a host's network is: kept in its state.json."""

    mode: str  # "p2p" or "bridge"
    index: int
    address: str  # the host's address
    gateway: str  # the control node's address facing the host (apt proxy lives there)
    prefix: int
    netns: str
    veth: str  # control-node end

    def to_dict(self) -> dict:
        return asdict(self)


def _taken(mode: str) -> set[int]:
    used = set()
    for f in HOSTS_DIR.glob("*/state.json"):
        try:
            link = json.loads(f.read_text()).get("link") or {}
        except (OSError, ValueError):
            continue
        if link.get("mode") == mode:
            used.add(int(link["index"]))
    return used


def _addresses_in_use() -> set[str]:
    out = run(["ip", "-4", "-o", "addr", "show"], capture=True).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}


def allocate(name: str, bridge: bool) -> Link:
    """Pick a free slot and create its namespace and veth pair. Call with the hosts lock held; the caller
    records the result in state.json (and calls destroy() if it cannot)."""
    with locked(MACHINE_LOCKS / "net.lock"):
        link = _pick(f"lab-{SCOPE}-{name}", bridge)
        try:
            create(link)
        except BaseException:
            destroy(link.to_dict())
            raise
    return link


def _pick(netns: str, bridge: bool) -> Link:
    """A free slot: not in this checkout's states, and its veth and addresses unused on the machine."""
    in_use = _addresses_in_use()
    if bridge:
        hosts = list(BRIDGE_SUBNET.hosts())
        gateway = str(hosts[0])
        taken = _taken("bridge")
        for i, addr in enumerate(hosts[1:]):
            veth = f"vlabb{i}"
            if i in taken or str(addr) in in_use or Path(f"/sys/class/net/{veth}").exists():
                continue
            return Link("bridge", i, str(addr), gateway, BRIDGE_SUBNET.prefixlen, netns, veth)
        raise LabError(f"no free address left on the lab bridge {BRIDGE_SUBNET}")
    taken = _taken("p2p")
    for i, net in enumerate(SUBNET.subnets(new_prefix=30)):
        gw, addr = (str(a) for a in net.hosts())
        veth = f"vlab{i}"
        if i in taken or gw in in_use or addr in in_use or Path(f"/sys/class/net/{veth}").exists():
            continue
        return Link("p2p", i, addr, gw, 30, netns, veth)
    raise LabError(f"no free /30 left in {SUBNET}")


def _ensure_bridge() -> None:
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        return
    gw = next(BRIDGE_SUBNET.hosts())
    run(["ip", "link", "add", BRIDGE, "type", "bridge"], capture=True)
    run(["ip", "addr", "add", f"{gw}/{BRIDGE_SUBNET.prefixlen}", "dev", BRIDGE], capture=True)
    run(["ip", "link", "set", BRIDGE, "up"], capture=True)


def create(link: Link) -> None:
    """Network namespace + veth pair; the host end is ``eth0`` in the namespace, configured from outside."""
    ns = ["ip", "-n", link.netns]
    run(["ip", "netns", "add", link.netns], capture=True)
    run(
        ["ip", "link", "add", link.veth, "type", "veth", "peer", "name", "eth0", "netns", link.netns],
        capture=True,
    )
    if link.mode == "bridge":
        _ensure_bridge()
        run(["ip", "link", "set", link.veth, "master", BRIDGE], capture=True)
    else:
        run(["ip", "addr", "add", f"{link.gateway}/{link.prefix}", "dev", link.veth], capture=True)
    run(["ip", "link", "set", link.veth, "up"], capture=True)
    run([*ns, "link", "set", "lo", "up"], capture=True)
    run([*ns, "addr", "add", f"{link.address}/{link.prefix}", "dev", "eth0"], capture=True)
    run([*ns, "link", "set", "eth0", "up"], capture=True)
    run([*ns, "route", "add", "default", "via", link.gateway], capture=True)


def destroy(link: dict) -> None:
    """Remove namespace and veth (idempotent). The bridge goes when no bridged host is left."""
    if not Path(f"/run/netns/{link['netns']}").exists():
        # Our veth went with the namespace; a veth of that name now belongs to another host (another checkout
        # may have taken the free name since): never delete it.
        return
    run(["ip", "netns", "del", link["netns"]], capture=True)
    # Deleting the namespace deletes its veth end and so the pair, asynchronously: wait, delete what is left.
    veth = Path(f"/sys/class/net/{link['veth']}")
    deadline = time.monotonic() + 5
    while veth.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if veth.exists():
        run(["ip", "link", "del", link["veth"]], check=False, capture=True)
    if veth.exists():
        raise LabError(f"could not delete the veth {link['veth']}")


def drop_bridge_if_unused() -> None:
    """Remove the bridge once no veth (of any checkout) is a port of it."""
    with locked(MACHINE_LOCKS / "net.lock"):
        ports = Path(f"/sys/class/net/{BRIDGE}/brif")
        if ports.is_dir() and not any(ports.iterdir()):
            run(["ip", "link", "del", BRIDGE], capture=True)
