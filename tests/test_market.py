"""market: listings, search, cross-platform bookings with the fee split, requests, fills and
bad input, on the real application in rental's in-memory world (every invariant is checked
after every block)."""

from __future__ import annotations

from typing import Any

import pytest

from sharechain.app.framework import TxResult
from sharechain.errors import DecodeError, ShareChainError
from sharechain.modules import auth
from sharechain.modules.bank import FEE_COLLECTOR
from sharechain.modules.bank.keys import balance_key
from sharechain.modules.incentive.keys import REWARD_POOL
from sharechain.modules.market.rules import distance_m, split_fee
from sharechain.modules.market.types import Fill, ListAsset, PostRequest, window_price
from sharechain.modules.rental.testing import TERMS, World, addr

MIN = 60_000
HOUR = 60 * MIN
BIKE, BIKE2, BIKE3, CAR = "BIKE-0001", "BIKE-0002", "BIKE-0003", "CAR-0001"
HERE = "wtw3sjq"          # Shanghai, People's Square (a 153 m × 153 m cell)
NEAR = "wtw3sjr"          # the next cell east
FAR = "wtw3ebc"           # 3.2 km away


# ---------------------------------------------------------------- helpers

def ev(result: TxResult | list[Any], type_: str) -> list[dict[str, Any]]:
    events = result.events if isinstance(result, TxResult) else result
    return [e.attrs for e in events if e.type == type_]


def ok(result: TxResult) -> TxResult:
    assert result.ok, f"{result.code}: {result.message}"
    return result


def fee_keys(who: str) -> set[bytes]:
    a = addr(who)
    return {balance_key(a), balance_key(FEE_COLLECTOR), auth.nonce_key(a)}


def rejected(w: World, who: str, mtype: str, msg: Any, code: str) -> TxResult:
    """The message fails with ``code`` and changes nothing but the fee and the nonce."""
    before = dict(w.state.data)
    r = w.do(who, mtype, msg)
    assert r.code == code, f"expected {code}, got {r.code or 'success'}: {r.message}"
    changed = {k for k in set(before) | set(w.state.data) if before.get(k) != w.state.data.get(k)}
    assert changed <= fee_keys(who), sorted(k for k in changed if k not in fee_keys(who))
    return r


def offer(w: World, code: str = BIKE, **terms: int) -> None:
    """The asset's owner offers it for rent."""
    ok(w.do(w.assets[code][1], "rental/offer", {"asset_id": w.asset_id(code), "terms": {**TERMS, **terms}}))


def list_msg(w: World, code: str = BIKE, geohash: str = HERE, hours: int = 24,
             condition: int = 80, from_ms: int | None = None) -> dict[str, Any]:
    start = w.time_ms if from_ms is None else from_ms
    return {"asset_id": w.asset_id(code), "geohash": geohash, "available_from_ms": start,
            "available_to_ms": start + hours * HOUR, "condition": condition}


def list_asset(w: World, code: str = BIKE, platform: str = "bikeco", **kw: Any) -> bytes:
    r = ok(w.do(platform, "market/list", list_msg(w, code, **kw)))
    return bytes(ev(r, "market_listed")[0]["listing_id"])


def book_msg(lid: bytes, start: int, minutes: int = 30, via: str = "carshare",
             max_price: int = 0) -> dict[str, Any]:
    return {"listing_id": lid, "start_ms": start, "end_ms": start + minutes * MIN,
            "via": addr(via), "max_price": max_price}


def request_msg(w: World, geohash: str = HERE, radius_m: int = 500, start_in_ms: int = HOUR,
                minutes: int = 30, max_price: int = 10_000, max_deposit: int = 10_000,
                min_condition: int = 0, via: str | None = "carshare",
                class_name: str = "bike") -> dict[str, Any]:
    start = w.time_ms + start_in_ms
    return {"class_name": class_name, "geohash": geohash, "radius_m": radius_m,
            "start_ms": start, "end_ms": start + minutes * MIN, "max_price": max_price,
            "max_deposit": max_deposit, "min_condition": min_condition,
            "via": addr(via) if via else b""}


def post_request(w: World, who: str = "alice", **kw: Any) -> bytes:
    r = ok(w.do(who, "market/request", request_msg(w, **kw)))
    return bytes(ev(r, "market_requested")[0]["request_id"])


