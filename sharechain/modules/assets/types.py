"""assets records, messages and error codes.

Rights over an asset are kept apart: **ownership** (disposal: sell, choose the operator,
pledge), **operation** (the platform that manages it), a time-bounded **use right** (who may
use it until when; the rental module locks it while a rental is active) and **income shares**
(who receives what part of the income, in basis points summing to 10 000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sharechain.crypto import sha256
from sharechain.errors import DecodeError
from sharechain.modules.identity.common import (
    BPS_DENOM,
    check_address,
    check_bps,
    check_cid_v1,
    check_text,
    check_time_ms,
)
from sharechain.modules.identity.types import PLATFORM, REGULATOR

ASSET_ID_BYTES = 16
INCOME_SHARES_MAX = 16
LOCK_ID_BYTES_MAX = 64
AMOUNT_MAX = 2**100            # far above any supply; keeps arithmetic obviously bounded
SPEED_MPS_MAX = 1_000          # plausibility limits (m/s) beyond this are meaningless
METER_STEP_ABS_MAX = 2**62
CONFIRMATIONS_MAX = 1_000

# Roles whose attestation can confirm an asset. A platform attests only assets it operates.
ATTEST_ROLES = (REGULATOR, PLATFORM)

# Consumer reports about an asset.
REPORT_FAKE = "fake"
REPORT_UNSAFE = "unsafe"
REPORT_KINDS = (REPORT_FAKE, REPORT_UNSAFE)
REPORT_OPEN = "open"
REPORT_UPHELD = "upheld"
REPORT_REJECTED = "rejected"

CODE_RE = re.compile(r"[A-Z0-9][A-Z0-9._:/-]{0,63}")
CLASS_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")

# Error codes raised by this module.
ASSET_NOT_FOUND = "asset_not_found"
ASSET_CODE_TAKEN = "asset_code_taken"
UNKNOWN_CLASS = "unknown_asset_class"
ASSET_NOT_CONFIRMED = "asset_not_confirmed"
ASSET_FROZEN = "asset_frozen"
ASSET_NOT_FROZEN = "asset_not_frozen"
ASSET_NOT_PLEDGED = "asset_not_pledged"
ASSET_ALREADY_PLEDGED = "asset_already_pledged"
ASSET_OPERATOR_INACTIVE = "asset_operator_inactive"
NOT_OWNER = "not_owner"
NOT_OWNER_OR_OPERATOR = "not_owner_or_operator"
NOT_OPERATOR = "not_operator"
ATTESTATION_NOT_REQUIRED = "attestation_not_required"
ALREADY_ATTESTED = "already_attested"
USE_RIGHT_LOCKED = "use_right_locked"
USE_RIGHT_TAKEN = "use_right_taken"
NO_USE_RIGHT = "no_use_right"
NOT_USE_RIGHT_HOLDER = "not_use_right_holder"
USE_RIGHT_LOCK_MISMATCH = "use_right_lock_mismatch"
USE_RIGHT_EXPIRED = "use_right_expired"
INSUFFICIENT_SHARE = "insufficient_share"
TOO_MANY_SHAREHOLDERS = "too_many_shareholders"
INVALID_SHARES = "invalid_shares"
NOT_A_USER = "not_a_user"
SELF_CONFIRMATION = "self_confirmation"
SELF_REPORT = "self_report"
ALREADY_CONFIRMED = "already_confirmed"
REPORT_ALREADY_OPEN = "report_already_open"
REPORT_NOT_FOUND = "report_not_found"
REPORT_NOT_OPEN = "report_not_open"
PLEDGE_INSUFFICIENT = "pledge_insufficient"
SELF_TRANSFER = "self_transfer"


def asset_id_of(class_name: str, code: str) -> bytes:
    """The asset id: first 16 bytes of sha256("sharechain/asset" 0 class 0 code).

    Codes are unique across all classes, so the class is part of the id only to keep ids
    of different classes apart should that rule ever be relaxed.
    """
    return sha256(b"sharechain/asset\x00" + class_name.encode() + b"\x00" + code.encode())[
        :ASSET_ID_BYTES]


def pledge_escrow_id(asset_id: bytes) -> bytes:
    """The bank escrow holding an asset's pledge."""
    return b"assets/pledge/" + asset_id


def check_code(code: str) -> None:
    if not CODE_RE.fullmatch(code):
        raise ValueError("code must be 1-64 characters of A-Z 0-9 . _ : / - (upper case), "
                         "starting with a letter or digit")


