"""rental: the lifecycle, settlement amounts, claims, sweeps and bad input, on the real
application (identity, assets, iot, rental, incentive) in an in-memory world that checks
every invariant after every block."""

from __future__ import annotations

from typing import Any

import pytest

from sharechain.app.framework import TxResult
from sharechain.crypto import PrivateKey
from sharechain.errors import ShareChainError
from sharechain.modules import auth
from sharechain.modules.bank import FEE_COLLECTOR
from sharechain.modules.bank.keys import balance_key
from sharechain.modules.incentive.keys import REWARD_POOL
from sharechain.modules.rental import keys, settlement
from sharechain.modules.rental.keeper import sweep_retry_delay_ms
from sharechain.modules.rental.states import (
    CLAIM_STATES,
    CLAIM_TRANSITIONS,
    RENTAL_STATES,
    RENTAL_TRANSITIONS,
    claim_next,
    rental_next,
)
from sharechain.modules.rental.testing import ASSETS, TERMS, World, addr
from sharechain.modules.rental.types import SWEEP_RETRY_MAX_MS

MIN = 60_000
BIKE = "BIKE-0001"


# ---------------------------------------------------------------- helpers

def ev(result: TxResult | list[Any], type_: str) -> list[dict[str, Any]]:
    events = result.events if isinstance(result, TxResult) else result
    return [e.attrs for e in events if e.type == type_]


def ok(result: TxResult) -> TxResult:
    assert result.ok, f"{result.code}: {result.message}"
    return result


def offer(w: World, code: str = BIKE, who: str = "carol", **terms: int) -> None:
    ok(w.do(who, "rental/offer", {"asset_id": w.asset_id(code), "terms": {**TERMS, **terms}}))


def reserve(w: World, who: str = "alice", code: str = BIKE, start_in_ms: int = 1_000,
            minutes: int = 30) -> bytes:
    start = w.time_ms + start_in_ms
    r = ok(w.do(who, "rental/reserve", {"asset_id": w.asset_id(code), "start_ms": start,
                                         "end_ms": start + minutes * MIN}))
    return bytes(ev(r, "rental_reserved")[0]["rental_id"])


def try_reserve(w: World, who: str = "alice", code: str = BIKE, start_in_ms: int = 1_000,
                minutes: int = 30) -> TxResult:
    start = w.time_ms + start_in_ms
    return w.do(who, "rental/reserve", {"asset_id": w.asset_id(code), "start_ms": start,
                                         "end_ms": start + minutes * MIN})


def ref(rid: bytes) -> dict[str, bytes]:
    return {"rental_id": rid}


def fee_keys(who: str) -> set[bytes]:
    a = addr(who)
    return {balance_key(a), balance_key(FEE_COLLECTOR), auth.nonce_key(a)}


def assert_rejected(w: World, who: str, mtype: str, msg: Any, code: str) -> TxResult:
    """The message fails with ``code`` and changes nothing but the fee and the nonce."""
    before = dict(w.state.data)
    r = w.do(who, mtype, msg)
    assert r.code == code, f"expected {code}, got {r.code}: {r.message}"
    changed = {k for k in set(before) | set(w.state.data) if before.get(k) != w.state.data.get(k)}
    assert changed <= fee_keys(who), [k for k in changed if k not in fee_keys(who)]
    return r


@pytest.fixture
def w() -> World:
    world = World()
    offer(world)
    return world


# ---------------------------------------------------------------- happy paths

def test_device_rental_settles_every_token(w: World) -> None:
    supply = w.supply()
    alice0, carol0, bikeco0, pool0 = (w.balance("alice"), w.balance("carol"),
                                      w.balance("bikeco"), w.balance(REWARD_POOL))
    rid = reserve(w)
    r = w.rental(rid)
    assert (r.state, r.deposit, r.prepaid) == ("reserved", 5_000, 3_000)
    assert w.escrow(keys.escrow_id(rid)) == 8_000
    start = ok(w.report(BIKE, "unlock", rid))
    assert ev(start, "rental_started")[0]["by_device"] is True
    assert w.rental(rid).state == "active"
    w.advance(10 * MIN)
    ok(w.report(BIKE, "meter", reading=1_500))
    w.advance(10 * MIN)
    end = ok(w.report(BIKE, "lock", rid))
    s = ev(end, "rental_completed")[0]
    # unlock at t0+500 (device clock), lock 20 min + 2 s later → 21 started minutes
    assert s["usage_fee"] == 2_100 and s["late_fee"] == 0
    assert s["platform_fee"] == 105 and s["pool_fee"] == 10        # 5 % of 2100, 10 % of that
    assert s["hold"] == 3_000 and s["refund"] == 8_000 - 2_100 - 3_000
    assert ev(end, "rental_completed")[0]["on_time"] is True
    r = w.rental(rid)
    assert (r.state, r.usage_fee, r.hold) == ("ended", 2_100, 3_000)
    assert w.escrow(keys.escrow_id(rid)) == 3_000
    # the claim window closes without claims: the hold goes back
    closed = w.advance(TERMS["claim_window_ms"])
    assert ev(closed, "rental_closed")[0]["refund"] == 3_000
    assert w.rental(rid).state == "closed"
    assert w.escrow(keys.escrow_id(rid)) == 0
    rewards = ev(end, "reward_paid")
    assert [x["amount"] for x in rewards] == [42, 20]  # provider: 40 % of the platform fee
    assert w.balance("carol") - carol0 == 2_100 - 105 + 42
    assert w.balance("bikeco") - bikeco0 == 105 - 10
    assert w.balance(REWARD_POOL) - pool0 == 10 - 62
    assert w.balance("alice") - alice0 == -2_100 + 20 - 40  # usage, reward, reserve tx fee
    assert w.supply() == supply


