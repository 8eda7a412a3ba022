"""Committed transfers/s and submit-to-commit latency on a 4-validator BFT localnet.

The same load as ``throughput.py`` (pre-signed transfers posted in batches to node0, which
gossips them), against N validator processes talking over authenticated P2P on loopback,
with the single-core Ed25519 verification rate measured in the same run. Last line: JSON.

    python benchmarks/network.py --seconds 10
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--validators" not in args:
        args += ["--validators", "4"]
    if "--block-interval-ms" not in args:
        args += ["--block-interval-ms", "200"]
    if "--block-txs-max" not in args:
        args += ["--block-txs-max", "3000"]
    if "--rate" not in args:
        args += ["--rate", "3200"]
    if "--lanes" not in args:
        args += ["--lanes", "4"]
    throughput.main(args)
