"""scripts/test_parts.py: the machine-wide CPU meter of the summary table."""

import time

from scripts import test_parts


def test_cpu_times_count_this_process_work():
    busy0, total0 = test_parts.cpu_times()
    own0 = time.process_time()
    x = 0
    for i in range(3_000_000):  # bounded: a few hundred ms of one core
        x += i * i
    busy1, total1 = test_parts.cpu_times()
    own = time.process_time() - own0
    assert 0 <= busy0 <= total0 and busy1 >= busy0 and total1 >= total0
    # the machine was busy at least as long as this process computed (counted per clock tick: 5 of slack)
    assert busy1 - busy0 >= own - 0.05
    assert total1 - total0 >= busy1 - busy0 - 0.001  # equal when every core was busy (floats)


def test_cpu_meter_rows_name_the_busy_share_and_the_cpu_bound_wall_clock():
    meter = test_parts.CpuMeter()
    sum(i * i for i in range(500_000))
    rows = meter.rows()
    assert rows[0].startswith("| machine CPU busy (lab hosts too; ") and rows[0].endswith("%) |")
    assert rows[1].startswith("| 30-s samples with every core") and " 0 of 0 |" in rows[1]
    assert rows[2].startswith("| wall clock if CPU were the only limit")
    assert meter.stop.is_set()


def test_a_part_reports_its_exit_status_and_the_cpu_its_processes_used(tmp_path, monkeypatch):
    monkeypatch.setattr(test_parts, "LOGS", tmp_path)
    spin = "import sys\nx = 0\nfor i in range(2_000_000): x += i\nprint('spun')\nsys.exit(3)"
    # the work is done by a grandchild the part waits for: counted as the part's too
    part = test_parts.Part("spin", ["sh", "-c", f'python3 -c "{spin}"; exit $?'])
    runner = test_parts.Runner([part], lab_slots=1, tail=5)
    assert runner._exec(part) == 3
    assert part.cpu > 0.05
    assert "spun" in part.log.read_text()
