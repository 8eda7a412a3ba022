"""SDK for the market module: listings, search, cross-platform bookings, requests, and the
matcher — ``match_and_book`` reads the open requests and listings, assigns them optimally
and submits the fills.

    from sharechain.client import Client
    from sharechain.client.market import MarketAPI, match_and_book
    c = Client("http://127.0.0.1:8700")
    m = MarketAPI(c)
    lid = m.list_asset(bikeco, bike_id, "wtw3sjq", from_ms, to_ms, condition=90)
    hits = m.search(class_name="bike", area="wtw3s", from_ms=t, to_ms=t + 1_800_000)
    rid = m.book(alice, lid, t, t + 1_800_000, via=carshare.address)   # the rental id (hex)
    req = m.request(bob, "bike", "wtw3sjq", 800, t, t + 1_800_000, max_price=500,
                    max_deposit=2_000, via=carshare.address)
    report = match_and_book(c, carshare, classes=["bike"])            # fills, skipped

Writes sign with the given key, wait for the commit and raise
:class:`~sharechain.client.TxFailed` with the chain's stable error code if the tx failed
(``check=False`` returns the result instead). Messages are built as typed records first, so
bad input fails locally with the code the chain would give (``invalid_geohash``,
``invalid_window``, ``invalid_msg``). Reads return the node's JSON (addresses as bech32 text,
ids as hex).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sharechain.client.client import Client
from sharechain.client.rental import event_attrs
from sharechain.client.sharing import Addr, Id, _ModuleAPI, addr, build, hex_id
from sharechain.crypto import PrivateKey, bech32_address
from sharechain.errors import ShareChainError
from sharechain.market.matcher import Demand, Market, MatchConfig, Offer, match_optimal
from sharechain.modules.market.types import (
    Book,
    CancelRequest,
    Delist,
    Fill,
    ListAsset,
    PostRequest,
)

PAGES_MAX = 10_000          # a walk over search or request pages stops after this many
FILL_BATCH_TXS_MAX = 1_000  # fills submitted per batch request


class MarketAPI(_ModuleAPI):
    module = "market"

    # ------------------------------------------------------------ listings
    def list_tx(self, key: PrivateKey, asset_id: Id, geohash: str, available_from_ms: int,
                available_to_ms: int, condition: int = 100, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "market/list", build(
            ListAsset, asset_id=hex_id(asset_id), geohash=geohash,
            available_from_ms=available_from_ms, available_to_ms=available_to_ms,
            condition=condition), **kw)

    def list_asset(self, key: PrivateKey, asset_id: Id, geohash: str, available_from_ms: int,
                   available_to_ms: int, condition: int = 100, **kw: Any) -> str:
        """List an asset's current rental offer (``key``: its operator platform); returns
        the listing id (hex)."""
        res = self.list_tx(key, asset_id, geohash, available_from_ms, available_to_ms,
                           condition, **kw)
        return str(event_attrs(res, "market_listed")[0]["listing_id"])

    def delist(self, key: PrivateKey, listing_id: Id, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "market/delist", build(Delist, listing_id=hex_id(listing_id)),
                        **kw)

    # ------------------------------------------------------------ bookings
    def book_tx(self, key: PrivateKey, listing_id: Id, start_ms: int, end_ms: int, via: Addr,
                max_price: int = 0, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "market/book", build(
            Book, listing_id=hex_id(listing_id), start_ms=start_ms, end_ms=end_ms,
            via=addr(via), max_price=max_price), **kw)

    def book(self, key: PrivateKey, listing_id: Id, start_ms: int, end_ms: int, via: Addr,
             max_price: int = 0, **kw: Any) -> str:
        """Book a listed asset through platform ``via``; returns the rental id (hex)."""
        res = self.book_tx(key, listing_id, start_ms, end_ms, via, max_price, **kw)
        return str(event_attrs(res, "rental_reserved")[0]["rental_id"])

    # ------------------------------------------------------------ requests
    def request_tx(self, key: PrivateKey, class_name: str, geohash: str, radius_m: int,
                   start_ms: int, end_ms: int, max_price: int, max_deposit: int,
                   min_condition: int = 0, via: Addr | None = None,
                   **kw: Any) -> dict[str, Any]:
        return self._tx(key, "market/request", build(
            PostRequest, class_name=class_name, geohash=geohash, radius_m=radius_m,
            start_ms=start_ms, end_ms=end_ms, max_price=max_price, max_deposit=max_deposit,
            min_condition=min_condition, via=addr(via) if via else b""), **kw)

    def request(self, key: PrivateKey, class_name: str, geohash: str, radius_m: int,
                start_ms: int, end_ms: int, max_price: int, max_deposit: int,
                min_condition: int = 0, via: Addr | None = None, **kw: Any) -> str:
        """Post a request (it pre-authorises one booking within its limits); returns the
        request id (hex)."""
        res = self.request_tx(key, class_name, geohash, radius_m, start_ms, end_ms, max_price,
                              max_deposit, min_condition, via, **kw)
        return str(event_attrs(res, "market_requested")[0]["request_id"])

    def cancel_request(self, key: PrivateKey, request_id: Id, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "market/cancel_request",
                        build(CancelRequest, request_id=hex_id(request_id)), **kw)

    def fill(self, key: PrivateKey, request_id: Id, listing_id: Id,
             **kw: Any) -> dict[str, Any]:
        """Book ``listing_id`` for request ``request_id`` (``key``: a platform)."""
        return self._tx(key, "market/fill", fill_msg(request_id, listing_id), **kw)

    # ------------------------------------------------------------ reads
    def params(self) -> dict[str, Any]:
        return self._q("params")  # type: ignore[no-any-return]

    def listing(self, listing_id: Id) -> dict[str, Any]:
        return self._q("listing", id=_hex(listing_id))  # type: ignore[no-any-return]

    def listing_of(self, asset_id: Id) -> dict[str, Any]:
        return self._q("listing_of", asset_id=_hex(asset_id))  # type: ignore[no-any-return]

    def search(self, class_name: str, area: str = "", from_ms: int = 0, to_ms: int = 0,
               max_price: int = 0, tier: int | str | None = None, min_condition: int = 0,
               limit: int = 50, cursor: str = "") -> dict[str, Any]:
        """One page of listings: ``{"listings": [...], "cursor": "<hex>" or ""}``."""
        return self._q("search", **{  # type: ignore[no-any-return]
            "class": class_name, "area": area or None, "from_ms": from_ms or None,
            "to_ms": to_ms or None, "max_price": max_price or None, "tier": tier,
            "min_condition": min_condition or None, "limit": limit, "cursor": cursor or None})

    def search_all(self, class_name: str, **q: Any) -> Iterator[dict[str, Any]]:
        """Every listing the search selects, following the cursor page by page."""
        cursor = ""
        for _ in range(PAGES_MAX):
            page = self.search(class_name, cursor=cursor, **q)
            yield from page["listings"]
            cursor = page["cursor"]
            if not cursor:
                return

    def get_request(self, request_id: Id) -> dict[str, Any]:
        return self._q("request", id=_hex(request_id))  # type: ignore[no-any-return]

    def open_requests(self, class_name: str, limit: int = 500) -> Iterator[dict[str, Any]]:
        """Every open request of a class, oldest first (all pages)."""
        cursor = ""
        for _ in range(PAGES_MAX):
            page = self._q("requests", **{"class": class_name, "limit": limit,
                                          "cursor": cursor or None})
            yield from page["requests"]
            cursor = page["cursor"]
            if not cursor:
                return

    def by_consumer(self, address: Addr) -> list[dict[str, Any]]:
        return self._q("by_consumer",  # type: ignore[no-any-return]
                       address=bech32_address(addr(address)))["requests"]

    def by_platform(self, address: Addr, limit: int = 100) -> dict[str, Any]:
        return self._q("by_platform", address=bech32_address(addr(address)),  # type: ignore[no-any-return]
                       limit=limit)

    def booking(self, rental_id: Id) -> dict[str, Any]:
        return self._q("booking", rental_id=_hex(rental_id))  # type: ignore[no-any-return]


def _hex(i: Id) -> str:
    return i if isinstance(i, str) else i.hex()


def fill_msg(request_id: Id, listing_id: Id) -> Fill:
    return build(Fill, request_id=hex_id(request_id),  # type: ignore[no-any-return]
                 listing_id=hex_id(listing_id))


# ==================================================================== the matcher, over the API

def offer_of(hit: dict[str, Any]) -> Offer:
    """A matcher offer from a search hit (the node's JSON)."""
    return Offer(
        id=bytes.fromhex(hit["id"]), class_name=hit["class_name"], geohash=hit["geohash"],
        price_per_unit=hit["price_per_unit"], unit_ms=hit["unit_ms"], deposit=hit["deposit"],
        min_duration_ms=hit["min_duration_ms"], max_duration_ms=hit["max_duration_ms"],
        available_from_ms=hit["available_from_ms"], available_to_ms=hit["available_to_ms"],
        min_credit_tier=hit["min_credit_tier"], condition=hit["condition"],
        booked=tuple((int(s), int(e)) for s, e in hit.get("booked", ())))


def demand_of(req: dict[str, Any], standing: dict[str, Any]) -> Demand:
    """A matcher demand from a request (the node's JSON) and its consumer's credit score."""
    return Demand(
        id=bytes.fromhex(req["id"]), class_name=req["class_name"], geohash=req["geohash"],
        radius_m=req["radius_m"], start_ms=req["start_ms"], end_ms=req["end_ms"],
        max_price=req["max_price"], max_deposit=req["max_deposit"],
        min_condition=req["min_condition"], tier=int(standing.get("tier_rank", 0)),
        deposit_multiplier_bps=int(standing.get("deposit_multiplier_bps", 10_000)))


@dataclass
class Snapshot:
    demands: list[Demand]
    offers: list[Offer]
    time_ms: int                       # the latest block time when it was read


def snapshot(client: Client, classes: Sequence[str]) -> Snapshot:
    """Open requests and live listings of ``classes``, with each consumer's standing."""
    m = MarketAPI(client)
    now = int(client.block()["header"]["time_ms"])
    standings: dict[str, dict[str, Any]] = {}
    demands: list[Demand] = []
    offers: list[Offer] = []
    for cls in classes:
        for req in m.open_requests(cls):
            if req["start_ms"] <= now:
                continue  # expires at the end of the next block
            who = req["consumer"]
            if who not in standings:
                try:
                    standings[who] = client.query("credit", "score", address=who, at_ms=now)
                except ShareChainError:
                    standings[who] = {}
            demands.append(demand_of(req, standings[who]))
        offers += [offer_of(h) for h in m.search_all(cls, limit=500)]
    return Snapshot(demands, offers, now)


@dataclass
class MatchReport:
    planned: list[tuple[str, str]] = field(default_factory=list)    # (request id, listing id)
    filled: list[dict[str, Any]] = field(default_factory=list)      # request, listing, rental
    skipped: list[dict[str, Any]] = field(default_factory=list)     # request, listing, code,
    #                                                                  message
    requests: int = 0
    offers: int = 0
    edges: int = 0
    cost: float = 0.0


def plan(snap: Snapshot, cfg: MatchConfig | None = None) -> tuple[list[tuple[Demand, Offer]],
                                                                  int, float]:
    """The optimal assignment of a snapshot: (pairs, feasible pairs considered, cost)."""
    market = Market(snap.demands, snap.offers)
    edges = market.edges(cfg)
    a = match_optimal(edges)
    return [(market.demands[d], market.offers[o]) for d, o in a.pairs], len(edges.rows), a.cost


def submit_fills(client: Client, key: PrivateKey, pairs: Sequence[tuple[Id, Id]],
                 report: MatchReport | None = None, timeout_s: float = 60.0) -> MatchReport:
    """Sign one ``market/fill`` per (request id, listing id), submit them in batches and
    wait for each result. A fill the chain refuses (stale listing, closed request, credit,
    funds) lands in ``skipped`` with its code: the chain changed nothing for it."""
    report = report or MatchReport()
    fee = client.required_fee(["market/fill"])
    for lo in range(0, len(pairs), FILL_BATCH_TXS_MAX):
        chunk = pairs[lo:lo + FILL_BATCH_TXS_MAX]
        # The committed nonce: every earlier chunk's admitted fills are committed by now.
        # (The client's own nonce cache heals itself on its next broadcast.)
        nonce = int(client.account(key.address)["nonce"])
        raws = [client.build_tx(key, [("market/fill", fill_msg(rq, li))], fee=fee,
                                nonce=nonce + i) for i, (rq, li) in enumerate(chunk)]
        res = client.submit_batch(raws)
        for (rq, li), r in zip(chunk, res["results"], strict=True):
            entry = {"request_id": _hex(rq), "listing_id": _hex(li)}
            if r["code"]:
                report.skipped.append({**entry, "code": r["code"], "message": r["message"]})
                continue
            t = client.wait_for_tx(r["hash"], timeout_s)["result"]
            if t["ok"]:
                rental = next(e["attrs"]["rental_id"] for e in t["events"]
                              if e["type"] == "rental_reserved")
                report.filled.append({**entry, "rental_id": rental, "tx": r["hash"]})
            else:
                report.skipped.append({**entry, "code": t["code"], "message": t["message"],
                                       "tx": r["hash"]})
    return report


def match_and_book(client: Client, key: PrivateKey | None, classes: Sequence[str] = ("bike",),
                   cfg: MatchConfig | None = None, dry_run: bool = False) -> MatchReport:
    """Snapshot the open requests and listings of ``classes``, assign them optimally (most
    requests served, then least price + distance) and submit the fills signed by ``key``
    (a platform). With ``dry_run`` (or no key) only the plan is returned."""
    snap = snapshot(client, classes)
    pairs, n_edges, cost = plan(snap, cfg)
    report = MatchReport(planned=[(d.id.hex(), o.id.hex()) for d, o in pairs],
                         requests=len(snap.demands), offers=len(snap.offers), edges=n_edges,
                         cost=cost)
    if dry_run or not pairs or key is None:
        return report
    return submit_fills(client, key, [(d.id, o.id) for d, o in pairs], report)