def check_class_name(name: str) -> None:
    if not CLASS_NAME_RE.fullmatch(name):
        raise ValueError("class name must be 1-32 characters of a-z 0-9 _ -, starting with a letter")


def _check_asset_id(asset_id: bytes) -> None:
    if len(asset_id) != ASSET_ID_BYTES:
        raise ValueError(f"asset_id must be {ASSET_ID_BYTES} bytes")


# ---------------------------------------------------------------- records

@dataclass(frozen=True, slots=True)
class Share:
    holder: bytes
    bps: int


def check_shares(shares: tuple[Share, ...]) -> None:
    """Shares: 1-16 distinct holders, each 1..10000 bps, summing to exactly 10000."""
    if not 0 < len(shares) <= INCOME_SHARES_MAX:
        raise DecodeError(f"income shares need 1 to {INCOME_SHARES_MAX} holders", INVALID_SHARES)
    for s in shares:
        if len(s.holder) != 20 or not 0 < s.bps <= BPS_DENOM:
            raise DecodeError("each share needs a 20-byte holder and 1 to 10000 bps",
                              INVALID_SHARES)
    if len({s.holder for s in shares}) != len(shares):
        raise DecodeError("a holder appears twice in the income shares", INVALID_SHARES)
    total = sum(s.bps for s in shares)
    if total != BPS_DENOM:
        raise DecodeError(f"income shares sum to {total} bps, not {BPS_DENOM}", INVALID_SHARES)


def normalise_shares(shares: dict[bytes, int]) -> tuple[Share, ...]:
    """Shares sorted by holder, zero entries dropped (so equal splits encode equally)."""
    return tuple(Share(h, b) for h, b in sorted(shares.items()) if b)


@dataclass(frozen=True, slots=True)
class UseRight:
    holder: bytes
    until_ms: int
    locked_by: bytes = b""   # lock id of the module holding it (a rental); b"" = not locked


@dataclass(frozen=True, slots=True)
class AssetClass:
    name: str
    confirmations: tuple[str, ...]   # roles whose attestation the class requires
    pledge: int                      # tokens the provider locks to make an asset rentable
    consumer_confirmations: int      # confirmations by consumers that return the pledge
    max_speed_mps: int               # plausibility: fastest credible movement (0: immobile)
    meter_step_min: int              # plausibility: smallest credible meter step (0: none back)
    meter_step_max: int              # plausibility: largest credible meter step
    description: str = ""

    def __post_init__(self) -> None:
        check_class_name(self.name)
        if any(r not in ATTEST_ROLES for r in self.confirmations) or \
                len(set(self.confirmations)) != len(self.confirmations):
            raise ValueError(f"confirmations must be distinct roles among {ATTEST_ROLES}")
        if not 0 <= self.pledge <= AMOUNT_MAX:
            raise ValueError("pledge must be 0 or a positive amount")
        if not 0 <= self.consumer_confirmations <= CONFIRMATIONS_MAX:
            raise ValueError(f"consumer_confirmations must be 0 to {CONFIRMATIONS_MAX}")
        if not 0 <= self.max_speed_mps <= SPEED_MPS_MAX:
            raise ValueError(f"max_speed_mps must be 0 to {SPEED_MPS_MAX}")
        if not -METER_STEP_ABS_MAX <= self.meter_step_min <= self.meter_step_max \
                <= METER_STEP_ABS_MAX:
            raise ValueError("meter steps must satisfy min <= max within ±2**62")
        check_text(self.description, "description", allow_empty=True)


@dataclass(frozen=True, slots=True)
class Asset:
    id: bytes
    class_name: str
    code: str
    metadata_cid: str
    owner: bytes
    operator: bytes
    income_shares: tuple[Share, ...]
    use_right: UseRight | None
    confirmed: bool
    frozen: bool
    freeze_reason: str
    pledged: bool             # the pledge was posted: the asset is a "smart shared asset"
    pledge_held: int          # tokens still in the pledge escrow
    pledger: bytes            # who posted the pledge (refunds go back to them); b"" if none
    pledge_returned: bool     # the consumer confirmations returned the pledge
    consumer_confirmations: int
    open_reports: int
    created_ms: int

    def active_use_right(self, now_ms: int) -> UseRight | None:
        """The use right in force: a locked one until released, otherwise until it expires."""
        u = self.use_right
        if u is None or (not u.locked_by and u.until_ms <= now_ms):
            return None
        return u

    def share_of(self, holder: bytes) -> int:
        return next((s.bps for s in self.income_shares if s.holder == holder), 0)


