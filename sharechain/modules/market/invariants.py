"""market invariants, checked after every block in tests and simulation.

* ``listing_indexes``: the by-asset, by-platform, area, price and expiry indexes hold exactly
  the keys the active listings imply (nothing missing, nothing left over), and no id exceeds
  the listing sequence;
* ``request_indexes``: the open-request, by-consumer and expiry indexes hold exactly the keys
  of the open requests; every request is in a known state and a filled one names its rental.

Checks walk every listing and request: they are for tests, not for production blocks.
"""

from __future__ import annotations

from sharechain.app.framework import InvariantCheck
from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode_trusted, from_obj
from sharechain.modules.market import keys
from sharechain.modules.market.keeper import MarketKeeper
from sharechain.modules.market.types import (
    CANCELLED,
    EXPIRED,
    FILLED,
    OPEN,
    Listing,
    Request,
)

REQUEST_STATES = (OPEN, FILLED, CANCELLED, EXPIRED)


def _scan(state: Readable, prefix: bytes) -> list[tuple[bytes, bytes]]:
    return list(state.iter_range(prefix, prefix_end(prefix)))


def _due_keys(state: Readable, kind: int) -> set[bytes]:
    return {k for k, _ in _scan(state, keys.DUE_PREFIX) if keys.parse_due(k)[1] == kind}


def _seq(state: Readable, key: bytes) -> int:
    raw = state.get(key)
    return 0 if raw is None else int(decode_trusted(raw))


def _diff(what: str, expected: set[bytes], actual: set[bytes]) -> str | None:
    if expected == actual:
        return None
    missing, extra = sorted(expected - actual), sorted(actual - expected)
    return (f"{what}: {len(missing)} missing (first {missing[:1]!r}), "
            f"{len(extra)} left over (first {extra[:1]!r})")


def listing_indexes(state: Readable) -> str | None:
    listings = [from_obj(Listing, decode_trusted(v)) for _, v in
                _scan(state, keys.LISTING_PREFIX)]
    last = _seq(state, keys.LISTING_SEQ_KEY)
    for listing in listings:
        if not 0 < int.from_bytes(listing.id, "big") <= last:
            return f"listing {listing.id.hex()} is beyond the sequence {last}"
    expected = {k for listing in listings for k in MarketKeeper._listing_index_keys(listing)}
    actual = {k for p in (keys.LISTING_OF_ASSET_PREFIX, keys.LISTING_BY_PLATFORM_PREFIX,
                          keys.AREA_INDEX_PREFIX, keys.PRICE_INDEX_PREFIX)
              for k, _ in _scan(state, p)} | _due_keys(state, keys.DUE_LISTING)
    problem = _diff("listing indexes", expected, actual)
    if problem:
        return problem
    for listing in listings:
        if state.get(keys.listing_of_asset_key(listing.asset_id)) != listing.id:
            return f"the asset index of listing {listing.id.hex()} points elsewhere"
    return None


def request_indexes(state: Readable) -> str | None:
    requests = [from_obj(Request, decode_trusted(v)) for _, v in
                _scan(state, keys.REQUEST_PREFIX)]
    last = _seq(state, keys.REQUEST_SEQ_KEY)
    for r in requests:
        if r.state not in REQUEST_STATES:
            return f"request {r.id.hex()} is in unknown state {r.state!r}"
        if (r.state == FILLED) != bool(r.rental_id):
            return f"request {r.id.hex()} is {r.state} with rental {r.rental_id.hex()!r}"
        if not 0 < int.from_bytes(r.id, "big") <= last:
            return f"request {r.id.hex()} is beyond the sequence {last}"
    expected = {k for r in requests if r.state == OPEN
                for k in MarketKeeper._request_index_keys(r)}
    actual = {k for p in (keys.OPEN_REQUEST_PREFIX, keys.CONSUMER_REQUEST_PREFIX)
              for k, _ in _scan(state, p)} | _due_keys(state, keys.DUE_REQUEST)
    return _diff("request indexes", expected, actual)


INVARIANTS: dict[str, InvariantCheck] = {"listing_indexes": listing_indexes,
                                         "request_indexes": request_indexes}
