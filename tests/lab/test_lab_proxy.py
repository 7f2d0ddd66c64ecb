"""apt on lab hosts goes through apt-cacher-ng on the control node (lab/proxy.py)."""

from __future__ import annotations

from pathlib import Path

from lab_helpers import ssh


def test_apt_install_through_the_proxy(lab1):
    conf = ssh(lab1, "apt-config dump Acquire::http::Proxy").stdout
    assert f"http://{lab1['gateway']}:3142/" in conf
    log = Path("/var/log/apt-cacher-ng/apt-cacher.log")
    before = log.stat().st_size if log.exists() else 0
    ssh(lab1, "apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q hello")
    assert ssh(lab1, "hello").stdout.strip() == "Hello, world!"
    with log.open("rb") as fh:
        fh.seek(before)
        assert b"/hello_" in fh.read(), "the .deb was not fetched through apt-cacher-ng"
