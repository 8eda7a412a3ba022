"""rental block hooks: the end-block deadline sweep (expiry, default, return confirmation
timeout, claim-window close, claim timeout). See ``RentalKeeper.sweep``."""

from __future__ import annotations

from sharechain.app.framework import Context, Hook
from sharechain.modules.rental.keeper import RentalKeeper


def make_end_block(k: RentalKeeper) -> Hook:
    def end_block(ctx: Context) -> None:
        k.sweep(ctx)
    return end_block
