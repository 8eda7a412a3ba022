"""market block hooks: the end-block expiry sweep (listings past their availability,
requests whose window started). See ``MarketKeeper.sweep``."""

from __future__ import annotations

from sharechain.app.framework import Context, Hook
from sharechain.modules.market.keeper import MarketKeeper


def make_end_block(k: MarketKeeper) -> Hook:
    def end_block(ctx: Context) -> None:
        k.sweep(ctx)
    return end_block
