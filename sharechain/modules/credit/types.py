"""credit records, messages, parameters and error codes.

Scores are integers 0..1000, weights integer points, times integer milliseconds of block
time, shares integer basis points. Nothing here is a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sharechain.errors import DecodeError
from sharechain.modules.identity.common import (
    BPS_DENOM,
    TIME_MS_MAX,
    check_address,
    check_cid_v1,
    check_text,
)

SCORE_MAX: Final = 1000
WEIGHT_ABS_MAX: Final = 1000             # one event moves a score by at most this many points
EVENTS_KEPT_MAX: Final = 64              # per subject; older events fold into a carried sum
EVIDENCE_ITEMS_MAX: Final = 8            # tx hashes attached to a blacklist entry or a record
HASH_BYTES: Final = 32
REF_BYTES_MAX: Final = 64
DURATION_MS_MAX: Final = 10 * 366 * 86_400_000   # ten years

# ---------------------------------------------------------------- event kinds
COMPLETED_ON_TIME: Final = "completed_on_time"
LATE: Final = "late"
DEFAULT: Final = "default"
DAMAGE_CONFIRMED: Final = "damage_confirmed"
DISPUTE_WON: Final = "dispute_won"
DISPUTE_LOST: Final = "dispute_lost"
FRAUD_UPHELD: Final = "fraud_upheld"
EVENT_KINDS: Final = (COMPLETED_ON_TIME, LATE, DEFAULT, DAMAGE_CONFIRMED, DISPUTE_WON,
                      DISPUTE_LOST, FRAUD_UPHELD)

# The side of a rental (or dispute) the event is about.
AS_CONSUMER: Final = "consumer"
AS_PROVIDER: Final = "provider"
AS_PARTY: Final = "party"          # a party to a dispute
AS_SUBJECT: Final = "subject"      # a regulator's decision about the subject
EVENT_ROLES: Final = (AS_CONSUMER, AS_PROVIDER, AS_PARTY, AS_SUBJECT)

# ---------------------------------------------------------------- tiers and bands
BLOCKED: Final = "blocked"
TIER_NAMES: Final = ("A", "B", "C", "D")
# Rank compared with an offer's ``min_credit_tier``: 0 blocked, 1 D, 2 C, 3 B, 4 A.
TIER_RANK: Final[dict[str, int]] = {BLOCKED: 0, "D": 1, "C": 2, "B": 3, "A": 4}
BANDS: Final = ("A", "B", "C", "D")     # a bureau report's band

# ---------------------------------------------------------------- error codes
BLACKLISTED: Final = "blacklisted"
CREDIT_TOO_LOW: Final = "credit_too_low"
TOO_MANY_RENTALS: Final = "too_many_rentals"
ASSET_CLASS_NOT_ALLOWED: Final = "asset_class_not_allowed"
CONSENT_REQUIRED: Final = "consent_required"
CONSENT_NOT_FOUND: Final = "consent_not_found"
INVALID_PERIOD: Final = "invalid_period"
ENTRY_NOT_FOUND: Final = "blacklist_entry_not_found"
ENTRY_NOT_ACTIVE: Final = "blacklist_entry_not_active"
SELF_CONSENT: Final = "self_consent"


def _check_hashes(items: tuple[bytes, ...], what: str, required: bool) -> None:
    if required and not items:
        raise ValueError(f"{what} must name at least one tx hash")
    if len(items) > EVIDENCE_ITEMS_MAX:
        raise ValueError(f"{what} takes at most {EVIDENCE_ITEMS_MAX} tx hashes")
    for h in items:
        if len(h) != HASH_BYTES:
            raise ValueError(f"{what} items must be {HASH_BYTES}-byte tx hashes")


def _check_time(value: int, what: str) -> None:
    if not 0 <= value <= TIME_MS_MAX:
        raise ValueError(f"{what} must be 0 to {TIME_MS_MAX}")


# ---------------------------------------------------------------- parameters

@dataclass(frozen=True, slots=True)
class TierRule:
    """What a tier may do. ``asset_classes`` empty: every class."""

    name: str                       # A | B | C | D
    min_score: int                  # the lowest (combined) score of the tier
    deposit_multiplier_bps: int     # the offer's deposit × this / 10000 (rounded up)
    max_concurrent_rentals: int     # reserved/active/returned rentals at once, as consumer
    asset_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in TIER_NAMES:
            raise ValueError(f"tier name must be one of {', '.join(TIER_NAMES)}")
        if not 0 <= self.min_score <= SCORE_MAX:
            raise ValueError(f"min_score must be 0 to {SCORE_MAX}")
        if not 1 <= self.deposit_multiplier_bps <= 10 * BPS_DENOM:
            raise ValueError("deposit_multiplier_bps must be 1 to 100000")
        if not 0 <= self.max_concurrent_rentals <= 1_000_000:
            raise ValueError("max_concurrent_rentals must be 0 to 1000000")


def _neutral_tiers() -> tuple[TierRule, ...]:
    return (TierRule("A", 800, BPS_DENOM, 1_000_000), TierRule("B", 650, BPS_DENOM, 1_000_000),
            TierRule("C", 500, BPS_DENOM, 1_000_000), TierRule("D", 0, BPS_DENOM, 1_000_000))


DEFAULT_WEIGHTS: Final[dict[str, int]] = {
    COMPLETED_ON_TIME: 10, LATE: -40, DEFAULT: -200, DAMAGE_CONFIRMED: -80,
    DISPUTE_WON: 15, DISPUTE_LOST: -50, FRAUD_UPHELD: -400,
}
DEFAULT_BAND_SCORES: Final[dict[str, int]] = {"A": 900, "B": 725, "C": 575, "D": 300}


@dataclass(frozen=True, slots=True)
class Params:
    """Scoring and tier policy. The defaults impose no deposit policy (every multiplier is
    10000 and no limits): a chain opts into credit-based permissions in genesis (the devnet
    demo world does, see ``genesis.DEMO_PARAMS``) and later by governance."""

    base_score: int = 680
    half_life_ms: int = 180 * 86_400_000
    weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    tiers: tuple[TierRule, ...] = field(default_factory=_neutral_tiers)
    blocked_below: int = 0                   # a combined score below this is tier "blocked"
    bureau_weight_bps: int = 2_000           # share of valid bureau reports in the score
    band_scores: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_BAND_SCORES))
    consent_ms_max: int = 2 * 366 * 86_400_000
    report_validity_ms_max: int = 366 * 86_400_000
    blacklist_ms_max: int = 5 * 366 * 86_400_000

    def __post_init__(self) -> None:
        if not 0 <= self.base_score <= SCORE_MAX:
            raise ValueError(f"base_score must be 0 to {SCORE_MAX}")
        if not 1 <= self.half_life_ms <= DURATION_MS_MAX:
            raise ValueError(f"half_life_ms must be 1 to {DURATION_MS_MAX}")
        if sorted(self.weights) != sorted(EVENT_KINDS):
            raise ValueError(f"weights must name exactly the event kinds {EVENT_KINDS}")
        if any(not -WEIGHT_ABS_MAX <= w <= WEIGHT_ABS_MAX for w in self.weights.values()):
            raise ValueError(f"weights must be -{WEIGHT_ABS_MAX} to {WEIGHT_ABS_MAX}")
        names = [t.name for t in self.tiers]
        if sorted(names) != sorted(TIER_NAMES):
            raise ValueError("tiers must list A, B, C and D once each")
        ordered = sorted(self.tiers, key=lambda t: -TIER_RANK[t.name])
        mins = [t.min_score for t in ordered]
        if mins != sorted(mins, reverse=True) or len(set(mins)) != len(mins):
            raise ValueError("tier min_score must fall strictly from A to D")
        if not 0 <= self.blocked_below <= SCORE_MAX:
            raise ValueError(f"blocked_below must be 0 to {SCORE_MAX}")
        if not 0 <= self.bureau_weight_bps <= BPS_DENOM:
            raise ValueError(f"bureau_weight_bps must be 0 to {BPS_DENOM}")
        if sorted(self.band_scores) != sorted(BANDS) or any(
                not 0 <= s <= SCORE_MAX for s in self.band_scores.values()):
            raise ValueError("band_scores must give A, B, C and D a score of 0 to 1000")
        for name in ("consent_ms_max", "report_validity_ms_max", "blacklist_ms_max"):
            if not 1 <= getattr(self, name) <= DURATION_MS_MAX:
                raise ValueError(f"{name} must be 1 to {DURATION_MS_MAX}")

    def tier(self, name: str) -> TierRule:
        return next(t for t in self.tiers if t.name == name)


# ---------------------------------------------------------------- records

@dataclass(frozen=True, slots=True)
class CreditEvent:
    seq: int               # per subject, 1, 2, ...
    subject: bytes
    kind: str
    role: str              # consumer | provider | party | subject
    weight: int            # points when it happened (the weight in force then)
    platform: bytes        # the platform where it happened (b"" for none: a ruling, a regulator)
    ref: bytes             # rental id, claim id, dispute id, or a tx hash named as evidence
    tx_hash: bytes         # the tx that caused it (b"" when an end-block sweep did)
    time_ms: int


@dataclass(frozen=True, slots=True)
class Summary:
    """Per subject: events kept, the next sequence number, and the carried (folded) weight of
    events older than the kept ones, in milli-points as of ``carry_ms``."""

    next_seq: int = 1
    kept: int = 0
    carry_milli: int = 0
    carry_ms: int = 0


@dataclass(frozen=True, slots=True)
class BlacklistEntry:
    id: int
    subject: bytes
    reason: str
    evidence: tuple[bytes, ...]    # tx hashes
    ruling_id: bytes               # the arbitration dispute whose ruling added it (b"": regulator)
    added_by: bytes                # the regulator, or the arbitration module's address
    added_ms: int
    expires_ms: int
    lifted_ms: int = 0
    lifted_by: bytes = b""
    lift_reason: str = ""

    def active(self, now_ms: int) -> bool:
        return self.lifted_ms == 0 and now_ms < self.expires_ms


@dataclass(frozen=True, slots=True)
class Consent:
    subject: bytes
    bureau: bytes
    granted_ms: int
    until_ms: int


@dataclass(frozen=True, slots=True)
class BureauReport:
    subject: bytes
    bureau: bytes
    band: str
    valid_from_ms: int
    valid_until_ms: int
    report_cid: str
    submitted_ms: int
    tx_hash: bytes


# ---------------------------------------------------------------- messages

@dataclass(frozen=True, slots=True)
class GrantConsent:
    """The sender lets ``bureau`` report on them until ``until_ms``."""

    bureau: bytes
    until_ms: int

    def __post_init__(self) -> None:
        check_address(self.bureau, "bureau")
        _check_time(self.until_ms, "until_ms")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.bureau,)


@dataclass(frozen=True, slots=True)
class RevokeConsent:
    bureau: bytes

    def __post_init__(self) -> None:
        check_address(self.bureau, "bureau")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.bureau,)


@dataclass(frozen=True, slots=True)
class SubmitReport:
    """A bureau's report on ``subject``: a band valid over [valid_from_ms, valid_until_ms)."""

    subject: bytes
    band: str
    valid_from_ms: int
    valid_until_ms: int
    report_cid: str = ""

    def __post_init__(self) -> None:
        check_address(self.subject, "subject")
        if self.band not in BANDS:
            raise ValueError(f"band must be one of {', '.join(BANDS)}")
        _check_time(self.valid_from_ms, "valid_from_ms")
        _check_time(self.valid_until_ms, "valid_until_ms")
        if self.valid_until_ms <= self.valid_from_ms:
            raise DecodeError("valid_until_ms must be after valid_from_ms", INVALID_PERIOD)
        check_cid_v1(self.report_cid, "report_cid", allow_empty=True)

    def accounts(self) -> tuple[bytes, ...]:
        return (self.subject,)


@dataclass(frozen=True, slots=True)
class AddBlacklist:
    """A regulator's decision: ``subject`` may not reserve until ``expires_ms``."""

    subject: bytes
    reason: str
    evidence: tuple[bytes, ...]
    expires_ms: int

    def __post_init__(self) -> None:
        check_address(self.subject, "subject")
        check_text(self.reason, "reason")
        _check_hashes(self.evidence, "evidence", required=True)
        _check_time(self.expires_ms, "expires_ms")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.subject,)


@dataclass(frozen=True, slots=True)
class LiftBlacklist:
    entry_id: int
    reason: str

    def __post_init__(self) -> None:
        if not 0 < self.entry_id < 2**63:
            raise ValueError("entry_id must be a positive integer")
        check_text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class RecordFraud:
    """A regulator's decision that ``subject`` committed fraud (a ``fraud_upheld`` event)."""

    subject: bytes
    evidence: tuple[bytes, ...]
    note: str = ""

    def __post_init__(self) -> None:
        check_address(self.subject, "subject")
        _check_hashes(self.evidence, "evidence", required=True)
        check_text(self.note, "note", allow_empty=True)

    def accounts(self) -> tuple[bytes, ...]:
        return (self.subject,)
