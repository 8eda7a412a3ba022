"""Settlement arithmetic: pure integer functions, no state.

Rounding rules (all amounts are integer token units):

* usage is charged in whole time units, rounded **up**, and at least one unit:
  ``units = max(1, ceil(usage_ms / unit_ms))``;
* late units are the started units past ``reserved end + grace``, rounded **up**;
* a basis-point share is rounded **down**: ``amount × bps // 10000`` (platform fee, the
  reward-pool cut of the platform fee, each income share, the credit deposit multiplier is
  the exception: the deposit is rounded **up** so it never falls below the multiplier);
* income shares: each holder gets ``floor(income × bps / 10000)``; if the listed shares sum
  to less than 10000 bps the owner holds the rest implicitly (appended last); the remainder
  left by rounding goes to the **first listed holder**;
* the escrow pays, in this order and never more than it holds: the usage fee, the late fee,
  then a damage hold of up to ``damage_cap``, then the refund to the consumer. What the
  escrow cannot cover is reported as ``shortfall`` and is not collected.

Every function here conserves tokens: the parts it returns add up to the amount it was given.
"""

from __future__ import annotations

from dataclasses import dataclass

BPS_DENOM = 10_000


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def usage_units(usage_ms: int, unit_ms: int) -> int:
    return max(1, ceil_div(max(0, usage_ms), unit_ms))


def late_units(end_ms: int, reserved_end_ms: int, grace_ms: int, unit_ms: int) -> int:
    over = end_ms - reserved_end_ms - grace_ms
    return ceil_div(over, unit_ms) if over > 0 else 0


def bps_of(amount: int, bps: int) -> int:
    return amount * bps // BPS_DENOM


def deposit_with_multiplier(deposit: int, multiplier_bps: int) -> int:
    return ceil_div(deposit * multiplier_bps, BPS_DENOM)


def split_shares(amount: int, shares: list[tuple[bytes, int]], owner: bytes
                 ) -> list[tuple[bytes, int]]:
    """Split ``amount`` by basis-point shares (see the module rounding rules).

    Returns (holder, amount) pairs, zero amounts dropped, a holder listed twice merged at its
    first position.
    """
    listed = [(h, b) for h, b in shares if b > 0]
    total_bps = sum(b for _, b in listed)
    if total_bps > BPS_DENOM:
        raise ValueError("income shares exceed 10000 bps")
    if total_bps < BPS_DENOM:
        listed.append((owner, BPS_DENOM - total_bps))
    parts = [(h, amount * b // BPS_DENOM) for h, b in listed]
    remainder = amount - sum(p for _, p in parts)
    parts[0] = (parts[0][0], parts[0][1] + remainder)
    merged: dict[bytes, int] = {}
    for h, p in parts:
        merged[h] = merged.get(h, 0) + p
    return [(h, p) for h, p in merged.items() if p > 0]


@dataclass(frozen=True, slots=True)
class Settlement:
    usage_fee: int         # charged, ≤ escrow
    late_fee: int          # charged, ≤ escrow - usage_fee
    platform_fee: int      # part of usage_fee for the operator platform (pool cut included)
    pool_fee: int          # part of platform_fee for the reward pool
    income: int            # usage_fee - platform_fee, split by income shares
    hold: int              # kept in escrow for damage claims
    refund: int            # back to the consumer now
    shortfall: int         # owed but not covered by the escrow


def settle(escrow: int, usage_fee: int, late_fee: int, platform_fee_bps: int, pool_bps: int,
           damage_cap: int) -> Settlement:
    usage = min(usage_fee, escrow)
    late = min(late_fee, escrow - usage)
    platform = bps_of(usage, platform_fee_bps)
    pool = bps_of(platform, pool_bps)
    rest = escrow - usage - late
    hold = min(damage_cap, rest)
    return Settlement(usage_fee=usage, late_fee=late, platform_fee=platform, pool_fee=pool,
                      income=usage - platform, hold=hold, refund=rest - hold,
                      shortfall=usage_fee + late_fee - usage - late)
