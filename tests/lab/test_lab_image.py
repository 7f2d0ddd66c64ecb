"""lab/image.py: recipe-keyed cache and clear errors (the build itself is exercised by every `up`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from lab_helpers import REPO, lab

from lab import image


def test_recipe_hash_follows_the_recipe(tmp_path, monkeypatch):
    before = {name: image.recipe_hash(name) for name in image.VARIANTS}
    assert len(set(before.values())) == len(before)
    recipe = tmp_path / "recipe"
    shutil.copytree(image.RECIPE_DIR, recipe)
    monkeypatch.setattr(image, "RECIPE_DIR", recipe)
    assert {name: image.recipe_hash(name) for name in image.VARIANTS} == before
    with (recipe / "base.sh").open("a") as fh:
        fh.write("# changed\n")
    after = {name: image.recipe_hash(name) for name in image.VARIANTS}
    assert after["base"] != before["base"]
    assert after["postgres"] != before["postgres"], "a derived image is rebuilt when its parent changes"


def test_missing_debootstrap_says_make_deps(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("tar", "zstd", "chroot"):
        (bindir / tool).symlink_to(shutil.which(tool))
    tarball = image.tarball("base")
    mtime = tarball.stat().st_mtime if tarball.exists() else None
    proc = lab(
        "image", "--force", check=False, env={**os.environ, "PATH": f"{bindir}:{Path(sys.executable).parent}"}
    )
    assert proc.returncode == 1
    assert "debootstrap" in proc.stderr and "make deps" in proc.stderr
    assert (tarball.stat().st_mtime if tarball.exists() else None) == mtime
    assert not (REPO / ".lab/images/base.build").exists()


def test_unknown_variant_is_refused():
    proc = lab("up", "lab9", "--image", "nosuch", check=False)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
