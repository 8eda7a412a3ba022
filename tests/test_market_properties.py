"""Property tests of the market module.

* The fee split conserves the fee and follows its rounding rule.
* Random cross-platform rides (fee rates, split rates, prices, durations, booking platform)
  never create or destroy a token: the bank's supply invariant is checked after every block
  and the platforms receive exactly the split the rule gives.
* Search against a model: on a world of 40 listings spread over cells, prices,
  availabilities, tiers and conditions (some booked, some stale), every generated query,
  read page by page through the cursor, returns exactly the listings a brute-force filter
  over the whole state selects, in index order.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharechain.app.state import prefix_end
from sharechain.encoding import decode_trusted, from_obj
from sharechain.modules.market import keys
from sharechain.modules.market.rules import split_fee
from sharechain.modules.market.types import Listing, Params, window_price
from sharechain.modules.rental.codec import decode_rental
from sharechain.modules.rental.keys import RENTAL_PREFIX
from sharechain.modules.rental.states import BOOKED_STATES
from sharechain.modules.rental.testing import TERMS, World, addr

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_700_000_000_000


@given(st.integers(0, 10**15), st.integers(0, 10_000))
def test_split_conserves_and_rounds_for_the_lister(amount: int, bps: int) -> None:
    lister, via = split_fee(amount, bps)
    assert lister + via == amount and lister >= 0 and via >= 0
    assert via == amount * bps // 10_000


# ---------------------------------------------------------------- random rides

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fee_bps=st.integers(0, 3_000), split_bps=st.integers(0, 10_000),
       price=st.integers(1, 5_000), minutes=st.integers(1, 90),
       via=st.sampled_from(["carshare", "bikeco"]), pool_bps=st.integers(0, 10_000),
       defaults=st.booleans())
def test_cross_platform_rides_conserve_tokens(fee_bps: int, split_bps: int, price: int,
                                              minutes: int, via: str, pool_bps: int,
                                              defaults: bool) -> None:
    """A market-booked ride ends by the provider's confirmation or by default (never
    returned); either way the operator's fee part is split exactly and no token moves
    anywhere else."""
    w = World(rental_params={"reward_pool_bps": pool_bps})
    supply = w.supply()
    market = w.keepers.extra["market"]
    w.in_block(lambda ctx: market.set_params(ctx, Params(booking_platform_bps=split_bps)))
    assert w.do("bikeco", "identity/set_platform_fee", {"fee_bps": fee_bps}).ok
    bike = w.asset_id("BIKE-0001")
    assert w.do("carol", "rental/offer", {"asset_id": bike, "terms": {
        **TERMS, "price_per_unit": price, "deposit": 10 * price * 90,
        "damage_cap": 0}}).ok
    listed = w.do("bikeco", "market/list", {
        "asset_id": bike, "geohash": "wtw3sjq", "available_from_ms": w.time_ms,
        "available_to_ms": w.time_ms + 24 * HOUR, "condition": 50})
    lid = listed.events[-1].attrs["listing_id"]
    start = w.time_ms + 2_000
    booked = w.do("alice", "market/book", {"listing_id": lid, "start_ms": start,
                                           "end_ms": start + 60 * MIN, "via": addr(via)})
    assert booked.ok, booked.message
    rid = next(e.attrs["rental_id"] for e in booked.events if e.type == "rental_reserved")
    for who, mtype in (("alice", "rental/start"), ("carol", "rental/start")):
        assert w.do(who, mtype, {"rental_id": rid}).ok
    bikeco0, carshare0 = w.balance("bikeco"), w.balance("carshare")
    if defaults:
        events = w.advance(TERMS["max_duration_ms"] + TERMS["grace_ms"])
        s = next(e.attrs for e in events if e.type == "rental_defaulted")
        pool_cut = s["usage_fee"] * fee_bps // 10_000 * pool_bps // 10_000
        operator_part = s["usage_fee"] * fee_bps // 10_000 - pool_cut
    else:
        assert w.do("alice", "rental/return", {"rental_id": rid}, advance_ms=minutes * MIN).ok
        end = w.do("carol", "rental/confirm_return", {"rental_id": rid})
        assert end.ok, end.message
        s = next(e.attrs for e in end.events if e.type == "rental_completed")
        operator_part = s["platform_fee"] - s["pool_fee"]
    lister, via_part = split_fee(operator_part, split_bps) if via == "carshare" \
        else (operator_part, 0)
    assert w.balance("bikeco") - bikeco0 == lister
    assert w.balance("carshare") - carshare0 == via_part
    assert w.supply() == supply


# ---------------------------------------------------------------- search against a model

CELLS = ("wtw3s", "wtw3t", "wtw3e", "wtw9k")
CODES = [f"BIKE-{i:04d}" for i in range(1, 41)]


def _world() -> World:
    rnd = random.Random(7)
    assets = {code: ("bike", "carol", "bikeco", True, True) for code in CODES}
    assets["CAR-0001"] = ("car", "dave", "carshare", True, True)
    w = World(assets=assets, names={n: 100_000_000 for n in (
        "regulator", "bikeco", "carshare", "gateway", "carol", "dave", "alice", "bob")})
    for code in CODES:
        w.submit("carol", [("rental/offer", {"asset_id": w.asset_id(code), "terms": {
            **TERMS, "price_per_unit": rnd.choice([50, 100, 100, 150, 300]),
            "unit_ms": rnd.choice([MIN, 30 * MIN]), "min_credit_tier": rnd.randint(0, 3)}})])
    assert all(r.ok for r in w.block())
    for code in CODES:
        start = T0 + rnd.randint(0, 6) * HOUR
        w.submit("bikeco", [("market/list", {
            "asset_id": w.asset_id(code),
            "geohash": rnd.choice(CELLS) + "".join(rnd.choice("0123456789bcdef")
                                                   for _ in range(rnd.randint(0, 3))),
            "available_from_ms": start, "available_to_ms": start + rnd.randint(2, 12) * HOUR,
            "condition": rnd.randint(0, 100)})])
    assert all(r.ok for r in w.block())
    for code in CODES[:6]:   # some bookings; the windows overlap the queries below
        lst = w.query("market", "listing_of", asset_id=w.asset_id(code).hex())
        start = max(lst["available_from_ms"], w.time_ms + 1_000)
        w.submit("alice", [("rental/reserve", {"asset_id": w.asset_id(code),
                                               "start_ms": start, "end_ms": start + HOUR})])
    for code in CODES[6:9]:  # new terms without a new listing: stale
        w.submit("carol", [("rental/offer", {"asset_id": w.asset_id(code), "terms": TERMS})])
    assert all(r.ok for r in w.block())
    return w


@pytest.fixture(scope="module")
def world() -> World:
    w = _world()
    assert len(_model(w, {"class": "bike"})) == 37   # 40 listed, 3 stale (6 booked later)
    return w


def _listings(w: World) -> list[Listing]:
    p = keys.LISTING_PREFIX
    return [from_obj(Listing, decode_trusted(v)) for k, v in w.state.iter_range(p, prefix_end(p))]


def _booked(w: World, asset_id: bytes, lo: int, hi: int) -> bool:
    p = RENTAL_PREFIX
    for _, raw in w.state.iter_range(p, prefix_end(p)):
        r = decode_rental(raw)
        if r.asset_id == asset_id and r.state in BOOKED_STATES and r.start_ms < hi \
                and lo < r.end_ms:
            return True
    return False


def _model(w: World, q: dict[str, Any]) -> list[bytes]:
    rental = w.rental_keeper
    out = []
    for x in _listings(w):
        if x.class_name != q["class"] or not x.geohash.startswith(q.get("area", "")):
            continue
        if "tier" in q and x.min_credit_tier > q["tier"]:
            continue
        if x.condition < q.get("min_condition", 0):
            continue
        offer = rental.offer(w.state, x.asset_id)
        if offer is None or offer.version != x.offer_version:
            continue
        max_price = q.get("max_price", 0)
        if "from_ms" in q:
            lo, hi = q["from_ms"], q["to_ms"]
            if not (x.available_from_ms <= lo and hi <= x.available_to_ms
                    and x.min_duration_ms <= hi - lo <= x.max_duration_ms):
                continue
            if max_price and window_price(x.price_per_unit, x.unit_ms, lo, hi) > max_price:
                continue
            if _booked(w, x.asset_id, lo, hi):
                continue
        elif max_price and x.rate_per_hour > max_price:
            continue
        out.append(x)
    if q.get("area"):
        out.sort(key=lambda x: (x.geohash[:5], x.rate_per_hour, x.id))
    else:
        out.sort(key=lambda x: (x.rate_per_hour, x.id))
    return [x.id for x in out]


query = st.fixed_dictionaries(
    {"class": st.sampled_from(["bike", "bike", "bike", "car"])},
    optional={
        "area": st.sampled_from(["", "w", "wtw", "wtw3", *CELLS, "wtw3s1", "wtw3sb", "wtw3t0"]),
        "window": st.tuples(st.integers(0, 14), st.integers(1, 6)),
        "max_price": st.sampled_from([0, 60, 100, 150, 200, 600, 3_000, 6_000, 9_000, 18_000]),
        "tier": st.integers(0, 4),
        "min_condition": st.integers(0, 100),
        "limit": st.integers(1, 7),
    })


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(q=query)
def test_search_pages_return_exactly_what_a_full_scan_selects(world: World,
                                                              q: dict[str, Any]) -> None:
    q = dict(q)
    if not q.get("area"):
        q.pop("area", None)
    if "window" in q:
        start_h, hours = q.pop("window")
        q["from_ms"], q["to_ms"] = T0 + start_h * HOUR, T0 + (start_h + hours) * HOUR
    got: list[bytes] = []
    cursor = ""
    for _ in range(200):
        params = {k: str(v) for k, v in q.items()}
        if cursor:
            params["cursor"] = cursor
        page = world.query("market", "search", **params)
        got += [bytes(h["id"]) for h in page["listings"]]
        cursor = page["cursor"]
        if not cursor:
            break
    assert got == _model(world, q)
