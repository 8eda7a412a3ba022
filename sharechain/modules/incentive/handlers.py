"""incentive message handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharechain.app.framework import Context
from sharechain.modules.incentive.keeper import IncentiveKeeper
from sharechain.modules.incentive.types import FundPool


def make_handlers(k: IncentiveKeeper) -> dict[str, Callable[[Context, Any], None]]:
    def fund_pool(ctx: Context, msg: FundPool) -> None:
        k.fund_pool(ctx, msg.amount)

    return {"fund_pool": fund_pool}
