"""iot: binding, signed reports (replay, skew, forgery), plausibility, listeners, anchors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharechain.client.iot import (
    bind_msg,
    build_anchor,
    proof_for,
    proof_from_json,
    proof_to_json,
    reading_leaf,
    sign_report,
    verify_reading,
)
from sharechain.crypto import PrivateKey, cid_of
from sharechain.errors import ShareChainError
from sharechain.modules.assets.genesis import DEMO_CLASSES, demo_device_key
from sharechain.modules.assets.types import asset_id_of
from sharechain.modules.identity.testkit import TestNet, key
from sharechain.modules.iot.geo import (
    GEOHASH_ALPHABET,
    decode_geohash,
    distance_mm,
    geohash_distance_mm,
)
from sharechain.modules.iot.keeper import DEFAULT_PARAMS
from sharechain.modules.iot.plausibility import suspect_reasons
from sharechain.modules.iot.types import Device, Payload, Report, SignedReport

BIKE9 = asset_id_of("bike", "BIKE-0900")
DEV9 = PrivateKey.from_name("device/test/BIKE-0900")
CAR1 = asset_id_of("car", "CAR-0001")
DEV_CAR = demo_device_key("CAR-0001")
# two points in Berlin about 6 km apart
ALEX, SOUTH = "u33dc1v0", "u33d8b5g"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    n = TestNet(tmp_path_factory.mktemp("iot"))
    n.seen = []
    n.keepers["iot"].add_listener(
        lambda ctx, d, r, s: n.seen.append((d.id, r.counter, r.kind, s)))
    n.counters = {}
    n.ok("carol", [("assets/define", {"class_name": "bike", "code": "BIKE-0900",
                                      "metadata_cid": cid_of(b"b9"),
                                      "operator": key("bikeco").address})])
    n.ok("carol", [("iot/bind_device", bind_msg(DEV9, n.chain_id, BIKE9, key("carol").address))])
    yield n
    n.close()


def report(net: TestNet, dev: PrivateKey = DEV9, asset_id: bytes = BIKE9, kind: str = "meter",
           counter: int | None = None, time_ms: int | None = None, **payload) -> SignedReport:
    if counter is None:
        counter = net.counters.get(dev.address, 0) + 1
    net.counters[dev.address] = max(counter, net.counters.get(dev.address, 0))
    return sign_report(dev, net.chain_id, asset_id, counter,
                       net.now_ms if time_ms is None else time_ms, kind, **payload)


def submit(*reports: SignedReport) -> tuple[str, dict]:
    return ("iot/submit_reports", {"reports": list(reports)})


def device(net: TestNet, dev: PrivateKey = DEV9) -> Device:
    with net.view() as v:
        return net.keepers["iot"].device(v, dev.address)


def test_binding(net: TestNet) -> None:
    d = device(net)
    assert d.asset_id == BIKE9 and d.bound_by == key("carol").address
    assert net.query("iot", "device_for_asset", asset_id=BIKE9.hex())["id"] == DEV9.address
    other = PrivateKey.from_name("device/test/other")
    net.fails("carol", [("iot/bind_device", bind_msg(other, net.chain_id, BIKE9,
                                                     key("carol").address))], "asset_has_device")
    net.ok("carol", [("assets/define", {"class_name": "bike", "code": "BIKE-0901",
                                        "metadata_cid": cid_of(b"b91"),
                                        "operator": key("bikeco").address})])
    b91 = asset_id_of("bike", "BIKE-0901")
    net.fails("carol", [("iot/bind_device", bind_msg(DEV9, net.chain_id, b91,
                                                     key("carol").address))],
              "device_already_bound")
    net.fails("alice", [("iot/bind_device", bind_msg(other, net.chain_id, b91,
                                                     key("alice").address))],
              "not_owner_or_operator")
    # consent signed for another binder, another chain, or by another key
    for msg in [bind_msg(other, net.chain_id, b91, key("bikeco").address),
                bind_msg(other, "other-chain", b91, key("carol").address)]:
        net.fails("carol", [("iot/bind_device", msg)], "invalid_device_signature")
    forged = bind_msg(PrivateKey.from_name("mallory"), net.chain_id, b91, key("carol").address)
    forged = type(forged)(other.public_key, forged.asset_id, forged.device_sig)
    net.fails("carol", [("iot/bind_device", forged)], "invalid_device_signature")
    # the operator may bind too
    net.ok("bikeco", [("iot/bind_device", bind_msg(other, net.chain_id, b91,
                                                   key("bikeco").address))])


def test_reports_accepted_and_visible(net: TestNet) -> None:
    before = device(net)
    with net.view() as v:
        prev = net.keepers["iot"].last_report(v, DEV9.address, "meter")
    r1 = report(net, reading=100 if prev is None else prev.payload.reading + 100)
    res = net.ok("gateway", [submit(r1, report(net, kind="battery", percent=80),
                                    report(net, kind="location", geohash=ALEX))])
    assert [e.type for e in res.events][-1] == "reports_accepted"
    d = device(net)
    assert d.last_counter == r1.report.counter + 2 and d.reports == before.reports + 3
    last = net.query("iot", "last_report", device=DEV9.bech32, kind="meter")
    assert last["report"]["payload"]["reading"] == r1.report.payload.reading
    assert last["suspect"] == ""
    assert last["gateway"] == key("gateway").address
    assert set(net.query("iot", "last_reports", device=DEV9.bech32)["reports"]) == {
        "meter", "battery", "location"}
    assert [s[2] for s in net.seen[-3:]] == ["meter", "battery", "location"]


def test_hard_checks_reject_and_change_nothing(net: TestNet) -> None:
    net.ok("gateway", [submit(report(net, kind="battery", percent=90))])
    good = report(net, reading=150)
    net.fails("alice", [submit(good)], "role_required")                 # not a gateway
    forged = SignedReport(good.report, PrivateKey.from_name("mallory").sign(b"x" * 10) )
    net.fails("gateway", [submit(forged)], "invalid_report_signature")
    tampered = SignedReport(Report(good.report.device, good.report.asset_id, good.report.counter,
                                   good.report.time_ms, "meter", Payload(reading=999_999)),
                            good.sig)
    net.fails("gateway", [submit(tampered)], "invalid_report_signature")
    last = device(net).last_counter
    net.fails("gateway", [submit(report(net, counter=last, reading=160))], "report_replayed")
    net.fails("gateway", [submit(report(net, counter=1, reading=160))], "report_replayed")
    # claims another asset than the one its device is bound to
    net.fails("gateway", [submit(report(net, asset_id=CAR1, reading=160))],
              "device_asset_mismatch")
    # a device that was never bound
    net.fails("gateway", [submit(report(net, dev=PrivateKey.from_name("ghost"), reading=1))],
              "device_not_found")
    # time tolerance: 60 s ahead of the block, one hour behind it
    block_ms = net.now_ms + net.block_ms
    net.fails("gateway", [submit(report(net, counter=last + 1, time_ms=block_ms + 60_001,
                                        reading=160))], "report_time_skew")
    net.fails("gateway", [submit(report(net, counter=last + 1, time_ms=block_ms - 3_600_001,
                                        reading=160))], "report_time_skew")
    # a batch is all or nothing: a replay after a good report drops both
    net.counters[DEV9.address] = last
    net.fails("gateway", [submit(report(net, reading=170), report(net, counter=last,
                                                                  reading=171))],
              "report_replayed")
    assert device(net).last_counter == last
    # and the good report is still usable afterwards
    net.ok("gateway", [submit(report(net, counter=last + 1, reading=170))])


def test_replay_protection_survives_rebinding(net: TestNet) -> None:
    old = report(net, reading=200)
    net.ok("gateway", [submit(old)])
    net.ok("carol", [("iot/unbind_device", {"device": DEV9.address})])
    net.fails("gateway", [submit(report(net, reading=210))], "device_not_bound")
    net.fails("carol", [("iot/unbind_device", {"device": DEV9.address})], "device_not_bound")
    net.ok("carol", [("iot/bind_device", bind_msg(DEV9, net.chain_id, BIKE9,
                                                  key("carol").address))])
    assert device(net).last_counter == old.report.counter
    net.fails("gateway", [submit(old)], "report_replayed")


@pytest.mark.parametrize("body, code", [
    ({"kind": "meter", "payload": {"reading": -1}}, "invalid_msg"),
    ({"kind": "meter", "payload": {"reading": 2**64}}, "invalid_msg"),
    ({"kind": "meter", "payload": {}}, "invalid_msg"),
    ({"kind": "meter", "payload": {"reading": 5, "geohash": "u33d"}}, "invalid_msg"),
    ({"kind": "location", "payload": {"geohash": "u33a"}}, "invalid_msg"),   # no 'a' in base32
    ({"kind": "location", "payload": {"geohash": "u" * 13}}, "invalid_msg"),
    ({"kind": "battery", "payload": {"percent": 101}}, "invalid_msg"),
    ({"kind": "fault", "payload": {"damage": True, "note_cid": "nope"}}, "invalid_cid"),
    ({"kind": "teleport", "payload": {}}, "invalid_msg"),
    ({"kind": "unlock", "payload": {"rental_id": b"r" * 65}}, "invalid_msg"),
    ({"kind": "unlock", "payload": {}, "counter": 0}, "invalid_msg"),
    ({"kind": "unlock", "payload": {}, "counter": 2**63}, "invalid_msg"),
    ({"kind": "unlock", "payload": {}, "counter": -5}, "invalid_msg"),
    ({"kind": "unlock", "payload": {}, "time_ms": -1}, "invalid_msg"),
    ({"kind": "unlock", "payload": {}, "counter": 2**129}, "malformed_tx"),
])
def test_bad_reports_rejected_at_admission(net: TestNet, body, code) -> None:
    r = {"device": DEV9.address, "asset_id": BIKE9, "counter": 10**6, "time_ms": net.now_ms}
    r.update(body)
    assert net.fails("gateway", [("iot/submit_reports", {"reports": [{"report": r,
                                                                      "sig": b"\0" * 64}]})],
                     code).fee == 0


def test_implausible_reports_are_flagged_not_rejected(net: TestNet) -> None:
    before = device(net).suspects
    net.ok("gateway", [submit(report(net, kind="location", geohash=ALEX))], advance_ms=10_000)
    # ~6 km in 10 s is 600 m/s: impossible for a bike (15 m/s)
    res = net.ok("gateway", [submit(report(net, kind="location", geohash=SOUTH))])
    sus = [e for e in res.events if e.type == "report_suspect"]
    assert sus and sus[0].attrs["reason"] == "speed"
    assert net.query("iot", "last_report", device=DEV9.bech32, kind="location")["suspect"] == \
        "speed"
    assert net.seen[-1][3] == "speed"
    # ~6 km in 600 s (10 m/s) is fine
    net.ok("gateway", [submit(report(net, kind="location", geohash=SOUTH))], advance_ms=600_000)
    res = net.ok("gateway", [submit(report(net, kind="location", geohash=ALEX))])
    assert not [e for e in res.events if e.type == "report_suspect"]
    # meters: backwards and too big a step
    net.ok("gateway", [submit(report(net, reading=10_000))])
    res = net.ok("gateway", [submit(report(net, reading=9_999))])
    assert [e.attrs["reason"] for e in res.events if e.type == "report_suspect"] == \
        ["meter_backwards"]
    res = net.ok("gateway", [submit(report(net, reading=9_999 + 200_001))])
    assert [e.attrs["reason"] for e in res.events if e.type == "report_suspect"] == ["meter_jump"]
    # counter gaps and a clock going backwards
    c = device(net).last_counter
    res = net.ok("gateway", [submit(report(net, counter=c + 1_001, kind="battery", percent=50,
                                           time_ms=net.now_ms - 5_000))])
    assert [e.attrs["reason"] for e in res.events if e.type == "report_suspect"] == \
        ["counter_gap,time_backwards"]
    d = device(net)
    assert d.suspects == before + 4 and d.last_suspect == "counter_gap,time_backwards"


def test_anchor_and_prove_a_reading(net: TestNet) -> None:
    readings = [{"device": DEV9.bech32, "t": net.now_ms + i, "meter": 1000 + i}
                for i in range(100)]
    leaves = [reading_leaf(x) for x in readings]
    root, count = build_anchor(leaves)
    res = net.ok("gateway", [("iot/anchor", {"root": root, "count": count,
                                             "period_start_ms": net.now_ms,
                                             "period_end_ms": net.now_ms + 99,
                                             "device": DEV9.address})])
    anchor_id = next(e.attrs["anchor_id"] for e in res.events if e.type == "readings_anchored")
    on_chain = net.query("iot", "anchor", id=str(anchor_id))
    proof = proof_from_json(proof_to_json(proof_for(leaves, 37)))
    assert verify_reading(on_chain, leaves[37], proof)
    assert not verify_reading(on_chain, leaves[38], proof)
    assert not verify_reading(on_chain, reading_leaf({"forged": 1}), proof)
    assert net.query("iot", "anchors", gateway=key("gateway").bech32)["anchors"][-1]["id"] == \
        anchor_id
    net.fails("alice", [("iot/anchor", {"root": root, "count": 1, "period_start_ms": 0,
                                        "period_end_ms": 0})], "role_required")
    for bad in [{"root": root[:31], "count": 1, "period_start_ms": 0, "period_end_ms": 0},
                {"root": root, "count": 0, "period_start_ms": 0, "period_end_ms": 0},
                {"root": root, "count": 1, "period_start_ms": 5, "period_end_ms": 4}]:
        net.fails("gateway", [("iot/anchor", bad)], "invalid_msg")
    net.fails("gateway", [("iot/anchor", {"root": root, "count": 1, "period_start_ms": 0,
                                          "period_end_ms": 0,
                                          "device": PrivateKey.from_name("ghost").address})],
              "device_not_found")


def test_queries_validate_parameters(net: TestNet) -> None:
    for name, params, code in [("device", {"id": "x"}, "invalid_query"),
                               ("device", {"id": PrivateKey.from_name("ghost").bech32},
                                "not_found"),
                               ("last_report", {"device": DEV9.bech32, "kind": "x"},
                                "invalid_query"),
                               ("device_for_asset", {"asset_id": "00"}, "invalid_query"),
                               ("anchor", {"id": "0"}, "invalid_query"),
                               ("anchor", {"id": "999"}, "not_found")]:
        with pytest.raises(ShareChainError) as e:
            net.query("iot", name, **params)
        assert e.value.code == code
    assert net.query("iot", "params")["report_future_ms_max"] == 60_000


class ChainClient:
    """The SDK's view of a node, served by the in-process test chain (JSON as the API gives)."""

    def __init__(self, net: TestNet) -> None:
        self.net = net
        self.chain_id = net.chain_id

    def broadcast(self, key, msgs, **kw):
        from sharechain.api.views import result_json

        r = self.net.tx(key, msgs)
        if r.code:
            raise ShareChainError(r.code, r.message)
        return {"result": result_json(r)}

    def query(self, module, name, **params):
        from sharechain.api.views import plain

        return plain(self.net.query(module, name, **{k: str(v) for k, v in params.items()}))


