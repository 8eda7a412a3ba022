"""The narrow interfaces rental needs from other modules, and the seams it offers.

rental never touches another module's keys: it moves tokens through :class:`BankEscrow`,
asks :class:`AssetsPort` whether an asset may be rented and who earns from it, asks
:class:`PlatformView` for an operator's fee rate, and is told about device reports by the iot
module (``IotKeeper.add_listener(RentalKeeper.on_device_report)``).

Two seams are filled by later modules and have harmless defaults here:

* :class:`CreditGate` — may refuse a reservation (``credit_too_low``) or scale the deposit.
  :class:`AllowAll` lets everyone reserve at 10000 bps (the deposit as offered).
* :class:`PenaltySink` — where a penalty taken from a rental's escrow goes (late fee,
  cancellation/expiry fee, default compensation). :class:`PayHarmedParty` pays the harmed
  party; the incentive module replaces it to divert a governed share to the reward pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.modules.rental.types import BPS_DENOM, Offer, Rental


class BankEscrow(Protocol):
    def lock(self, ctx: Context, owner: bytes, amount: int, escrow_id: bytes) -> None: ...
    def release(self, ctx: Context, escrow_id: bytes, to: bytes, amount: int) -> None: ...
    def escrowed(self, ctx: Context, escrow_id: bytes) -> int: ...


class ShareView(Protocol):
    @property
    def holder(self) -> bytes: ...
    @property
    def bps(self) -> int: ...


class AssetView(Protocol):
    @property
    def owner(self) -> bytes: ...
    @property
    def operator(self) -> bytes: ...
    @property
    def income_shares(self) -> Sequence[ShareView]: ...
    @property
    def frozen(self) -> bool: ...


class AssetsPort(Protocol):
    def get(self, state: Readable, asset_id: bytes) -> AssetView | None: ...
    def require_rentable(self, ctx: Context, asset_id: bytes) -> AssetView: ...
    def grant_use_right(self, ctx: Context, asset_id: bytes, holder: bytes, until_ms: int,
                        lock_id: bytes) -> None: ...
    def release_use_right(self, ctx: Context, asset_id: bytes, lock_id: bytes) -> None: ...
    def record_consumer_confirmation(self, ctx: Context, asset_id: bytes,
                                     consumer: bytes) -> None: ...


class PlatformRecord(Protocol):
    @property
    def fee_bps(self) -> int: ...


class PlatformView(Protocol):
    def platform(self, state: Readable, addr: bytes) -> PlatformRecord | None: ...


class DeviceView(Protocol):
    @property
    def asset_id(self) -> bytes: ...


class ReportView(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def rental_id(self) -> bytes:
        """The rental an unlock/lock report names (b"" for none)."""
        ...
    @property
    def time_ms(self) -> int:
        """The device's clock when it made the report."""
        ...


class CreditGate(Protocol):
    def check_reserve(self, ctx: Context, consumer: bytes, offer: Offer) -> int:
        """Raise ``credit_too_low`` to refuse; else return the deposit multiplier in bps."""
        ...


class AllowAll:
    """The default gate until the credit module lands: everyone, deposit as offered."""

    def check_reserve(self, ctx: Context, consumer: bytes, offer: Offer) -> int:
        return BPS_DENOM


class PenaltySink(Protocol):
    def pay_penalty(self, ctx: Context, kind: str, escrow_id: bytes, amount: int,
                    harmed: bytes) -> None:
        """Pay ``amount`` out of escrow ``escrow_id`` for penalty ``kind`` (late, cancel,
        expire, default) whose harmed party is ``harmed``."""
        ...


class PayHarmedParty:
    """The default sink: the whole penalty goes to the harmed party."""

    def __init__(self, bank: BankEscrow) -> None:
        self.bank = bank

    def pay_penalty(self, ctx: Context, kind: str, escrow_id: bytes, amount: int,
                    harmed: bytes) -> None:
        self.bank.release(ctx, escrow_id, harmed, amount)


# ---------------------------------------------------------------- notices to subscribers

@dataclass(frozen=True, slots=True)
class RentalNotice:
    """What subscribers (incentive now, credit later) are told after each step.

    kinds: reserved, started, returned, completed, late, defaulted, expired, cancelled,
    claim_filed, claim_disputed, damage_confirmed, claim_resolved, claim_timed_out.
    ``on_time`` is meaningful for completed; ``amount`` is the usage fee for completed, the
    late fee for late, the penalty for defaulted/expired/cancelled and the claim amount paid
    or filed for claim notices.
    """

    kind: str
    rental: Rental
    on_time: bool = False
    amount: int = 0


RentalListener = Callable[[Context, RentalNotice], None]


# ---------------------------------------------------------------- platform-fee split seam

# ``fn(ctx, rental, amount) -> [(address, part), ...]``: who receives the operator's part of
# a rental's platform fee (after the reward-pool cut). The parts must be non-negative and sum
# to ``amount`` (checked: a splitter that creates or loses tokens is a bug). The market
# module installs one that shares the fee of a cross-platform booking between the listing
# and the booking platform.
FeeSplitter = Callable[[Context, Rental, int], list[tuple[bytes, int]]]


def operator_takes_all(ctx: Context, rental: Rental, amount: int) -> list[tuple[bytes, int]]:
    """The default split: the whole fee to the rental's operator platform."""
    return [(rental.operator, amount)]
