"""iot records, messages and error codes.

A device report is signed by the device's own Ed25519 key over
``encode({"domain": REPORT_DOMAIN, "chain_id": …, "report": <report as plain data>})`` (see
:func:`report_sign_bytes`), so a report cannot be replayed on another chain, and its counter
makes it usable once on this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharechain.crypto import ADDRESS_BYTES, HASH_BYTES, PUBKEY_BYTES, SIGNATURE_BYTES
from sharechain.encoding import encode, to_obj
from sharechain.modules.identity.common import (
    check_address,
    check_cid_v1,
    check_time_ms,
)
from sharechain.modules.iot.geo import is_geohash

REPORT_DOMAIN = "sharechain/iot/report/v1"
BIND_DOMAIN = "sharechain/iot/bind/v1"
ASSET_ID_BYTES = 16
RENTAL_ID_BYTES_MAX = 64
REPORTS_PER_MSG_MAX = 32
COUNTER_MAX = 2**63 - 1
METER_READING_MAX = 2**63 - 1
ANCHOR_COUNT_MAX = 2**40

UNLOCK = "unlock"
LOCK = "lock"
METER = "meter"
LOCATION = "location"
BATTERY = "battery"
FAULT = "fault"
KINDS = (UNLOCK, LOCK, METER, LOCATION, BATTERY, FAULT)
# payload field each kind requires (None: none required) and the fields it may carry
_KIND_FIELDS: dict[str, tuple[str | None, frozenset[str]]] = {
    UNLOCK: (None, frozenset({"rental_id"})),
    LOCK: (None, frozenset({"rental_id"})),
    METER: ("reading", frozenset({"reading"})),
    LOCATION: ("geohash", frozenset({"geohash"})),
    BATTERY: ("percent", frozenset({"percent"})),
    FAULT: ("damage", frozenset({"damage", "note_cid"})),
}

# Suspect reasons (a report that cannot be true is accepted, flagged and counted).
SUSPECT_SPEED = "speed"
SUSPECT_METER_BACKWARDS = "meter_backwards"
SUSPECT_METER_JUMP = "meter_jump"
SUSPECT_COUNTER_GAP = "counter_gap"
SUSPECT_TIME_BACKWARDS = "time_backwards"

# Error codes raised by this module.
DEVICE_NOT_FOUND = "device_not_found"
DEVICE_NOT_BOUND = "device_not_bound"
DEVICE_ALREADY_BOUND = "device_already_bound"
ASSET_HAS_DEVICE = "asset_has_device"
DEVICE_ASSET_MISMATCH = "device_asset_mismatch"
INVALID_DEVICE_SIGNATURE = "invalid_device_signature"
INVALID_REPORT_SIGNATURE = "invalid_report_signature"
REPORT_REPLAYED = "report_replayed"
REPORT_TIME_SKEW = "report_time_skew"
ANCHOR_NOT_FOUND = "anchor_not_found"


# ---------------------------------------------------------------- reports

@dataclass(frozen=True, slots=True)
class Payload:
    """What a report says; which fields are present depends on the report's kind."""

    reading: int | None = None       # meter: the meter's absolute reading (class units)
    geohash: str | None = None       # location: geohash of the position, 1-12 characters
    percent: int | None = None       # battery: charge in percent
    damage: bool | None = None       # fault: whether the device detected damage
    note_cid: str | None = None      # fault: CIDv1 of a note or photo, optional
    rental_id: bytes | None = None   # unlock / lock: the rental this refers to, optional

    def present(self) -> frozenset[str]:
        return frozenset(f for f in ("reading", "geohash", "percent", "damage", "note_cid",
                                     "rental_id") if getattr(self, f) is not None)


@dataclass(frozen=True, slots=True)
class Report:
    device: bytes        # device id: the address of the device's public key
    asset_id: bytes      # the asset the device claims to be bound to
    counter: int         # strictly increasing per device, from 1
    time_ms: int         # the device's clock when it made the report
    kind: str
    payload: Payload

    def __post_init__(self) -> None:
        check_address(self.device, "device")
        if len(self.asset_id) != ASSET_ID_BYTES:
            raise ValueError(f"asset_id must be {ASSET_ID_BYTES} bytes")
        if not 0 < self.counter <= COUNTER_MAX:
            raise ValueError(f"counter must be 1 to {COUNTER_MAX}")
        check_time_ms(self.time_ms, "time_ms")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        required, allowed = _KIND_FIELDS[self.kind]
        present = self.payload.present()
        if not present <= allowed or (required is not None and required not in present):
            need = f"requires {required}" if required else "takes no required field"
            raise ValueError(f"a {self.kind} report {need} and may carry only "
                             f"{', '.join(sorted(allowed))}")
        p = self.payload
        if p.reading is not None and not 0 <= p.reading <= METER_READING_MAX:
            raise ValueError(f"reading must be 0 to {METER_READING_MAX}")
        if p.geohash is not None and not is_geohash(p.geohash):
            raise ValueError("geohash must be 1-12 characters of the geohash alphabet")
        if p.percent is not None and not 0 <= p.percent <= 100:
            raise ValueError("percent must be 0 to 100")
        if p.note_cid is not None:
            check_cid_v1(p.note_cid, "note_cid")
        if p.rental_id is not None and len(p.rental_id) > RENTAL_ID_BYTES_MAX:
            raise ValueError(f"rental_id exceeds {RENTAL_ID_BYTES_MAX} bytes")

    @property
    def rental_id(self) -> bytes:
        """The rental an unlock/lock report refers to (b"" if none)."""
        return self.payload.rental_id or b""


