"""Run a benchmark several times and summarise its figures: median, min and max of each.

This machine's speed drifts from minute to minute, so one run of a benchmark says little;
every benchmark here ends by printing one JSON object of its figures, and this runs one
N times, reads that last line from each run, and prints each numeric figure's median, min
and max. A run that fails (non-zero exit, or no JSON last line) is reported and left out.
Progress goes to stderr; the last line on stdout is one JSON object:
``{"runs": N, "failed": F, "median": {...}, "min": {...}, "max": {...}, "each": [...]}``.

    .venv/bin/python benchmarks/repeat.py -n 5 benchmarks/network.py --seconds 10 --rate 3600
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def last_json(text: str) -> dict[str, Any] | None:
    """The JSON object on the last non-empty line of ``text``, or None."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        obj = json.loads(lines[-1])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def numeric(figures: dict[str, Any]) -> dict[str, float]:
    """The top-level numeric figures (booleans and nested objects left out)."""
    return {k: v for k, v in figures.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median, min and max of every numeric figure that some run reported."""
    values: dict[str, list[float]] = {}
    for figures in runs:
        for k, v in numeric(figures).items():
            values.setdefault(k, []).append(v)
    return {
        "median": {k: statistics.median(vs) for k, vs in values.items()},
        "min": {k: min(vs) for k, vs in values.items()},
        "max": {k: max(vs) for k, vs in values.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--runs", type=int, default=5, help="how many runs (default 5)")
    ap.add_argument("--show", default="",
                    help="comma-separated figures to print in the progress lines "
                         "(default: all numeric ones)")
    ap.add_argument("script", help="the benchmark script, e.g. benchmarks/network.py")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    a = ap.parse_args(argv)
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    show = [s for s in a.show.split(",") if s]
    cmd = [sys.executable, a.script, *a.args]
    runs: list[dict[str, Any]] = []
    failed = 0
    for i in range(1, a.runs + 1):
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        figures = last_json(proc.stdout) if proc.returncode == 0 else None
        took = time.monotonic() - t0
        if figures is None:
            failed += 1
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            log(f"run {i}/{a.runs}: failed (exit {proc.returncode}, {took:.0f} s): "
                + " | ".join(tail))
            continue
        runs.append(figures)
        picked = {k: v for k, v in numeric(figures).items() if not show or k in show}
        log(f"run {i}/{a.runs} ({took:.0f} s): "
            + ", ".join(f"{k}={v:g}" for k, v in picked.items()))
    if not runs:
        log("every run failed")
        return 1
    summary = summarise(runs)
    keys = [k for k in summary["median"] if not show or k in show]
    width = max(len(k) for k in keys) if keys else 0
    log(f"{'figure':<{width}}  {'median':>12}  {'min':>12}  {'max':>12}   ({len(runs)} runs)")
    for k in keys:
        log(f"{k:<{width}}  {summary['median'][k]:>12g}  {summary['min'][k]:>12g}  "
            f"{summary['max'][k]:>12g}")
    print(json.dumps({"runs": len(runs), "failed": failed, **summary, "each": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
