"""market records, messages, parameters and error codes.

Amounts are integer token units, times integer milliseconds, distances integer metres.
Schema checks run when a message is decoded (before it reaches a block): a bad geohash fails
with ``invalid_geohash``, a bad window with ``invalid_window``, anything else malformed with
``invalid_msg``; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sharechain.errors import DecodeError
from sharechain.modules.assets.types import check_class_name
from sharechain.modules.iot.geo import GEOHASH_LEN_MAX, is_geohash

BPS_DENOM: Final = 10_000
HOUR_MS: Final = 3_600_000
ID_BYTES: Final = 8                       # listing and request ids: big-endian sequence numbers
ADDRESS_BYTES: Final = 20
ASSET_ID_BYTES_MAX: Final = 64
AMOUNT_MAX: Final = 10**18
TIME_MS_MAX: Final = 2**63 - 1
LISTING_SPAN_MS_MAX: Final = 366 * 86_400_000   # longest availability a listing may name
REQUEST_WINDOW_MS_MAX: Final = 366 * 86_400_000
GEOHASH_INDEX_LEN: Final = 5              # listings are indexed by their first 5 characters
LISTING_GEOHASH_LEN_MIN: Final = GEOHASH_INDEX_LEN   # a listing locates its asset this finely
REQUEST_GEOHASH_LEN_MIN: Final = 5
RADIUS_M_MAX: Final = 50_000              # a request looks at most this far
CONDITION_MAX: Final = 100                # asset condition: 0 (poor) .. 100 (as new)
TIER_MAX: Final = 100                     # credit tier ranks (rental's min_credit_tier range)

# listing / request states
OPEN: Final = "open"
FILLED: Final = "filled"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"

# ---------------------------------------------------------------- error codes
INVALID_GEOHASH: Final = "invalid_geohash"
INVALID_WINDOW: Final = "invalid_window"
LISTING_NOT_FOUND: Final = "listing_not_found"     # no listing ever had this id
REQUEST_NOT_FOUND: Final = "request_not_found"
OFFER_UNAVAILABLE: Final = "offer_unavailable"     # delisted, expired, offer changed or
#                                                    withdrawn, asset booked/frozen/moved
REQUEST_CLOSED: Final = "request_closed"           # filled, cancelled or expired
NOT_ASSET_OPERATOR: Final = "not_asset_operator"   # only the operating platform lists
NOT_LISTER: Final = "not_lister"                   # delist by someone else
NOT_REQUESTER: Final = "not_requester"             # cancel someone else's request
NOT_A_PLATFORM: Final = "not_a_platform"           # the booking platform named is none
WINDOW_UNAVAILABLE: Final = "window_unavailable"   # outside the listing's availability
CLASS_MISMATCH: Final = "class_mismatch"
OUT_OF_AREA: Final = "out_of_area"
PRICE_ABOVE_MAX: Final = "price_above_max"
DEPOSIT_ABOVE_MAX: Final = "deposit_above_max"
CONDITION_TOO_LOW: Final = "condition_too_low"
TOO_MANY_REQUESTS: Final = "too_many_requests"
OFFER_NOT_FOUND: Final = "offer_not_found"         # listing an asset without rental terms


def _window_error(message: str) -> DecodeError:
    return DecodeError(message, INVALID_WINDOW)


def check_geohash(value: str, what: str, min_len: int) -> None:
    if not (is_geohash(value) and len(value) >= min_len):
        raise DecodeError(f"{what} must be a geohash of {min_len} to {GEOHASH_LEN_MAX} "
                          f"characters of 0-9 b-h j k m n p-z, got {value!r}", INVALID_GEOHASH)


def _check_len(value: bytes, length: int, what: str) -> None:
    if len(value) != length:
        raise ValueError(f"{what} must be {length} bytes")


def _check_window(start_ms: int, end_ms: int, span_max: int) -> None:
    if not 0 <= start_ms < end_ms <= TIME_MS_MAX:
        raise _window_error("the window needs 0 <= start < end")
    if end_ms - start_ms > span_max:
        raise _window_error(f"the window may last at most {span_max} ms")


def _check_range(value: int, lo: int, hi: int, what: str) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be {lo} to {hi}")


def rate_per_hour(price_per_unit: int, unit_ms: int) -> int:
    """The hourly rate of an offer, rounded up: the key of the price index."""
    return -(-price_per_unit * HOUR_MS // unit_ms)


def window_price(price_per_unit: int, unit_ms: int, start_ms: int, end_ms: int) -> int:
    """What a reservation of ``[start_ms, end_ms)`` prepays (rental's rounding: whole units,
    rounded up, at least one)."""
    return max(1, -(-(end_ms - start_ms) // unit_ms)) * price_per_unit


# ---------------------------------------------------------------- records

@dataclass(frozen=True, slots=True)
class Listing:
    """An asset's rental offer made visible to every platform, with where and when."""

    id: bytes                  # 8-byte big-endian sequence number
    asset_id: bytes
    class_name: str
    platform: bytes            # the listing platform (A): the asset's operator when listed
    geohash: str               # where the asset is (at least 5 characters)
    condition: int             # 0..100, declared by the listing platform
    available_from_ms: int     # bookable windows lie inside [from, to)
    available_to_ms: int
    offer_version: int         # the rental offer this listing shows; a new offer stales it
    price_per_unit: int        # snapshot of that offer's terms (pinned by the version)
    unit_ms: int
    deposit: int
    min_duration_ms: int
    max_duration_ms: int
    min_credit_tier: int
    rate_per_hour: int         # ceil(price_per_unit × 1 h / unit_ms): the price index key
    listed_ms: int