def report_sign_bytes(chain_id: str, report: Report) -> bytes:
    """The bytes a device signs: canonical CBOR with a domain string and the chain id."""
    return encode({"domain": REPORT_DOMAIN, "chain_id": chain_id, "report": to_obj(report)})


def bind_sign_bytes(chain_id: str, asset_id: bytes, binder: bytes) -> bytes:
    """The bytes a device signs to consent to being bound to ``asset_id`` by ``binder``."""
    return encode({"domain": BIND_DOMAIN, "chain_id": chain_id, "asset_id": asset_id,
                   "binder": binder})


@dataclass(frozen=True, slots=True)
class SignedReport:
    report: Report
    sig: bytes

    def __post_init__(self) -> None:
        if len(self.sig) != SIGNATURE_BYTES:
            raise ValueError(f"sig must be {SIGNATURE_BYTES} bytes")


# ---------------------------------------------------------------- records

@dataclass(frozen=True, slots=True)
class Device:
    id: bytes                # address of pub_key
    pub_key: bytes
    asset_id: bytes          # b"" while unbound
    bound_by: bytes
    bound_ms: int
    last_counter: int        # 0 before the first report; never decreases, even across rebinding
    last_time_ms: int
    reports: int             # accepted reports
    suspects: int            # accepted reports flagged suspect
    last_suspect: str = ""   # reason(s) of the latest suspect report


@dataclass(frozen=True, slots=True)
class StoredReport:
    """The latest accepted report of one kind from one device, as consumers see it."""

    report: Report
    suspect: str             # "" if plausible, else comma-separated reasons
    height: int
    gateway: bytes


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    id: int
    gateway: bytes
    root: bytes              # RFC 6962 Merkle root over the readings (crypto.merkle_root)
    count: int               # number of readings (leaves)
    period_start_ms: int
    period_end_ms: int
    device: bytes            # the device the readings come from, b"" if several
    height: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class Params:
    report_future_ms_max: int      # a report may be at most this far ahead of block time
    report_age_ms_max: int         # ... and at most this far behind it
    counter_gap_max: int           # a larger jump of the counter is suspect
    location_slack_m: int          # GPS error allowed on top of the geohash cells


# ---------------------------------------------------------------- messages

@dataclass(frozen=True, slots=True)
class BindDevice:
    """Bind the device with ``pub_key`` to an asset; the device consents with ``device_sig``
    over :func:`bind_sign_bytes` (chain id, asset id, the binding sender)."""

    pub_key: bytes
    asset_id: bytes
    device_sig: bytes

    def __post_init__(self) -> None:
        if len(self.pub_key) != PUBKEY_BYTES:
            raise ValueError(f"pub_key must be {PUBKEY_BYTES} bytes")
        if len(self.asset_id) != ASSET_ID_BYTES:
            raise ValueError(f"asset_id must be {ASSET_ID_BYTES} bytes")
        if len(self.device_sig) != SIGNATURE_BYTES:
            raise ValueError(f"device_sig must be {SIGNATURE_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class UnbindDevice:
    device: bytes

    def __post_init__(self) -> None:
        check_address(self.device, "device")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.device,)


@dataclass(frozen=True, slots=True)
class SubmitReports:
    reports: tuple[SignedReport, ...]

    def __post_init__(self) -> None:
        if not 0 < len(self.reports) <= REPORTS_PER_MSG_MAX:
            raise ValueError(f"a message carries 1 to {REPORTS_PER_MSG_MAX} reports")

    def accounts(self) -> tuple[bytes, ...]:
        return tuple(sorted({r.report.device for r in self.reports}))


@dataclass(frozen=True, slots=True)
class AnchorReadings:
    """Anchor the Merkle root of ``count`` readings kept off chain."""

    root: bytes
    count: int
    period_start_ms: int
    period_end_ms: int
    device: bytes = b""

    def __post_init__(self) -> None:
        if len(self.root) != HASH_BYTES:
            raise ValueError(f"root must be {HASH_BYTES} bytes")
        if not 0 < self.count <= ANCHOR_COUNT_MAX:
            raise ValueError(f"count must be 1 to {ANCHOR_COUNT_MAX}")
        check_time_ms(self.period_start_ms, "period_start_ms")
        check_time_ms(self.period_end_ms, "period_end_ms")
        if self.period_start_ms > self.period_end_ms:
            raise ValueError("the period must not end before it starts")
        if self.device and len(self.device) != ADDRESS_BYTES:
            raise ValueError("device must be empty or a 20-byte device id")

    def accounts(self) -> tuple[bytes, ...]:
        return (self.device,) if self.device else ()
