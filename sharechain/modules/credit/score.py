"""The score formula: pure integer functions, no state (property-tested).

A subject's **on-chain score** is::

    raw_milli = base_score × 1000 + decay(carry_milli, carry_ms → now)
                + Σ decay(weight_e × 1000, time_e → now)          over the kept events e
    onchain   = clamp(floor(raw_milli / 1000), 0, 1000)

**Decay** halves a weight every half-life, in 16 equal steps per half-life. Steps are counted
on one grid of block time shared by every event (``step(t) = t × 16 // half_life``), so
decaying ``a`` steps and then ``b`` steps is decaying ``a + b`` steps (old events can be
folded into one carried sum without changing the score beyond rounding)::

    k = step(now) − step(time);  n, i = divmod(k, 16)
    decay = sign(v) × (|v| × STEP_RATIO[i]) >> (16 + n)      STEP_RATIO[i] = round(2^16 × 2^(−i/16))

With valid bureau reports (consent active, inside their validity) the **combined score** is::

    bureau   = floor(Σ band_score(report) / count)
    combined = floor((onchain × (10000 − bureau_weight_bps) + bureau × bureau_weight_bps)
                     / 10000)

and with none it is the on-chain score. The **tier** is ``blocked`` while a blacklist entry
is active or the combined score is below ``blocked_below``, else the best tier whose
``min_score`` the combined score reaches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sharechain.modules.credit.types import BLOCKED, SCORE_MAX, TierRule

SCALE = 1000  # milli-points: weights are decayed at this resolution, the sum floored at the end
BPS_DENOM = 10_000
STEPS_PER_HALF_LIFE = 16
# round(2**16 * 2**(-i/16)) for i in 0..15, written out: no floats at run time.
STEP_RATIO = (65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393, 46341, 44376, 42495,
              40693, 38968, 37316, 35734, 34219)


def step_of(time_ms: int, half_life_ms: int) -> int:
    """The decay step a block time falls in (negative times count as 0)."""
    return max(0, time_ms) * STEPS_PER_HALF_LIFE // half_life_ms


def decay_steps(value: int, steps: int) -> int:
    """``value`` × 2^(−steps/16), rounded toward zero; no decay for steps ≤ 0."""
    if value == 0 or steps <= 0:
        return value
    mag = -value if value < 0 else value
    n, i = divmod(steps, STEPS_PER_HALF_LIFE)
    if n > mag.bit_length():
        return 0
    out = (mag * STEP_RATIO[i]) >> (16 + n)
    return -out if value < 0 else out


def decay(value: int, from_ms: int, to_ms: int, half_life_ms: int) -> int:
    """``value`` as it was at block time ``from_ms``, decayed to ``to_ms``."""
    return decay_steps(value, step_of(to_ms, half_life_ms) - step_of(from_ms, half_life_ms))


def clamp_score(value: int) -> int:
    return max(0, min(value, SCORE_MAX))


def effective_milli(weights_times: Iterable[tuple[int, int]], now_ms: int,
                    half_life_ms: int) -> list[int]:
    """Each (weight points, time) pair's decayed contribution in milli-points."""
    return [decay(w * SCALE, t, now_ms, half_life_ms) for w, t in weights_times]


def onchain_score(base_score: int, carry_milli: int, carry_ms: int,
                  weights_times: Sequence[tuple[int, int]], now_ms: int,
                  half_life_ms: int) -> int:
    raw = base_score * SCALE + decay(carry_milli, carry_ms, now_ms, half_life_ms)
    raw += sum(effective_milli(weights_times, now_ms, half_life_ms))
    return clamp_score(raw // SCALE)


def fold(carry_milli: int, carry_ms: int, weight: int, time_ms: int,
         half_life_ms: int) -> tuple[int, int]:
    """Fold an event (the oldest kept) into the carried sum: (carry_milli, carry_ms)."""
    return decay(carry_milli, carry_ms, time_ms, half_life_ms) + weight * SCALE, time_ms


def combine(onchain: int, bureau_scores: Sequence[int], bureau_weight_bps: int) -> int:
    if not bureau_scores or bureau_weight_bps == 0:
        return onchain
    bureau = sum(bureau_scores) // len(bureau_scores)
    return (onchain * (BPS_DENOM - bureau_weight_bps) + bureau * bureau_weight_bps) // BPS_DENOM


def tier_of(score: int, blacklisted: bool, tiers: Sequence[TierRule], blocked_below: int) -> str:
    if blacklisted or score < blocked_below:
        return BLOCKED
    for rule in sorted(tiers, key=lambda t: -t.min_score):
        if score >= rule.min_score:
            return rule.name
    return BLOCKED