def search(w: World, **q: Any) -> dict[str, Any]:
    return w.query("market", "search", **{k: str(v) for k, v in q.items()})  # type: ignore[no-any-return]


def ride(w: World, rid: bytes, minutes: int) -> TxResult:
    """Both parties start, the consumer returns after ``minutes``, carol confirms."""
    ok(w.do("alice", "rental/start", {"rental_id": rid}))
    ok(w.do("carol", "rental/start", {"rental_id": rid}))
    ok(w.do("alice", "rental/return", {"rental_id": rid}, advance_ms=minutes * MIN))
    return ok(w.do("carol", "rental/confirm_return", {"rental_id": rid}))


@pytest.fixture
def w() -> World:
    world = World()
    offer(world)
    return world


# ---------------------------------------------------------------- listings and search

def test_listing_shows_the_offer_and_is_found_by_class_area_window_and_price(w: World) -> None:
    lid = list_asset(w)
    listing = w.query("market", "listing", id=lid.hex())
    assert (listing["class_name"], listing["platform"], listing["geohash"]) == \
        ("bike", addr("bikeco"), HERE)
    assert listing["rate_per_hour"] == TERMS["price_per_unit"] * 60 and listing["offer_version"] == 1
    assert w.query("market", "listing_of", asset_id=w.asset_id(BIKE).hex())["id"] == lid

    def found(**q: Any) -> list[bytes]:
        return [bytes(h["id"]) for h in search(w, **q)["listings"]]

    assert found(**{"class": "bike"}) == [lid]
    assert found(**{"class": "car"}) == []
    for area in ("w", "wtw", "wtw3s", HERE):
        assert found(**{"class": "bike", "area": area}) == [lid], area
    assert found(**{"class": "bike", "area": NEAR}) == []
    start = w.time_ms + HOUR
    window = {"class": "bike", "from_ms": start, "to_ms": start + 30 * MIN}
    hit = search(w, **window)["listings"][0]
    assert hit["price"] == 30 * TERMS["price_per_unit"] and hit["booked"] == []
    assert found(**window, max_price=3_000) == [lid]
    assert found(**window, max_price=2_999) == []
    assert found(**{"class": "bike", "max_price": 6_000}) == [lid]   # per hour without a window
    assert found(**{"class": "bike", "max_price": 5_999}) == []
    assert found(**{"class": "bike", "to_ms": w.time_ms + 48 * HOUR,
                    "from_ms": w.time_ms + 47 * HOUR}) == []           # outside availability
    assert found(**{"class": "bike", "min_condition": 81}) == []
    assert found(**{"class": "bike", "tier": "D"}) == [lid]


def test_search_skips_booked_stale_and_too_demanding_listings(w: World) -> None:
    offer(w, BIKE2, min_credit_tier=3)
    offer(w, BIKE3)
    lid1, lid2, lid3 = list_asset(w, BIKE), list_asset(w, BIKE2), list_asset(w, BIKE3)
    start = w.time_ms + HOUR
    ok(w.do("alice", "market/book", book_msg(lid1, start)))
    window = {"class": "bike", "from_ms": start + 10 * MIN, "to_ms": start + 20 * MIN}
    ids = {bytes(h["id"]) for h in search(w, **window)["listings"]}
    assert ids == {lid2, lid3}
    assert {bytes(h["id"]) for h in search(w, **window, tier=2)["listings"]} == {lid3}
    assert {bytes(h["id"]) for h in search(w, **window, tier="B")["listings"]} == {lid2, lid3}
    booked = {bytes(h["id"]): h["booked"] for h in search(w, **{"class": "bike"})["listings"]}
    assert booked[lid1] == [[start, start + 30 * MIN]]
    offer(w, BIKE3, price_per_unit=90)     # new terms: the listing of BIKE3 is stale
    assert {bytes(h["id"]) for h in search(w, **window)["listings"]} == {lid2}


def test_search_pages_with_a_cursor_cheapest_first(w: World) -> None:
    prices = {BIKE: 300, BIKE2: 100, BIKE3: 200}
    for code, price in prices.items():
        offer(w, code, price_per_unit=price)
        list_asset(w, code, geohash="wtw3sj" + "qrw"[list(prices).index(code)])
    pages, cursor = [], ""
    for _ in range(5):
        page = search(w, **{"class": "bike", "area": "wtw3s", "limit": 1,
                            **({"cursor": cursor} if cursor else {})})
        pages += [h["price_per_unit"] for h in page["listings"]]
        cursor = page["cursor"]
        if not cursor:
            break
    assert pages == [100, 200, 300]
    with pytest.raises(Exception, match="cursor"):
        search(w, **{"class": "bike", "area": "wtw3s", "cursor": "00"})


