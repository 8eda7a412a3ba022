"""Proposer rotation weighted by voting power.

The schedule of a validator set is one period of smooth weighted round-robin (the scheme
CometBFT's proposer priority is built on): every slot each validator's priority grows by its
power, the highest priority proposes (ties go to the lowest address, which comes first in
the set) and pays back the total power. Over one period of ``total_power`` slots each
validator proposes exactly ``power`` times, spread evenly; the period ends with all
priorities back at zero, so the schedule is a pure function of the set.

The proposer of ``(height, round)`` is ``schedule[(height + round) % len(schedule)]``
(:meth:`~sharechain.consensus.bft.valset.ValidatorIndex.proposer`, the one place that
computes it). It
needs no state carried between heights — nothing to persist, nothing a restarted node can
get wrong — and a failed round moves to the next slot, so after at most f+1 consecutive
rounds (f faulty validators of power 1 each) an honest validator proposes.

With large stakes the period would be long, so powers are first scaled to at most
``PROPOSER_SLOTS_MAX`` slots (each validator keeps at least one).
"""

from __future__ import annotations

from functools import lru_cache

from sharechain.chain.types import ValidatorSet

PROPOSER_SLOTS_MAX = 1024


@lru_cache(maxsize=64)
def proposer_schedule(validators: ValidatorSet) -> tuple[bytes, ...]:
    addrs = [v.address for v in validators.validators]
    weights = [v.power for v in validators.validators]
    total = sum(weights)
    if total > PROPOSER_SLOTS_MAX:
        weights = [max(1, w * PROPOSER_SLOTS_MAX // total) for w in weights]
        total = sum(weights)
    priority = [0] * len(weights)
    schedule: list[bytes] = []
    for _ in range(total):
        best = 0
        for i, w in enumerate(weights):
            priority[i] += w
            if priority[i] > priority[best]:
                best = i
        priority[best] -= total
        schedule.append(addrs[best])
    return tuple(schedule)
