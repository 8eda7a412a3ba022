"""credit: the score formula, tiers gating rentals, the blacklist, consent and bureau reports.

Chain tests run the real application over the devnet demo world (``TrustNet``: LMDB chain,
solo engine, every invariant checked after every block).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharechain.app.framework import Context
from sharechain.app.state import Overlay
from sharechain.crypto import PrivateKey, sha256
from sharechain.modules.arbitration.testing import BIKE, SECOND, TrustNet, addr, evidence
from sharechain.modules.assets.types import asset_id_of
from sharechain.modules.credit import score
from sharechain.modules.credit.keeper import CreditKeeper
from sharechain.modules.credit.types import (
    EVENTS_KEPT_MAX,
    LATE,
    Params,
    TierRule,
)
from sharechain.modules.rental.testing import MemState

CAR = asset_id_of("car", "CAR-0001")   # dave's, operated by carshare
DAY = 86_400_000
HALF_LIFE = 180 * DAY


@pytest.fixture
def net(tmp_path: Path) -> Iterator[TrustNet]:
    n = TrustNet(tmp_path)
    n.offer()
    yield n
    n.close()


def bech(name: str) -> str:
    return PrivateKey.from_name(name).bech32


def standing(net: TrustNet, name: str) -> dict[str, Any]:
    return net.query("credit", "score", address=bech(name), at_ms=str(net.now_ms))  # type: ignore[no-any-return]


def deposit_of(net: TrustNet, consumer: str, asset_id: bytes = BIKE,
               start_in_ms: int = 10 * SECOND) -> int:
    """Reserve ahead of the cancel window, read the deposit, cancel for free."""
    r, rid = net.reserve(consumer, asset_id, start_in_ms=start_in_ms)
    assert r.code == "", f"{r.code}: {r.message}"
    dep = next(e.attrs["deposit"] for e in r.events if e.type == "rental_reserved")
    net.ok(consumer, [("rental/cancel", {"rental_id": rid})])
    return int(dep)


# ==================================================================== the formula

def test_decay_halves_per_half_life_in_sixteen_steps() -> None:
    w = -40 * score.SCALE
    t = 7 * HALF_LIFE                                   # on the step grid
    assert score.decay(w, t, t, HALF_LIFE) == -40_000
    assert score.decay(w, t, t + HALF_LIFE, HALF_LIFE) == -20_000
    assert score.decay(w, t, t + HALF_LIFE + HALF_LIFE // 2, HALF_LIFE) == -14_142  # 2^-1.5
    assert score.decay(w, t, t + 2 * HALF_LIFE, HALF_LIFE) == -10_000
    assert score.decay(-w, t, t + 2 * HALF_LIFE, HALF_LIFE) == 10_000  # sign-symmetric
    assert score.decay(w, t, t + HALF_LIFE // 16 - 1, HALF_LIFE) == w   # within one step
    assert score.decay(w, t, t + 200 * HALF_LIFE, HALF_LIFE) == 0
    assert score.decay(w, t, t - 5, HALF_LIFE) == w                     # no growth backwards
    # the grid makes decay compose: a steps then b steps is a + b steps, up to rounding
    once = score.decay(w, t + 3, t + 400 * DAY, HALF_LIFE)
    twice = score.decay(score.decay(w, t + 3, t + 100 * DAY, HALF_LIFE), t + 100 * DAY,
                        t + 400 * DAY, HALF_LIFE)
    assert abs(once - twice) <= 1


def test_worked_example_from_the_readme() -> None:
    """base 680; on time +10 (a year ago), late −40 (90 days ago), damage −80 (today)."""
    now = 1_000 * DAY
    events = [(10, now - 365 * DAY), (-40, now - 90 * DAY), (-80, now)]
    parts = score.effective_milli(events, now, HALF_LIFE)
    assert parts == [2_500, -28_284, -80_000]
    assert score.onchain_score(680, 0, 0, events, now, HALF_LIFE) == 574
    assert score.combine(574, [900], 2_000) == 639           # with an "A" bureau report
    tiers = Params().tiers
    assert score.tier_of(639, False, tiers, 0) == "C"
    assert score.tier_of(639, True, tiers, 0) == "blocked"
    assert score.tier_of(150, False, tiers, 200) == "blocked"


def test_params_reject_bad_tier_tables() -> None:
    good = Params()
    with pytest.raises(ValueError):
        Params(tiers=good.tiers[:3])
    with pytest.raises(ValueError):
        Params(tiers=(TierRule("A", 500, 10_000, 1), TierRule("B", 650, 10_000, 1),
                      TierRule("C", 400, 10_000, 1), TierRule("D", 0, 10_000, 1)))
    with pytest.raises(ValueError):
        Params(weights={LATE: -40})


def test_old_events_fold_into_a_carried_sum() -> None:
    """More than EVENTS_KEPT_MAX events: the oldest fold into the carry and the score stays
    what it would be with every event kept (up to rounding)."""
    k = CreditKeeper(roles=None, assets=None)  # type: ignore[arg-type]
    state = MemState()
    who = addr("alice")
    t0 = 10 * DAY
    for i in range(EVENTS_KEPT_MAX + 6):
        ctx = Context(Overlay(state), "t", i + 1, t0 + i * DAY, b"", None)  # type: ignore[arg-type]
        k.record(ctx, who, LATE if i % 3 else "completed_on_time", "consumer")
        state.apply(ctx.state.writes)
    s = k.summary(state, who)
    assert (s.kept, s.next_seq) == (EVENTS_KEPT_MAX, EVENTS_KEPT_MAX + 7)
    assert s.carry_milli != 0 and s.carry_ms == t0 + 5 * DAY
    now = t0 + 100 * DAY
    unfolded = score.onchain_score(
        680, 0, 0, [(10 if i % 3 == 0 else -40, t0 + i * DAY)
                    for i in range(EVENTS_KEPT_MAX + 6)], now, HALF_LIFE)
    assert abs(k.onchain(state, who, now) - unfolded) <= 1


# ==================================================================== tiers gate rentals

def test_late_rider_falls_a_tier_and_pays_a_larger_deposit(net: TrustNet) -> None:
    assert standing(net, "alice")["tier"] == "B"
    assert deposit_of(net, "alice") == 20_000
    net.rent("alice", late_ms=5 * SECOND)
    s = standing(net, "alice")
    assert (s["score"], s["tier"], s["deposit_multiplier_bps"]) == (640, "C", 15_000)
    assert deposit_of(net, "alice") == 30_000
    explained = net.query("credit", "explain", address=bech("alice"))
    assert [e["kind"] for e in explained["top_events"]] == ["late"]
    assert explained["top_events"][0]["platform"] == addr("bikeco")


def test_on_time_rentals_count_for_consumer_and_provider(net: TrustNet) -> None:
    rid = net.rent("bob")
    assert standing(net, "bob")["score"] == 690
    carol = net.query("credit", "events", address=bech("carol"))["events"]
    assert [(e["kind"], e["role"], e["ref"]) for e in carol] == [
        ("completed_on_time", "provider", rid)]


def test_reputation_follows_a_provider_to_another_platform(net: TrustNet) -> None:
    net.rent("bob")
    before = standing(net, "carol")["score"]
    net.ok("carol", [("assets/set_operator", {"asset_id": BIKE, "operator": addr("carshare")})])
    assert standing(net, "carol")["score"] == before        # nothing reset by the move
    net.offer()
    net.rent("erin")
    events = net.query("credit", "events", address=bech("carol"))["events"]
    assert [e["platform"] for e in events] == [addr("bikeco"), addr("carshare")]
    assert standing(net, "carol")["score"] == before + 10


def test_offer_min_tier_refuses_lower_tiers(net: TrustNet) -> None:
    net.offer(min_credit_tier=4)  # tier A only
    start = net.now_ms + SECOND
    net.fails("alice", [("rental/reserve", {"asset_id": BIKE, "start_ms": start,
                                            "end_ms": start + 3 * SECOND})], "credit_too_low")


def test_tier_limits_asset_classes_and_concurrent_rentals(net: TrustNet) -> None:
    net.rent("alice", late_ms=5 * SECOND)             # tier C: no cars, 3 rentals at once
    net.offer("dave", CAR)
    car = ("rental/reserve", {"asset_id": CAR, "start_ms": net.now_ms + 10 * SECOND,
                              "end_ms": net.now_ms + 13 * SECOND})
    net.fails("alice", [car], "asset_class_not_allowed")
    assert net.tx("bob", [car]).code == ""            # tier B may
    for i in range(3):
        r, _ = net.reserve("alice", start_in_ms=(10 + 10 * i) * SECOND)
        assert r.code == ""
    assert standing(net, "alice")["open_rentals"] == 3
    start = net.now_ms + 60 * SECOND
    net.fails("alice", [("rental/reserve", {"asset_id": BIKE, "start_ms": start,
                                            "end_ms": start + 3 * SECOND})], "too_many_rentals")


# ==================================================================== blacklist

def blacklist_msg(subject: str, expires_ms: int) -> tuple[str, Any]:
    return ("credit/blacklist", {"subject": addr(subject), "reason": "repeated defaults",
                                 "evidence": [sha256(b"tx one"), sha256(b"tx two")],
                                 "expires_ms": expires_ms})


def test_regulator_blacklists_with_evidence_and_expiry(net: TrustNet) -> None:
    expires = net.now_ms + 20 * SECOND
    net.ok("regulator", [blacklist_msg("bob", expires)])
    listed = net.query("credit", "blacklist", address=bech("bob"), at_ms=str(net.now_ms))
    assert listed["blacklisted"] and listed["entries"][0]["evidence"] == [
        sha256(b"tx one"), sha256(b"tx two")]
    assert net.query("credit", "blacklist")["entries"][0]["subject"] == addr("bob")  # public
    s = standing(net, "bob")
    assert (s["tier"], s["blacklist_entry"]) == ("blocked", 1)
    start = net.now_ms + SECOND
    net.fails("bob", [("rental/reserve", {"asset_id": BIKE, "start_ms": start,
                                          "end_ms": start + 3 * SECOND})], "blacklisted")
    net.produce(20 * SECOND)                           # the entry expires by block time
    assert standing(net, "bob")["tier"] == "B"
    r, _ = net.reserve("bob")
    assert r.code == ""


def test_only_a_regulator_blacklists_or_lifts(net: TrustNet) -> None:
    net.fails("bikeco", [blacklist_msg("bob", net.now_ms + DAY)], "role_required")
    net.fails("regulator", [blacklist_msg("bob", net.now_ms - 1)], "invalid_period")
    net.ok("regulator", [blacklist_msg("bob", net.now_ms + DAY)])
    lift = ("credit/lift_blacklist", {"entry_id": 1, "reason": "paid up"})
    net.fails("bob", [lift], "role_required")
    net.fails("regulator", [("credit/lift_blacklist", {"entry_id": 9, "reason": "x"})],
              "blacklist_entry_not_found")
    net.ok("regulator", [lift])
    net.fails("regulator", [lift], "blacklist_entry_not_active")
    assert standing(net, "bob")["tier"] == "B"


def test_regulator_records_fraud(net: TrustNet) -> None:
    net.ok("regulator", [("credit/record_fraud", {"subject": addr("dave"),
                                                  "evidence": [sha256(b"fake listing")]})])
    assert standing(net, "dave")["score"] == 680 - 400
    net.fails("bikeco", [("credit/record_fraud", {"subject": addr("dave"),
                                                  "evidence": [sha256(b"x")]})],
              "role_required")


# ==================================================================== bureau reports

def report_msg(subject: str, net: TrustNet, band: str = "A") -> tuple[str, Any]:
    return ("credit/submit_report", {"subject": addr(subject), "band": band,
                                     "valid_from_ms": net.now_ms,
                                     "valid_until_ms": net.now_ms + 30 * DAY,
                                     "report_cid": evidence(f"bureau report {subject}")})


def test_bureau_report_with_consent_moves_the_score(net: TrustNet) -> None:
    """erin consented in genesis: 680 × 0.8 + 900 (band A) × 0.2 = 724."""
    net.ok("bureau", [report_msg("erin", net)])
    s = standing(net, "erin")
    assert (s["onchain_score"], s["bureau_score"], s["score"]) == (680, 900, 724)
    reports = net.query("credit", "reports", address=bech("erin"), at_ms=str(net.now_ms))
    assert reports["reports"][0]["counted"] is True
    net.ok("erin", [("credit/revoke_consent", {"bureau": addr("bureau")})])
    s = standing(net, "erin")
    assert (s["score"], s["bureau_reports"]) == (680, 0)
    assert net.query("credit", "reports", address=bech("erin"))["reports"] == []
    net.fails("bureau", [report_msg("erin", net)], "consent_required")


def test_reports_need_consent_and_the_bureau_role(net: TrustNet) -> None:
    net.fails("bureau", [report_msg("bob", net)], "consent_required")
    net.fails("carshare", [report_msg("erin", net)], "role_required")
    net.fails("bob", [("credit/grant_consent", {"bureau": addr("carshare"),
                                                "until_ms": net.now_ms + DAY})],
              "role_required")
    net.fails("bob", [("credit/revoke_consent", {"bureau": addr("bureau")})],
              "consent_not_found")
    net.ok("bob", [("credit/grant_consent", {"bureau": addr("bureau"),
                                             "until_ms": net.now_ms + 10 * SECOND})])
    net.ok("bureau", [report_msg("bob", net, "D")])
    assert standing(net, "bob")["score"] == (680 * 8_000 + 300 * 2_000) // 10_000
    net.produce(10 * SECOND)                     # consent lapsed: the report stops counting
    assert standing(net, "bob")["score"] == 680
