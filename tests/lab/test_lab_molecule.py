"""molecule/shared/create.yml: when `lab up` fails, molecule says why in lab's own words."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from lab_helpers import REPO


def test_create_reports_lab_error(lab1, tmp_path):
    """A platform that names the running base host lab1 with another image: lab refuses at once."""
    role = tmp_path / "roles" / "probe"
    shutil.copytree(REPO / "roles" / "base" / "molecule", role / "molecule")
    (role / "tasks").mkdir()
    (role / "tasks" / "main.yml").write_text("---\n[]\n")
    scenario = role / "molecule" / "default" / "molecule.yml"
    text = scenario.read_text().replace("../../../../molecule/shared", str(REPO / "molecule" / "shared"))
    text = re.sub(r"- name: \w+\n(\s+)image: base", r"- name: lab1\n\1image: postgres", text)
    scenario.write_text(text)
    env = {
        **os.environ,
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "ephemeral"),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PATH": f"{REPO / '.venv/bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        [str(REPO / ".venv/bin/molecule"), "create"], cwd=role, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    out = " ".join(re.sub(r"\x1b\[[0-9;]*m|│", "", proc.stdout + proc.stderr).split())
    assert proc.returncode != 0
    want = "`python -m lab up lab1` failed (rc 1): lab: error: lab1 is running with image 'base'"
    assert want in out, out[-3000:]
    assert "CapturedExceptionMarker" not in out
