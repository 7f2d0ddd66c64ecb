#!/usr/bin/env python3
"""Print the release version of a bot source tree, `git describe --always --tags --dirty` style.

Only the build inputs count (bot/, pyproject.toml, constraints.txt): the version describes the last commit
that touched them, so commits elsewhere in the repo (roles, docs) make no new bot release. When the inputs in
the working tree differ from HEAD (modified, deleted or untracked files, which the wheel would include), the
version gets "-dirty-" plus a short hash of their content: two different trees never share a version and a
cached wheelhouse is reused only for identical inputs. Usage: release_version.py SRC_DIR
"""

import hashlib
import subprocess
import sys
from pathlib import Path

BUILD_INPUTS = ["bot", "pyproject.toml", "constraints.txt"]


def git(src: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=src, check=True, capture_output=True, text=True).stdout


def inputs_hash(src: Path) -> str:
    listed = git(src, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *BUILD_INPUTS)
    digest = hashlib.sha256()
    for name in sorted(set(filter(None, listed.split("\0")))):
        path = src / name
        if path.is_file():  # a deleted tracked file is still listed
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:8]


def main() -> int:
    src = Path(sys.argv[1])
    try:
        commit = git(src, "log", "-1", "--format=%H", "--", *BUILD_INPUTS).strip() or "HEAD"
        version = git(src, "describe", "--always", "--tags", commit).strip()
        modified = git(src, "status", "--porcelain", "--untracked-files=all", "--", *BUILD_INPUTS).strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"cannot describe the git tree {src}: {exc}; set bot_version", file=sys.stderr)
        return 2
    if modified:
        version += "-dirty-" + inputs_hash(src)
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