def test_sdk_round_trip(net: TestNet) -> None:
    from sharechain.client.sharing import AssetsAPI, IdentityAPI, IotAPI

    c = ChainClient(net)
    iot, assets, ident = IotAPI(c), AssetsAPI(c), IdentityAPI(c)
    dev = PrivateKey.from_name("device/test/sdk")
    aid = assets.define(key("dave"), "tool", "TOOL-SDK-1", cid_of(b"drill"), key("carshare").bech32)
    assert assets.get(aid)["confirmed"] and assets.get(code="TOOL-SDK-1")["id"] == aid.hex()
    iot.bind_device(key("dave"), dev, aid)
    assert iot.device_for_asset(aid)["id"] == dev.bech32
    iot.submit_reports(key("gateway"), [iot.sign_report(dev, aid, i + 1, net.now_ms, "meter",
                                                        reading=i) for i in range(40)])
    assert iot.device(dev.address)["last_counter"] == 40
    assert iot.last_report(dev.address, "meter")["report"]["payload"]["reading"] == 39
    leaves = [reading_leaf({"i": i}) for i in range(7)]
    anchor_id = iot.anchor(key("gateway"), leaves, 0, 1, device=dev.address)
    from sharechain.client.iot import verify_reading_on_chain

    assert verify_reading_on_chain(c, anchor_id, leaves[6], proof_for(leaves, 6))
    assert not verify_reading_on_chain(c, anchor_id, leaves[5], proof_for(leaves, 6))
    assert ident.has_role(key("gateway").address, "gateway")
    assert {p["name"] for p in ident.platforms()} >= {"BikeCo", "CarShare"}
    with pytest.raises(ShareChainError) as e:
        assets.define(key("dave"), "tool", "TOOL-SDK-1", "QmNope", key("carshare").bech32)
    assert e.value.code == "invalid_cid"          # caught locally, nothing sent


