"""bench/drill.py's arithmetic: downtime from the sandbox's confirmations, the summary, argument checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.drill import REPO, Step, blame, longest_gap, ranges, summarize


def test_longest_gap_spans_the_switch_and_ignores_later_gaps():
    # confirmations every 0.1 s, a 4.8 s hole during the step, a longer one after the bot was back
    stamps = [9.0, 10.1, 10.2, 15.0, 15.1, 30.0]
    assert longest_gap(stamps, since=10.0, until=14.0) == pytest.approx(4.8)


def test_longest_gap_counts_from_the_step_start_when_nothing_was_confirmed_before():
    assert longest_gap([20.5], since=10.0, until=20.0) == pytest.approx(10.5)


def test_summary_per_kind_reports_steps_the_bot_never_came_back_from():
    steps = [
        Step("update", 1, 0, 60.0, 1.0),
        Step("update", 2, 0, 50.0, 3.0),
        Step("kill -9", 1, 0, 2.0, None),
    ]
    rows = {row["kind"]: row for row in summarize(steps)}
    assert rows["update"]["downtime_median"] == 2.0 and rows["update"]["downtime_max"] == 3.0
    assert rows["kill -9"]["no_resume"] == 1 and rows["kill -9"]["downtime_median"] is None
    assert rows["rollback"]["n"] == 0


@pytest.mark.parametrize(
    ("args", "message"), [(["--cycles", "0"], "--cycles"), (["--rate", "1000"], "--rate")]
)
def test_bad_arguments_are_refused_before_anything_starts(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "bench", "drill", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and message in result.stderr


def test_lost_messages_are_blamed_on_the_step_running_when_they_were_pushed():
    steps = [Step("update", 1, 0, 10.0, 1.0, start=100.0, end=110.0)]
    steps.append(Step("broken update", 1, 2, 10.0, 5.0, start=111.0, end=121.0))
    assert blame(steps, [99.0, 105.0, 110.5, 115.0, 130.0]) == 1  # 99.0: before the first step
    assert [s.lost for s in steps] == [2, 2]  # the gap 110-111 counts against the update
    assert ranges([3, 4, 5, 9, 11, 12]) == [[3, 5], [9, 9], [11, 12]]
