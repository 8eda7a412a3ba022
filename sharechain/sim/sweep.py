"""Seed sweeps: many scenarios with mixed faults, each replayable from its seed.

:func:`sweep_scenario` derives a whole scenario — cluster size (4, sometimes 7), f
Byzantine validators of 3f+1 with their behaviours, which network faults apply, whether
the validator set changes — from one seed. The scenario it returns lists everything
explicitly, so ``scenario.replay_command()`` reruns exactly that run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from sharechain.sim.cluster import (
    BYZANTINE_FAULTS,
    CHAIN_FAULTS,
    NETWORK_FAULTS,
    Cluster,
    RunResult,
    Scenario,
)

SWEEP_HEIGHTS_4 = 15
SWEEP_HEIGHTS_7 = 10


def sweep_scenario(seed: int, heights: int | None = None, big_p: float = 0.25) -> Scenario:
    r = random.Random(f"sweep:{seed}")
    n = 7 if r.random() < big_p else 4
    f = (n - 1) // 3
    faults = [x for x in NETWORK_FAULTS + CHAIN_FAULTS if r.random() < 0.5]
    faults += sorted({r.choice(BYZANTINE_FAULTS) for _ in range(f)})
    h = heights if heights is not None else (SWEEP_HEIGHTS_4 if n == 4 else SWEEP_HEIGHTS_7)
    return Scenario(seed=seed, nodes=n, byzantine=f, heights=h, faults=tuple(faults))


def run_one(sc: Scenario) -> RunResult:
    return Cluster(sc).run()


def run_sweep(scenarios: Iterable[Scenario], jobs: int = 1,
              on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Run scenarios (in ``jobs`` processes); results come back in scenario order."""
    results: list[RunResult] = []
    for res in _results(list(scenarios), jobs):
        results.append(res)
        if on_result is not None:
            on_result(res)
    return results


def _results(scs: list[Scenario], jobs: int) -> Iterator[RunResult]:
    if jobs <= 1:
        for sc in scs:
            yield run_one(sc)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(run_one, scs, chunksize=4)