# ---------------------------------------------------------------- geodesy and plausibility

geohashes = st.text(alphabet=GEOHASH_ALPHABET, min_size=1, max_size=12)


def _haversine_mm(a: str, b: str) -> float:
    lat1, lon1, _, _ = decode_geohash(a)
    lat2, lon2, _, _ = decode_geohash(b)
    p1, p2 = math.radians(lat1 / 1e6), math.radians(lat2 / 1e6)
    dp, dl = p2 - p1, math.radians((lon2 - lon1) / 1e6)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000_000 * math.asin(math.sqrt(h))


@settings(max_examples=300, deadline=None)
@given(geohashes, geohashes)
def test_geohash_distance_properties(a: str, b: str) -> None:
    d, cells = geohash_distance_mm(a, b)
    assert type(d) is int and d >= 0 and type(cells) is int and cells > 0
    assert geohash_distance_mm(b, a)[0] == d
    assert geohash_distance_mm(a, a)[0] == 0
    # a point lies in its cell: the centre is within the cell radius of any prefix's centre
    lat, lon, _, _ = decode_geohash(a)
    plat, plon, ph, pw = decode_geohash(a[:1])
    assert distance_mm(lat, lon, plat, plon) <= udeg_bound(ph, pw)


def udeg_bound(h: int, w: int) -> int:
    return (h + w) * 111_195 // 1000 + 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=GEOHASH_ALPHABET, min_size=5, max_size=9), st.data())
