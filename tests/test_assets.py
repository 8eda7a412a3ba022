"""assets: definition and confirmation, separated rights, pledge, reports, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sharechain.app.framework import Context
from sharechain.app.state import Overlay
from sharechain.client.iot import sign_report
from sharechain.crypto import cid_of
from sharechain.errors import ShareChainError
from sharechain.modules.assets.genesis import demo_device_key
from sharechain.modules.assets.types import asset_id_of, pledge_escrow_id
from sharechain.modules.identity.testkit import TestNet, key

META = cid_of(b"bike metadata")
BIKE1 = asset_id_of("bike", "BIKE-0001")   # demo: carol's, operated by bikeco, pledged
CAR1 = asset_id_of("car", "CAR-0001")      # demo: dave's, operated by carshare, pledged


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    n = TestNet(tmp_path_factory.mktemp("assets"))
    ak = n.keepers["assets"]

    # Test seam standing in for the rental module: an unlock report locks the use right for
    # the rental id it carries, a lock report releases it.
    def rental_stub(ctx: Context, device, report, suspect: str) -> None:
        if report.kind == "unlock":
            ak.grant_use_right(ctx, report.asset_id, key("alice").address,
                               ctx.time_ms + 3_600_000, report.rental_id)
        elif report.kind == "lock":
            ak.release_use_right(ctx, report.asset_id, report.rental_id)

    n.keepers["iot"].add_listener(rental_stub)
    n.counter = 0
    yield n
    n.close()


def aid(code: str, cls: str = "bike") -> bytes:
    return asset_id_of(cls, code)


def define(code: str, cls: str = "bike", operator: str = "bikeco", cid: str = META,
           shares: list | None = None) -> tuple[str, dict]:
    body = {"class_name": cls, "code": code, "metadata_cid": cid,
            "operator": key(operator).address}
    if shares is not None:
        body["income_shares"] = shares
    return ("assets/define", body)


def asset(net: TestNet, asset_id: bytes):
    with net.view() as v:
        return net.keepers["assets"].get(v, asset_id)


def escrow(net: TestNet, asset_id: bytes) -> int:
    with net.view() as v:
        from sharechain.encoding import decode
        from sharechain.modules.bank.keys import escrow_key

        raw = v.get(escrow_key(pledge_escrow_id(asset_id)))
        return 0 if raw is None else decode(raw)


@contextmanager
def scratch(net: TestNet) -> Iterator[Context]:
    """A context over committed state whose writes are thrown away."""
    with net.view() as v:
        yield Context(Overlay(v), net.chain_id, net.chain.height() + 1, net.now_ms + 1000, b"",
                      net.chain.app)


def device_report(net: TestNet, kind: str, asset_id: bytes = BIKE1, code: str = "BIKE-0001",
                  **payload) -> tuple[str, dict]:
    net.counter += 1
    r = sign_report(demo_device_key(code), net.chain_id, asset_id, net.counter,
                    net.now_ms, kind, **payload)
    return ("iot/submit_reports", {"reports": [r]})


def test_define_and_confirm_by_class_policy(net: TestNet) -> None:
    r = net.ok("carol", [define("BIKE-0100")])
    assert [e.type for e in r.events][-1] == "asset_defined"
    a = asset(net, aid("BIKE-0100"))
    assert a.owner == key("carol").address and a.operator == key("bikeco").address
    assert not a.confirmed and a.income_shares[0].bps == 10_000
    # a bike needs its platform's confirmation; a regulator's is not asked for
    net.fails("regulator", [("assets/attest", {"asset_id": aid("BIKE-0100"),
                                               "role": "regulator"})],
              "attestation_not_required")
    net.fails("carshare", [("assets/attest", {"asset_id": aid("BIKE-0100"), "role": "platform"})],
              "not_operator")
    net.fails("alice", [("assets/attest", {"asset_id": aid("BIKE-0100"), "role": "platform"})],
              "role_required")
    r = net.ok("bikeco", [("assets/attest", {"asset_id": aid("BIKE-0100"), "role": "platform",
                                             "evidence_cid": cid_of(b"inspection")})])
    assert "asset_confirmed" in [e.type for e in r.events]
    assert asset(net, aid("BIKE-0100")).confirmed
    net.fails("bikeco", [("assets/attest", {"asset_id": aid("BIKE-0100"), "role": "platform"})],
              "already_attested")
    # a car needs regulator and platform
    net.ok("dave", [define("CAR-0100", "car", "carshare")])
    net.ok("regulator", [("assets/attest", {"asset_id": aid("CAR-0100", "car"),
                                            "role": "regulator"})])
    assert not asset(net, aid("CAR-0100", "car")).confirmed
    net.ok("carshare", [("assets/attest", {"asset_id": aid("CAR-0100", "car"),
                                           "role": "platform"})])
    assert asset(net, aid("CAR-0100", "car")).confirmed
    q = net.query("assets", "asset", id=aid("CAR-0100", "car").hex())
    assert {a["role"] for a in q["attestations"]} == {"regulator", "platform"}
    # a tool needs no confirmation at all
    r = net.ok("dave", [define("TOOL-0100", "tool")])
    assert "asset_confirmed" in [e.type for e in r.events]


def test_one_code_one_thing(net: TestNet) -> None:
    net.ok("carol", [define("BIKE-0200")])
    net.fails("dave", [define("BIKE-0200")], "asset_code_taken")
    net.fails("dave", [define("BIKE-0200", "ebike")], "asset_code_taken")   # across classes
    net.fails("dave", [define("BIKE-0001")], "asset_code_taken")            # a genesis asset
    assert net.query("assets", "asset", code="BIKE-0200")["owner"] == key("carol").address


def test_define_needs_roles_and_known_class(net: TestNet) -> None:
    net.fails("alice", [define("BIKE-0300")], "role_required")               # not a provider
    net.fails("carol", [define("BIKE-0300", operator="bob")], "role_required")  # not a platform
    net.fails("carol", [define("BOAT-0300", "boat")], "unknown_asset_class")


@pytest.mark.parametrize("msg, code", [
    (define("BIKE-0400", cid="bafy-not-a-cid"), "invalid_cid"),
    (define("BIKE-0400", cid="QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"), "invalid_cid"),
    (define("BIKE-0400", cid=""), "invalid_cid"),
    (define("bike-lower"), "invalid_msg"),
    (define(""), "invalid_msg"),
    (define("X" * 65), "invalid_msg"),
    (define("BIKE-0400", "Bike"), "invalid_msg"),
    (define("BIKE-0400", shares=[{"holder": key("carol").address, "bps": 9_999}]),
     "invalid_shares"),
    (define("BIKE-0400", shares=[{"holder": key("carol").address, "bps": 5_000},
                                 {"holder": key("carol").address, "bps": 5_000}]),
     "invalid_shares"),
    (define("BIKE-0400", shares=[{"holder": key("carol").address, "bps": 10_001},
                                 {"holder": key("bob").address, "bps": -1}]), "invalid_shares"),
    # huge values that still sum to 10000 are caught share by share
    (define("BIKE-0400", shares=[{"holder": key("carol").address, "bps": 2**63 + 10_000},
                                 {"holder": key("bob").address, "bps": -(2**63)}]),
     "invalid_shares"),
    # integers beyond the encoding's range are rejected when the tx is decoded
    (define("BIKE-0400", shares=[{"holder": key("carol").address, "bps": 2**64 + 10_000},
                                 {"holder": key("bob").address, "bps": -(2**64)}]),
     "malformed_tx"),
    (define("BIKE-0400", shares=[{"holder": key("carol").address, "bps": 0},
                                 {"holder": key("bob").address, "bps": 10_000}]),
     "invalid_shares"),
    (("assets/transfer_income_share", {"asset_id": BIKE1, "to": key("bob").address, "bps": 0}),
     "invalid_msg"),
    (("assets/transfer_income_share", {"asset_id": BIKE1, "to": key("bob").address,
                                       "bps": -5}), "invalid_msg"),
    (("assets/transfer_income_share", {"asset_id": BIKE1, "to": key("bob").address,
                                       "bps": 2**65}), "invalid_msg"),
    (("assets/grant_use_right", {"asset_id": BIKE1, "holder": key("bob").address,
                                 "until_ms": 2**64}), "invalid_msg"),
    (("assets/grant_use_right", {"asset_id": BIKE1, "holder": key("bob").address,
                                 "until_ms": -1}), "invalid_msg"),
    (("assets/pledge", {"asset_id": b"\x00" * 15}), "invalid_msg"),
    (("assets/resolve_report", {"asset_id": BIKE1, "seq": 1, "upheld": False,
                                "compensation": 5}), "invalid_msg"),
    (("assets/resolve_report", {"asset_id": BIKE1, "seq": 0, "upheld": True}), "invalid_msg"),
    (("assets/resolve_report", {"asset_id": BIKE1, "seq": 1, "upheld": True,
                                "compensation": 2**101}), "invalid_msg"),
    (("assets/resolve_report", {"asset_id": BIKE1, "seq": 1, "upheld": True,
                                "compensation": -1}), "invalid_msg"),
    (("assets/freeze", {"asset_id": BIKE1, "reason": ""}), "invalid_msg"),
])
def test_bad_input_is_rejected_without_state_change(net: TestNet, msg, code) -> None:
    assert net.fails("carol", [msg], code).fee == 0


def test_pledge_requires_confirmed_unfrozen_asset(net: TestNet) -> None:
    net.ok("carol", [define("BIKE-0500")])
    a5 = aid("BIKE-0500")
    net.fails("carol", [("assets/pledge", {"asset_id": a5})], "asset_not_confirmed")
    net.ok("bikeco", [("assets/attest", {"asset_id": a5, "role": "platform"})])
    net.fails("bikeco", [("assets/pledge", {"asset_id": a5})], "not_owner")
    net.ok("regulator", [("assets/freeze", {"asset_id": a5, "reason": "reported stolen"})])
    net.fails("regulator", [("assets/freeze", {"asset_id": a5, "reason": "again"})],
              "asset_frozen")
    net.fails("carol", [("assets/pledge", {"asset_id": a5})], "asset_frozen")
    net.fails("carol", [("assets/transfer_ownership", {"asset_id": a5,
                                                       "to": key("dave").address})],
              "asset_frozen")
    with scratch(net) as ctx, pytest.raises(ShareChainError) as e:
        net.keepers["assets"].require_rentable(ctx, a5)
    assert e.value.code == "asset_frozen"
    net.fails("bikeco", [("assets/unfreeze", {"asset_id": a5, "reason": "found"})],
              "role_required")
    net.ok("regulator", [("assets/unfreeze", {"asset_id": a5, "reason": "found"})])
    net.fails("regulator", [("assets/unfreeze", {"asset_id": a5, "reason": "x"})],
              "asset_not_frozen")
    with scratch(net) as ctx, pytest.raises(ShareChainError) as e:
        net.keepers["assets"].require_rentable(ctx, a5)
    assert e.value.code == "asset_not_pledged"
    before = net.balance(key("carol").address)
    net.ok("carol", [("assets/pledge", {"asset_id": a5})])
    fee = net.fee_for([("assets/pledge", {})])
    assert net.balance(key("carol").address) == before - 50_000 - fee
    assert escrow(net, a5) == 50_000 and asset(net, a5).pledge_held == 50_000
    net.fails("carol", [("assets/pledge", {"asset_id": a5})], "asset_already_pledged")
    with scratch(net) as ctx:
        assert net.keepers["assets"].require_rentable(ctx, a5).id == a5


def test_require_rentable_errors(net: TestNet) -> None:
    net.ok("carol", [define("BIKE-0550")])
    ak = net.keepers["assets"]
    for asset_id, code in [(b"\x07" * 16, "asset_not_found"),
                           (aid("BIKE-0550"), "asset_not_confirmed"),
                           (aid("BIKE-0002"), "asset_not_pledged")]:
        with scratch(net) as ctx, pytest.raises(ShareChainError) as e:
            ak.require_rentable(ctx, asset_id)
        assert e.value.code == code


def test_rights_are_separate_and_the_renter_is_protected(net: TestNet) -> None:
    # ownership moves; the operator, pledge and income shares stay
    net.ok("carol", [define("BIKE-0600")])
    a6 = aid("BIKE-0600")
    net.ok("carol", [("assets/transfer_ownership", {"asset_id": a6, "to": key("dave").address})])
    a = asset(net, a6)
    assert a.owner == key("dave").address and a.operator == key("bikeco").address
    assert a.share_of(key("carol").address) == 10_000
    net.fails("carol", [("assets/transfer_ownership", {"asset_id": a6,
                                                       "to": key("carol").address})],
              "not_owner")
    assert [x["code"] for x in net.query("assets", "by_owner",
                                         owner=key("dave").bech32)["assets"]].count("BIKE-0600")
    # the operator hands operation over to another platform
    net.ok("bikeco", [("assets/set_operator", {"asset_id": a6,
                                               "operator": key("carshare").address})])
    net.fails("dave", [("assets/set_operator", {"asset_id": a6,
                                                "operator": key("alice").address})],
              "role_required")
    # use right granted by the owner, moved by its holder, revoked by the operator
    net.ok("dave", [("assets/grant_use_right", {"asset_id": a6, "holder": key("bob").address,
                                                "until_ms": net.now_ms + 60_000})])
    net.fails("alice", [("assets/transfer_use_right", {"asset_id": a6,
                                                       "to": key("erin").address})],
              "not_use_right_holder")
    net.ok("bob", [("assets/transfer_use_right", {"asset_id": a6, "to": key("erin").address})])
    assert asset(net, a6).use_right.holder == key("erin").address
    net.ok("carshare", [("assets/revoke_use_right", {"asset_id": a6})])
    net.fails("carshare", [("assets/revoke_use_right", {"asset_id": a6})], "no_use_right")
    net.fails("dave", [("assets/grant_use_right", {"asset_id": a6, "holder": key("bob").address,
                                                   "until_ms": net.now_ms - 1})],
              "use_right_expired")


def test_locked_use_right_cannot_be_revoked_or_moved(net: TestNet) -> None:
    rental_id = b"rental-0001"
    r = net.ok("gateway", [device_report(net, "unlock", rental_id=rental_id)])
    assert "use_right_granted" in [e.type for e in r.events]
    u = asset(net, BIKE1).use_right
    assert u.holder == key("alice").address and u.locked_by == rental_id
    for who, msg in [
        ("carol", ("assets/revoke_use_right", {"asset_id": BIKE1})),
        ("bikeco", ("assets/revoke_use_right", {"asset_id": BIKE1})),
        ("carol", ("assets/grant_use_right", {"asset_id": BIKE1, "holder": key("bob").address,
                                              "until_ms": net.now_ms + 10_000})),
        ("alice", ("assets/transfer_use_right", {"asset_id": BIKE1, "to": key("bob").address})),
    ]:
        net.fails(who, [msg], "use_right_locked")
    # the device can not be unbound mid-rental
    dev = demo_device_key("BIKE-0001").address
    net.fails("carol", [("iot/unbind_device", {"device": dev})], "use_right_locked")
    ak = net.keepers["assets"]
    with scratch(net) as ctx, pytest.raises(ShareChainError) as e:
        ak.grant_use_right(ctx, BIKE1, key("bob").address, ctx.time_ms + 5, b"other-rental")
    assert e.value.code == "use_right_locked"
    with scratch(net) as ctx, pytest.raises(ShareChainError) as e:
        ak.release_use_right(ctx, BIKE1, b"other-rental")
    assert e.value.code == "use_right_lock_mismatch"
    # ownership may still change hands: the renter keeps the use right
    net.ok("carol", [("assets/transfer_ownership", {"asset_id": BIKE1,
                                                    "to": key("dave").address})])
    assert asset(net, BIKE1).use_right.locked_by == rental_id
    net.ok("dave", [("assets/transfer_ownership", {"asset_id": BIKE1,
                                                   "to": key("carol").address})])
    r = net.ok("gateway", [device_report(net, "lock", rental_id=rental_id)])
    assert "use_right_released" in [e.type for e in r.events]
    assert asset(net, BIKE1).use_right is None
    # a failing listener does not undo the report: a lock without a rental lock is recorded
    r = net.ok("gateway", [device_report(net, "lock", rental_id=b"no-such-rental")])
    failed = [e.attrs["code"] for e in r.events if e.type == "report_listener_failed"]
    assert "use_right_lock_mismatch" in failed


def test_income_shares(net: TestNet) -> None:
    net.ok("carol", [define("BIKE-0700")])
    a7 = aid("BIKE-0700")
    net.ok("carol", [("assets/transfer_income_share", {"asset_id": a7,
                                                       "to": key("bob").address, "bps": 3_000})])
    a = asset(net, a7)
    assert a.share_of(key("carol").address) == 7_000 and a.share_of(key("bob").address) == 3_000
    net.fails("bob", [("assets/transfer_income_share", {"asset_id": a7,
                                                        "to": key("erin").address,
                                                        "bps": 3_001})], "insufficient_share")
    net.fails("bob", [("assets/transfer_income_share", {"asset_id": a7,
                                                        "to": key("bob").address, "bps": 1})],
              "self_transfer")
    net.ok("bob", [("assets/transfer_income_share", {"asset_id": a7, "to": key("erin").address,
                                                     "bps": 3_000})])
    a = asset(net, a7)
    assert {s.holder: s.bps for s in a.income_shares} == {key("carol").address: 7_000,
                                                          key("erin").address: 3_000}
    # explicit shares at definition
    net.ok("carol", [define("BIKE-0701", shares=[{"holder": key("carol").address, "bps": 7_000},
                                                 {"holder": key("bob").address, "bps": 3_000}])])
    assert asset(net, aid("BIKE-0701")).share_of(key("bob").address) == 3_000


def test_consumer_confirmations_return_the_pledge(net: TestNet) -> None:
    net.ok("carol", [define("BIKE-0800")])
    a8 = aid("BIKE-0800")
    net.ok("bikeco", [("assets/attest", {"asset_id": a8, "role": "platform"})])
    net.ok("carol", [("assets/pledge", {"asset_id": a8})])
    net.fails("alice", [("assets/confirm", {"asset_id": a8})], "not_a_user")
    net.fails("carol", [("assets/confirm", {"asset_id": a8})], "self_confirmation")
    net.fails("bikeco", [("assets/confirm", {"asset_id": a8})], "role_required")
    carol_before = net.balance(key("carol").address)
    for i, name in enumerate(["alice", "bob", "erin"]):
        net.ok("carol", [("assets/grant_use_right", {"asset_id": a8,
                                                     "holder": key(name).address,
                                                     "until_ms": net.now_ms + 60_000})])
        r = net.ok(name, [("assets/confirm", {"asset_id": a8})])
        if i < 2:
            net.fails(name, [("assets/confirm", {"asset_id": a8})], "already_confirmed")
    assert "pledge_returned" in [e.type for e in r.events]
    a = asset(net, a8)
    assert a.pledge_returned and a.pledge_held == 0 and a.pledged
    assert escrow(net, a8) == 0
    assert net.balance(key("carol").address) == carol_before + 50_000 - 3 * net.fee_for(
        [("assets/grant_use_right", {})])
    q = net.query("assets", "confirmations", id=a8.hex())
    assert q["count"] == 3 and q["required"] == 3 and len(q["consumers"]) == 3
    # the keeper counts once per consumer and never after the return
    with scratch(net) as ctx:
        assert not net.keepers["assets"].record_consumer_confirmation(ctx, a8,
                                                                      key("dave").address)


def test_upheld_report_compensates_from_the_pledge(net: TestNet) -> None:
    net.ok("bob", [("assets/report", {"asset_id": CAR1, "kind": "unsafe",
                                      "evidence_cid": cid_of(b"brakes")})])
    net.fails("bob", [("assets/report", {"asset_id": CAR1, "kind": "fake"})],
              "report_already_open")
    net.fails("dave", [("assets/report", {"asset_id": CAR1, "kind": "fake"})], "self_report")
    net.fails("carshare", [("assets/resolve_report", {"asset_id": CAR1, "seq": 1,
                                                      "upheld": True})], "role_required")
    net.fails("regulator", [("assets/resolve_report", {"asset_id": CAR1, "seq": 9,
                                                       "upheld": True})], "report_not_found")
    net.fails("regulator", [("assets/resolve_report", {"asset_id": CAR1, "seq": 1,
                                                       "upheld": True,
                                                       "compensation": 1_000_001})],
              "pledge_insufficient")
    bob_before = net.balance(key("bob").address)
    r = net.ok("regulator", [("assets/resolve_report", {"asset_id": CAR1, "seq": 1,
                                                        "upheld": True,
                                                        "compensation": 300_000})])
    types = [e.type for e in r.events]
    assert "pledge_compensation_paid" in types and "asset_frozen" in types
    assert net.balance(key("bob").address) == bob_before + 300_000
    a = asset(net, CAR1)
    assert a.frozen and a.pledge_held == 700_000 and a.open_reports == 0
    assert escrow(net, CAR1) == 700_000
    net.fails("regulator", [("assets/resolve_report", {"asset_id": CAR1, "seq": 1,
                                                       "upheld": False})], "report_not_open")
    assert net.query("assets", "reports", id=CAR1.hex())["reports"][0]["status"] == "upheld"
    with scratch(net) as ctx, pytest.raises(ShareChainError) as e:
        net.keepers["assets"].require_rentable(ctx, CAR1)
    assert e.value.code == "asset_frozen"


def test_open_report_holds_back_the_pledge_return(net: TestNet) -> None:
    net.ok("dave", [define("TOOL-0900", "tool", "carshare")])   # tools: 2 confirmations
    t9 = aid("TOOL-0900", "tool")
    net.ok("dave", [("assets/pledge", {"asset_id": t9})])
    net.ok("erin", [("assets/report", {"asset_id": t9, "kind": "fake"})])
    for name in ["alice", "bob"]:
        net.ok("dave", [("assets/grant_use_right", {"asset_id": t9, "holder": key(name).address,
                                                    "until_ms": net.now_ms + 60_000})])
        net.ok(name, [("assets/confirm", {"asset_id": t9})])
    assert asset(net, t9).pledge_held == 10_000            # held while the report is open
    r = net.ok("regulator", [("assets/resolve_report", {"asset_id": t9, "seq": 1,
                                                        "upheld": False, "note": "ok"})])
    assert "pledge_returned" in [e.type for e in r.events]
    assert asset(net, t9).pledge_returned


def test_queries(net: TestNet) -> None:
    assert {c["name"] for c in net.query("assets", "classes")["classes"]} >= {"bike", "car",
                                                                               "room"}
    assert net.query("assets", "class", name="car")["confirmations"] == ["regulator", "platform"]
    assert net.query("assets", "asset_id", class_name="bike", code="BIKE-0001")["id"] == BIKE1
    ops = net.query("assets", "by_operator", operator=key("bikeco").bech32, limit="500")
    assert BIKE1 in [a["id"] for a in ops["assets"]]
    for params, code in [({"id": "zz"}, "invalid_query"), ({"id": "00" * 15}, "invalid_query"),
                         ({"id": "00" * 16}, "not_found"), ({"code": "NOPE"}, "not_found")]:
        with pytest.raises(ShareChainError) as e:
            net.query("assets", "asset", **params)
        assert e.value.code == code
