"""lab/net.py: tearing down a host whose namespace is already gone never touches another host's veth."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab import net


def test_destroy_without_its_namespace_leaves_a_veth_of_the_same_name_alone():
    """Seen with two checkouts: a stale host's `lab down` deleted the veth another checkout's host had taken
    under the same free name, cutting that host off mid-converge."""
    name = "vlabtest9"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"], check=True)
    try:
        net.destroy({"netns": "lab-none-gone-host", "veth": name})
        assert Path(f"/sys/class/net/{name}").exists(), "destroy() deleted a veth that was not its own"
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)
