"""identity: registration, the grant table, platforms, and bad input that changes nothing."""

from __future__ import annotations

import pytest

from sharechain.crypto import PrivateKey, cid_of
from sharechain.errors import ShareChainError
from sharechain.modules.identity.testkit import TestNet, key

CID = cid_of(b"profile")
CIDV0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    n = TestNet(tmp_path_factory.mktemp("identity"))
    # frank and grace are funded newcomers for this module's tests
    for name in ("frank", "grace", "heidi"):
        n.ok("faucet", [("bank/send", {"to": key(name).address, "amount": 10_000_000})])
    yield n
    n.close()


def reg(kind: str, name: str, roles: list[str] | None = None, cid: str = "") -> tuple[str, dict]:
    return ("identity/register", {"kind": kind, "name": name, "profile_cid": cid,
                                  "roles": roles or []})


def ik(net: TestNet):
    return net.keepers["identity"]


def has_role(net: TestNet, name: str, role: str) -> bool:
    with net.view() as v:
        return ik(net).has_role(v, key(name).address, role)


def test_demo_world_roles(net: TestNet) -> None:
    with net.view() as v:
        k = ik(net)
        assert k.has_role(v, key("regulator").address, "regulator")
        assert k.platform(v, key("bikeco").address).fee_bps == 500
        assert k.platform(v, key("carshare").address).fee_bps == 800
        assert k.has_role(v, key("carol").address, "provider")
        assert k.has_role(v, key("gateway").address, "gateway")
        assert k.is_registered(v, key("alice").address)
        assert not k.is_registered(v, key("faucet").address)
        assert k.participant(v, key("bureau").address).kind == "organisation"
    holders = net.query("identity", "role_holders", role="platform")["holders"]
    assert sorted(holders) == sorted([key("bikeco").address, key("carshare").address])
    p = net.query("identity", "participant", address=key("bikeco").bech32)
    assert p["roles"] == ["platform"] and p["platform"]["fee_bps"] == 500


def test_register_self_grant_consumer_and_profile_update(net: TestNet) -> None:
    r = net.ok("frank", [reg("person", "Frank", ["consumer"], CID)])
    assert [e.type for e in r.events][-2:] == ["participant_registered", "role_granted"]
    assert has_role(net, "frank", "consumer")
    net.fails("frank", [reg("person", "Frank again")], "already_registered")
    net.ok("frank", [("identity/update_profile", {"name": "Frank F."})])
    with net.view() as v:
        p = ik(net).participant(v, key("frank").address)
    assert p.name == "Frank F." and p.profile_cid == CID


def test_grant_table(net: TestNet) -> None:
    net.ok("grace", [reg("organisation", "Grace Rides")])
    # a platform grants provider and gateway, not platform
    net.ok("bikeco", [("identity/grant_role", {"grantee": key("grace").address,
                                               "role": "gateway"})])
    assert has_role(net, "grace", "gateway")
    net.fails("bikeco", [("identity/grant_role", {"grantee": key("grace").address,
                                                  "role": "platform"})], "grant_not_allowed")
    # a consumer grants nothing to others
    net.fails("alice", [("identity/grant_role", {"grantee": key("grace").address,
                                                 "role": "provider"})], "grant_not_allowed")
    # the regulator grants platform; the platform record gets the default fee
    net.ok("regulator", [("identity/grant_role", {"grantee": key("grace").address,
                                                  "role": "platform"})])
    with net.view() as v:
        assert ik(net).platform(v, key("grace").address).fee_bps == 500
    net.fails("regulator", [("identity/grant_role", {"grantee": key("grace").address,
                                                     "role": "platform"})], "role_already_held")
    net.ok("grace", [("identity/set_platform_fee", {"fee_bps": 1200})])
    with net.view() as v:
        assert ik(net).platform(v, key("grace").address).fee_bps == 1200
    net.fails("grace", [("identity/set_platform_fee", {"fee_bps": 3001})], "fee_too_high")
    net.fails("alice", [("identity/set_platform_fee", {"fee_bps": 10})], "role_required")
    # platform and bureau are for organisations only
    net.fails("regulator", [("identity/grant_role", {"grantee": key("alice").address,
                                                     "role": "bureau"})],
              "organisation_required")
    # revoking by the granter's role removes the platform record too
    net.ok("regulator", [("identity/revoke_role", {"holder": key("grace").address,
                                                   "role": "platform"})])
    with net.view() as v:
        assert ik(net).platform(v, key("grace").address) is None
    net.fails("regulator", [("identity/revoke_role", {"holder": key("grace").address,
                                                      "role": "platform"})], "role_not_held")
    # a holder may renounce its own role; a stranger may not take it away
    net.fails("alice", [("identity/revoke_role", {"holder": key("grace").address,
                                                  "role": "gateway"})], "grant_not_allowed")
    net.ok("grace", [("identity/revoke_role", {"holder": key("grace").address,
                                               "role": "gateway"})])


