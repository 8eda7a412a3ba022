"""The market story — business collaboration between platforms — told against a running
node through the SDK only.

Cast (the devnet's demo world): **carol** provides bikes operated by **bikeco**;
**carshare** is a competing platform; the **faucet** funds newcomers. Each run uses fresh
riders and fresh bikes, so the story can be told again on the same devnet.

1. *A cross-platform booking.* bikeco lists carol's bike; a rider who uses carshare finds it
   by class, area and time window, books it through carshare, rides and returns it. At
   settlement the platform fee (after the reward pool's cut) is split by the market rule:
   bikeco, the listing platform, keeps 70 %, carshare, the booking platform, earns 30 %.
2. *Matching.* Two riders post requests near two more of carol's bikes; carshare's matcher
   assigns them optimally (price + distance) and fills both on chain.
3. *A stale fill.* Between a matcher's snapshot and its fill, bikeco withdraws a bike: the
   fill fails with ``offer_unavailable`` and nothing changes.

:func:`run_market` tells all three and returns a :class:`MarketResult` the integration test
checks; each story is also a method of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sharechain.client import Client
from sharechain.client.market import MarketAPI, match_and_book, plan, snapshot, submit_fills
from sharechain.client.rental import RentalAPI, event_attrs, terms
from sharechain.client.sharing import AssetsAPI, IdentityAPI
from sharechain.crypto import PrivateKey, cid_of
from sharechain.market.matcher import MatchConfig

SECOND = 1_000
TERMS = {
    "price_per_unit": 10_000, "unit_ms": SECOND, "deposit": 20_000,
    "min_duration_ms": 2 * SECOND, "max_duration_ms": 60 * SECOND,
    "cancel_window_ms": 0, "cancel_fee": 0, "late_fee_per_unit": 1_000,
    "grace_ms": 5 * SECOND, "damage_cap": 0, "claim_window_ms": 0,
}
NEWCOMER_FUNDS = 1_000_000
HERE = "wtw3sjq"                               # People's Square, Shanghai
SPOTS = ("wtw3sjr", "wtw3sjw", "wtw3sjm")      # neighbouring 153 m cells
RIDE_MS = 3 * SECOND
REQUEST_LEAD_MS = 30 * SECOND                  # requests start this far ahead


def key(name: str) -> PrivateKey:
    return PrivateKey.from_name(name)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class MarketResult:
    booking: dict[str, Any] = field(default_factory=dict)
    matching: dict[str, Any] = field(default_factory=dict)
    stale: dict[str, Any] = field(default_factory=dict)


class MarketStory:
    def __init__(self, client: Client, out: Callable[[str], None] = print) -> None:
        self.c = client
        self.out = out
        self.market = MarketAPI(client)
        self.rentals = RentalAPI(client)
        self.assets = AssetsAPI(client)
        self.identity = IdentityAPI(client)
        self.stamp = f"{now_ms() % 10**10:010d}"
        self.result = MarketResult()
        self._count = 0
        self._listings: list[str] = []
        self._requests: list[tuple[PrivateKey, str]] = []

    # ------------------------------------------------------------ plumbing
    def chain_now(self) -> int:
        return max(now_ms(), int(self.c.block()["header"]["time_ms"]))

    def rider(self) -> PrivateKey:
        """A fresh, funded consumer (a new key each run)."""
        self._count += 1
        k = key(f"market-demo/{self.stamp}/rider{self._count}")
        self.c.send(key("faucet"), k.address, NEWCOMER_FUNDS)
        self.identity.register(k, "person", f"Rider {self._count}", roles=["consumer"])
        return k

    def listed_bike(self, label: str, geohash: str) -> tuple[str, str]:
        """carol's new bike on bikeco, confirmed, pledged, offered and listed at
        ``geohash``. Returns (asset id, listing id)."""
        carol, bikeco = key("carol"), key("bikeco")
        code = f"BIKE-M{self.stamp}{label}"
        bike = AssetsAPI.asset_id("bike", code).hex()
        self.assets.define(carol, "bike", code, cid_of(f"market demo bike {code}".encode()),
                           bikeco.address)
        self.assets.attest(bikeco, bike, "platform")
        self.assets.pledge(carol, bike)
        self.rentals.offer(carol, bike, terms(**TERMS))
        t = self.chain_now()
        lid = self.market.list_asset(bikeco, bike, geohash, t - 10 * SECOND, t + 3_600 * SECOND,
                                     condition=90)
        self._listings.append(lid)
        return bike, lid

    def balances(self) -> dict[str, int]:
        return {n: self.c.balance(key(n).address) for n in ("bikeco", "carshare")}

    # ------------------------------------------------------------ 1. cross-platform booking
    def cross_platform_booking(self) -> dict[str, Any]:
        self.out("\n1. A rider on carshare books a bike listed by bikeco; the fee is split")
        _bike, lid = self.listed_bike("A", HERE)
        self.out(f"  ✓ bikeco lists carol's bike at {HERE} (listing {lid})")
        rider = self.rider()
        start = self.chain_now() + 2 * SECOND
        hits = self.market.search("bike", area=HERE[:5], from_ms=start,
                                  to_ms=start + RIDE_MS, tier="C")
        found = [h for h in hits["listings"] if h["id"] == lid]
        self.out(f"    search bike / area {HERE[:5]} / the next {RIDE_MS // SECOND} s: "
                 f"{len(hits['listings'])} listing(s); ours costs {found[0]['price']:,}")
        res = self.market.book_tx(rider, lid, start, start + RIDE_MS, key("carshare").address)
        rid = event_attrs(res, "rental_reserved")[0]["rental_id"]
        booked = event_attrs(res, "market_booked")[0]
        self.out(f"  ✓ booked through carshare: rental {rid} (listed by bikeco)")
        self.rentals.start(rider, rid)
        self.rentals.start(key("carol"), rid)
        while self.chain_now() < start + RIDE_MS:
            time.sleep(0.1)
        self.rentals.return_(rider, rid)
        before = self.balances()
        end = self.rentals.confirm_return(key("carol"), rid)
        after = self.balances()
        s = event_attrs(end, "rental_completed")[0]
        split = self.market.booking(rid)     # the split is recorded on the booking
        gains = {n: after[n] - before[n] for n in after}
        self.out(f"    settled: usage {s['usage_fee']:,}, platform fee {s['platform_fee']:,} "
                 f"(reward pool {s['pool_fee']:,})")
        self.out(f"    fee split: bikeco {split['lister_amount']:,}, carshare "
                 f"{split['via_amount']:,} (params: booking platform "
                 f"{self.market.params()['booking_platform_bps'] / 100:g} %)")
        out = {"listing_id": lid, "rental_id": rid, "found": bool(found),
               "lister": booked["lister"], "via": booked["via"],
               "usage_fee": s["usage_fee"], "platform_fee": s["platform_fee"],
               "pool_fee": s["pool_fee"], "lister_amount": split["lister_amount"],
               "via_amount": split["via_amount"], "gains": gains, "booking": split}
        self.result.booking = out
        return out

    # ------------------------------------------------------------ 2. matching
    def matching(self) -> dict[str, Any]:
        self.out("\n2. Two riders post requests; carshare's matcher fills them optimally")
        bikes = [self.listed_bike(f"B{i}", spot) for i, spot in enumerate(SPOTS[:2])]
        self.out("  ✓ bikeco lists two more bikes at " + ", ".join(SPOTS[:2]))
        start = self.chain_now() + REQUEST_LEAD_MS
        riders = [self.rider() for _ in range(2)]
        requests = [self.market.request(r, "bike", spot, 400, start, start + RIDE_MS,
                                        max_price=40_000, max_deposit=40_000,
                                        via=key("carshare").address)
                    for r, spot in zip(riders, (SPOTS[1], SPOTS[0]), strict=True)]
        self.out(f"  ✓ requests {', '.join(requests)} posted (400 m radius, "
                 f"{RIDE_MS // SECOND} s starting in {REQUEST_LEAD_MS // SECOND} s)")
        report = match_and_book(self.c, key("carshare"), ["bike"], MatchConfig(100.0))
        ours = {f["request_id"]: f for f in report.filled if f["request_id"] in requests}
        self.out(f"    matcher: {report.requests} open requests, {report.offers} listings, "
                 f"{report.edges} feasible pairs → {len(report.filled)} filled, "
                 f"{len(report.skipped)} skipped")
        listing_of = {lid: spot for (_b, lid), spot in zip(bikes, SPOTS, strict=False)}
        for rq in requests:
            f = ours.get(rq)
            if f:
                self.out(f"    request {rq} → listing {f['listing_id']} "
                         f"({listing_of.get(f['listing_id'], 'elsewhere')}), rental "
                         f"{f['rental_id']}")
        states = [self.market.get_request(rq)["state"] for rq in requests]
        out = {"requests": requests, "filled": ours, "states": states,
               "listings": [lid for _b, lid in bikes],
               "assigned": {rq: ours[rq]["listing_id"] for rq in ours}}
        self.result.matching = out
        return out

    # ------------------------------------------------------------ 3. a stale fill
    def stale_fill(self) -> dict[str, Any]:
        self.out("\n3. A bike withdrawn between the matcher's snapshot and its fill")
        bike, lid = self.listed_bike("C", SPOTS[2])
        rider = self.rider()
        start = self.chain_now() + REQUEST_LEAD_MS
        rq = self.market.request(rider, "bike", SPOTS[2], 300, start, start + RIDE_MS,
                                 max_price=40_000, max_deposit=40_000)
        self._requests.append((rider, rq))
        snap = snapshot(self.c, ["bike"])
        pairs, _edges, _cost = plan(snap)
        ours = [(d.id, o.id) for d, o in pairs if d.id.hex() == rq and o.id.hex() == lid]
        # (on a busy devnet another listing may serve the request better: fill ours anyway)
        ours = ours or [(bytes.fromhex(rq), bytes.fromhex(lid))]
        self.out(f"    the matcher plans request {rq} → listing {lid}")
        self.rentals.withdraw_offer(key("carol"), bike)
        self.out("  ✓ carol withdraws the bike's rental offer")
        balance = self.c.balance(rider.address)
        report = submit_fills(self.c, key("carshare"), ours)
        skipped = report.skipped[0] if report.skipped else {}
        self.out(f"  ✗ the fill is refused: {skipped.get('code')} ({skipped.get('message')})")
        state = self.market.get_request(rq)["state"]
        out = {"request_id": rq, "listing_id": lid, "planned": len(ours),
               "code": skipped.get("code", ""), "message": skipped.get("message", ""),
               "request_state": state,
               "rider_balance_unchanged": self.c.balance(rider.address) == balance}
        self.out(f"    the request is still {state}; the rider's balance is unchanged")
        self.result.stale = out
        return out

    def cleanup(self) -> None:
        """Delist this run's bikes and cancel its open requests, so that a later run on the
        same devnet starts from a clean market."""
        for lid in self._listings:
            self.market.delist(key("bikeco"), lid, check=False)
        for rider, rq in self._requests:
            if self.market.get_request(rq)["state"] == "open":
                self.market.cancel_request(rider, rq, check=False)

    def run(self) -> MarketResult:
        self.out(f"ShareChain market story on {self.c.url} (chain {self.c.chain_id})")
        self.cross_platform_booking()
        self.matching()
        self.stale_fill()
        self.cleanup()
        self.out("\nDone: listings are public — try `/v1/query/market/search?class=bike&area="
                 f"{HERE[:5]}`")
        return self.result


def run_market(client: Client, out: Callable[[str], None] = print) -> MarketResult:
    """Tell the market story against the node ``client`` talks to."""
    return MarketStory(client, out).run()
