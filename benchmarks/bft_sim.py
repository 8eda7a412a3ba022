"""BFT consensus figures from the deterministic simulator (thin wrapper).

    python benchmarks/bft_sim.py --seconds 8

is the same as ``python -m sharechain.sim bench --seconds 8``: simulated commit latency in
message delays (good case, after a proposer failure), messages per height for 4/7/10/16
validators, and simulated heights per wall-clock second for 4 and 16 validators. The last
line printed is one JSON object of the figures.
"""

from __future__ import annotations

import sys

from sharechain.sim.cli import app

if __name__ == "__main__":
    app(["bench", *sys.argv[1:]], prog_name="bft_sim.py")
