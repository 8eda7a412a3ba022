"""The bike-sharing story, told against a running node through the SDK only.

Cast (the devnet's demo world, keys derived from names): **carol** owns bikes operated by
the **bikeco** platform (5 % fee), **alice**, **bob** and **erin** ride them, **dave** books a
ride he never takes, the city **gateway** relays the bikes' device reports.

1. carol registers a new bike, bikeco (its operator platform) confirms it, carol pledges it
   and bikeco binds its IoT lock; carol lists it for rent (1-second price units).
2. alice reserves, the bike's own signed unlock report starts the rental, she rides (meter
   and location reports), confirms the bike is as described, and the lock report settles it:
   usage fee, platform fee (part to the reward pool), carol's income, the deposit back less
   a damage hold, rewards to both.
3. bob rides past his reserved end: the settlement charges a late fee.
4. erin rides on time; her confirmation is the bike's third, so carol's pledge comes back.
5. carol files a damage claim on erin's ride and erin accepts it.
6. dave reserves and never shows up: with no one pressing a button the reservation expires
   at the end of its start window; carol gets the cancellation fee, dave the rest. The claim
   windows of the rides close the same way and their damage holds are refunded.

Every step prints its tx hash and the balances it moved. :func:`run` returns a summary that
the integration test checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sharechain.client import Client
from sharechain.client.rental import IncentiveAPI, RentalAPI, event_attrs, module_account, terms
from sharechain.client.sharing import AssetsAPI, IotAPI
from sharechain.crypto import PrivateKey, cid_of

SECOND = 1_000
DEMO_TERMS = {
    "price_per_unit": 1_000, "unit_ms": SECOND, "deposit": 20_000,
    "min_duration_ms": 2 * SECOND, "max_duration_ms": 60 * SECOND,
    "cancel_window_ms": 5 * SECOND, "cancel_fee": 500, "late_fee_per_unit": 2_000,
    "grace_ms": SECOND, "damage_cap": 5_000, "claim_window_ms": 4 * SECOND,
}
CAST = ("alice", "bob", "erin", "dave", "carol", "bikeco", "gateway")
REWARD_POOL_NAME = "reward pool"
FEE_COLLECTOR_NAME = "fee collector"


def key(name: str) -> PrivateKey:
    return PrivateKey.from_name(name)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Ride:
    rider: str
    rental_id: str
    settled: dict[str, Any] = field(default_factory=dict)
    rewards: dict[str, int] = field(default_factory=dict)


@dataclass
class DemoResult:
    bike_code: str
    bike_id: str
    rides: list[Ride] = field(default_factory=list)
    expired_rental: str = ""
    expired_state: str = ""
    claim_id: str = ""
    pledge_returned: bool = False
    start_balances: dict[str, int] = field(default_factory=dict)
    end_balances: dict[str, int] = field(default_factory=dict)
    tx_hashes: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)


class Story:
    def __init__(self, url: str, out: Callable[[str], None] = print) -> None:
        self.c = Client(url)
        self.rentals = RentalAPI(self.c)
        self.incentive = IncentiveAPI(self.c)
        self.assets = AssetsAPI(self.c)
        self.iot = IotAPI(self.c)
        self.out = out
        self.code = f"BIKE-D{now_ms() % 10**10:010d}"
        self.bike_id = AssetsAPI.asset_id("bike", self.code)
        self.device = key(f"device/{self.code}")
        self.counter = 0
        self.meter = 0
        self.result = DemoResult(self.code, self.bike_id.hex())

    # ------------------------------------------------------------ output
    def balances(self) -> dict[str, int]:
        out = {n: self.c.balance(key(n).address) for n in CAST}
        out[REWARD_POOL_NAME] = int(self.incentive.pool()["balance"])
        out[FEE_COLLECTOR_NAME] = self.c.balance(module_account("fee_collector"))
        return out

    def show_balances(self, before: dict[str, int] | None = None) -> dict[str, int]:
        now = self.balances()
        parts = []
        for n, v in now.items():
            delta = "" if before is None or v == before[n] else f" ({v - before[n]:+,})"
            parts.append(f"{n} {v:,}{delta}")
        self.out("    balances: " + ", ".join(parts))
        return now

    def step(self, title: str, res: dict[str, Any]) -> dict[str, Any]:
        self.result.tx_hashes.append(res["hash"])
        self.out(f"  ✓ {title}  tx {res['hash'][:16]}… at height {res['height']}")
        return res

    # ------------------------------------------------------------ device
    def report(self, kind: str, rental_id: str = "", **payload: Any) -> dict[str, Any]:
        self.counter += 1
        if rental_id:
            payload["rental_id"] = bytes.fromhex(rental_id)
        r = self.iot.sign_report(self.device, self.bike_id, self.counter, now_ms(), kind,
                                 **payload)
        return self.iot.submit_reports(key("gateway"), [r])

    def ride_reports(self, seconds: float) -> None:
        """Meter and location reports while riding for ``seconds``."""
        path = ["u4pruydqq", "u4pruydqr", "u4pruydqx"]
        steps = len(path)
        for i, cell in enumerate(path):
            time.sleep(seconds / steps)
            self.meter += 25
            self.report("meter", reading=self.meter)
            self.report("location", geohash=cell)
        self.out(f"    rode {seconds:.0f} s: {steps} meter and {steps} location reports")

    # ------------------------------------------------------------ chapters
    def setup_bike(self) -> None:
        self.out(f"1. carol registers bike {self.code}; bikeco confirms it; carol pledges it")
        carol, bikeco = key("carol"), key("bikeco")
        cid = cid_of(f"ShareChain demo bike {self.code}: city bike, 7 gears".encode())
        res = self.c.broadcast(carol, [("assets/define", {
            "class_name": "bike", "code": self.code, "metadata_cid": cid,
            "operator": bikeco.address, "income_shares": []})])
        self.step("registered (assets/define)", res)
        self.step("confirmed by bikeco (assets/attest)",
                  self.assets.attest(bikeco, self.bike_id, "platform"))
        before = self.balances()
        self.step("pledged by carol (assets/pledge)", self.assets.pledge(carol, self.bike_id))
        self.show_balances(before)
        self.step("device lock bound by bikeco (iot/bind_device)",
                  self.iot.bind_device(bikeco, self.device, self.bike_id))
        self.step("listed for rent by carol (rental/offer)",
                  self.rentals.offer(carol, self.bike_id, terms(**DEMO_TERMS)))
        self.out("    terms: 1,000 per started second, deposit 20,000, late fee 2,000 per "
                 "second after 1 s of grace, damage cap 5,000")

    def ride(self, rider: str, reserve_s: int, ride_s: float) -> Ride:
        k = key(rider)
        start = now_ms()
        res = self.rentals.reserve_tx(k, self.bike_id, start, start + reserve_s * SECOND)
        rid = str(event_attrs(res, "rental_reserved")[0]["rental_id"])
        self.step(f"{rider} reserved {reserve_s} s, rental {rid} (rental/reserve)", res)
        r = self.rentals.get(rid)
        self.out(f"    in escrow: deposit {r['deposit']:,} + expected fee {r['prepaid']:,}")
        res = self.report("unlock", rid)
        self.step("bike unlocked by its device (signed unlock report)", res)
        self.step(f"{rider} confirms the bike is as described (rental/confirm_asset)",
                  self.rentals.confirm_asset(k, rid))
        self.ride_reports(ride_s)
        before = self.balances()
        res = self.step("bike locked by its device: settled (signed lock report)",
                        self.report("lock", rid))
        ride = Ride(rider, rid)
        settled = event_attrs(res, "rental_completed")
        if settled:
            ride.settled = settled[0]
            s = ride.settled
            self.out(f"    usage {s['usage_ms'] / 1000:.1f} s → fee {s['usage_fee']:,}, "
                     f"late fee {s['late_fee']:,}, platform fee {s['platform_fee']:,} "
                     f"(reward pool {s['pool_fee']:,}), damage hold {s['hold']:,}, "
                     f"refund {s['refund']:,}")
        for e in event_attrs(res, "reward_paid"):
            who = next((n for n in CAST if key(n).bech32 == e["to"]), e["to"])
            ride.rewards[who] = ride.rewards.get(who, 0) + int(e["amount"])
            self.out(f"    reward {e['amount']} to {who} ({e['reason']})")
        for e in event_attrs(res, "rental_late"):
            self.out(f"    late by {e['late_units']} s past the reserved end and grace")
        for e in event_attrs(res, "pledge_returned"):
            self.out(f"    pledge of {e['amount']:,} returned to carol")
        self.show_balances(before)
        self.result.rides.append(ride)
        return ride

    def expired_reservation(self) -> None:
        self.out("6. dave reserves and never shows up")
        start = now_ms() + SECOND
        before = self.balances()
        res = self.rentals.reserve_tx(key("dave"), self.bike_id, start, start + 3 * SECOND)
        rid = str(event_attrs(res, "rental_reserved")[0]["rental_id"])
        self.step(f"dave reserved, rental {rid}", res)
        window = int(self.rentals.params()["start_window_ms"])
        self.out(f"    waiting for the start window ({window / 1000:.0f} s) to pass ...")
        deadline = time.monotonic() + window / 1000 + 20
        state = ""
        while time.monotonic() < deadline:
            state = self.rentals.get(rid)["state"]
            if state == "expired":
                break
            time.sleep(0.2)
        self.out(f"  ✓ rental {rid} is {state} (end-block sweep, no transaction)")
        self.show_balances(before)
        self.result.expired_rental, self.result.expired_state = rid, state

    def claim(self) -> None:
        self.out("5. carol claims 1,500 for a scratch on erin's ride; erin accepts")
        carol, erin = key("carol"), key("erin")
        last = self.result.rides[-1]
        before = self.balances()
        res = self.rentals.claim_tx(carol, last.rental_id, 1_500, "scratched frame",
                                    cid_of(b"photo of the scratch"))
        cid = str(event_attrs(res, "claim_filed")[0]["claim_id"])
        self.result.claim_id = cid
        self.step(f"claim {cid} filed on erin's ride (rental/claim)", res)
        self.step("erin accepts (rental/accept_claim): paid to carol",
                  self.rentals.accept_claim(erin, cid))
        self.show_balances(before)

    def wait_for_close(self) -> None:
        window = DEMO_TERMS["claim_window_ms"]
        self.out(f"    waiting for the claim windows ({window / 1000:.0f} s) to close ...")
        deadline = time.monotonic() + window / 1000 + 20
        while time.monotonic() < deadline:
            states = {r.rental_id: self.rentals.get(r.rental_id)["state"]
                      for r in self.result.rides}
            if all(s == "closed" for s in states.values()):
                break
            time.sleep(0.2)
        self.result.states = states
        self.out("  ✓ rides " + ", ".join(f"{rid}: {s}" for rid, s in states.items()) +
                 " (damage holds refunded by the sweep)")

    def run(self) -> DemoResult:
        self.out(f"ShareChain bike-sharing demo on {self.c.url} (chain {self.c.chain_id})")
        self.result.start_balances = self.show_balances()
        self.setup_bike()
        self.out("2. alice rides on time")
        self.ride("alice", reserve_s=8, ride_s=3)
        self.out("3. bob rides past his reserved end")
        self.ride("bob", reserve_s=2, ride_s=5)
        self.out("4. erin rides; her confirmation is the bike's third")
        self.ride("erin", reserve_s=8, ride_s=2)
        bike = self.assets.get(self.bike_id)
        self.result.pledge_returned = bool(bike["pledge_returned"])
        self.out(f"    bike {self.code}: {bike['consumer_confirmations']} consumer "
                 f"confirmations, pledge returned: {bike['pledge_returned']}")
        self.claim()
        self.expired_reservation()
        self.wait_for_close()
        self.out("Done. Final balances:")
        self.result.end_balances = self.show_balances(self.result.start_balances)
        for n in ("alice", "bob", "erin", "carol"):
            acct = self.incentive.account(key(n).address)
            self.out(f"    {n}: rewards this epoch {acct['paid_in_epoch']}, "
                     f"in total {acct['paid_total']}")
        return self.result


def run(url: str, out: Callable[[str], None] = print) -> DemoResult:
    story = Story(url, out)
    try:
        return story.run()
    finally:
        story.c.close()
