"""market keeper: listings visible to every platform, consumer requests, cross-platform
bookings, matcher fills, the platform-fee split and expiry sweeps.

Theory of operation
-------------------
A **listing** makes an asset's current rental offer visible to every platform, with where
the asset is (a geohash) and when it may be booked. It pins the offer's version: a new offer,
a withdrawn offer, a frozen asset or another operator makes it stale, and booking it fails
with ``offer_unavailable`` without changing anything. Listings are kept in two ordered
indexes, by class and 5-character cell then hourly rate, and by class then hourly rate, so
a search walks only the ranges it asks for (see :meth:`MarketKeeper.search`).

A **booking** (``market/book``, signed by the consumer) reserves through the rental keeper
(its calendar, credit gate and escrow) and records the platform it came through (B) next to
the listing platform (A). When the rental settles, rental asks :meth:`split_platform_fee`
who receives the operator's part of the platform fee: a cross-platform booking shares it
by ``booking_platform_bps``; everything else goes to the operator as before.

A **request** is a consumer's signed demand with limits (class, place and radius, window,
price, deposit, condition). It pre-authorises one booking: any platform may ``market/fill``
it with a listing, and the chain checks the listing against every limit before it reserves
on the consumer's behalf. The off-chain matcher (``sharechain.market.matcher``) chooses the
fills; a stale fill fails with ``offer_unavailable`` or ``request_closed``.

Listings expire at the end of their availability and requests when their window starts: an
end-block sweep walks the due part of one index, at most ``sweep_items_max`` per block.
Only this module writes ``market/`` keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sharechain.app.params import ParamStore
from sharechain.app.framework import Context
from sharechain.app.state import Readable, prefix_end
from sharechain.crypto import bech32_address
from sharechain.encoding import decode_trusted, encode, to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.identity.common import read_record
from sharechain.modules.market import keys
from sharechain.modules.market.deps import AssetsPort, RentalPort, RentalView, RolesPort
from sharechain.modules.market.rules import fit_error, split_fee
from sharechain.modules.market.types import (
    CANCELLED,
    DEPOSIT_ABOVE_MAX,
    EXPIRED,
    FILLED,
    HOUR_MS,
    ID_BYTES,
    INVALID_WINDOW,
    LISTING_NOT_FOUND,
    NOT_A_PLATFORM,
    NOT_ASSET_OPERATOR,
    NOT_LISTER,
    NOT_REQUESTER,
    OFFER_NOT_FOUND,
    OFFER_UNAVAILABLE,
    OPEN,
    PRICE_ABOVE_MAX,
    REQUEST_CLOSED,
    REQUEST_NOT_FOUND,
    TOO_MANY_REQUESTS,
    WINDOW_UNAVAILABLE,
    Book,
    Booking,
    CancelRequest,
    Delist,
    Fill,
    ListAsset,
    Listing,
    Params,
    PostRequest,
    Request,
    rate_per_hour,
    window_price,
)
from sharechain.modules.rental.types import Reserve

PLATFORM_ROLE = "platform"
CONSUMER_ROLE = "consumer"
REQUEST_AHEAD_MS_MAX = 90 * 86_400_000    # a request's window starts at most this far ahead
SEARCH_LIMIT_MAX = 500                    # results per search page
SEARCH_SCAN_KEYS_MAX = 2_000              # index keys one search call reads at most
BOOKED_WINDOWS_SHOWN_MAX = 8              # booked windows reported per search hit

# Rental's refusals that mean "this listing cannot be booked any more": a fill or booking
# naming it fails with offer_unavailable (the message keeps the rental's own code).
STALE_CODES = frozenset({
    "offer_not_found", "offer_changed", "offer_stale", "asset_booked", "asset_in_use",
    "asset_not_found", "asset_not_confirmed", "asset_frozen", "asset_not_pledged",
    "asset_operator_inactive"})


def _err(code: str, message: str) -> ShareChainError:
    return ShareChainError(code, message)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A listing search (see README "Search"); 0 / "" / None mean "any"."""

    class_name: str
    area: str = ""              # geohash prefix, 1..12 characters
    from_ms: int = 0            # with to_ms: the window to book; listings free in it only
    to_ms: int = 0
    max_price: int = 0          # whole window (with a window) or per hour (without)
    tier: int | None = None     # the consumer's tier rank: listings it may book
    min_condition: int = 0
    limit: int = 50
    cursor: bytes = b""         # the last index key of the previous page

    @property
    def has_window(self) -> bool:
        return self.to_ms > self.from_ms


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[dict[str, Any]]
    cursor: bytes               # resume after this key (b"": the walk is complete)
    scanned: int                # index keys read