def test_regulator_is_never_self_granted_or_granted_by_message(net: TestNet) -> None:
    net.fails("heidi", [reg("organisation", "Heidi Authority", ["regulator"])],
              "role_not_grantable")
    net.ok("heidi", [reg("organisation", "Heidi Authority")])
    net.fails("heidi", [("identity/grant_role", {"grantee": key("heidi").address,
                                                 "role": "regulator"})], "role_not_grantable")
    net.fails("regulator", [("identity/grant_role", {"grantee": key("heidi").address,
                                                     "role": "regulator"})],
              "role_not_grantable")
    net.fails("regulator", [("identity/revoke_role", {"holder": key("regulator").address,
                                                      "role": "regulator"})],
              "role_not_grantable")
    # provider is not self-grantable either
    net.fails("heidi", [("identity/grant_role", {"grantee": key("heidi").address,
                                                 "role": "provider"})], "role_not_grantable")
    assert not has_role(net, "heidi", "regulator")


def test_wrong_role_and_unregistered(net: TestNet) -> None:
    stranger = PrivateKey.from_name("stranger")
    net.ok("faucet", [("bank/send", {"to": stranger.address, "amount": 1_000_000})])
    net.fails(stranger, [("identity/grant_role", {"grantee": key("alice").address,
                                                  "role": "consumer"})], "not_registered")
    net.fails("bikeco", [("identity/grant_role", {"grantee": stranger.address,
                                                  "role": "provider"})], "not_registered")
    net.fails(stranger, [("identity/update_profile", {"name": "x"})], "not_registered")


@pytest.mark.parametrize("msg, code", [
    (reg("robot", "R2"), "invalid_msg"),
    (reg("person", ""), "invalid_msg"),
    (reg("person", " padded"), "invalid_msg"),
    (reg("person", "x" * 65), "invalid_msg"),
    (reg("person", "Ctl\x07"), "invalid_msg"),
    (reg("person", "P", cid="not-a-cid"), "invalid_cid"),
    (reg("person", "P", cid=CIDV0), "invalid_cid"),
    (reg("person", "P", ["king"]), "invalid_msg"),
    (reg("person", "P", ["consumer", "consumer"]), "invalid_msg"),
    (("identity/update_profile", {}), "invalid_msg"),
    (("identity/grant_role", {"grantee": b"\x01" * 19, "role": "provider"}), "invalid_msg"),
    (("identity/set_platform_fee", {"fee_bps": -1}), "invalid_msg"),
    (("identity/set_platform_fee", {"fee_bps": 10_001}), "invalid_msg"),
    (("identity/set_platform_fee", {"fee_bps": 2**64 + 1}), "invalid_msg"),
    (("identity/register", {"kind": "person", "name": "P", "extra": 1}), "unknown_field"),
])
def test_bad_input_is_rejected_without_state_change(net: TestNet, msg, code) -> None:
    r = net.fails("erin", [msg], code)
    assert r.fee == 0  # rejected at admission: nothing charged


def test_queries_validate_parameters(net: TestNet) -> None:
    for params, code in [({}, "invalid_query"), ({"address": "nope"}, "invalid_query"),
                         ({"address": key("faucet").bech32}, "not_found")]:
        with pytest.raises(ShareChainError) as e:
            net.query("identity", "participant", **params)
        assert e.value.code == code
    with pytest.raises(ShareChainError) as e:
        net.query("identity", "role_holders", role="king")
    assert e.value.code == "invalid_query"
    assert net.query("identity", "has_role", address=key("bob").bech32,
                     role="consumer")["has_role"]
    assert len(net.query("identity", "platforms")["platforms"]) >= 2
    assert "regulator" in net.query("identity", "params")["grants"]


def test_genesis_rejects_grantable_regulator(tmp_path) -> None:
    from sharechain.node.devnet import demo_genesis

    doc = demo_genesis(genesis_time_ms=1)
    doc["app_state"]["identity"]["params"]["grants"]["platform"] = ["regulator"]
    with pytest.raises(ShareChainError) as e:
        TestNet(tmp_path, doc)
    assert e.value.code == "invalid_genesis"
