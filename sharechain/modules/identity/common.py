"""Small helpers shared by the sharing-economy modules (identity, assets, iot).

identity is the lowest of these modules, so assets and iot import from here: text and CID
checks used by message schemas, and the parsing of query parameters (which arrive as strings:
hex ids, bech32 addresses, decimal integers) with a stable ``invalid_query`` error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sharechain.app.state import Readable, prefix_end
from sharechain.crypto import ADDRESS_BYTES, parse_address, parse_cid
from sharechain.encoding import record_from_state
from sharechain.errors import DecodeError, ShareChainError

BPS_DENOM = 10_000           # basis points in one whole
TEXT_BYTES_MAX = 256         # free-text fields (names, reasons, notes)
NAME_BYTES_MAX = 64          # display names, class names
CID_TEXT_MAX = 128           # a CIDv1 in base32 of a sha2-256 digest is 59 characters
TIME_MS_MAX = 2**63 - 1      # timestamps in ms fit a signed 64-bit integer
QUERY_LIMIT_DEFAULT = 100
QUERY_LIMIT_MAX = 1000

INVALID_CID = "invalid_cid"
INVALID_QUERY = "invalid_query"


# ---------------------------------------------------------------- schema checks

def check_text(value: str, what: str, max_bytes: int = TEXT_BYTES_MAX,
               allow_empty: bool = False) -> None:
    """Printable text without surrounding blanks; raises ValueError (→ ``invalid_msg``)."""
    if not value:
        if allow_empty:
            return
        raise ValueError(f"{what} must not be empty")
    if len(value.encode()) > max_bytes:
        raise ValueError(f"{what} exceeds {max_bytes} bytes")
    if value.strip() != value or not value.isprintable():
        raise ValueError(f"{what} must be printable text without surrounding blanks")


def check_cid_v1(text: str, what: str = "cid", allow_empty: bool = False) -> None:
    """A CIDv1 document name (IPFS); raises DecodeError with code ``invalid_cid``."""
    if not text and allow_empty:
        return
    if not text or len(text) > CID_TEXT_MAX:
        raise DecodeError(f"{what} must be a CIDv1 of at most {CID_TEXT_MAX} characters",
                          INVALID_CID)
    try:
        version = parse_cid(text)[0]
    except ShareChainError:
        raise DecodeError(f"{what} is not a valid content identifier: {text!r}",
                          INVALID_CID) from None
    if version != 1:
        raise DecodeError(f"{what} must be a CIDv1 (CIDv0 'Qm…' names are not accepted)",
                          INVALID_CID)


def check_address(value: bytes, what: str) -> None:
    if len(value) != ADDRESS_BYTES:
        raise ValueError(f"{what} must be a {ADDRESS_BYTES}-byte address")


def check_bps(value: int, what: str, allow_zero: bool = False) -> None:
    lo = 0 if allow_zero else 1
    if not lo <= value <= BPS_DENOM:
        raise ValueError(f"{what} must be {lo} to {BPS_DENOM} basis points")


def check_time_ms(value: int, what: str) -> None:
    if not 0 <= value <= TIME_MS_MAX:
        raise ValueError(f"{what} must be 0 to {TIME_MS_MAX} ms")


# ---------------------------------------------------------------- query parameters

def _bad(message: str) -> ShareChainError:
    return ShareChainError(INVALID_QUERY, message)


def q_str(q: dict[str, str], name: str) -> str:
    v = q.get(name)
    if v is None or v == "":
        raise _bad(f"query parameter {name!r} is required")
    return v


def q_address(q: dict[str, str], name: str) -> bytes:
    v = q_str(q, name)
    try:
        return parse_address(v)
    except ShareChainError:
        raise _bad(f"query parameter {name!r} is not a share1… address") from None


def q_hex(q: dict[str, str], name: str, length: int | None = None) -> bytes:
    v = q_str(q, name)
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        raise _bad(f"query parameter {name!r} must be hex") from None
    if length is not None and len(raw) != length:
        raise _bad(f"query parameter {name!r} must be {length} bytes of hex")
    return raw


def q_int(q: dict[str, str], name: str, default: int | None = None, lo: int = 0,
          hi: int = TIME_MS_MAX) -> int:
    v = q.get(name)
    if v is None or v == "":
        if default is None:
            raise _bad(f"query parameter {name!r} is required")
        return default
    try:
        n = int(v, 10)
    except ValueError:
        raise _bad(f"query parameter {name!r} must be a decimal integer") from None
    if not lo <= n <= hi:
        raise _bad(f"query parameter {name!r} must be {lo} to {hi}")
    return n


def q_limit(q: dict[str, str]) -> int:
    return q_int(q, "limit", QUERY_LIMIT_DEFAULT, 1, QUERY_LIMIT_MAX)


# ---------------------------------------------------------------- state helpers

def read_record(state: Readable, cls: type, key: bytes) -> Any:
    raw = state.get(key)
    return None if raw is None else record_from_state(cls, raw)


def iter_records(state: Readable, cls: type, prefix: bytes) -> Iterable[tuple[bytes, Any]]:
    for k, v in state.iter_range(prefix, prefix_end(prefix)):
        yield k, record_from_state(cls, v)


def page(items: Iterable[Any], limit: int, keep: Callable[[Any], bool] = lambda _: True
         ) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if keep(item):
            out.append(item)
            if len(out) >= limit:
                break
    return out