def test_relisting_replaces_and_delisting_removes(w: World) -> None:
    lid1 = list_asset(w)
    lid2 = list_asset(w, geohash=NEAR)
    assert [bytes(h["id"]) for h in search(w, **{"class": "bike"})["listings"]] == [lid2]
    rejected(w, "alice", "market/delist", {"listing_id": lid2}, "not_lister")
    ok(w.do("carol", "market/delist", {"listing_id": lid2}))   # the owner may delist
    assert search(w, **{"class": "bike"})["listings"] == []
    rejected(w, "bikeco", "market/delist", {"listing_id": lid1}, "offer_unavailable")
    rejected(w, "bikeco", "market/delist", {"listing_id": (99).to_bytes(8, "big")},
             "listing_not_found")


def test_listing_expires_at_the_end_of_its_availability(w: World) -> None:
    lid = list_asset(w, hours=1)
    events = w.advance(HOUR)
    assert ev(events, "market_expired") == [{"listing_id": lid}]
    assert search(w, **{"class": "bike"})["listings"] == []


# ---------------------------------------------------------------- cross-platform booking

def test_booking_through_another_platform_splits_the_platform_fee(w: World) -> None:
    supply = w.supply()
    lid = list_asset(w)
    start = w.time_ms + 2_000
    booked = ok(w.do("alice", "market/book", book_msg(lid, start, via="carshare")))
    rid = bytes(ev(booked, "rental_reserved")[0]["rental_id"])
    b = ev(booked, "market_booked")[0]
    assert (b["lister"], b["via"], b["consumer"]) == (addr("bikeco"), addr("carshare"),
                                                      addr("alice"))
    assert w.query("market", "booking", rental_id=rid.hex())["via"] == addr("carshare")
    bikeco0, carshare0 = w.balance("bikeco"), w.balance("carshare")
    end = ride(w, rid, minutes=20)
    s = ev(end, "rental_completed")[0]
    operator_part = s["platform_fee"] - s["pool_fee"]
    split = w.query("market", "booking", rental_id=rid.hex())
    lister_part, via_part = split_fee(operator_part, 3_000)
    assert (split["lister_amount"], split["via_amount"]) == (lister_part, via_part)
    assert split["split_ms"] == w.time_ms
    assert via_part == operator_part * 3 // 10 and lister_part + via_part == operator_part
    assert w.balance("bikeco") - bikeco0 == lister_part
    assert w.balance("carshare") - carshare0 == via_part
    assert w.supply() == supply


def test_same_platform_and_direct_rentals_pay_the_operator_alone(w: World) -> None:
    lid = list_asset(w)
    start = w.time_ms + 2_000
    r1 = ok(w.do("alice", "market/book", book_msg(lid, start, minutes=10, via="bikeco")))
    rid1 = bytes(ev(r1, "rental_reserved")[0]["rental_id"])
    bikeco0 = w.balance("bikeco")
    end = ride(w, rid1, minutes=10)
    s = ev(end, "rental_completed")[0]
    assert w.query("market", "booking", rental_id=rid1.hex())["split_ms"] == 0
    assert w.balance("bikeco") - bikeco0 == s["platform_fee"] - s["pool_fee"]
    start = w.time_ms + 2_000
    direct = ok(w.do("alice", "rental/reserve", {"asset_id": w.asset_id(BIKE),
                                                 "start_ms": start, "end_ms": start + 10 * MIN}))
    rid2 = bytes(ev(direct, "rental_reserved")[0]["rental_id"])
    bikeco0 = w.balance("bikeco")
    end = ride(w, rid2, minutes=10)
    s = ev(end, "rental_completed")[0]
    assert w.balance("bikeco") - bikeco0 == s["platform_fee"] - s["pool_fee"]
    with pytest.raises(ShareChainError, match="no market booking"):
        w.query("market", "booking", rental_id=rid2.hex())


