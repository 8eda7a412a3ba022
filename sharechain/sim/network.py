"""A simulated network whose every misbehaviour comes from one seeded random source.

Each send draws, from the run's ``random.Random``, whether the message is dropped, how long
it takes and whether it is delivered twice; messages between the two sides of an active
partition are lost. Different delays for different messages reorder them. Nothing here
reads a clock: the cluster asks for delivery times relative to its simulated ``now``.

Before global stabilisation time (GST) the configured faults apply; :meth:`heal` ends them
all at once — no drops, no duplicates, no partitions, delays within the calm range — which
is the "eventually synchronous" network the protocol's liveness is promised for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class NetworkFaults:
    drop_p: float = 0.0           # probability a message is lost
    dup_p: float = 0.0            # probability it is delivered twice
    delay_min_ms: int = 5
    delay_max_ms: int = 40        # delays are uniform in [min, max]: wide ranges reorder


CALM = NetworkFaults()


class SimNetwork:
    def __init__(self, rng: random.Random, faults: NetworkFaults, calm: NetworkFaults = CALM,
                 fixed_delay_ms: int | None = None,
                 missing_links: tuple[tuple[int, int], ...] = ()) -> None:
        self.rng = rng
        # Pairs of nodes with no direct connection (a sparse mesh): part of the topology,
        # not a fault, so healing does not restore them; messages cross by relays.
        self.missing = frozenset(frozenset(pair) for pair in missing_links)
        self.faults = faults
        self.calm = calm
        self.fixed_delay_ms = fixed_delay_ms
        self.healed = False
        self.partitions: list[tuple[int, frozenset[int]]] = []  # (id, one side)
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0

    def heal(self) -> None:
        self.healed = True
        self.partitions.clear()

    def add_partition(self, pid: int, side: frozenset[int]) -> None:
        if not self.healed:
            self.partitions.append((pid, side))

    def remove_partition(self, pid: int) -> None:
        self.partitions = [p for p in self.partitions if p[0] != pid]

    def cut(self, src: int, dst: int) -> bool:
        if self.missing and frozenset((src, dst)) in self.missing:
            return True
        return any((src in side) != (dst in side) for _, side in self.partitions)

    def delays(self, src: int, dst: int) -> list[int]:
        """Delivery delays (ms) of one message: none if lost, two if duplicated."""
        self.sent += 1
        if self.fixed_delay_ms is not None:
            return [self.fixed_delay_ms]
        f = self.calm if self.healed else self.faults
        rng = self.rng
        if self.cut(src, dst) or (f.drop_p and rng.random() < f.drop_p):
            self.dropped += 1
            return []
        out = [rng.randint(f.delay_min_ms, f.delay_max_ms)]
        if f.dup_p and rng.random() < f.dup_p:
            self.duplicated += 1
            out.append(rng.randint(f.delay_min_ms, f.delay_max_ms))
        return out
