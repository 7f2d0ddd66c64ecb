"""Build a release wheelhouse on the control node: the bot wheel + every pinned dependency, with checksums.

Usage: build_wheelhouse.py SOURCE_DIR CONSTRAINTS CACHE_DIR VERSION

Writes CACHE_DIR/VERSION/wheelhouse.tar (the wheels and SHA256SUMS), atomically: the version directory appears
complete or not at all (a concurrent build may win the race; its result is kept). The dependency wheels depend
only on the constraints file and pyproject.toml, so they are kept in CACHE_DIR/deps-<key>/ and a later release
with the same inputs resolves them offline from there: only its own wheel is built. Prints what it did on the
last line as JSON ({"built": true, "deps": "cached"|"downloaded", "seconds": ...}).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCES = ("bot", "pyproject.toml", "README.md")


def deps_key(constraints: Path, pyproject: Path) -> str:
    digest = hashlib.sha256()
    for path in (constraints, pyproject):
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b" ")
    return digest.hexdigest()[:16]


def can_build_without_isolation() -> bool:
    """setuptools >= 68 and wheel importable here: no throwaway build environment needed (~15 s saved)."""
    try:
        import setuptools  # noqa: PLC0415
        import wheel  # noqa: F401, PLC0415
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68


def drop_stale_deps(cache: Path, keep: Path, max_age_s: float = 86_400) -> None:
    """Drop dependency sets of earlier inputs untouched for a day (a concurrent build may still use one)."""
    for old in cache.glob("deps-*"):
        if old != keep and time.time() - old.stat().st_mtime > max_age_s:
            shutil.rmtree(old, ignore_errors=True)


def pip_wheel(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", *args], check=True)


def build(source: Path, constraints: Path, cache: Path, version: str) -> dict[str, object]:
    started = time.monotonic()
    target = cache / version
    cache.mkdir(parents=True, exist_ok=True)
    deps = cache / f"deps-{deps_key(constraints, source / 'pyproject.toml')}"
    cached = deps.is_dir()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=cache) as scratch:
        tmp = Path(scratch)
        # A snapshot, so concurrent edits and build/ leftovers never reach the wheel.
        src, wheels = tmp / "src", tmp / "wheels"
        src.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in SOURCES:
            path = source / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=ignore)
            else:
                shutil.copy2(path, src / name)
        isolation = ["--no-build-isolation"] if can_build_without_isolation() else []
        pip_wheel("--no-deps", *isolation, "--wheel-dir", str(wheels), str(src))
        (bot_wheel,) = wheels.glob("psychochauffeur_bot-*.whl")
        offline = ["--no-index", "--find-links", str(deps)] if cached else []
        pip_wheel(
            "--only-binary=:all:",
            "--constraint",
            str(constraints),
            *offline,
            "--wheel-dir",
            str(wheels),
            str(bot_wheel),
        )
        if not cached:
            keep = tmp / "deps"
            keep.mkdir()
            for whl in wheels.glob("*.whl"):
                if whl != bot_wheel:
                    shutil.copy2(whl, keep / whl.name)
            try:
                keep.rename(deps)
            except OSError:
                pass  # a concurrent build stored the same set first
            drop_stale_deps(cache, keep=deps)
        out = tmp / "out"
        out.mkdir()
        names = sorted(p.name for p in wheels.glob("*.whl"))
        sums = subprocess.run(
            ["sha256sum", "--", *names], cwd=wheels, check=True, capture_output=True, text=True
        )
        (wheels / "SHA256SUMS").write_text(sums.stdout)
        subprocess.run(
            ["tar", "-cf", str(out / "wheelhouse.tar"), "--", *names, "SHA256SUMS"], cwd=wheels, check=True
        )
        try:
            out.rename(target)
        except OSError:
            if not (target / "wheelhouse.tar").is_file():
                raise
    return {
        "built": True,
        "deps": "cached" if cached else "downloaded",
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    source, constraints, cache, version = Path(argv[0]), Path(argv[1]), Path(argv[2]), argv[3]
    print(json.dumps(build(source, constraints, cache, version)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
