"""rental: offers, reservations with escrowed deposits, device- or party-driven start and end,
automatic settlement, damage claims and expiry sweeps — the sharing economy's smart contract.

See README.md in this folder for the spec. Other modules use :class:`RentalKeeper`
(``add_listener`` for lifecycle notices, ``resolve_claim`` for arbitration,
``set_credit_gate`` for the credit module).
"""

from __future__ import annotations

from sharechain.app.framework import Module, MsgSpec
from sharechain.app.state import Readable
from sharechain.encoding import decode
from sharechain.modules.rental.genesis import make_init
from sharechain.modules.rental.handlers import make_handlers
from sharechain.modules.rental.hooks import make_end_block
from sharechain.modules.rental.invariants import EscrowOf, make_invariants
from sharechain.modules.rental.keeper import RentalKeeper
from sharechain.modules.rental.queries import make_queries
from sharechain.modules.rental.types import (
    ClaimRef,
    FileClaim,
    OfferTerms,
    RentalRef,
    Reserve,
    WithdrawOffer,
)

# message type -> (record class, handler name, cost units)
MESSAGES: dict[str, tuple[type, str, int]] = {
    "rental/offer": (OfferTerms, "offer", 20),
    "rental/withdraw_offer": (WithdrawOffer, "withdraw_offer", 10),
    "rental/reserve": (Reserve, "reserve", 30),
    "rental/start": (RentalRef, "start", 20),
    "rental/confirm_asset": (RentalRef, "confirm_asset", 15),
    "rental/return": (RentalRef, "return", 15),
    "rental/confirm_return": (RentalRef, "confirm_return", 30),
    "rental/cancel": (RentalRef, "cancel", 20),
    "rental/claim": (FileClaim, "claim", 20),
    "rental/accept_claim": (ClaimRef, "accept_claim", 20),
    "rental/dispute_claim": (ClaimRef, "dispute_claim", 10),
}


def bank_escrow_of(state: Readable, escrow_id: bytes) -> int:
    """Read a bank escrow for the invariant checks (read-only; via the bank's key helper)."""
    from sharechain.modules.bank.keys import escrow_key

    raw = state.get(escrow_key(escrow_id))
    return 0 if raw is None else int(decode(raw))


def module(k: RentalKeeper, escrow_of: EscrowOf = bank_escrow_of) -> Module:
    h = make_handlers(k)
    return Module(
        name="rental",
        msgs=[MsgSpec(t, cls, h[name], cost) for t, (cls, name, cost) in MESSAGES.items()],
        queries=make_queries(k),
        init_genesis=make_init(k),
        end_block=make_end_block(k),
        invariants=make_invariants(escrow_of),
    )


__all__ = ["MESSAGES", "RentalKeeper", "module"]