class MarketKeeper:
    def __init__(self, rental: RentalPort, roles: RolesPort, assets: AssetsPort) -> None:
        self.rental = rental
        self.roles = roles
        self.assets = assets
        self.param_store = ParamStore(Params, keys.PARAMS_KEY, "market")

    # ================================================================ reads
    def params(self, state: Readable) -> Params:
        return self.param_store.get(state)

    def set_params(self, ctx: Context, params: Params) -> None:
        self.param_store.set(ctx, params)

    @staticmethod
    def _seq(state: Readable, key: bytes) -> int:
        raw = state.get(key)
        return 0 if raw is None else int(decode_trusted(raw))

    def last_listing_seq(self, state: Readable) -> int:
        return self._seq(state, keys.LISTING_SEQ_KEY)

    def last_request_seq(self, state: Readable) -> int:
        return self._seq(state, keys.REQUEST_SEQ_KEY)

    def listing(self, state: Readable, lid: bytes) -> Listing | None:
        return read_record(state, Listing, keys.listing_key(lid))  # type: ignore[no-any-return]

    def listing_of_asset(self, state: Readable, asset_id: bytes) -> Listing | None:
        lid = state.get(keys.listing_of_asset_key(asset_id))
        return None if lid is None else self.listing(state, lid)

    def request(self, state: Readable, rid: bytes) -> Request | None:
        return read_record(state, Request, keys.request_key(rid))  # type: ignore[no-any-return]

    def booking(self, state: Readable, rental_id: bytes) -> Booking | None:
        return read_record(state, Booking, keys.booking_key(rental_id))  # type: ignore[no-any-return]

    def open_requests_of(self, state: Readable, consumer: bytes, limit: int) -> list[bytes]:
        prefix = keys.CONSUMER_REQUEST_PREFIX + consumer
        return [k[len(prefix):] for k, _ in
                islice(state.iter_range(prefix, prefix_end(prefix)), limit)]

    def _require_listing(self, ctx: Context, lid: bytes) -> Listing:
        listing = self.listing(ctx.state, lid)
        if listing is not None:
            return listing
        if 0 < int.from_bytes(lid, "big") <= self.last_listing_seq(ctx.state):
            raise _err(OFFER_UNAVAILABLE, f"listing {lid.hex()} is no longer listed (delisted, "
                                          "replaced or past its availability)")
        raise _err(LISTING_NOT_FOUND, f"no listing {lid.hex()}")

    def _require_request(self, ctx: Context, rid: bytes) -> Request:
        req = self.request(ctx.state, rid)
        if req is None:
            raise _err(REQUEST_NOT_FOUND, f"no request {rid.hex()}")
        return req

    def _require_platform(self, ctx: Context, addr: bytes, what: str) -> None:
        if not self.roles.has_role(ctx.state, addr, PLATFORM_ROLE):
            raise _err(NOT_A_PLATFORM, f"the {what} {bech32_address(addr)} is not a platform")

    # ================================================================ listings
    def list_asset(self, ctx: Context, msg: ListAsset) -> Listing:
        self.roles.require_role(ctx, ctx.sender, PLATFORM_ROLE)
        asset = self.assets.require_rentable(ctx, msg.asset_id)
        if asset.operator != ctx.sender:
            raise _err(NOT_ASSET_OPERATOR, "only the asset's operator platform may list it")
        offer = self.rental.offer(ctx.state, msg.asset_id)
        if offer is None:
            raise _err(OFFER_NOT_FOUND, "the asset has no rental offer to list "
                                        "(send rental/offer first)")
        if msg.available_to_ms <= ctx.time_ms:
            raise _err(INVALID_WINDOW, "the availability is already over")
        prev = self.listing_of_asset(ctx.state, msg.asset_id)
        if prev is not None:
            self._unindex(ctx, prev)
            ctx.emit("market_delisted", listing_id=prev.id, asset_id=prev.asset_id,
                     by=ctx.sender, reason="replaced")
        seq = self.last_listing_seq(ctx.state) + 1
        t = offer.terms
        listing = Listing(
            id=keys.id_of(seq), asset_id=msg.asset_id, class_name=asset.class_name,
            platform=ctx.sender, geohash=msg.geohash, condition=msg.condition,
            available_from_ms=msg.available_from_ms, available_to_ms=msg.available_to_ms,
            offer_version=offer.version, price_per_unit=t.price_per_unit, unit_ms=t.unit_ms,
            deposit=t.deposit, min_duration_ms=t.min_duration_ms,
            max_duration_ms=t.max_duration_ms, min_credit_tier=t.min_credit_tier,
            rate_per_hour=rate_per_hour(t.price_per_unit, t.unit_ms), listed_ms=ctx.time_ms)
        ctx.state.set(keys.LISTING_SEQ_KEY, encode(seq))
        self._index(ctx, listing)
        ctx.emit("market_listed", listing_id=listing.id, asset_id=listing.asset_id,
                 platform=ctx.sender, class_name=listing.class_name, geohash=listing.geohash,
                 rate_per_hour=listing.rate_per_hour, offer_version=listing.offer_version,
                 available_from_ms=listing.available_from_ms,
                 available_to_ms=listing.available_to_ms)
        return listing

    def delist(self, ctx: Context, msg: Delist) -> None:
        listing = self._require_listing(ctx, msg.listing_id)
        allowed = {listing.platform}
        asset = self.assets.get(ctx.state, listing.asset_id)
        if asset is not None:
            allowed |= {asset.owner, asset.operator}
        if ctx.sender not in allowed:
            raise _err(NOT_LISTER, "only the listing platform or the asset's owner or operator "
                                   "may delist it")
        self._unindex(ctx, listing)
        ctx.emit("market_delisted", listing_id=listing.id, asset_id=listing.asset_id,
                 by=ctx.sender, reason="delisted")

    @staticmethod
    def _listing_index_keys(listing: Listing) -> list[bytes]:
        return [keys.listing_of_asset_key(listing.asset_id),
                keys.listing_by_platform_key(listing.platform, listing.id),
                keys.area_key(listing.class_name, listing.geohash, listing.rate_per_hour,
                              listing.id),
                keys.price_key(listing.class_name, listing.rate_per_hour, listing.id),
                keys.due_key(listing.available_to_ms, keys.DUE_LISTING, listing.id)]

    def _index(self, ctx: Context, listing: Listing) -> None:
        ctx.set_record(keys.listing_key(listing.id), listing)
        asset_key, *others = self._listing_index_keys(listing)
        ctx.state.set(asset_key, listing.id)
        for k in others:
            ctx.state.set(k, b"")

    def _unindex(self, ctx: Context, listing: Listing) -> None:
        ctx.delete(keys.listing_key(listing.id))
        for k in self._listing_index_keys(listing):
            ctx.delete(k)

    # ================================================================ booking
    def book(self, ctx: Context, msg: Book) -> Booking:
        """A consumer books a listed asset through platform ``msg.via``."""
        listing = self._require_listing(ctx, msg.listing_id)
        self.roles.require_role(ctx, ctx.sender, CONSUMER_ROLE)
        self._require_platform(ctx, msg.via, "booking platform")
        if not listing.available_from_ms <= msg.start_ms < msg.end_ms \
                <= listing.available_to_ms:
            raise _err(WINDOW_UNAVAILABLE, "the window lies outside the listing's availability")
        price = window_price(listing.price_per_unit, listing.unit_ms, msg.start_ms, msg.end_ms)
        if msg.max_price and price > msg.max_price:
            raise _err(PRICE_ABOVE_MAX, f"the window costs {price}; you allowed {msg.max_price}")
        r = self._reserve(ctx, listing, msg.start_ms, msg.end_ms, ctx.sender)
        return self._record_booking(ctx, r, listing, b"", ctx.sender, msg.via)

    def _reserve(self, ctx: Context, listing: Listing, start_ms: int, end_ms: int,
                 consumer: bytes) -> RentalView:
        asset = self.assets.get(ctx.state, listing.asset_id)
        if asset is None or asset.operator != listing.platform:
            raise _err(OFFER_UNAVAILABLE, "the asset is no longer operated by the listing "
                                          "platform")
        try:
            return self.rental.reserve(
                ctx, Reserve(listing.asset_id, start_ms, end_ms, listing.offer_version),
                consumer)
        except ShareChainError as exc:
            if exc.code in STALE_CODES:
                raise _err(OFFER_UNAVAILABLE, f"{exc.code}: {exc.message}") from None
            raise

    def _record_booking(self, ctx: Context, r: RentalView, listing: Listing, request_id: bytes,
                        consumer: bytes, via: bytes) -> Booking:
        b = Booking(rental_id=r.id, listing_id=listing.id, request_id=request_id,
                    consumer=consumer, lister=listing.platform, via=via, booked_ms=ctx.time_ms)
        ctx.set_record(keys.booking_key(r.id), b)
        ctx.emit("market_booked", rental_id=r.id, listing_id=listing.id,
                 request_id=request_id, consumer=consumer, lister=listing.platform, via=via,
                 deposit=r.deposit, prepaid=r.prepaid)
        return b

    # ================================================================ requests
    def post_request(self, ctx: Context, msg: PostRequest) -> Request:
        self.roles.require_role(ctx, ctx.sender, CONSUMER_ROLE)
        if msg.via:
            self._require_platform(ctx, msg.via, "booking platform")
        if not ctx.time_ms < msg.start_ms <= ctx.time_ms + REQUEST_AHEAD_MS_MAX:
            raise _err(INVALID_WINDOW, "a request's window must start after this block and at "
                                       f"most {REQUEST_AHEAD_MS_MAX} ms ahead")
        cap = self.params(ctx.state).requests_per_consumer_max
        if len(self.open_requests_of(ctx.state, ctx.sender, cap)) >= cap:
            raise _err(TOO_MANY_REQUESTS, f"at most {cap} open requests per consumer")
        seq = self.last_request_seq(ctx.state) + 1
        req = Request(id=keys.id_of(seq), consumer=ctx.sender, class_name=msg.class_name,
                      geohash=msg.geohash, radius_m=msg.radius_m, start_ms=msg.start_ms,
                      end_ms=msg.end_ms, max_price=msg.max_price, max_deposit=msg.max_deposit,
                      min_condition=msg.min_condition, via=msg.via, created_ms=ctx.time_ms)
        ctx.state.set(keys.REQUEST_SEQ_KEY, encode(seq))
        ctx.set_record(keys.request_key(req.id), req)
        for k in self._request_index_keys(req):
            ctx.state.set(k, b"")
        ctx.emit("market_requested", request_id=req.id, consumer=req.consumer,
                 class_name=req.class_name, geohash=req.geohash, radius_m=req.radius_m,
                 start_ms=req.start_ms, end_ms=req.end_ms, max_price=req.max_price)
        return req

    def cancel_request(self, ctx: Context, msg: CancelRequest) -> None:
        req = self._require_request(ctx, msg.request_id)
        if ctx.sender != req.consumer:
            raise _err(NOT_REQUESTER, "only the consumer who posted a request may cancel it")
        if req.state != OPEN:
            raise _err(REQUEST_CLOSED, f"the request is {req.state}")
        self._close_request(ctx, req, CANCELLED)
        ctx.emit("market_request_cancelled", request_id=req.id, consumer=req.consumer)

    @staticmethod
    def _request_index_keys(req: Request) -> list[bytes]:
        return [keys.open_request_key(req.class_name, req.id),
                keys.consumer_request_key(req.consumer, req.id),
                keys.due_key(req.start_ms, keys.DUE_REQUEST, req.id)]

    def _close_request(self, ctx: Context, req: Request, state: str, **changes: Any) -> Request:
        for k in self._request_index_keys(req):
            ctx.delete(k)
        req = dataclasses.replace(req, state=state, **changes)
        ctx.set_record(keys.request_key(req.id), req)
        return req

    # ================================================================ fills (matchers)
    def fill(self, ctx: Context, msg: Fill) -> Booking:
        """A platform books ``msg.listing_id`` for request ``msg.request_id`` on the
        consumer's behalf, within the request's limits."""
        self.roles.require_role(ctx, ctx.sender, PLATFORM_ROLE)
        req = self._require_request(ctx, msg.request_id)
        if req.state != OPEN:
            raise _err(REQUEST_CLOSED, f"the request is {req.state}")
        if ctx.time_ms >= req.start_ms:
            raise _err(REQUEST_CLOSED, "the request's window has started")
        listing = self._require_listing(ctx, msg.listing_id)
        broken = fit_error(req, listing)
        if broken is not None:
            raise _err(*broken)
        r = self._reserve(ctx, listing, req.start_ms, req.end_ms, req.consumer)
        if r.deposit > req.max_deposit:
            raise _err(DEPOSIT_ABOVE_MAX, f"the deposit would be {r.deposit}; the request "
                                          f"allows {req.max_deposit}")
        via = req.via if req.via and self.roles.has_role(ctx.state, req.via, PLATFORM_ROLE) \
            else ctx.sender
        self._close_request(ctx, req, FILLED, rental_id=r.id, filled_by=ctx.sender,
                            listing_id=listing.id)
        ctx.emit("market_filled", request_id=req.id, listing_id=listing.id, rental_id=r.id,
                 consumer=req.consumer, filled_by=ctx.sender)
        return self._record_booking(ctx, r, listing, req.id, req.consumer, via)

    # ================================================================ the fee split
    def split_platform_fee(self, ctx: Context, rental: RentalView, amount: int
                           ) -> list[tuple[bytes, int]]:
        """rental's FeeSplitter: a booking through another platform shares the operator's
        part of the platform fee (see README "Fee split"); the parts are recorded on the
        booking."""
        b = self.booking(ctx.state, rental.id)
        if b is None or b.via == rental.operator:
            return [(rental.operator, amount)]
        lister_part, via_part = split_fee(amount, self.params(ctx.state).booking_platform_bps)
        ctx.set_record(keys.booking_key(rental.id), dataclasses.replace(
            b, lister_amount=lister_part, via_amount=via_part, split_ms=ctx.time_ms))
        return [(rental.operator, lister_part), (b.via, via_part)]

    # ================================================================ end-block sweep
    def sweep(self, ctx: Context) -> None:
        """Expire listings past their availability and requests whose window started."""
        end = keys.DUE_PREFIX + keys.be8(ctx.time_ms + 1)
        due = list(islice(ctx.state.iter_range(keys.DUE_PREFIX, end),
                          self.params(ctx.state).sweep_items_max))
        for key, _ in due:
            _due_ms, kind, item_id = keys.parse_due(key)
            if kind == keys.DUE_LISTING:
                listing = self.listing(ctx.state, item_id)
                if listing is not None:
                    self._unindex(ctx, listing)
                    ctx.emit("market_expired", listing_id=item_id)
            else:
                req = self.request(ctx.state, item_id)
                if req is not None and req.state == OPEN:
                    self._close_request(ctx, req, EXPIRED)
                    ctx.emit("market_expired", request_id=item_id)
            ctx.delete(key)

    # ================================================================ search
    def search(self, state: Readable, q: SearchQuery) -> SearchPage:
        """Walk the area index (with an area) or the price index (without) from the cursor,
        cheapest first within each cell, skipping to the next cell past the price bound.
        Reads at most ``SEARCH_SCAN_KEYS_MAX`` index keys; a page may hold fewer hits than
        ``limit`` and still have a cursor."""
        base, cell_len = self._search_base(q)
        bound = self._rate_bound(q)
        start = q.cursor + b"\x00" if q.cursor else base
        end = prefix_end(base)
        hits: list[dict[str, Any]] = []
        scanned = 0
        while True:
            jump = b""
            for k, _ in state.iter_range(start, end):
                scanned += 1
                rate = int.from_bytes(k[cell_len:cell_len + 8], "big")
                if bound is not None and rate > bound:
                    jump = prefix_end(k[:cell_len])  # the rest of this cell costs more
                    break
                hit = self._hit(state, k[-ID_BYTES:], q)
                if hit is not None:
                    hits.append(hit)
                if len(hits) >= q.limit or scanned >= SEARCH_SCAN_KEYS_MAX:
                    return SearchPage(hits, k, scanned)
            if not jump or jump >= end:
                return SearchPage(hits, b"", scanned)
            if scanned >= SEARCH_SCAN_KEYS_MAX:
                return SearchPage(hits, k, scanned)  # the next page skips this cell's rest
            start = jump

    @staticmethod
    def _search_base(q: SearchQuery) -> tuple[bytes, int]:
        """The index range a search walks and where the rate starts in its keys."""
        if q.area:
            cell_len = len(keys.area_prefix(q.class_name)) + 5
            return keys.area_prefix(q.class_name, q.area[:5]), cell_len
        base = keys.price_prefix(q.class_name)
        return base, len(base)

    @staticmethod
    def _rate_bound(q: SearchQuery) -> int | None:
        """The highest hourly rate that can satisfy ``max_price`` (None: no bound).

        With a window of ``d`` ms, a listing costing at most M has ``price/unit ≤ M/d``, so
        its rounded-up hourly rate is at most ``ceil(M × 1 h / d)``."""
        if not q.max_price:
            return None
        if q.has_window:
            return -(-q.max_price * HOUR_MS // (q.to_ms - q.from_ms))
        return q.max_price

    def _hit(self, state: Readable, lid: bytes, q: SearchQuery) -> dict[str, Any] | None:
        listing = self.listing(state, lid)
        if listing is None:  # the indexes are kept with the record; see invariants
            return None
        if len(q.area) > 5 and not listing.geohash.startswith(q.area):
            return None
        if q.tier is not None and listing.min_credit_tier > q.tier:
            return None
        if listing.condition < q.min_condition:
            return None
        out: dict[str, Any] = dict(to_obj(listing))
        lo, hi = listing.available_from_ms, listing.available_to_ms
        if q.has_window:
            if not (lo <= q.from_ms and q.to_ms <= hi and listing.min_duration_ms
                    <= q.to_ms - q.from_ms <= listing.max_duration_ms):
                return None
            price = window_price(listing.price_per_unit, listing.unit_ms, q.from_ms, q.to_ms)
            if q.max_price and price > q.max_price:
                return None
            lo, hi = q.from_ms, q.to_ms
            out["price"] = price
        elif q.max_price and listing.rate_per_hour > q.max_price:
            return None
        offer = self.rental.offer(state, listing.asset_id)
        if offer is None or offer.version != listing.offer_version:
            return None  # stale: the offer changed or was withdrawn since it was listed
        booked = self.rental.booked_windows(state, listing.asset_id, lo, hi,
                                            BOOKED_WINDOWS_SHOWN_MAX + 1)
        if q.has_window and booked:
            return None
        out["booked"] = [list(w) for w in booked[:BOOKED_WINDOWS_SHOWN_MAX]]
        out["booked_more"] = len(booked) > BOOKED_WINDOWS_SHOWN_MAX
        return out