def test_booking_bad_input_changes_nothing(w: World) -> None:
    lid = list_asset(w, hours=4)
    start = w.time_ms + HOUR
    rejected(w, "alice", "market/book", book_msg(lid, start, via="carol"), "not_a_platform")
    rejected(w, "gateway", "market/book", book_msg(lid, start), "role_required")
    rejected(w, "alice", "market/book", book_msg(lid, start + 4 * HOUR), "window_unavailable")
    rejected(w, "alice", "market/book", book_msg(lid, start, max_price=2_999), "price_above_max")
    rejected(w, "alice", "market/book", book_msg((7).to_bytes(8, "big"), start),
             "listing_not_found")
    rejected(w, "alice", "market/book", book_msg(lid, start, minutes=300),
             "window_unavailable")
    ok(w.do("bob", "market/book", book_msg(lid, start)))
    r = rejected(w, "alice", "market/book", book_msg(lid, start + 10 * MIN), "offer_unavailable")
    assert r.message.startswith("asset_booked")
    offer(w, price_per_unit=101)           # the listing's offer version is now stale
    r = rejected(w, "alice", "market/book", book_msg(lid, start + HOUR), "offer_unavailable")
    assert r.message.startswith("offer_changed")
    with pytest.raises(DecodeError) as exc:   # schema checks run when a message is decoded
        ListAsset(w.asset_id(BIKE), "wtw3a", 0, 1, 0)       # 'a' is not a geohash character
    assert exc.value.code == "invalid_geohash"


def test_listing_bad_input_changes_nothing(w: World) -> None:
    rejected(w, "carol", "market/list", list_msg(w), "role_required")          # not a platform
    rejected(w, "carshare", "market/list", list_msg(w), "not_asset_operator")
    rejected(w, "bikeco", "market/list", list_msg(w, BIKE2), "offer_not_found")
    rejected(w, "bikeco", "market/list", list_msg(w, "BIKE-0004"), "asset_not_pledged")
    rejected(w, "bikeco", "market/list", list_msg(w, hours=1, from_ms=w.time_ms - 2 * HOUR),
             "invalid_window")
    for bad in ("wtw3", "wtw3sjqio", "", "WTW3SJQ"):
        assert w.do("bikeco", "market/list", list_msg(w, geohash=bad)).code == "invalid_geohash"
    assert w.do("bikeco", "market/list", {**list_msg(w), "condition": 101}).code == "invalid_msg"


# ---------------------------------------------------------------- requests and fills

def test_a_platform_fills_a_request_within_its_limits(w: World) -> None:
    lid = list_asset(w, geohash=NEAR)
    rq = post_request(w, via="carshare")
    assert w.query("market", "requests", **{"class": "bike"})["requests"][0]["id"] == rq
    assert distance_m(NEAR, HERE) < 500
    filled = ok(w.do("carshare", "market/fill", {"request_id": rq, "listing_id": lid}))
    rid = bytes(ev(filled, "rental_reserved")[0]["rental_id"])
    assert ev(filled, "rental_reserved")[0]["consumer"] == addr("alice")
    req = w.query("market", "request", id=rq.hex())
    assert (req["state"], req["rental_id"], req["filled_by"]) == ("filled", rid, addr("carshare"))
    assert w.rental(rid).consumer == addr("alice")
    assert w.query("market", "requests", **{"class": "bike"})["requests"] == []
    r = rejected(w, "bikeco", "market/fill", {"request_id": rq, "listing_id": lid},
                 "request_closed")
    assert "filled" in r.message


def test_fill_checks_every_limit_of_the_request(w: World) -> None:
    offer(w, CAR)
    offer(w, BIKE2)
    lid = list_asset(w, condition=50)
    car = list_asset(w, CAR, platform="carshare")
    far = list_asset(w, BIKE2, geohash=FAR)

    def fill_fails(code: str, listing: bytes = lid, **req: Any) -> None:
        rq = post_request(w, **req)
        rejected(w, "bikeco", "market/fill", {"request_id": rq, "listing_id": listing}, code)
        ok(w.do("alice", "market/cancel_request", {"request_id": rq}))

    fill_fails("class_mismatch", car)
    fill_fails("out_of_area", far, radius_m=3_000)
    fill_fails("price_above_max", max_price=2_999)
    fill_fails("deposit_above_max", max_deposit=TERMS["deposit"] - 1)
    fill_fails("condition_too_low", min_condition=51)
    fill_fails("window_unavailable", start_in_ms=30 * HOUR)
    rq = post_request(w)
    rejected(w, "alice", "market/fill", {"request_id": rq, "listing_id": lid}, "role_required")
    rejected(w, "bikeco", "market/fill", {"request_id": (99).to_bytes(8, "big"),
                                          "listing_id": lid}, "request_not_found")
    rejected(w, "bob", "market/cancel_request", {"request_id": rq}, "not_requester")