def test_two_party_start_and_return_use_block_times(w: World) -> None:
    rid = reserve(w, code=BIKE)
    r1 = ok(w.do("alice", "rental/start", ref(rid)))
    assert ev(r1, "rental_start_signed") and w.rental(rid).state == "reserved"
    assert_rejected(w, "alice", "rental/start", ref(rid), "already_signed")
    r2 = ok(w.do("bikeco", "rental/start", ref(rid)))  # the operator signs for the provider
    started = ev(r2, "rental_started")[0]
    assert started["by_device"] is False and started["started_ms"] == w.time_ms
    ok(w.do("alice", "rental/confirm_asset", ref(rid)))
    assert_rejected(w, "alice", "rental/confirm_asset", ref(rid), "already_confirmed")
    ok(w.do("alice", "rental/return", ref(rid), advance_ms=45 * MIN - 2_000))
    returned = w.rental(rid)
    assert returned.state == "returned" and returned.returned_ms == w.time_ms
    assert_rejected(w, "alice", "rental/confirm_return", ref(rid), "not_rental_party")
    end = ok(w.do("carol", "rental/confirm_return", ref(rid), advance_ms=5 * MIN))
    s = ev(end, "rental_completed")[0]
    assert s["usage_ms"] == 45 * MIN and s["usage_fee"] == 4_500
    r = w.rental(rid)
    # reserved 30 min from start_ms, started a few seconds after it, returned 45 min later:
    # the started minutes past end + 2 min grace are late
    late_units = -(-(r.ended_ms - r.end_ms - 2 * MIN) // MIN)
    assert late_units == 14 and ev(end, "rental_late")[0]["late_units"] == 14
    assert ev(end, "rental_completed")[0]["on_time"] is False
    assert [x["reason"] for x in ev(end, "reward_paid")] == ["rental_completed"]
    # escrow 8000 = 4500 usage + 3500 of the 4200 late fee; shortfall reported, no hold left
    assert s["late_fee"] == 3_500 and s["shortfall"] == 14 * 300 - 3_500
    assert s["hold"] == 0 and s["refund"] == 0
    assert w.rental(rid).state == "closed"


def test_unconfirmed_return_settles_at_return_time(w: World) -> None:
    rid = reserve(w)
    ok(w.report(BIKE, "unlock", rid))
    ok(w.do("alice", "rental/return", ref(rid), advance_ms=10 * MIN))
    returned_ms = w.rental(rid).returned_ms
    events = w.advance(86_400_000)  # return_confirm_ms passes without the provider
    s = ev(events, "rental_completed")[0]
    assert s["how"] == "return_timeout"
    assert w.rental(rid).ended_ms == returned_ms


def test_consumer_confirmations_return_the_pledge() -> None:
    w = World()
    offer(w)
    pledge_escrow = b"assets/pledge/" + w.asset_id(BIKE)
    assert w.escrow(pledge_escrow) == 50_000
    for who in ("alice", "bob", "erin"):
        rid = reserve(w, who=who)
        ok(w.report(BIKE, "unlock", rid))
        ok(w.do(who, "rental/confirm_asset", ref(rid)))
        ok(w.report(BIKE, "lock", rid, advance_ms=5 * MIN))
    assert w.escrow(pledge_escrow) == 0
    assert w.keepers.extra["assets"].get(w.state, w.asset_id(BIKE)).pledge_returned


def test_income_shares_split_with_remainder_to_first_holder(w: World) -> None:
    ok(w.do("carol", "assets/transfer_income_share",
            {"asset_id": w.asset_id(BIKE), "to": addr("dave"), "bps": 3_333}))
    dave0, carol0 = w.balance("dave"), w.balance("carol")
    rid = reserve(w)
    ok(w.report(BIKE, "unlock", rid))
    end = ok(w.report(BIKE, "lock", rid, advance_ms=7 * MIN))
    s = ev(end, "rental_completed")[0]
    income = s["usage_fee"] - s["platform_fee"]
    asset = w.keepers.extra["assets"].get(w.state, w.asset_id(BIKE))
    first = asset.income_shares[0]
    dave_share = income * 3_333 // 10_000
    carol_share = income * 6_667 // 10_000
    remainder = income - dave_share - carol_share
    expect = {addr("dave"): dave_share, addr("carol"): carol_share}
    expect[first.holder] += remainder
    assert w.balance("dave") - dave0 == expect[addr("dave")]
    reward = sum(x["amount"] for x in ev(end, "reward_paid") if x["to"] == addr("carol"))
    assert w.balance("carol") - carol0 == expect[addr("carol")] + reward


# ---------------------------------------------------------------- expiry, default, cancel

def test_unstarted_reservation_expires_with_cancel_fee(w: World) -> None:
    alice0, carol0 = w.balance("alice"), w.balance("carol")
    rid = reserve(w)
    events = w.advance(15 * MIN)  # start_window_ms
    x = ev(events, "rental_expired")[0]
    assert x["fee"] == 200
    assert w.rental(rid).state == "expired"
    assert w.escrow(keys.escrow_id(rid)) == 0
    assert w.balance("carol") - carol0 == 200
    assert w.balance("alice") - alice0 == -200 - 40
    assert w.query("rental", "calendar", asset_id=w.asset_id(BIKE).hex())["bookings"] == []


def test_rental_past_max_duration_defaults(w: World) -> None:
    carol0 = w.balance("carol")
    rid = reserve(w)
    ok(w.report(BIKE, "unlock", rid))
    events = w.advance(4 * 3_600_000 + 2 * MIN)  # max_duration_ms + grace_ms
    d = ev(events, "rental_defaulted")[0]
    assert d["penalty"] + d["usage_fee"] == 8_000
    r = w.rental(rid)
    assert r.state == "defaulted" and w.escrow(keys.escrow_id(rid)) == 0
    assert w.balance("carol") - carol0 == 8_000 - r.platform_fee
    asset = w.keepers.extra["assets"].get(w.state, w.asset_id(BIKE))
    assert asset.use_right is None
    # the bike comes back afterwards: the lock report no longer changes the rental
    late = ok(w.report(BIKE, "lock", rid))
    assert ev(late, "report_listener_failed")[0]["code"] == "invalid_transition"


def test_cancellation_free_early_paid_late_free_for_provider(w: World) -> None:
    alice0 = w.balance("alice")
    early = reserve(w, start_in_ms=3_600_000)
    c = ok(w.do("alice", "rental/cancel", ref(early)))
    assert ev(c, "rental_cancelled")[0]["fee"] == 0
    assert w.balance("alice") == alice0 - 40 - 30  # two tx fees only
    late = reserve(w, start_in_ms=5 * MIN)
    c = ok(w.do("alice", "rental/cancel", ref(late)))
    assert ev(c, "rental_cancelled")[0]["fee"] == 200
    by_provider = reserve(w, start_in_ms=5 * MIN)
    c = ok(w.do("carol", "rental/cancel", ref(by_provider)))
    assert ev(c, "rental_cancelled")[0]["fee"] == 0
    assert_rejected(w, "alice", "rental/cancel", ref(by_provider), "invalid_transition")


# ---------------------------------------------------------------- claims

def _ended(w: World, who: str = "alice") -> bytes:
    rid = reserve(w, who=who)
    ok(w.report(BIKE, "unlock", rid))
    ok(w.report(BIKE, "lock", rid, advance_ms=10 * MIN))
    assert w.rental(rid).hold == 3_000
    return rid


def claim(rid: bytes, amount: int) -> dict[str, Any]:
    return {"rental_id": rid, "amount": amount, "reason": "bent wheel"}


def test_accepted_claim_pays_the_owner(w: World) -> None:
    rid = _ended(w)
    carol0, alice0 = w.balance("carol"), w.balance("alice")
    f = ok(w.do("carol", "rental/claim", claim(rid, 1_000)))
    cid = bytes(ev(f, "claim_filed")[0]["claim_id"])
    a = ok(w.do("alice", "rental/accept_claim", {"claim_id": cid}))
    assert ev(a, "damage_confirmed")[0]["amount"] == 1_000
    assert w.balance("carol") - carol0 == 1_000 - 30  # minus the claim's tx fee
    closed = w.advance(TERMS["claim_window_ms"])
    assert ev(closed, "rental_closed")[0]["refund"] == 2_000
    assert w.balance("alice") - alice0 == 2_000 - 30  # minus the accept tx fee
    assert w.escrow(keys.escrow_id(rid)) == 0


def test_disputed_claim_waits_then_times_out_to_the_consumer(w: World) -> None:
    rid = _ended(w)
    cid = bytes(ev(ok(w.do("carol", "rental/claim", claim(rid, 2_500))), "claim_filed")[0]
                ["claim_id"])
    ok(w.do("alice", "rental/dispute_claim", {"claim_id": cid, "note": "it was bent before"}))
    w.advance(TERMS["claim_window_ms"])  # window closes: 500 unclaimed back, 2500 stays held
    assert w.rental(rid).state == "closed" and w.escrow(keys.escrow_id(rid)) == 2_500
    alice0 = w.balance("alice")
    events = w.advance(7 * 86_400_000)
    assert ev(events, "claim_timed_out")[0]["refunded"] == 2_500
    assert w.balance("alice") - alice0 == 2_500
    assert w.escrow(keys.escrow_id(rid)) == 0


def test_resolve_claim_for_arbitration(w: World) -> None:
    rid = _ended(w)
    cid = bytes(ev(ok(w.do("carol", "rental/claim", claim(rid, 2_000))), "claim_filed")[0]
                ["claim_id"])
    ok(w.do("alice", "rental/dispute_claim", {"claim_id": cid}))
    k = w.rental_keeper
    with pytest.raises(ShareChainError) as e:
        w.in_block(lambda ctx: k.resolve_claim(ctx, cid, 2_001))
    assert e.value.code == "invalid_resolution"
    carol0, alice0 = w.balance("carol"), w.balance("alice")
    events = w.in_block(lambda ctx: k.resolve_claim(ctx, cid, 1_500))
    assert ev(events, "damage_confirmed")[0]["amount"] == 1_500
    assert w.balance("carol") - carol0 == 1_500 and w.balance("alice") - alice0 == 500
    with pytest.raises(ShareChainError) as e:
        w.in_block(lambda ctx: k.resolve_claim(ctx, cid, 0))
    assert e.value.code == "invalid_transition"


def test_arbitration_holds_a_claim_past_its_timeout(w: World) -> None:
    rid = _ended(w)
    cid = bytes(ev(ok(w.do("carol", "rental/claim", claim(rid, 2_000))), "claim_filed")[0]
                ["claim_id"])
    k = w.rental_keeper
    w.in_block(lambda ctx: k.set_claim_timeout(ctx, cid, 2**63 - 1))
    events = w.advance(30 * 86_400_000)
    assert not ev(events, "claim_timed_out")
    assert w.rental_keeper.claim(w.state, cid).state == "open"  # type: ignore[union-attr]
    # the dispute ends without a ruling: back to a timeout now, refunded at the sweep
    w.in_block(lambda ctx: k.set_claim_timeout(ctx, cid, ctx.time_ms))
    events = w.advance(1_000)
    assert ev(events, "claim_timed_out")[0]["refunded"] == 2_000
    with pytest.raises(ShareChainError) as e:
        w.in_block(lambda ctx: k.set_claim_timeout(ctx, cid, 0))
    assert e.value.code == "invalid_transition"


def test_claim_rules(w: World) -> None:
    rid = _ended(w)
    assert_rejected(w, "carol", "rental/claim", claim(rid, 3_001), "claim_above_cap")
    assert_rejected(w, "alice", "rental/claim", claim(rid, 100), "not_rental_party")
    ok(w.do("carol", "rental/claim", claim(rid, 2_000)))
    assert_rejected(w, "carol", "rental/claim", claim(rid, 1_001), "claim_above_cap")
    w.advance(TERMS["claim_window_ms"])
    assert_rejected(w, "carol", "rental/claim", claim(rid, 1), "claim_window_closed")
    active = reserve(w, who="bob")
    assert_rejected(w, "carol", "rental/claim", claim(active, 1), "invalid_transition")


# ---------------------------------------------------------------- suspect device data

def test_suspect_unlock_falls_back_to_both_parties(w: World) -> None:
    rid = reserve(w)
    ok(w.report(BIKE, "battery", percent=80))
    r = ok(w.report(BIKE, "unlock", rid, counter_jump=5_000))  # iot flags a counter gap
    assert ev(r, "report_suspect")
    assert ev(r, "rental_device_ignored")[0]["reason"] == "counter_gap"
    assert w.rental(rid).state == "reserved" and w.rental(rid).device_suspect
    # a later clean unlock is not trusted either for this rental
    ok(w.report(BIKE, "unlock", rid))
    assert w.rental(rid).state == "reserved"
    ok(w.do("alice", "rental/start", ref(rid)))
    ok(w.do("carol", "rental/start", ref(rid)))
    assert w.rental(rid).state == "active"
    lock = ok(w.report(BIKE, "lock", rid, advance_ms=10 * MIN))
    assert ev(lock, "rental_device_ignored") and w.rental(rid).state == "active"
    ok(w.do("alice", "rental/return", ref(rid)))
    end = ok(w.do("carol", "rental/confirm_return", ref(rid)))
    assert ev(end, "rental_completed")[0]["how"] == "confirm_return"


def test_lock_before_unlock_time_is_suspect(w: World) -> None:
    rid = reserve(w)
    ok(w.report(BIKE, "unlock", rid))
    started = w.rental(rid).started_ms
    r = ok(w.report(BIKE, "lock", rid, at_ms=started - 10_000))
    # iot already flags the clock running backwards; rental would flag it on its own too
    assert ev(r, "rental_device_ignored")[0]["reason"] in ("time_backwards",
                                                           "lock_before_usage")
    assert w.rental(rid).state == "active"


# ---------------------------------------------------------------- bad input

def test_double_booking_is_rejected_in_either_direction(w: World) -> None:
    t = w.time_ms
    first = {"asset_id": w.asset_id(BIKE), "start_ms": t + 60 * MIN, "end_ms": t + 90 * MIN}
    ok(w.do("alice", "rental/reserve", first))
    for s, e in [(70, 80), (30, 61), (89, 120), (50, 100)]:
        assert_rejected(w, "bob", "rental/reserve", {"asset_id": w.asset_id(BIKE),
                                                     "start_ms": t + s * MIN,
                                                     "end_ms": t + e * MIN}, "asset_booked")
    # touching windows are free (half-open intervals), before and after
    ok(w.do("bob", "rental/reserve", {"asset_id": w.asset_id(BIKE), "start_ms": t + 30 * MIN,
                                       "end_ms": t + 60 * MIN}))
    ok(w.do("erin", "rental/reserve", {"asset_id": w.asset_id(BIKE), "start_ms": t + 90 * MIN,
                                        "end_ms": t + 100 * MIN}))
    cal = w.query("rental", "calendar", asset_id=w.asset_id(BIKE).hex())["bookings"]
    assert [b["start_ms"] - t for b in cal] == [30 * MIN, 60 * MIN, 90 * MIN]


@pytest.mark.parametrize("code,error", [("BIKE-0004", "asset_not_pledged"),
                                        ("BIKE-0005", "asset_not_confirmed")])
def test_reserve_requires_a_rentable_asset(code: str, error: str) -> None:
    w = World()
    offer(w, code)
    assert_rejected(w, "alice", "rental/reserve", {"asset_id": w.asset_id(code),
                                                   "start_ms": w.time_ms + 1_000,
                                                   "end_ms": w.time_ms + 31 * MIN}, error)


def test_reserve_on_a_frozen_asset(w: World) -> None:
    ok(w.do("regulator", "assets/freeze", {"asset_id": w.asset_id(BIKE), "reason": "recall"}))
    assert_rejected(w, "alice", "rental/reserve", {"asset_id": w.asset_id(BIKE),
                                                   "start_ms": w.time_ms + 1_000,
                                                   "end_ms": w.time_ms + 31 * MIN},
                    "asset_frozen")


def test_reserve_with_insufficient_funds() -> None:
    names = {n: 10_000_000 for n in ("bikeco", "carol", "gateway", "regulator")}
    names["alice"] = 5_000  # pays the fee, not deposit + expected fee
    w = World(names=names, assets={BIKE: ASSETS[BIKE]})
    offer(w)
    assert_rejected(w, "alice", "rental/reserve", {"asset_id": w.asset_id(BIKE),
                                                   "start_ms": w.time_ms + 1_000,
                                                   "end_ms": w.time_ms + 31 * MIN},
                    "insufficient_funds")


def test_reserve_window_rules(w: World) -> None:
    aid = w.asset_id(BIKE)
    t = w.time_ms
    assert_rejected(w, "alice", "rental/reserve",
                    {"asset_id": aid, "start_ms": t, "end_ms": t + 30_000},
                    "duration_out_of_range")
    assert_rejected(w, "alice", "rental/reserve",
                    {"asset_id": aid, "start_ms": t, "end_ms": t + 5 * 3_600_000},
                    "duration_out_of_range")
    assert_rejected(w, "alice", "rental/reserve",
                    {"asset_id": aid, "start_ms": t - 3_600_000, "end_ms": t},
                    "invalid_window")
    assert_rejected(w, "alice", "rental/reserve",
                    {"asset_id": aid, "start_ms": t + MIN, "end_ms": t + MIN},
                    "invalid_window")
    assert_rejected(w, "alice", "rental/reserve",
                    {"asset_id": aid, "start_ms": t, "end_ms": t + MIN, "offer_version": 7},
                    "offer_changed")
    assert_rejected(w, "alice", "rental/reserve",
                    {"asset_id": w.asset_id("BIKE-0002"), "start_ms": t, "end_ms": t + MIN},
                    "offer_not_found")


@pytest.mark.parametrize("field,value", [
    ("price_per_unit", 0), ("unit_ms", 0), ("price_per_unit", 10**18 + 1),
    ("deposit", -1), ("deposit", 2**200), ("max_duration_ms", 10**12),
    ("min_duration_ms", 5 * 3_600_000), ("damage_cap", 5_001), ("late_fee_per_unit", 2**64 * 10**3),
    ("min_credit_tier", 101), ("grace_ms", -5),
])
def test_bad_terms_are_rejected(field: str, value: int) -> None:
    w = World()
    before = dict(w.state.data)
    r = w.do("carol", "rental/offer", {"asset_id": w.asset_id(BIKE),
                                        "terms": {**TERMS, field: value}})
    assert r.code == "invalid_terms" and r.fee == 0
    assert w.state.data == before  # refused before the ante: not even a fee


def test_offer_rules(w: World) -> None:
    assert_rejected(w, "alice", "rental/offer", {"asset_id": w.asset_id("BIKE-0002"),
                                                 "terms": TERMS}, "not_asset_provider")
    assert_rejected(w, "carol", "rental/offer", {"asset_id": bytes(16), "terms": TERMS},
                    "asset_not_found")
    ok(w.do("bikeco", "rental/offer", {"asset_id": w.asset_id(BIKE),
                                        "terms": {**TERMS, "price_per_unit": 150}}))
    o = w.query("rental", "offer", asset_id=w.asset_id(BIKE).hex())
    assert o["version"] == 2 and o["terms"]["price_per_unit"] == 150
    q = w.query("rental", "quote", asset_id=w.asset_id(BIKE).hex(), start_ms="0",
                end_ms=str(61 * MIN))
    assert q["prepaid"] == 61 * 150 and q["deposit"] == 5_000
    ok(w.do("carol", "rental/withdraw_offer", {"asset_id": w.asset_id(BIKE)}))
    assert_rejected(w, "alice", "rental/reserve", {"asset_id": w.asset_id(BIKE),
                                                   "start_ms": w.time_ms, "end_ms": w.time_ms
                                                   + MIN}, "offer_not_found")


def test_start_by_a_non_party_and_too_early(w: World) -> None:
    rid = reserve(w, start_in_ms=3_600_000)
    assert_rejected(w, "bob", "rental/start", ref(rid), "not_rental_party")
    assert_rejected(w, "bob", "rental/return", ref(rid), "not_rental_party")
    ok(w.do("alice", "rental/start", ref(rid)))
    assert_rejected(w, "carol", "rental/start", ref(rid), "too_early")
    assert_rejected(w, "alice", "rental/start", {"rental_id": bytes(8)}, "rental_not_found")


def test_second_rental_cannot_start_while_the_asset_is_in_use(w: World) -> None:
    first = reserve(w, minutes=10)
    ok(w.report(BIKE, "unlock", first))
    w.advance(10 * MIN)
    second = reserve(w, who="bob", start_in_ms=0, minutes=10)
    ok(w.do("bob", "rental/start", ref(second)))
    assert_rejected(w, "carol", "rental/start", ref(second), "asset_in_use")


def test_end_twice(w: World) -> None:
    rid = reserve(w)
    ok(w.report(BIKE, "unlock", rid))
    ok(w.report(BIKE, "lock", rid))
    before = w.rental(rid)
    again = ok(w.report(BIKE, "lock", rid))
    assert ev(again, "report_listener_failed")[0]["code"] == "invalid_transition"
    assert w.rental(rid) == before
    assert_rejected(w, "alice", "rental/return", ref(rid), "invalid_transition")
    rid2 = reserve(w, who="bob")
    ok(w.do("bob", "rental/start", ref(rid2)))
    ok(w.do("carol", "rental/start", ref(rid2)))
    ok(w.do("bob", "rental/return", ref(rid2)))
    ok(w.do("carol", "rental/confirm_return", ref(rid2)))
    assert_rejected(w, "carol", "rental/confirm_return", ref(rid2), "invalid_transition")


def test_forged_and_replayed_reports_are_rejected_by_iot(w: World) -> None:
    rid = reserve(w)
    forged = w.report_msg(BIKE, "unlock", rid, signer=PrivateKey.from_name("mallory"))
    assert_rejected(w, "gateway", *forged, "invalid_report_signature")
    ok(w.report(BIKE, "unlock", rid))
    replay = w.report_msg(BIKE, "unlock", rid, counter_jump=0)
    assert_rejected(w, "gateway", *replay, "report_replayed")
    assert w.rental(rid).state == "active"


def test_report_from_a_device_bound_to_another_asset(w: World) -> None:
    rid = reserve(w)
    before = w.rental(rid)
    # the device of BIKE-0002 (honestly naming its own asset) says it unlocks our rental
    r = ok(w.report("BIKE-0002", "unlock", rid))
    assert ev(r, "report_listener_failed")[0]["code"] == "device_asset_mismatch"
    assert w.rental(rid) == before
    # a device naming an asset it is not bound to is refused by iot itself
    lie = w.report_msg(BIKE, "unlock", rid, device_code="BIKE-0002")
    msg = lie[1]
    msg["reports"][0]["report"]["asset_id"] = w.asset_id(BIKE)
    r2 = w.do("gateway", lie[0], msg)
    assert r2.code in ("device_asset_mismatch", "invalid_report_signature")
    assert w.rental(rid) == before


def test_claim_and_accept_by_the_wrong_party(w: World) -> None:
    rid = _ended(w)
    cid = bytes(ev(ok(w.do("carol", "rental/claim", claim(rid, 100))), "claim_filed")[0]
                ["claim_id"])
    assert_rejected(w, "carol", "rental/accept_claim", {"claim_id": cid}, "not_rental_party")
    assert_rejected(w, "bob", "rental/dispute_claim", {"claim_id": cid}, "not_rental_party")
    assert_rejected(w, "alice", "rental/accept_claim", {"claim_id": bytes(9)}, "claim_not_found")


# ---------------------------------------------------------------- structure

def test_transition_tables_are_closed() -> None:
    actions = {a for _, a in RENTAL_TRANSITIONS}
    for state in RENTAL_STATES:
        for action in actions:
            if (state, action) in RENTAL_TRANSITIONS:
                assert rental_next(state, action) in RENTAL_STATES
            else:
                with pytest.raises(ShareChainError) as e:
                    rental_next(state, action)
                assert e.value.code == "invalid_transition"
    for state in CLAIM_STATES:
        for action in {a for _, a in CLAIM_TRANSITIONS}:
            if (state, action) not in CLAIM_TRANSITIONS:
                with pytest.raises(ShareChainError):
                    claim_next(state, action)


def test_sweep_reads_only_due_deadlines(w: World) -> None:
    """Many reservations far ahead; an empty block's sweep must not walk them."""
    for i in range(40):
        start = w.time_ms + (i + 2) * 3_600_000
        w.submit("alice", [("rental/reserve", {"asset_id": w.asset_id(BIKE), "start_ms": start,
                                                "end_ms": start + 30 * MIN})])
    assert all(r.ok for r in w.block())
    assert len(w.query("rental", "due", limit="1000")["due"]) == 40
    reads = []
    orig = w.state.iter_range

    def counting(start: bytes, end: bytes):  # type: ignore[no-untyped-def]
        for kv in orig(start, end):
            if kv[0].startswith(keys.DEADLINE_PREFIX):
                reads.append(kv[0])
            yield kv
    w.state.iter_range = counting  # type: ignore[method-assign]
    w.check = False  # the invariant checks walk everything; count the sweep alone
    w.advance(1_000)
    assert reads == []
    w.advance(2 * 3_600_000 + 15 * MIN)  # exactly the first reservation is due
    assert len(reads) == 1


def test_start_refused_when_the_asset_is_frozen_after_reservation(w: World) -> None:
    rid = reserve(w)
    ok(w.do("regulator", "assets/freeze", {"asset_id": w.asset_id(BIKE), "reason": "recall"}))
    ok(w.do("alice", "rental/start", ref(rid)))
    assert_rejected(w, "carol", "rental/start", ref(rid), "asset_frozen")
    r = ok(w.report(BIKE, "unlock", rid))
    assert ev(r, "report_listener_failed")[0]["code"] == "asset_frozen"
    # nobody can use it: the reservation expires, and the consumer owes no fee for that
    alice0 = w.balance("alice")
    events = w.advance(15 * MIN)
    assert ev(events, "rental_expired")[0]["fee"] == 0
    assert w.balance("alice") - alice0 == 8_000


def test_a_gateway_batch_of_32_late_locks_settles_under_the_event_cap() -> None:
    """32 reports in one message, each settling a late rental, stay under the framework's
    events-per-transaction cap (a batch over it would fail as a whole)."""
    codes = [f"BIKE-9{i:03d}" for i in range(32)]
    w = World(assets={c: ("bike", "carol", "bikeco", True, True) for c in codes})
    for c in codes:
        w.submit("carol", [("rental/offer", {"asset_id": w.asset_id(c), "terms": TERMS})])
    assert all(r.ok for r in w.block())
    riders = ["alice", "bob", "erin", "dave"]
    for i, c in enumerate(codes):
        start = w.time_ms + 1_000
        w.submit(riders[i % 4], [("rental/reserve", {"asset_id": w.asset_id(c),
                                                     "start_ms": start,
                                                     "end_ms": start + 10 * MIN})])
    results = w.block()
    rids = [bytes(ev(r, "rental_reserved")[0]["rental_id"]) for r in results]
    unlocks = [w.report_msg(c, "unlock", rid)[1]["reports"][0] for c, rid in zip(codes, rids)]
    ok(w.do("gateway", "iot/submit_reports", {"reports": unlocks}))
    w.advance(20 * MIN)
    locks = [w.report_msg(c, "lock", rid)[1]["reports"][0] for c, rid in zip(codes, rids)]
    r = ok(w.do("gateway", "iot/submit_reports", {"reports": locks}))
    assert len(ev(r, "rental_late")) == 32 and len(ev(r, "rental_completed")) == 32
    assert len(r.events) <= 256


# ---------------------------------------------------------------- sweep retries

class FlakySink:
    """A penalty sink that refuses (``ShareChainError``) the penalties of the escrows in
    ``failing`` and passes the others on: a due action another module refuses for a while."""

    def __init__(self, inner: Any, failing: set[bytes]) -> None:
        self.inner = inner
        self.failing = failing

    def pay_penalty(self, ctx: Any, kind: str, escrow_id: bytes, amount: int,
                    harmed: bytes) -> None:
        if escrow_id in self.failing:
            raise ShareChainError("penalty_refused", "the penalty sink is unavailable")
        self.inner.pay_penalty(ctx, kind, escrow_id, amount, harmed)


def flaky_sink(w: World, *rids: bytes) -> FlakySink:
    sink = FlakySink(w.rental_keeper.penalties, {keys.escrow_id(r) for r in rids})
    w.rental_keeper.set_penalty_sink(sink)
    return sink


def due_entries(w: World, rid: bytes) -> list[dict[str, Any]]:
    return [d for d in w.query("rental", "due", limit="1000")["due"] if d["id"] == rid]


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [sweep_retry_delay_ms(a) for a in range(1, 10)]
    assert delays == [MIN, 2 * MIN, 4 * MIN, 8 * MIN, 16 * MIN, 32 * MIN, 60 * MIN, 60 * MIN,
                      60 * MIN]
    assert sweep_retry_delay_ms(10**9) == SWEEP_RETRY_MAX_MS == 60 * MIN


def test_failed_expiry_is_retried_with_backoff_then_settles(w: World) -> None:
    alice0, carol0 = w.balance("alice"), w.balance("carol")
    rid = reserve(w)
    sink = flaky_sink(w, rid)
    events = w.advance(15 * MIN)  # start_window_ms: the expiry is due and fails
    fail = ev(events, "rental_sweep_failed")[0]
    assert (fail["item_id"], fail["kind"], fail["code"]) == (rid, keys.DUE_EXPIRE,
                                                             "penalty_refused")
    assert fail["attempt"] == 1 and fail["retry_ms"] == w.time_ms + MIN
    assert not ev(events, "rental_expired")
    # nothing was lost: still reserved, booked, escrowed and scheduled (invariants hold too)
    r = w.rental(rid)
    assert r.state == "reserved" and r.due_ms == w.time_ms + MIN
    assert w.escrow(keys.escrow_id(rid)) == 8_000
    assert due_entries(w, rid) == [{"due_ms": r.due_ms, "kind": "expire", "id": rid,
                                    "attempts": 1}]
    assert len(w.query("rental", "calendar", asset_id=w.asset_id(BIKE).hex())["bookings"]) == 1
    # not before the retry time...
    assert not ev(w.advance(MIN - 1_000), "rental_sweep_failed")
    # ...then each failed retry waits twice as long, up to the cap
    delays = []
    for attempt in range(2, 10):
        events = w.advance(w.rental(rid).due_ms - w.time_ms)
        fail = ev(events, "rental_sweep_failed")[0]
        assert fail["attempt"] == attempt
        delays.append(fail["retry_ms"] - w.time_ms)
        assert w.rental(rid).due_ms == fail["retry_ms"]
        assert w.escrow(keys.escrow_id(rid)) == 8_000
    assert delays == [2 * MIN, 4 * MIN, 8 * MIN, 16 * MIN, 32 * MIN, 60 * MIN, 60 * MIN,
                      60 * MIN]
    assert due_entries(w, rid)[0]["attempts"] == 9
    # the cause goes away: the next retry expires the reservation as it would have at first
    sink.failing.clear()
    events = w.advance(w.rental(rid).due_ms - w.time_ms)
    assert not ev(events, "rental_sweep_failed")
    assert ev(events, "rental_expired")[0]["fee"] == 200
    r = w.rental(rid)
    assert r.state == "expired" and r.due_ms == 0
    assert w.escrow(keys.escrow_id(rid)) == 0
    assert w.balance("carol") - carol0 == 200
    assert w.balance("alice") - alice0 == -200 - 40
    assert due_entries(w, rid) == []
    assert w.query("rental", "calendar", asset_id=w.asset_id(BIKE).hex())["bookings"] == []
    assert not w.app.check_invariants(w.state)


def test_failed_default_is_retried_and_settles_once_settlement_works(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    rid = reserve(w)
    ok(w.report(BIKE, "unlock", rid))

    def refuse(*args: Any, **kw: Any) -> Any:
        raise ShareChainError("settlement_unavailable", "settlement refused")

    monkeypatch.setattr(settlement, "settle", refuse)
    events = w.advance(4 * 3_600_000 + 2 * MIN)  # max_duration_ms + grace_ms
    fail = ev(events, "rental_sweep_failed")[0]
    assert (fail["kind"], fail["code"], fail["attempt"]) == (keys.DUE_DEFAULT,
                                                             "settlement_unavailable", 1)
    assert not ev(events, "rental_defaulted")
    r = w.rental(rid)
    assert r.state == "active" and r.due_ms == fail["retry_ms"] == w.time_ms + MIN
    assert w.escrow(keys.escrow_id(rid)) == 8_000
    assert w.rental_keeper.in_use(w.state, w.asset_id(BIKE)) == rid
    assert due_entries(w, rid)[0]["kind"] == "default"
    events = w.advance(MIN)
    assert ev(events, "rental_sweep_failed")[0]["attempt"] == 2
    monkeypatch.undo()
    carol0 = w.balance("carol")
    events = w.advance(2 * MIN)
    d = ev(events, "rental_defaulted")[0]
    assert d["penalty"] + d["usage_fee"] == 8_000
    r = w.rental(rid)
    assert r.state == "defaulted" and r.due_ms == 0
    assert w.escrow(keys.escrow_id(rid)) == 0
    assert w.balance("carol") - carol0 == 8_000 - r.platform_fee
    assert w.keepers.extra["assets"].get(w.state, w.asset_id(BIKE)).use_right is None
    assert due_entries(w, rid) == []
    assert not w.app.check_invariants(w.state)


def test_a_failing_due_item_does_not_hold_up_the_others() -> None:
    w = World()
    offer(w, BIKE)
    offer(w, "BIKE-0002")
    start = w.time_ms + 1_000
    for who, code in (("alice", BIKE), ("bob", "BIKE-0002")):
        w.submit(who, [("rental/reserve", {"asset_id": w.asset_id(code), "start_ms": start,
                                           "end_ms": start + 30 * MIN})])
    bad, good = (bytes(ev(r, "rental_reserved")[0]["rental_id"]) for r in w.block())
    assert bad < good  # the failing item comes first in the index
    assert w.rental(bad).due_ms == w.rental(good).due_ms
    sink = flaky_sink(w, bad)
    events = w.advance(15 * MIN)
    assert [x["item_id"] for x in ev(events, "rental_sweep_failed")] == [bad]
    assert [x["rental_id"] for x in ev(events, "rental_expired")] == [good]
    assert w.rental(good).state == "expired" and w.rental(bad).state == "reserved"
    assert w.escrow(keys.escrow_id(bad)) == 8_000
    sink.failing.clear()
    events = w.advance(MIN)
    assert [x["rental_id"] for x in ev(events, "rental_expired")] == [bad]
    assert w.escrow(keys.escrow_id(bad)) == 0


def test_parties_can_still_act_on_a_rental_whose_due_action_is_retrying(w: World) -> None:
    rid = reserve(w)
    flaky_sink(w, rid)
    w.advance(15 * MIN)
    assert w.rental(rid).state == "reserved" and due_entries(w, rid)[0]["attempts"] == 1
    alice0 = w.balance("alice")
    c = ok(w.do("carol", "rental/cancel", ref(rid)))  # the provider cancels: no fee, no penalty
    assert ev(c, "rental_cancelled")[0]["fee"] == 0
    assert w.rental(rid).state == "cancelled" and w.escrow(keys.escrow_id(rid)) == 0
    assert w.balance("alice") - alice0 == 8_000
    assert due_entries(w, rid) == []  # the retry went with the cancellation
    assert not ev(w.advance(2 * MIN), "rental_sweep_failed")


def test_failed_claim_timeout_is_retried_and_refunds_later(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    rid = _ended(w)
    cid = bytes(ev(ok(w.do("carol", "rental/claim", claim(rid, 2_000))), "claim_filed")[0]
                ["claim_id"])
    w.advance(TERMS["claim_window_ms"])  # the window closes; the claim stays held
    k = w.rental_keeper

    def refuse(*args: Any, **kw: Any) -> None:
        raise ShareChainError("settlement_unavailable", "claim settlement refused")

    monkeypatch.setattr(k, "_settle_claim", refuse)
    events = w.advance(7 * 86_400_000)  # claim_timeout_ms
    fail = ev(events, "rental_sweep_failed")[0]
    assert (fail["item_id"], fail["kind"], fail["attempt"]) == (cid, keys.DUE_CLAIM, 1)
    c = k.claim(w.state, cid)
    assert c is not None and c.state == "open" and c.timeout_ms == fail["retry_ms"]
    assert w.escrow(keys.escrow_id(rid)) == 2_000 and w.rental(rid).held == 2_000
    monkeypatch.undo()
    alice0 = w.balance("alice")
    events = w.advance(MIN)
    assert ev(events, "claim_timed_out")[0]["refunded"] == 2_000
    assert w.balance("alice") - alice0 == 2_000 and w.escrow(keys.escrow_id(rid)) == 0
    assert w.query("rental", "due", limit="10")["due"] == []


def test_a_stray_due_entry_is_dropped_not_retried(w: World) -> None:
    stray = keys.deadline_key(w.time_ms, keys.DUE_CLAIM, bytes(9))  # no such claim
    w.state.apply({stray: b""})
    events = w.advance(1_000)
    fail = ev(events, "rental_sweep_failed")[0]
    assert (fail["code"], fail["attempt"], fail["retry_ms"]) == ("claim_not_found", 1, 0)
    assert w.query("rental", "due", limit="10")["due"] == []
