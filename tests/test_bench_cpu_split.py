"""benchmarks/cpu_split.py: CPU per process and thread, read from /proc."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import cpu_split  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")


def test_split_reports_busy_threads_busiest_first():
    before = {(10, 10): ("node0", "main", 100, 10), (10, 11): ("node0", "worker", 50, 0),
              (20, 20): ("node1", "main", 0, 0)}
    after = {(10, 10): ("node0", "main", 150, 20), (10, 11): ("node0", "worker", 50, 0),
             (20, 20): ("node1", "main", 200, 0), (20, 21): ("node1", "new", 10, 10)}
    rows = cpu_split.split(before, after, seconds=2.0, tick=100)
    assert [(r["node"], r["thread"], r["cores"], r["system_cores"]) for r in rows] == [
        ("node1", "main", 1.0, 0.0),      # 200 ticks in 2 s at 100 ticks/s
        ("node0", "main", 0.3, 0.05),     # 50 user + 10 system ticks
        ("node1", "new", 0.1, 0.05),      # a thread that started during the window
    ]                                     # the idle worker is left out


def test_measures_a_busy_process_by_match(tmp_path):
    marker = tmp_path / "spin_marker.py"
    marker.write_text("while True:\n    pass\n")
    spinner = subprocess.Popen([sys.executable, str(marker)])
    try:
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cpu_split.py"),
                              "--seconds", "0.5", "--match", str(marker)],
                             capture_output=True, text=True, check=True)
    finally:
        spinner.kill()
        spinner.wait()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [r for r in result["threads"] if r["pid"] == spinner.pid]
    assert rows and rows[0]["node"] == "spin_marker.py" and rows[0]["thread"] == "main"
    assert rows[0]["cores"] > 0.05  # it spins; the machine may be busy with other tests


def test_no_node_running_is_a_clear_error():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cpu_split.py"),
                          "--seconds", "0.1", "--match", "no-such-process-xyz-123"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "no running node found" in out.stderr
