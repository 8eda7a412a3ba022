"""Pure rules shared by the chain and the off-chain matcher: does a listing fit a request,
and how a platform fee splits between two platforms. No state, no I/O.
"""

from __future__ import annotations

from typing import Protocol

from sharechain.modules.iot.geo import geohash_distance_mm
from sharechain.modules.market.types import (
    BPS_DENOM,
    CLASS_MISMATCH,
    CONDITION_TOO_LOW,
    OUT_OF_AREA,
    PRICE_ABOVE_MAX,
    WINDOW_UNAVAILABLE,
    window_price,
)


class ListingLike(Protocol):
    @property
    def class_name(self) -> str: ...
    @property
    def geohash(self) -> str: ...
    @property
    def condition(self) -> int: ...
    @property
    def available_from_ms(self) -> int: ...
    @property
    def available_to_ms(self) -> int: ...
    @property
    def price_per_unit(self) -> int: ...
    @property
    def unit_ms(self) -> int: ...


class RequestLike(Protocol):
    @property
    def class_name(self) -> str: ...
    @property
    def geohash(self) -> str: ...
    @property
    def radius_m(self) -> int: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...
    @property
    def max_price(self) -> int: ...
    @property
    def min_condition(self) -> int: ...


def distance_m(a: str, b: str) -> int:
    """Distance between two geohash cell centres, whole metres rounded down (integer)."""
    return geohash_distance_mm(a, b)[0] // 1000


def fit_error(req: RequestLike, listing: ListingLike) -> tuple[str, str] | None:
    """``(code, sentence)`` of the first request constraint the listing breaks, or None.

    The checks a fill makes before it reserves (the rental then checks the duration, the
    calendar, the credit gate and the funds; the deposit is checked after, since the credit
    tier scales it)."""
    if listing.class_name != req.class_name:
        return CLASS_MISMATCH, (f"the request wants a {req.class_name}, the listing is a "
                                f"{listing.class_name}")
    d_mm = geohash_distance_mm(listing.geohash, req.geohash)[0]
    if d_mm > req.radius_m * 1000:
        return OUT_OF_AREA, (f"the asset is {d_mm // 1000} m away; the request accepts "
                             f"{req.radius_m} m")
    if not listing.available_from_ms <= req.start_ms < req.end_ms <= listing.available_to_ms:
        return WINDOW_UNAVAILABLE, ("the requested window lies outside the listing's "
                                    f"availability [{listing.available_from_ms}, "
                                    f"{listing.available_to_ms})")
    if listing.condition < req.min_condition:
        return CONDITION_TOO_LOW, (f"the asset's condition is {listing.condition}; the "
                                   f"request needs {req.min_condition}")
    price = window_price(listing.price_per_unit, listing.unit_ms, req.start_ms, req.end_ms)
    if price > req.max_price:
        return PRICE_ABOVE_MAX, f"the window costs {price}; the request allows {req.max_price}"
    return None


def split_fee(amount: int, booking_platform_bps: int) -> tuple[int, int]:
    """``(listing platform's part, booking platform's part)`` of a platform fee.

    The booking platform B gets ``floor(amount × bps / 10000)``; the listing platform A
    keeps the rest, rounding remainder included. The parts always sum to ``amount``."""
    via = amount * booking_platform_bps // BPS_DENOM
    return amount - via, via
