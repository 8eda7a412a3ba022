"""rental message handlers: one function per message type, ``(ctx, msg) -> None``.

Handlers only unpack the message and call the keeper, where the rules live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharechain.app.framework import Context
from sharechain.modules.rental.keeper import RentalKeeper
from sharechain.modules.rental.types import (
    ClaimRef,
    FileClaim,
    OfferTerms,
    RentalRef,
    Reserve,
    WithdrawOffer,
)


def make_handlers(k: RentalKeeper) -> dict[str, Callable[[Context, Any], None]]:
    def offer(ctx: Context, msg: OfferTerms) -> None:
        k.offer_terms(ctx, msg)

    def withdraw_offer(ctx: Context, msg: WithdrawOffer) -> None:
        k.withdraw_offer(ctx, msg)

    def reserve(ctx: Context, msg: Reserve) -> None:
        k.reserve(ctx, msg)

    def start(ctx: Context, msg: RentalRef) -> None:
        k.sign_start(ctx, msg)

    def confirm_asset(ctx: Context, msg: RentalRef) -> None:
        k.confirm_asset(ctx, msg)

    def return_(ctx: Context, msg: RentalRef) -> None:
        k.return_(ctx, msg)

    def confirm_return(ctx: Context, msg: RentalRef) -> None:
        k.confirm_return(ctx, msg)

    def cancel(ctx: Context, msg: RentalRef) -> None:
        k.cancel(ctx, msg)

    def claim(ctx: Context, msg: FileClaim) -> None:
        k.file_claim(ctx, msg)

    def accept_claim(ctx: Context, msg: ClaimRef) -> None:
        k.accept_claim(ctx, msg)

    def dispute_claim(ctx: Context, msg: ClaimRef) -> None:
        k.dispute_claim(ctx, msg)

    return {"offer": offer, "withdraw_offer": withdraw_offer, "reserve": reserve,
            "start": start, "confirm_asset": confirm_asset, "return": return_,
            "confirm_return": confirm_return, "cancel": cancel, "claim": claim,
            "accept_claim": accept_claim, "dispute_claim": dispute_claim}
