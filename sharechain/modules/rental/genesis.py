"""rental genesis: the module parameters.

::

    "rental": {"params": {"start_window_ms": 900000, "early_start_ms": 300000,
                          "reserve_slack_ms": 60000, "reserve_ahead_ms_max": 7776000000,
                          "return_confirm_ms": 86400000, "claim_timeout_ms": 604800000,
                          "reward_pool_bps": 1000, "sweep_items_max": 2000}}

Every field is optional; a missing one keeps its default (see ``types.Params``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharechain.app.framework import Context
from sharechain.encoding import from_obj, to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.rental.keeper import RentalKeeper
from sharechain.modules.rental.types import Params

# Short windows for the devnet demo: a story with 1-second rental units runs in seconds.
DEMO_PARAMS: dict[str, int] = {
    "start_window_ms": 4_000, "early_start_ms": 60_000, "reserve_slack_ms": 60_000,
    "return_confirm_ms": 60_000, "claim_timeout_ms": 20_000, "reward_pool_bps": 2_000,
}


def make_init(k: RentalKeeper) -> Callable[[Context, dict[str, Any]], None]:
    def init(ctx: Context, data: dict[str, Any]) -> None:
        unknown = set(data) - {"params"}
        if unknown:
            raise ShareChainError("invalid_genesis", f"rental: unknown field(s) {sorted(unknown)}")
        raw = data.get("params", {})
        if not isinstance(raw, dict):
            raise ShareChainError("invalid_genesis", "rental: params must be an object")
        merged = dict(to_obj(Params()))
        merged.update(raw)
        try:
            params = from_obj(Params, merged, "rental.params")
        except ShareChainError as exc:
            raise ShareChainError("invalid_genesis", f"rental: {exc.message}") from None
        k.set_params(ctx, params)
    return init


def demo_section() -> dict[str, Any]:
    return {"params": dict(DEMO_PARAMS)}
