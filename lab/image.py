"""Build the lab images: a debootstrapped Debian 12 base and variants derived from it, as zstd tarballs.

Each tarball is named by a hash of its recipe (package list, customisation script, apt sources, parent), so it
is built once per machine and rebuilt when the recipe changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab import aptsources, proxy
from lab.common import (
    HOSTS_DIR,
    IMAGES_DIR,
    RECIPE_DIR,
    LabError,
    locked,
    progress,
    require_root,
    require_tools,
    run,
)

RECIPE_VERSION = 1


@dataclass(frozen=True)
class Variant:
    name: str
    parent: str | None
    packages: tuple[str, ...]
    script: str


VARIANTS = {
    v.name: v
    for v in (
        Variant(
            "base",
            None,
            (
                "systemd",
                "systemd-sysv",
                "dbus",
                "openssh-server",
                "python3",
                "python3-apt",
                "sudo",
                "iproute2",
                "procps",
                "ca-certificates",
                "tzdata",
                "acl",
            ),
            "base.sh",
        ),
        Variant(
            "postgres",
            "base",
            ("postgresql-15", "python3-psycopg2", "rsync", "logrotate", "cron"),
            "postgres.sh",
        ),
    )
}


def variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise LabError(f"unknown image '{name}' (known: {', '.join(VARIANTS)})") from None


def recipe_hash(name: str) -> str:
    v = variant(name)
    recipe = {
        "version": RECIPE_VERSION,
        "suite": aptsources.SUITE,
        "packages": v.packages,
        "script": (RECIPE_DIR / v.script).read_text(),
        "sources": aptsources.image_sources(),
        "parent": recipe_hash(v.parent) if v.parent else None,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def tarball(name: str) -> Path:
    return IMAGES_DIR / f"{name}-{recipe_hash(name)}.tar.zst"


@contextlib.contextmanager
def _chroot_mounts(root: Path) -> Iterator[None]:
    mounted: list[Path] = []
    try:
        for src, dst, opts in (
            ("proc", "proc", ["-t", "proc"]),
            ("/dev", "dev", ["--bind"]),
            ("/dev/pts", "dev/pts", ["--bind"]),
            ("sysfs", "sys", ["-t", "sysfs"]),
        ):
            (root / dst).mkdir(parents=True, exist_ok=True)
            run(["mount", *opts, src, str(root / dst)], capture=True)
            mounted.append(root / dst)
        yield
    finally:
        for m in reversed(mounted):
            run(["umount", "-l", str(m)], check=False)


def _logged(cmd: list[str], log: Path, what: str, **kw) -> None:
    """Run a long build step with its output in ``log``; on failure show the tail."""
    with open(log, "a") as fh:
        proc = run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, **kw)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise LabError(f"{what} failed ({proc.returncode}); log {log}:\n{tail}")


def _customise(root: Path, v: Variant, log: Path) -> None:
    policy = root / "usr/sbin/policy-rc.d"  # no service starts inside the build chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    script = "/tmp/lab-recipe.sh"  # noqa: S108 - a path inside the chroot
    shutil.copy(RECIPE_DIR / v.script, root / script.lstrip("/"))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "http_proxy": f"http://127.0.0.1:{proxy.PORT}",
           "HOME": "/root", "LAB_PACKAGES": " ".join(v.packages)}  # fmt: skip
    with _chroot_mounts(root):
        _logged(["chroot", str(root), "/bin/sh", script], log, f"{v.script} in the image chroot", env=env)
    policy.unlink()
    (root / script.lstrip("/")).unlink(missing_ok=True)


TAR = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*"]


def _pack(root: Path, out: Path) -> None:
    tmp = out.with_suffix(".tmp")
    run([*TAR, "--one-file-system", "-I", "zstd -T0 -3", "-C", str(root), "-cf", str(tmp), "."])
    tmp.rename(out)


def unpack(tar: Path, root: Path) -> None:
    root.mkdir(parents=True)
    run([*TAR, "-I", "zstd -T0", "-C", str(root), "-xpf", str(tar)], capture=True)


def build(name: str, force: bool = False) -> Path:
    """Return the tarball of image ``name``, building it (and its parent) when missing or ``force``."""
    require_root()
    v = variant(name)
    if v.parent:
        build(v.parent, force=False)
    out = tarball(name)
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    with locked(IMAGES_DIR / f"{name}.lock"):
        if out.exists() and not force:
            return out
        require_tools("debootstrap", "zstd", "tar", "chroot")
        users = _tree_users().get(str(_tree_dir(out)))
        if force and users:
            raise LabError(f"image {name} is in use by lab hosts {', '.join(sorted(users))}: down them first")
        proxy.ensure()
        work = IMAGES_DIR / f"{name}.build"
        if work.exists():
            _remove_tree(work)
        root = work / "root"
        start = time.monotonic()
        log = work / "build.log"
        if v.parent:
            progress(f"image {name}: unpacking {v.parent}")
            unpack(tarball(v.parent), root)
        else:
            mirror = aptsources.mirror()
            progress(f"image {name}: debootstrap bookworm from {mirror} via apt-cacher-ng (about a minute)")
            root.mkdir(parents=True)
            env = dict(os.environ, http_proxy=f"http://127.0.0.1:{proxy.PORT}")
            cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(v.packages), aptsources.SUITE]
            _logged([*cmd, str(root), aptsources.via_proxy(mirror)], log, "debootstrap", env=env)
            (root / "etc/apt/sources.list.d/debian.sources").write_text(aptsources.image_sources())
        progress(f"image {name}: customising with {v.script} (log: {log})")
        _customise(root, v, log)
        progress(f"image {name}: packing {out.name}")
        _pack(root, out)
        tree_dir = _tree_dir(out)
        if tree_dir.exists():
            _remove_tree(tree_dir)
        root.rename(tree_dir)  # the build tree is the tarball's content: keep it as the overlay layer
        _remove_tree(work)
        _prune(name, keep=out)
        progress(f"image {name}: built in {time.monotonic() - start:.0f} s ({out.stat().st_size >> 20} MiB)")
    return out


def _tree_dir(tar: Path) -> Path:
    return tar.with_name(tar.name.removesuffix(".tar.zst") + ".tree")


def tree(name: str) -> Path:
    """Image ``name`` unpacked once: the read-only lower layer of every host's overlay root."""
    tar = build(name)
    out = _tree_dir(tar)
    if out.is_dir():
        return out
    with locked(IMAGES_DIR / f"{name}.lock"):
        if not out.is_dir():
            progress(f"image {name}: unpacking {tar.name} once for the hosts' overlays")
            tmp = out.with_suffix(".tmp")
            if tmp.exists():
                _remove_tree(tmp)
            unpack(tar, tmp)
            tmp.rename(out)
    return out


def _tree_users() -> dict[str, set[str]]:
    """Unpacked image tree -> names of the lab hosts whose overlay uses it."""
    users: dict[str, set[str]] = {}
    for f in HOSTS_DIR.glob("*/state.json"):
        try:
            users.setdefault(json.loads(f.read_text()).get("lower"), set()).add(f.parent.name)
        except (OSError, ValueError):
            continue
    return users


def _prune(name: str, keep: Path) -> None:
    """Drop older builds of ``name``; an unpacked tree only once no host's overlay uses it."""
    in_use = _tree_users()
    for old in IMAGES_DIR.glob(f"{name}-*.tar.zst"):
        if old != keep:
            old.unlink()
    for old in IMAGES_DIR.glob(f"{name}-*.tree"):
        if old != _tree_dir(keep) and str(old) not in in_use:
            _remove_tree(old)


def _remove_tree(path: Path) -> None:
    """rm -rf that refuses to cross into a mount left behind by an interrupted build."""
    run(["rm", "-rf", "--one-file-system", str(path)])
