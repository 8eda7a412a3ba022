"""Figures for ``sharechain sim bench``: simulated latency, messages, and real CPU cost.

* Commit latency in message delays: every message takes exactly ``D`` ms; a height's
  latency is the time between consecutive commits. Good case: 3 delays (proposal,
  prevote, precommit). After a proposer failure (a silent validator's turn), the latency
  is the propose and precommit timeouts of round 0 plus 5 delays.
* Messages per height for N validators (good case, every point-to-point send counted).
* Real CPU: simulated heights per second of wall time, for 4 and 16 validators, with
  signature checks shared across the cluster (each distinct signature verified once) and,
  for comparison, verified by every node.
"""

from __future__ import annotations

import time
from typing import Any

from sharechain.consensus.bft.events import PRECOMMIT, PROPOSE
from sharechain.sim.cluster import SIM_CONFIG, Cluster, Scenario, SharedCaches

DELAY_MS = 10


def latency(nodes: int, byzantine: int, heights: int, faults: tuple[str, ...] = ()
            ) -> tuple[list[int], list[int]]:
    """Per-height latencies (ms), split into heights decided in round 0 and later."""
    sc = Scenario(seed=1, nodes=nodes, byzantine=byzantine, heights=heights, faults=faults,
                  fixed_delay_ms=DELAY_MS)
    res = Cluster(sc).run()
    fast: list[int] = []
    slow: list[int] = []
    for h in range(2, res.heights + 1):
        dt = res.commit_times[h] - res.commit_times[h - 1]
        (fast if res.commit_rounds[h] == 0 else slow).append(dt)
    return fast, slow


def messages_per_height(nodes: int, heights: int) -> float:
    res = Cluster(Scenario(seed=1, nodes=nodes, byzantine=0, heights=heights)).run()
    return res.messages / max(1, res.heights)


def heights_per_s(nodes: int, seconds: float, memo: bool = True) -> tuple[float, int]:
    sc = Scenario(seed=7, nodes=nodes, byzantine=0, heights=10**9)
    cluster = Cluster(sc, caches=SharedCaches(memo=memo))
    t0 = time.perf_counter()
    res = cluster.run(max_wall_s=seconds)
    wall = time.perf_counter() - t0
    return res.heights / wall, res.heights


def figures(seconds: float) -> dict[str, Any]:
    fast, _ = latency(4, 0, 30)
    _, slow = latency(4, 1, 40, ("silent",))
    timeouts = SIM_CONFIG.timeout_ms(PROPOSE, 0) + SIM_CONFIG.timeout_ms(PRECOMMIT, 0)
    out: dict[str, Any] = {
        "delay_ms": DELAY_MS,
        "latency_good_delays": round(sum(fast) / len(fast) / DELAY_MS, 2),
        "latency_proposer_failure_ms": round(sum(slow) / len(slow), 1) if slow else None,
        "latency_proposer_failure_timeouts_ms": timeouts,
        "latency_proposer_failure_delays_beyond_timeouts":
            round((sum(slow) / len(slow) - timeouts) / DELAY_MS, 2) if slow else None,
        "msgs_per_height": {str(n): round(messages_per_height(n, 10), 1)
                            for n in (4, 7, 10, 16)},
    }
    share = max(0.5, seconds / 4)
    out["heights_per_s"], out["heights_4"] = _round(heights_per_s(4, share))
    out["heights_per_s_16"], out["heights_16"] = _round(heights_per_s(16, share))
    out["heights_per_s_verify_every_node"], _ = _round(heights_per_s(4, share / 2, False))
    out["heights_per_s_16_verify_every_node"], _ = _round(heights_per_s(16, share / 2, False))
    out["seconds"] = seconds
    return out


def _round(x: tuple[float, int]) -> tuple[float, int]:
    return round(x[0], 1), x[1]

