"""incentive: the reward pool, reward rules with per-epoch caps, and penalty routing.

See README.md in this folder for the spec. Wiring (``app/builder.py``): the keeper listens to
rental notices (``RentalKeeper.add_listener(k.on_rental)``) and device reports
(``IotKeeper.add_listener(k.on_device_report)``), and routes rental penalties
(``RentalKeeper.set_penalty_sink(k)``).
"""

from __future__ import annotations

from sharechain.app.framework import Module, MsgSpec
from sharechain.modules.incentive.genesis import make_init
from sharechain.modules.incentive.handlers import make_handlers
from sharechain.modules.incentive.invariants import make_invariants
from sharechain.modules.incentive.keeper import IncentiveKeeper
from sharechain.modules.incentive.keys import REWARD_POOL
from sharechain.modules.incentive.queries import make_queries
from sharechain.modules.incentive.types import FundPool

MESSAGES: dict[str, tuple[type, str, int]] = {
    "incentive/fund_pool": (FundPool, "fund_pool", 10),
}


def module(k: IncentiveKeeper) -> Module:
    h = make_handlers(k)
    return Module(
        name="incentive",
        msgs=[MsgSpec(t, cls, h[name], cost) for t, (cls, name, cost) in MESSAGES.items()],
        queries=make_queries(k),
        init_genesis=make_init(k),
        invariants=make_invariants(k),
    )


__all__ = ["MESSAGES", "REWARD_POOL", "IncentiveKeeper", "module"]
