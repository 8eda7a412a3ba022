"""rental records, messages, parameters and error codes.

Amounts are integer token units and durations integer milliseconds. Terms are checked when a
message is decoded (before it reaches a block): a bad field fails with ``invalid_terms`` and
nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sharechain.errors import DecodeError

BPS_DENOM: Final = 10_000
AMOUNT_MAX: Final = 10**18                  # largest amount a term may name
DURATION_MS_MAX: Final = 366 * 86_400_000   # longest duration a term may name (a leap year)
TIME_MS_MAX: Final = 2**63 - 1
RENTAL_ID_BYTES: Final = 8                  # big-endian sequence number
CLAIM_ID_BYTES: Final = RENTAL_ID_BYTES + 1  # rental id + claim index
ASSET_ID_BYTES_MAX: Final = 64
CLAIMS_PER_RENTAL_MAX: Final = 8
CREDIT_TIER_MAX: Final = 100
TEXT_BYTES_MAX: Final = 256
# A due action the sweep could not run is retried after a delay in block time: the first
# retry 1 min after the failure, each further one twice as long, never more than 1 h apart.
SWEEP_RETRY_BASE_MS: Final = 60_000
SWEEP_RETRY_MAX_MS: Final = 3_600_000

# ---------------------------------------------------------------- error codes
INVALID_TERMS: Final = "invalid_terms"
OFFER_NOT_FOUND: Final = "offer_not_found"
OFFER_STALE: Final = "offer_stale"              # asset changed owner since the offer
OFFER_CHANGED: Final = "offer_changed"          # reserve named another offer version
NOT_ASSET_PROVIDER: Final = "not_asset_provider"  # sender is neither owner nor operator
RENTAL_NOT_FOUND: Final = "rental_not_found"
CLAIM_NOT_FOUND: Final = "claim_not_found"
NOT_RENTAL_PARTY: Final = "not_rental_party"
INVALID_WINDOW: Final = "invalid_window"
DURATION_OUT_OF_RANGE: Final = "duration_out_of_range"
ASSET_BOOKED: Final = "asset_booked"
ASSET_IN_USE: Final = "asset_in_use"
TOO_EARLY: Final = "too_early"
ALREADY_SIGNED: Final = "already_signed"
ALREADY_CONFIRMED: Final = "already_confirmed"
DEVICE_ASSET_MISMATCH: Final = "device_asset_mismatch"
CLAIM_WINDOW_CLOSED: Final = "claim_window_closed"
CLAIM_ABOVE_CAP: Final = "claim_above_cap"
TOO_MANY_CLAIMS: Final = "too_many_claims"
INVALID_RESOLUTION: Final = "invalid_resolution"
CREDIT_TOO_LOW: Final = "credit_too_low"        # raised by a CreditGate


def _bad_terms(message: str) -> DecodeError:
    return DecodeError(message, INVALID_TERMS)


def _in(value: int, lo: int, hi: int, what: str) -> None:
    if not lo <= value <= hi:
        raise _bad_terms(f"{what} must be {lo} to {hi}, got {value}")


def _check_id(value: bytes, length: int, what: str) -> None:
    if len(value) != length:
        raise ValueError(f"{what} must be {length} bytes")


def _check_asset_id(value: bytes) -> None:
    if not 0 < len(value) <= ASSET_ID_BYTES_MAX:
        raise ValueError(f"asset_id must be 1 to {ASSET_ID_BYTES_MAX} bytes")


def _check_text(value: str, what: str) -> None:
    if len(value.encode()) > TEXT_BYTES_MAX or not value.isprintable():
        raise ValueError(f"{what} must be printable text of at most {TEXT_BYTES_MAX} bytes")


# ---------------------------------------------------------------- terms

@dataclass(frozen=True, slots=True)
class Terms:
    """What a provider offers: price, deposit, durations, penalties, claim rules."""

    price_per_unit: int        # tokens per started time unit of use
    unit_ms: int               # the time unit; usage is charged in whole units, rounded up
    deposit: int               # held in escrow from reservation to settlement
    min_duration_ms: int       # the reserved window must be at least this long...
    max_duration_ms: int       # ...and at most this; past start + max + grace → default
    cancel_window_ms: int      # cancelling less than this before start costs cancel_fee
    cancel_fee: int            # also paid to the provider when a reservation expires
    late_fee_per_unit: int     # per started unit past the reserved end + grace
    grace_ms: int              # tolerance after the reserved end before late fees
    damage_cap: int            # most of the deposit a damage claim may hold (<= deposit)
    claim_window_ms: int       # claims may be filed this long after settlement
    min_credit_tier: int = 0   # enforced by the credit module's CreditGate

    def __post_init__(self) -> None:
        _in(self.price_per_unit, 1, AMOUNT_MAX, "price_per_unit")
        _in(self.unit_ms, 1, DURATION_MS_MAX, "unit_ms")
        _in(self.deposit, 0, AMOUNT_MAX, "deposit")
        _in(self.max_duration_ms, 1, DURATION_MS_MAX, "max_duration_ms")
        _in(self.min_duration_ms, 1, self.max_duration_ms, "min_duration_ms")
        _in(self.cancel_window_ms, 0, DURATION_MS_MAX, "cancel_window_ms")
        _in(self.cancel_fee, 0, AMOUNT_MAX, "cancel_fee")
        _in(self.late_fee_per_unit, 0, AMOUNT_MAX, "late_fee_per_unit")
        _in(self.grace_ms, 0, DURATION_MS_MAX, "grace_ms")
        _in(self.damage_cap, 0, self.deposit, "damage_cap")
        _in(self.claim_window_ms, 0, DURATION_MS_MAX, "claim_window_ms")
        _in(self.min_credit_tier, 0, CREDIT_TIER_MAX, "min_credit_tier")


# ---------------------------------------------------------------- records

@dataclass(frozen=True, slots=True)
class Offer:
    asset_id: bytes
    owner: bytes           # the asset's owner when the offer was made
    offered_by: bytes      # owner or operator platform
    terms: Terms
    version: int           # 1, 2, ... each time the terms on this asset are replaced
    offered_ms: int


@dataclass(frozen=True, slots=True)
class Rental:
    id: bytes
    asset_id: bytes
    consumer: bytes
    owner: bytes               # the provider: receives income shares' remainder and penalties
    operator: bytes            # operator platform (b"" for none): receives the platform fee
    platform_fee_bps: int      # the platform's fee rate when reserved
    terms: Terms               # snapshot of the offer at reservation
    start_ms: int              # reserved window [start_ms, end_ms)
    end_ms: int
    deposit: int               # terms.deposit × the credit multiplier, rounded up
    prepaid: int               # expected fee for the reserved window
    state: str
    reserved_ms: int
    consumer_signed: bool = False
    provider_signed: bool = False
    device_suspect: bool = False   # a suspect device report: start/end need both parties
    started_ms: int = 0            # usage start (device time or block time)
    started_by_device: bool = False
    last_meter_ms: int = 0         # device time of the last meter report while active
    returned_ms: int = 0           # block time of the consumer's return
    ended_ms: int = 0              # usage end (device time or block time)
    settled_ms: int = 0            # block time of settlement; the claim window starts here
    asset_confirmed: bool = False  # consumer confirmed the asset is as described
    usage_fee: int = 0
    late_fee: int = 0
    platform_fee: int = 0
    hold: int = 0                  # deposit kept in escrow for claims, not yet claimed
    held: int = 0                  # deposit held by pending claims
    claims: int = 0                # claims filed so far
    due_ms: int = 0                # the pending deadline of the current state (0: none)

    @property
    def escrow_total(self) -> int:
        return self.deposit + self.prepaid


@dataclass(frozen=True, slots=True)
class Claim:
    id: bytes
    rental_id: bytes
    claimant: bytes
    amount: int
    reason: str
    evidence: str          # CID of the evidence document, "" for none
    state: str
    filed_ms: int
    timeout_ms: int        # unresolved at this block time → refunded to the consumer
    paid_provider: int = 0


@dataclass(frozen=True, slots=True)
class Params:
    start_window_ms: int = 15 * 60_000       # a reservation expires at start + this
    early_start_ms: int = 5 * 60_000         # a rental may start this long before start_ms
    reserve_slack_ms: int = 60_000           # start_ms may lie this far in the past
    reserve_ahead_ms_max: int = 90 * 86_400_000
    return_confirm_ms: int = 86_400_000      # unconfirmed return → settled at return time
    claim_timeout_ms: int = 7 * 86_400_000   # unresolved claim → refunded to the consumer
    reward_pool_bps: int = 1_000             # share of the platform fee sent to the pool
    sweep_items_max: int = 2_000             # deadline items handled per block at most

    def __post_init__(self) -> None:
        for name in ("start_window_ms", "early_start_ms", "reserve_slack_ms",
                     "reserve_ahead_ms_max", "return_confirm_ms", "claim_timeout_ms"):
            if not 0 <= getattr(self, name) <= DURATION_MS_MAX:
                raise ValueError(f"{name} must be 0 to {DURATION_MS_MAX}")
        if not 0 <= self.reward_pool_bps <= BPS_DENOM:
            raise ValueError(f"reward_pool_bps must be 0 to {BPS_DENOM}")
        if not 1 <= self.sweep_items_max <= 100_000:
            raise ValueError("sweep_items_max must be 1 to 100000")


# ---------------------------------------------------------------- messages

@dataclass(frozen=True, slots=True)
class OfferTerms:
    """Offer (or replace) the rental terms of an asset; by its owner or operator."""

    asset_id: bytes
    terms: Terms

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)


@dataclass(frozen=True, slots=True)
class WithdrawOffer:
    asset_id: bytes

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)


@dataclass(frozen=True, slots=True)
class Reserve:
    """Book [start_ms, end_ms) of an asset; ``offer_version`` 0 accepts the current terms."""

    asset_id: bytes
    start_ms: int
    end_ms: int
    offer_version: int = 0

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        if not 0 <= self.start_ms < self.end_ms <= TIME_MS_MAX:
            raise DecodeError("the window needs 0 <= start_ms < end_ms", INVALID_WINDOW)
        if self.offer_version < 0:
            raise ValueError("offer_version must not be negative")


@dataclass(frozen=True, slots=True)
class RentalRef:
    """Messages that only name a rental: start, confirm_asset, return, confirm_return,
    cancel."""

    rental_id: bytes

    def __post_init__(self) -> None:
        _check_id(self.rental_id, RENTAL_ID_BYTES, "rental_id")


@dataclass(frozen=True, slots=True)
class FileClaim:
    rental_id: bytes
    amount: int
    reason: str
    evidence: str = ""

    def __post_init__(self) -> None:
        _check_id(self.rental_id, RENTAL_ID_BYTES, "rental_id")
        if not 0 < self.amount <= AMOUNT_MAX:
            raise ValueError(f"amount must be 1 to {AMOUNT_MAX}")
        if not self.reason:
            raise ValueError("reason must not be empty")
        _check_text(self.reason, "reason")
        _check_text(self.evidence, "evidence")


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """accept_claim and dispute_claim."""

    claim_id: bytes
    note: str = ""

    def __post_init__(self) -> None:
        _check_id(self.claim_id, CLAIM_ID_BYTES, "claim_id")
        _check_text(self.note, "note")
