"""incentive genesis: reward rules and the initial reward pool.

::

    "incentive": {"params": {"epoch_ms": 86400000, "account_epoch_cap": 500,
                             "provider_reward": 50, "consumer_reward": 20,
                             "gateway_fault_reward": 10, "reward_min_fee": 100,
                             "reward_fee_share_bps": 4000, "penalty_pool_bps": 0},
                  "pool": 1000000}

``pool`` tokens are created at genesis in the reward pool account (they count in the supply
like any genesis balance). Every params field is optional.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharechain.app.framework import Context
from sharechain.errors import ShareChainError
from sharechain.modules.incentive.keeper import IncentiveKeeper
from sharechain.modules.incentive.types import AMOUNT_MAX

# Demo rewards: small enough that the demo's balances stay easy to follow; epochs of a minute
# so the per-epoch cap is visible in a short session.
DEMO_PARAMS: dict[str, int] = {
    "epoch_ms": 60_000, "account_epoch_cap": 100, "provider_reward": 20,
    "consumer_reward": 10, "gateway_fault_reward": 5, "reward_min_fee": 50,
    "penalty_pool_bps": 0,
}
DEMO_POOL = 1_000_000


def _bad(msg: str) -> ShareChainError:
    return ShareChainError("invalid_genesis", f"incentive: {msg}")


def make_init(k: IncentiveKeeper) -> Callable[[Context, dict[str, Any]], None]:
    def init(ctx: Context, data: dict[str, Any]) -> None:
        unknown = set(data) - {"params", "pool"}
        if unknown:
            raise _bad(f"unknown field(s) {sorted(unknown)}")
        params = k.param_store.from_genesis(data.get("params", {}))
        k.set_params(ctx, params)
        pool = data.get("pool", 0)
        if type(pool) is not int or not 0 <= pool <= AMOUNT_MAX:
            raise _bad(f"pool must be an integer 0 to {AMOUNT_MAX}")
        if pool:
            k.fund_pool_genesis(ctx, pool)
    return init


def demo_section() -> dict[str, Any]:
    return {"params": dict(DEMO_PARAMS), "pool": DEMO_POOL}