@dataclass(frozen=True, slots=True)
class Attestation:
    asset_id: bytes
    role: str
    attester: bytes
    evidence_cid: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class AssetReport:
    asset_id: bytes
    seq: int
    reporter: bytes
    kind: str                 # fake | unsafe
    evidence_cid: str
    status: str               # open | upheld | rejected
    created_ms: int
    resolved_by: bytes = b""
    compensation: int = 0
    note: str = ""


# ---------------------------------------------------------------- messages

@dataclass(frozen=True, slots=True)
class DefineAsset:
    """Define an asset owned by the sender and operated through platform ``operator``."""

    class_name: str
    code: str
    metadata_cid: str
    operator: bytes
    income_shares: tuple[Share, ...] = ()   # empty: 10000 bps to the owner

    def __post_init__(self) -> None:
        check_class_name(self.class_name)
        check_code(self.code)
        check_cid_v1(self.metadata_cid, "metadata_cid")
        check_address(self.operator, "operator")
        if self.income_shares:
            check_shares(self.income_shares)

    def accounts(self) -> tuple[bytes, ...]:
        return (self.operator,) + tuple(s.holder for s in self.income_shares)


@dataclass(frozen=True, slots=True)
class Attest:
    """The sender, holding ``role``, confirms the asset is what its metadata says."""

    asset_id: bytes
    role: str
    evidence_cid: str = ""

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        if self.role not in ATTEST_ROLES:
            raise ValueError(f"role must be one of {', '.join(ATTEST_ROLES)}")
        check_cid_v1(self.evidence_cid, "evidence_cid", allow_empty=True)


@dataclass(frozen=True, slots=True)
class _AssetTo:
    asset_id: bytes
    to: bytes

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        check_address(self.to, "to")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.to,)


@dataclass(frozen=True, slots=True)
class TransferOwnership(_AssetTo):
    pass


@dataclass(frozen=True, slots=True)
class TransferUseRight(_AssetTo):
    pass


@dataclass(frozen=True, slots=True)
class SetOperator:
    asset_id: bytes
    operator: bytes

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        check_address(self.operator, "operator")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.operator,)


@dataclass(frozen=True, slots=True)
class GrantUseRight:
    asset_id: bytes
    holder: bytes
    until_ms: int

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        check_address(self.holder, "holder")
        check_time_ms(self.until_ms, "until_ms")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.holder,)


@dataclass(frozen=True, slots=True)
class _AssetOnly:
    asset_id: bytes

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)


@dataclass(frozen=True, slots=True)
class RevokeUseRight(_AssetOnly):
    pass


@dataclass(frozen=True, slots=True)
class PledgeAsset(_AssetOnly):
    pass


@dataclass(frozen=True, slots=True)
class ConfirmAsset(_AssetOnly):
    pass


@dataclass(frozen=True, slots=True)
class TransferIncomeShare:
    asset_id: bytes
    to: bytes
    bps: int

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        check_address(self.to, "to")
        check_bps(self.bps, "bps")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.to,)


@dataclass(frozen=True, slots=True)
class Freeze:
    asset_id: bytes
    reason: str

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        check_text(self.reason, "reason")


@dataclass(frozen=True, slots=True)
class Unfreeze(Freeze):
    pass


@dataclass(frozen=True, slots=True)
class ReportAsset:
    asset_id: bytes
    kind: str
    evidence_cid: str = ""

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        if self.kind not in REPORT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(REPORT_KINDS)}")
        check_cid_v1(self.evidence_cid, "evidence_cid", allow_empty=True)


@dataclass(frozen=True, slots=True)
class ResolveReport:
    asset_id: bytes
    seq: int
    upheld: bool
    compensation: int = 0
    note: str = ""

    def __post_init__(self) -> None:
        _check_asset_id(self.asset_id)
        if not 0 < self.seq < 2**32:
            raise ValueError("seq must be 1 to 2**32-1")
        if not 0 <= self.compensation <= AMOUNT_MAX:
            raise ValueError("compensation must be 0 or a positive amount")
        if self.compensation and not self.upheld:
            raise ValueError("only an upheld report is compensated")
        check_text(self.note, "note", allow_empty=True)