def test_distance_matches_great_circle_nearby(a: str, data) -> None:
    # a nearby point: same 3-character cell (within ~150 km)
    b = a[:3] + data.draw(st.text(alphabet=GEOHASH_ALPHABET, min_size=2, max_size=6))
    lat, _, _, _ = decode_geohash(a)
    if abs(lat) > 80_000_000:      # the flat approximation is not meant for the poles
        return
    d = geohash_distance_mm(a, b)[0]
    ref = _haversine_mm(a, b)
    assert abs(d - ref) <= 0.01 * ref + 2


reports = st.builds(
    lambda kind, counter, t, reading, gh: Report(
        b"\x01" * 20, b"\x02" * 16, counter, t, kind,
        Payload(reading=reading) if kind == "meter" else Payload(geohash=gh)
        if kind == "location" else Payload(percent=50)),
    st.sampled_from(["meter", "location", "battery"]), st.integers(1, 2**63 - 1),
    st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1), geohashes)


@settings(max_examples=300, deadline=None)
@given(reports, st.one_of(st.none(), reports), st.integers(0, 2**63 - 1),
       st.integers(0, 2**63 - 1), st.sampled_from(DEMO_CLASSES))
def test_plausibility_never_crashes(r: Report, prev, last_counter: int, last_time: int,
                                    cls) -> None:
    d = Device(b"\x01" * 20, b"\x03" * 32, b"\x02" * 16, b"", 0, last_counter, last_time, 1, 0)
    loc = prev if prev is not None and prev.kind == "location" else None
    met = prev if prev is not None and prev.kind == "meter" else None
    reasons = suspect_reasons(r, d, loc, met, cls, DEFAULT_PARAMS)
    assert set(reasons) <= {"speed", "meter_backwards", "meter_jump", "meter_step_small",
                            "counter_gap", "time_backwards"}
    if loc is not None and r.kind == "location" and r.payload.geohash == loc.payload.geohash:
        assert "speed" not in reasons


