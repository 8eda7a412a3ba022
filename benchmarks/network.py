"""Committed transfers/s and submit-to-commit latency on a 4-validator BFT localnet.

The same load as ``throughput.py`` (pre-signed transfers posted in batches to node0, which
gossips them), against N validator processes talking over authenticated P2P on loopback,
with the single-core Ed25519 verification rate measured in the same run. Last line: JSON.

The defaults are the measurement the README's network goal is stated for: 10 s of 5,000
transfers/s offered to 4 validators with 200 ms blocks. The machine's speed drifts, so
compare medians of several runs:

    python benchmarks/network.py
    python benchmarks/repeat.py -n 5 benchmarks/network.py --seconds 10 --rate 5000
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # noqa: E402

DEFAULTS = {"validators": 4, "block_interval_ms": 200, "block_txs_max": 3000,
            "rate": 5000, "seconds": 10.0, "lanes": 4}

if __name__ == "__main__":
    throughput.main(description=__doc__ + "\nDefaults here: " + ", ".join(
        f"{k} {v}" for k, v in DEFAULTS.items()) + ".", defaults=DEFAULTS)
