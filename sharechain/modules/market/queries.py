"""market queries (``GET /v1/query/market/<name>?...``); ids are hex, addresses share1….

  params                                      module parameters
  listing      id                             one active listing
  listing_of   asset_id                       the active listing of an asset
  search       class [area from_ms to_ms      listings, cheapest first within each cell;
               max_price tier min_condition   paginated by ``cursor`` (see README "Search")
               limit cursor]
  request      id                             one request (any state)
  requests     class [limit cursor]           open requests of a class, oldest first
  by_consumer  address [limit]                a consumer's open requests
  by_platform  address [limit cursor]         a platform's active listings
  booking      rental_id                      how a rental was booked through the market

Bad parameters give ``invalid_query``; a missing record ``not_found``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from itertools import islice
from typing import Any

from sharechain.app.framework import Query
from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.assets.types import CLASS_NAME_RE
from sharechain.modules.identity.common import INVALID_QUERY, q_address, q_hex, q_int, q_limit
from sharechain.modules.iot.geo import is_geohash
from sharechain.modules.market import keys
from sharechain.modules.market.keeper import SEARCH_LIMIT_MAX, MarketKeeper, SearchQuery
from sharechain.modules.market.types import AMOUNT_MAX, CONDITION_MAX, ID_BYTES, TIER_MAX

# Credit tiers by name, as the credit module ranks them (an offer's min_credit_tier).
TIER_RANK_BY_NAME = {"blocked": 0, "D": 1, "C": 2, "B": 3, "A": 4}


def _bad(message: str) -> ShareChainError:
    return ShareChainError(INVALID_QUERY, message)


def _not_found(what: str) -> ShareChainError:
    return ShareChainError("not_found", f"no {what}")


def _class(q: dict[str, str]) -> str:
    name = q.get("class") or q.get("class_name") or ""
    if not CLASS_NAME_RE.fullmatch(name):
        raise _bad("query parameter 'class' must name an asset class")
    return name


def _tier(q: dict[str, str]) -> int | None:
    v = q.get("tier", "")
    if v == "":
        return None
    if v in TIER_RANK_BY_NAME:
        return TIER_RANK_BY_NAME[v]
    return q_int(q, "tier", None, 0, TIER_MAX)


def _cursor(q: dict[str, str], base: bytes) -> bytes:
    if not q.get("cursor"):
        return b""
    raw = q_hex(q, "cursor")
    if not raw.startswith(base):
        raise _bad("the cursor does not belong to this query")
    return raw


def parse_search(q: dict[str, str]) -> SearchQuery:
    area = q.get("area", "")
    if area and not is_geohash(area):
        raise ShareChainError("invalid_geohash", f"area must be a geohash prefix, got {area!r}")
    from_ms, to_ms = q_int(q, "from_ms", 0), q_int(q, "to_ms", 0)
    if (from_ms or to_ms) and not from_ms < to_ms:
        raise ShareChainError("invalid_window", "from_ms must be before to_ms")
    s = SearchQuery(class_name=_class(q), area=area, from_ms=from_ms, to_ms=to_ms,
                    max_price=q_int(q, "max_price", 0, 0, AMOUNT_MAX), tier=_tier(q),
                    min_condition=q_int(q, "min_condition", 0, 0, CONDITION_MAX),
                    limit=q_int(q, "limit", 50, 1, SEARCH_LIMIT_MAX))
    base = keys.area_prefix(s.class_name, area[:5]) if area else keys.price_prefix(s.class_name)
    cursor = _cursor(q, base)
    return dataclasses.replace(s, cursor=cursor)


def _page_by_prefix(state: Readable, prefix: bytes, q: dict[str, str],
                    load: Callable[[bytes], Any]) -> dict[str, Any]:
    """Records named by the last 8 bytes of index keys under ``prefix``, in key order."""
    cursor = _cursor(q, prefix)
    limit = q_limit(q)
    start = cursor + b"\x00" if cursor else prefix
    rows = list(islice(state.iter_range(start, prefix_end(prefix)), limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [to_obj(load(k[-ID_BYTES:])) for k, _ in rows]
    # Cursors are hex text (never bytes: the API would show a 20-byte key as an address).
    return {"items": items, "cursor": rows[-1][0].hex() if more and rows else ""}


def make_queries(k: MarketKeeper) -> dict[str, Query]:
    def params(state: Readable, q: dict[str, str]) -> Any:
        return to_obj(k.params(state))

    def listing(state: Readable, q: dict[str, str]) -> Any:
        found = k.listing(state, q_hex(q, "id", ID_BYTES))
        if found is None:
            raise _not_found("active listing with this id")
        return to_obj(found)

    def listing_of(state: Readable, q: dict[str, str]) -> Any:
        found = k.listing_of_asset(state, q_hex(q, "asset_id"))
        if found is None:
            raise _not_found("active listing for this asset")
        return to_obj(found)

    def search(state: Readable, q: dict[str, str]) -> Any:
        page = k.search(state, parse_search(q))
        return {"listings": page.hits, "cursor": page.cursor.hex(), "scanned": page.scanned}

    def request(state: Readable, q: dict[str, str]) -> Any:
        found = k.request(state, q_hex(q, "id", ID_BYTES))
        if found is None:
            raise _not_found("request with this id")
        return to_obj(found)

    def requests(state: Readable, q: dict[str, str]) -> Any:
        page = _page_by_prefix(state, keys.open_request_prefix(_class(q)), q,
                               lambda rid: k.request(state, rid))
        return {"requests": page["items"], "cursor": page["cursor"]}

    def by_consumer(state: Readable, q: dict[str, str]) -> Any:
        rids = k.open_requests_of(state, q_address(q, "address"), q_limit(q))
        return {"requests": [to_obj(k.request(state, rid)) for rid in rids]}

    def by_platform(state: Readable, q: dict[str, str]) -> Any:
        prefix = keys.LISTING_BY_PLATFORM_PREFIX + q_address(q, "address")
        page = _page_by_prefix(state, prefix, q, lambda lid: k.listing(state, lid))
        return {"listings": page["items"], "cursor": page["cursor"]}

    def booking(state: Readable, q: dict[str, str]) -> Any:
        found = k.booking(state, q_hex(q, "rental_id", ID_BYTES))
        if found is None:
            raise _not_found("market booking for this rental")
        return to_obj(found)

    return {"params": params, "listing": listing, "listing_of": listing_of, "search": search,
            "request": request, "requests": requests, "by_consumer": by_consumer,
            "by_platform": by_platform, "booking": booking}
