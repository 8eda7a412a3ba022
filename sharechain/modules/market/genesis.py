"""market genesis: parameters only (listings and requests are made by messages).

::

    "market": {"params": {"booking_platform_bps": 3000, "requests_per_consumer_max": 16,
                          "sweep_items_max": 1000}}

Every params field is optional; a missing one keeps its default (see ``types.Params``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharechain.app.framework import Context
from sharechain.errors import ShareChainError
from sharechain.modules.market.keeper import MarketKeeper

# The devnet demo: a booking platform earns 30 % of the fee on bookings it brings.
DEMO_PARAMS: dict[str, int] = {"booking_platform_bps": 3_000}


def _bad(msg: str) -> ShareChainError:
    return ShareChainError("invalid_genesis", f"market: {msg}")


def make_init(k: MarketKeeper) -> Callable[[Context, dict[str, Any]], None]:
    def init(ctx: Context, data: dict[str, Any]) -> None:
        unknown = set(data) - {"params"}
        if unknown:
            raise _bad(f"unknown field(s) {sorted(unknown)}")
        params = k.param_store.from_genesis(data.get("params", {}))
        k.set_params(ctx, params)
    return init


def demo_section() -> dict[str, Any]:
    return {"params": dict(DEMO_PARAMS)}
