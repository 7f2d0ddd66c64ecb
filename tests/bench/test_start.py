"""bench/start.py: a bad --baseline is refused before anything starts."""

from __future__ import annotations

import subprocess
import sys

from bench.drill import REPO


def test_a_baseline_without_a_bot_tree_is_refused_with_how_to_make_one(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench", "start", "--baseline", str(tmp_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no bot/app.py" in result.stderr and "git archive" in result.stderr