def test_stale_fills_fail_cleanly(w: World) -> None:
    offer(w, BIKE2)
    lid1, lid2 = list_asset(w), list_asset(w, BIKE2)
    rq1, rq2 = post_request(w), post_request(w, who="bob")
    # since the matcher's snapshot: BIKE's offer is withdrawn, BIKE2 is booked directly
    ok(w.do("carol", "rental/withdraw_offer", {"asset_id": w.asset_id(BIKE)}))
    req = w.query("market", "request", id=rq2.hex())
    ok(w.do("erin", "rental/reserve", {"asset_id": w.asset_id(BIKE2),
                                       "start_ms": req["start_ms"], "end_ms": req["end_ms"]}))
    r = rejected(w, "carshare", "market/fill", {"request_id": rq1, "listing_id": lid1},
                 "offer_unavailable")
    assert r.message.startswith("offer_not_found")
    r = rejected(w, "carshare", "market/fill", {"request_id": rq2, "listing_id": lid2},
                 "offer_unavailable")
    assert r.message.startswith("asset_booked")
    ok(w.do("bikeco", "market/delist", {"listing_id": lid2}))
    rejected(w, "carshare", "market/fill", {"request_id": rq2, "listing_id": lid2},
             "offer_unavailable")
    assert w.query("market", "request", id=rq1.hex())["state"] == "open"


def test_requests_expire_are_capped_and_validated(w: World) -> None:
    rq = post_request(w, start_in_ms=10 * MIN)
    events = w.advance(10 * MIN)
    assert ev(events, "market_expired") == [{"request_id": rq}]
    assert w.query("market", "request", id=rq.hex())["state"] == "expired"
    rejected(w, "alice", "market/cancel_request", {"request_id": rq}, "request_closed")
    for _ in range(16):
        post_request(w)
    rejected(w, "alice", "market/request", request_msg(w), "too_many_requests")
    assert len(w.query("market", "by_consumer", address=_bech("alice"))["requests"]) == 16
    rejected(w, "bob", "market/request", request_msg(w, via="carol"), "not_a_platform")
    rejected(w, "gateway", "market/request", request_msg(w), "role_required")
    rejected(w, "bob", "market/request", request_msg(w, start_in_ms=-1_000), "invalid_window")
    assert w.do("bob", "market/request", request_msg(w, geohash="wtw")).code == "invalid_geohash"
    assert w.do("bob", "market/request", request_msg(w, radius_m=0)).code == "invalid_msg"
    assert w.do("bob", "market/request", request_msg(w, class_name="Bike!")).code == "invalid_msg"


def _bech(name: str) -> str:
    from sharechain.crypto import PrivateKey

    return PrivateKey.from_name(name).bech32


def test_message_records_check_their_schema() -> None:
    with pytest.raises(DecodeError) as exc:
        PostRequest("bike", "wtw3sjq", 100, 10, 5, 1, 0)
    assert exc.value.code == "invalid_window"
    with pytest.raises(ValueError):
        Fill(b"\x00" * 7, b"\x00" * 8)
    assert window_price(100, MIN, 0, 1) == 100 and window_price(100, MIN, 0, MIN + 1) == 200


def test_reward_pool_and_supply_hold_across_a_market_ride(w: World) -> None:
    supply, pool0 = w.supply(), w.balance(REWARD_POOL)
    lid = list_asset(w)
    rq = post_request(w, start_in_ms=3_000)
    filled = ok(w.do("carshare", "market/fill", {"request_id": rq, "listing_id": lid}))
    rid = bytes(ev(filled, "rental_reserved")[0]["rental_id"])
    end = ride(w, rid, minutes=15)
    s = ev(end, "rental_completed")[0]
    assert w.balance(REWARD_POOL) - pool0 == s["pool_fee"] - sum(
        x["amount"] for x in ev(end, "reward_paid"))
    assert w.supply() == supply
