"""benchmarks/repeat.py: runs a benchmark N times and summarises its JSON figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEAT = ROOT / "benchmarks" / "repeat.py"


def _fake_bench(tmp_path: Path) -> Path:
    """A stand-in benchmark: its figure is the run number kept in a counter file; the
    third run fails."""
    script = tmp_path / "fake_bench.py"
    script.write_text(
        "import json, sys, pathlib\n"
        "c = pathlib.Path(sys.argv[1])\n"
        "n = int(c.read_text()) + 1 if c.exists() else 1\n"
        "c.write_text(str(n))\n"
        "if n == 3:\n"
        "    print('boom', file=sys.stderr); sys.exit(2)\n"
        "print('progress line')\n"
        "print(json.dumps({'tx_per_s': 100 * n, 'ok': True, 'note': 'x', 'nested': {'a': 1}}))\n")
    return script


def test_repeat_summarises_runs_and_leaves_out_failures(tmp_path):
    script = _fake_bench(tmp_path)
    out = subprocess.run([sys.executable, str(REPEAT), "-n", "4", str(script),
                          str(tmp_path / "count")], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["runs"] == 3 and result["failed"] == 1
    assert [r["tx_per_s"] for r in result["each"]] == [100, 200, 400]
    assert result["median"] == {"tx_per_s": 200}  # booleans, text and objects left out
    assert result["min"]["tx_per_s"] == 100 and result["max"]["tx_per_s"] == 400
    assert "run 3/4: failed (exit 2" in out.stderr and "boom" in out.stderr


def test_repeat_exits_non_zero_when_every_run_fails(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("print('no json here')\n")
    out = subprocess.run([sys.executable, str(REPEAT), "-n", "2", str(script)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "every run failed" in out.stderr