def test_report_signatures_are_verified_at_admission_and_not_again(net: TestNet, monkeypatch) -> None:
    import sharechain.sigverify as sv

    from sharechain.modules.iot.types import report_sign_bytes

    net.ok("gateway", [submit(report(net, kind="battery", percent=70))])
    good = report(net, kind="battery", percent=60)
    forged = SignedReport(report(net, kind="battery", percent=50).report,
                          PrivateKey.from_name("mallory").sign(b"y" * 10))
    memo = net.chain.app.verified
    net.chain.mempool.add(net.sign("gateway", [submit(good)]))
    triple = (bytes(DEV9.public_key), report_sign_bytes(net.chain_id, good.report), good.sig)
    assert triple in memo._valid                       # verified in the mempool
    calls: list[bytes] = []
    real = sv.verify
    monkeypatch.setattr(sv, "verify", lambda pk, m, s: calls.append(m) or real(pk, m, s))
    net.produce()
    assert device(net).last_counter == good.report.counter
    assert calls == []                                 # execution found the verdict
    # a forged signature is never remembered: execution checks it and refuses the report
    res = net.submit_block([net.sign("gateway", [submit(forged)])])[0]
    assert res.code == "invalid_report_signature"
    assert not any(t[2] == forged.sig for t in memo._valid._d)