@dataclass(frozen=True, slots=True)
class Request:
    """A consumer's demand; it pre-authorises one booking within its constraints."""

    id: bytes
    consumer: bytes
    class_name: str
    geohash: str               # where the consumer is (at least 5 characters)
    radius_m: int              # how far the asset may be (between geohash cell centres)
    start_ms: int              # the window to rent
    end_ms: int
    max_price: int             # most the window may cost (the prepaid usage fee)
    max_deposit: int           # most the deposit may be (after the credit multiplier)
    min_condition: int
    via: bytes                 # the consumer's platform (B); b"": the filling platform
    created_ms: int
    state: str = OPEN          # open | filled | cancelled | expired
    rental_id: bytes = b""     # the reservation that filled it
    filled_by: bytes = b""     # the platform that sent the fill
    listing_id: bytes = b""


@dataclass(frozen=True, slots=True)
class Booking:
    """A reservation made through the market: who listed it and who booked it."""

    rental_id: bytes
    listing_id: bytes
    request_id: bytes          # b"" for a direct market/book
    consumer: bytes
    lister: bytes              # platform A (the asset's operator)
    via: bytes                 # platform B (equal to A for a same-platform booking)
    booked_ms: int
    # Written when the rental settles and B is not A: the operator's part of the platform
    # fee as split (no event: a gateway's batch of 32 lock reports must fit the event cap).
    lister_amount: int = 0
    via_amount: int = 0
    split_ms: int = 0


@dataclass(frozen=True, slots=True)
class Params:
    # Share of the operator's part of the platform fee paid to the booking platform B when
    # B is not the listing platform A; A keeps the rest (and the rounding remainder).
    booking_platform_bps: int = 3_000
    requests_per_consumer_max: int = 16    # open requests per consumer
    sweep_items_max: int = 1_000           # expiries handled per block at most

    def __post_init__(self) -> None:
        _check_range(self.booking_platform_bps, 0, BPS_DENOM, "booking_platform_bps")
        _check_range(self.requests_per_consumer_max, 1, 10_000, "requests_per_consumer_max")
        _check_range(self.sweep_items_max, 1, 100_000, "sweep_items_max")


# ---------------------------------------------------------------- messages

@dataclass(frozen=True, slots=True)
class ListAsset:
    """List an asset's current rental offer; by the asset's operator platform. Listing an
    asset again replaces its listing."""

    asset_id: bytes
    geohash: str
    available_from_ms: int
    available_to_ms: int
    condition: int

    def __post_init__(self) -> None:
        if not 0 < len(self.asset_id) <= ASSET_ID_BYTES_MAX:
            raise ValueError(f"asset_id must be 1 to {ASSET_ID_BYTES_MAX} bytes")
        check_geohash(self.geohash, "geohash", LISTING_GEOHASH_LEN_MIN)
        _check_window(self.available_from_ms, self.available_to_ms, LISTING_SPAN_MS_MAX)
        _check_range(self.condition, 0, CONDITION_MAX, "condition")


@dataclass(frozen=True, slots=True)
class Delist:
    listing_id: bytes

    def __post_init__(self) -> None:
        _check_len(self.listing_id, ID_BYTES, "listing_id")


@dataclass(frozen=True, slots=True)
class Book:
    """Reserve ``[start_ms, end_ms)`` of a listed asset through platform ``via`` (B);
    signed by the consumer. ``max_price`` 0: no cap beyond the listing's terms."""

    listing_id: bytes
    start_ms: int
    end_ms: int
    via: bytes
    max_price: int = 0

    def __post_init__(self) -> None:
        _check_len(self.listing_id, ID_BYTES, "listing_id")
        _check_window(self.start_ms, self.end_ms, REQUEST_WINDOW_MS_MAX)
        _check_len(self.via, ADDRESS_BYTES, "via")
        _check_range(self.max_price, 0, AMOUNT_MAX, "max_price")


@dataclass(frozen=True, slots=True)
class PostRequest:
    """A consumer's demand, open to every platform's matcher until filled, cancelled or its
    window starts."""

    class_name: str
    geohash: str
    radius_m: int
    start_ms: int
    end_ms: int
    max_price: int
    max_deposit: int
    min_condition: int = 0
    via: bytes = b""

    def __post_init__(self) -> None:
        check_class_name(self.class_name)
        check_geohash(self.geohash, "geohash", REQUEST_GEOHASH_LEN_MIN)
        _check_range(self.radius_m, 1, RADIUS_M_MAX, "radius_m")
        _check_window(self.start_ms, self.end_ms, REQUEST_WINDOW_MS_MAX)
        _check_range(self.max_price, 1, AMOUNT_MAX, "max_price")
        _check_range(self.max_deposit, 0, AMOUNT_MAX, "max_deposit")
        _check_range(self.min_condition, 0, CONDITION_MAX, "min_condition")
        if self.via:
            _check_len(self.via, ADDRESS_BYTES, "via")


@dataclass(frozen=True, slots=True)
class CancelRequest:
    request_id: bytes

    def __post_init__(self) -> None:
        _check_len(self.request_id, ID_BYTES, "request_id")


@dataclass(frozen=True, slots=True)
class Fill:
    """Book listing ``listing_id`` for request ``request_id`` on the consumer's behalf; by
    any platform (a matcher). Checked on chain against the request's constraints."""

    request_id: bytes
    listing_id: bytes

    def __post_init__(self) -> None:
        _check_len(self.request_id, ID_BYTES, "request_id")
        _check_len(self.listing_id, ID_BYTES, "listing_id")
