"""arbitration: disputes on claims, reports and blacklist entries; panels, commit-reveal votes,
fees, slashing, appeals, rulings executed; and bad input refused without state change.

Runs the real application over the devnet demo world (``TrustNet``): eight staked arbitrators
(200 000 each), a 3-seat first panel and a 5-seat appeal panel, short demo windows (respond
30 s, commit 8 s, reveal 8 s, appeal 4 s; claims disputable for 15 s), 1-second blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharechain.crypto import PrivateKey, sha256
from sharechain.errors import ShareChainError
from sharechain.modules.arbitration.genesis import DEMO_ARBITRATORS, DEMO_STAKE
from sharechain.modules.arbitration.keeper import MODULE_ADDRESS
from sharechain.modules.arbitration.testing import (
    BIKE,
    SECOND,
    TrustNet,
    addr,
    evidence,
)

CLAIM = 3_000       # damage claimed (the bond is max(3 × 1000 panel fees, 10 %) = 3000)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[TrustNet]:
    n = TrustNet(tmp_path)
    n.offer()
    yield n
    n.close()


def claim_dispute(net: TrustNet, consumer: str = "alice") -> tuple[bytes, bytes, bytes]:
    """A rental, a claim on it, and a dispute the consumer opened: (rental, claim, dispute)."""
    rid = net.rent(consumer)
    cid = net.claim(rid, CLAIM)
    did = net.open_claim_dispute(consumer, cid, CLAIM)
    return rid, cid, did


def drawn(net: TrustNet, did: bytes, responder: str = "carol") -> list[str]:
    net.respond(responder, did)
    return net.wait_for_panel(did)


def balances(net: TrustNet, names: list[str]) -> dict[str, int]:
    return {n: net.balance(addr(n)) for n in names}


def stake_of(net: TrustNet, name: str) -> int:
    return int(net.query("arbitration", "arbitrator", address=PrivateKey.from_name(name).bech32)
               ["stake"])


def finish(net: TrustNet, did: bytes, blocks: int = 6) -> Any:
    for _ in range(blocks):
        net.produce()
    return net.dispute(did)


# ==================================================================== the happy paths

def test_upheld_claim_pays_the_provider_and_the_majority(net: TrustNet) -> None:
    rid, cid, did = claim_dispute(net)
    panel = drawn(net, did)
    assert len(panel) == 3 and not {"alice", "carol", "bikeco"} & set(panel)
    d = net.dispute(did)
    assert d.current.seed and d.current.commit_by_ms > net.now_ms
    votes = {panel[0]: "uphold", panel[1]: "uphold", panel[2]: "reject"}
    before = balances(net, ["alice", "carol", *panel])
    net.vote(did, votes)
    d = net.dispute(did)
    assert (d.state, d.current.outcome, d.current.fees_paid) == ("appealable", "uphold", 3_000)
    after = balances(net, ["alice", "carol", *panel])
    # alice lost the round: her 3000 bond paid the panel, the two in the majority share it
    assert after["alice"] == before["alice"]                     # her bond was exactly the fee
    assert after[panel[0]] - before[panel[0]] == 1_500 - 55      # fee share − tx fees
    assert after[panel[2]] - before[panel[2]] == -55             # the dissenter earns nothing
    assert after["carol"] == before["carol"] + 3_000             # her bond back
    ruling = net.query("arbitration", "ruling", id=did.hex())
    assert (ruling["final"], ruling["outcome"]) == (False, "uphold")
    assert sorted(v["vote"] for v in ruling["rounds"][0]["votes"]) == ["reject", "uphold",
                                                                       "uphold"]
    before = balances(net, ["alice", "carol"])
    d = finish(net, did)                                         # appeal window passes
    assert (d.state, d.outcome, d.execution) == ("closed", "uphold", "ok")
    claim = net.query("rental", "claim", id=cid.hex())
    assert (claim["state"], claim["paid_provider"]) == ("resolved", CLAIM)
    assert net.balance(addr("carol")) == before["carol"] + CLAIM
    kinds = [e["kind"] for e in net.query("credit", "events",
                                          address=PrivateKey.from_name("alice").bech32)["events"]]
    assert kinds[-2:] == ["damage_confirmed", "dispute_lost"]
    supply, total = net.supply_total()
    assert supply == total
    assert rid


def test_rejected_claim_refunds_the_consumer(net: TrustNet) -> None:
    _, cid, did = claim_dispute(net)
    panel = drawn(net, did)
    net.vote(did, {n: "reject" for n in panel})
    alice = net.balance(addr("alice"))
    d = finish(net, did)
    assert (d.outcome, d.execution) == ("reject", "ok")
    assert net.query("rental", "claim", id=cid.hex())["paid_provider"] == 0
    assert net.balance(addr("alice")) == alice + CLAIM
    assert net.query("credit", "score", address=PrivateKey.from_name("alice").bech32,
                     at_ms=str(net.now_ms))["score"] == 680 + 10 + 15


def test_a_panelist_who_does_not_reveal_is_slashed(net: TrustNet) -> None:
    _, _, did = claim_dispute(net)
    panel = drawn(net, did)
    votes = {n: "uphold" for n in panel}
    assert all(r.code == "" for r in net.commit_all(did, votes))
    assert all(r.code == "" for r in net.reveal_all(did, dict(list(votes.items())[:2])))
    quiet = panel[2]
    before = balances(net, panel[:2])
    net.produce(net.dispute(did).current.reveal_by_ms - net.now_ms + 1)  # past reveal_by
    d = net.dispute(did)
    assert (d.current.outcome, d.current.slashed) == ("uphold", DEMO_STAKE // 10)
    assert stake_of(net, quiet) == DEMO_STAKE - DEMO_STAKE // 10
    after = balances(net, panel[:2])
    assert [after[n] - before[n] for n in panel[:2]] == [1_500 + 10_000] * 2
    rec = net.query("arbitration", "arbitrator", address=PrivateKey.from_name(quiet).bech32)
    assert (rec["missed"], rec["slashed"], rec["seats"]) == (1, DEMO_STAKE // 10, 0)


def test_appeal_goes_to_a_larger_fresh_panel(net: TrustNet) -> None:
    _, cid, did = claim_dispute(net)
    first = drawn(net, did)
    net.vote(did, {n: "uphold" for n in first})
    net.fails("carol", [("arbitration/appeal", {"dispute_id": did, "bond": 10_000})],
              "appeal_not_allowed")                           # the winner
    net.fails("alice", [("arbitration/appeal", {"dispute_id": did, "bond": 4_999})],
              "insufficient_bond")                            # appeal bond max(5000, 20 %)
    net.ok("alice", [("arbitration/appeal", {"dispute_id": did, "bond": 5_000,
                                             "evidence_cid": evidence("appeal brief")})])
    second = drawn(net, did)
    assert len(second) == 5 and not set(first) & set(second)
    net.vote(did, {n: ("reject" if i < 3 else "uphold") for i, n in enumerate(second)})
    d = net.dispute(did)
    assert (d.state, d.outcome, [r.outcome for r in d.rounds]) == (
        "closed", "reject", ["uphold", "reject"])
    assert net.query("rental", "claim", id=cid.hex())["state"] == "resolved"
    ruling = net.query("arbitration", "ruling", id=did.hex())
    assert ruling["final"] and [len(r["votes"]) for r in ruling["rounds"]] == [3, 5]


def test_respondent_without_a_bond_loses_by_default(net: TrustNet) -> None:
    _, cid, did = claim_dispute(net)
    alice = net.balance(addr("alice"))
    net.produce(31 * SECOND)
    d = net.dispute(did)
    assert (d.state, d.outcome, d.rounds[0].by_default) == ("closed", "reject", True)
    # her bond back, and the whole damage hold (the claim's 3000 and the unclaimed 2000,
    # released when the claim window closed meanwhile)
    assert net.balance(addr("alice")) == alice + 3_000 + 5_000
    assert net.query("rental", "claim", id=cid.hex())["paid_provider"] == 0


def test_upheld_fake_report_pays_the_pledge_and_blacklists_the_owner(net: TrustNet) -> None:
    net.rent("alice")
    net.ok("alice", [("assets/report", {"asset_id": BIKE, "kind": "fake",
                                        "evidence_cid": evidence("not a real bike")})])
    did = net.open_dispute("alice", net.open_msg("report", BIKE, 1, amount=20_000))
    assert net.dispute(did).current.bond == 3_000          # max(3000, 10 % of 20 000)
    panel = drawn(net, did)
    net.vote(did, {n: "uphold" for n in panel})
    alice = net.balance(addr("alice"))
    d = finish(net, did)
    assert (d.outcome, d.execution) == ("uphold", "ok")
    assert net.balance(addr("alice")) == alice + 20_000
    carol = net.query("credit", "score", address=PrivateKey.from_name("carol").bech32,
                      at_ms=str(net.now_ms))
    assert carol["blacklisted"] and carol["tier"] == "blocked"
    entry = net.query("credit", "entry", id=str(carol["blacklist_entry"]))
    assert (entry["ruling_id"], entry["added_by"]) == (did, MODULE_ADDRESS)
    # a ruling's entry is contested by the appeal, not by a new dispute
    net.fails("carol", [net.open_msg("blacklist", seq=entry["id"], disputed_amount=100_000)],
              "not_disputable")


def test_blacklist_entry_appealed_to_arbitration_is_lifted(net: TrustNet) -> None:
    net.ok("regulator", [("credit/blacklist", {
        "subject": addr("bob"), "reason": "suspected fraud", "evidence": [sha256(b"tx")],
        "expires_ms": net.now_ms + 86_400_000})])
    did = net.open_dispute("bob", net.open_msg("blacklist", seq=1, disputed_amount=100_000))
    assert net.dispute(did).current.bond == 10_000
    panel = drawn(net, did, responder="regulator")
    net.vote(did, {n: "reject" for n in panel})
    d = finish(net, did)
    assert (d.outcome, d.execution) == ("reject", "ok")
    entry = net.query("credit", "entry", id="1")
    assert not entry["active"] and entry["lifted_by"] == MODULE_ADDRESS
    r, _ = net.reserve("bob")
    assert r.code == ""


def test_queries_list_disputes_and_votes(net: TrustNet) -> None:
    _, cid, did = claim_dispute(net)
    assert net.query("arbitration", "of_target", kind="claim", target=cid.hex()) == {
        "dispute_id": did}
    mine = net.query("arbitration", "disputes", party=PrivateKey.from_name("carol").bech32)
    assert [d["id"] for d in mine["disputes"]] == [did]
    assert net.query("arbitration", "disputes", state="voting")["disputes"] == []
    panel = drawn(net, did)
    net.commit_all(did, {n: "uphold" for n in panel})
    votes = net.query("arbitration", "votes", id=did.hex())["votes"]
    assert all(v["vote"] == "" and len(v["commitment"]) == 32 for v in votes)
    arbs = net.query("arbitration", "arbitrators")["arbitrators"]
    assert len(arbs) == len(DEMO_ARBITRATORS) and all(a["eligible"] for a in arbs)
    with pytest.raises(ShareChainError, match="no ruling yet"):
        net.query("arbitration", "ruling", id=did.hex())


# ==================================================================== bad input

def test_dispute_outside_its_window_or_by_a_stranger(net: TrustNet) -> None:
    rid = net.rent("alice")
    cid = net.claim(rid, CLAIM)
    net.fails("bob", [net.open_msg("claim", cid, disputed_amount=CLAIM)], "not_dispute_party")
    net.fails("alice", [net.open_msg("claim", cid, bond=2_999)], "insufficient_bond")
    net.fails("alice", [net.open_msg("claim", b"\x00" * 9, disputed_amount=CLAIM)],
              "dispute_target_not_found")
    net.produce(15 * SECOND)
    net.fails("alice", [net.open_msg("claim", cid, disputed_amount=CLAIM)],
              "dispute_window_closed")


def test_one_dispute_per_target_and_respond_rules(net: TrustNet) -> None:
    _, cid, did = claim_dispute(net)
    net.fails("carol", [net.open_msg("claim", cid, disputed_amount=CLAIM)], "already_disputed")
    net.fails("alice", [("arbitration/respond", {"dispute_id": did, "bond": 3_000})],
              "already_responded")
    net.fails("carol", [("arbitration/respond", {"dispute_id": did, "bond": 2_000})],
              "insufficient_bond")
    net.fails("arbiter1", [("arbitration/commit", {"dispute_id": did,
                                                   "commitment": b"\x01" * 32})],
              "voting_not_open")
    # the first block past the deadline refuses the bond; its end-block then closes the
    # dispute by default (so this block does change state, but not by the failed tx)
    late = net.dispute(did).current.respond_by_ms - net.now_ms + 1
    carol = net.balance(addr("carol"))
    r = net.tx("carol", [("arbitration/respond", {"dispute_id": did, "bond": 3_000})], late)
    assert r.code == "respond_window_closed"
    d = net.dispute(did)
    assert (d.outcome, d.current.responded, net.balance(addr("carol"))) == (
        "reject", False, carol - r.fee)
    net.fails("carol", [("arbitration/respond", {"dispute_id": did, "bond": 3_000})],
              "invalid_transition")


def test_votes_after_deadlines_and_mismatched_reveals(net: TrustNet) -> None:
    _, _, did = claim_dispute(net)
    panel = drawn(net, did)
    outsider = next(n for n in DEMO_ARBITRATORS if n not in panel)
    a, b, c = panel
    net.ok(a, [net.commit_msg(did, a, "uphold")])
    net.fails(a, [net.commit_msg(did, a, "reject")], "already_committed")
    net.fails(outsider, [net.commit_msg(did, outsider, "uphold")], "not_on_panel")
    net.fails(a, [net.reveal_msg(did, a, "uphold")], "reveal_not_open")   # b, c still due
    net.ok(b, [net.commit_msg(did, b, "uphold")])
    net.produce(net.dispute(did).current.commit_by_ms - net.now_ms + 1)    # commit_by passed
    net.fails(c, [net.commit_msg(did, c, "uphold")], "commit_closed")
    net.fails(a, [net.reveal_msg(did, a, "reject")], "reveal_mismatch")
    net.fails(c, [("arbitration/reveal", {"dispute_id": did, "vote": "uphold",
                                          "salt": b"\x00" * 16})], "not_committed")
    net.ok(a, [net.reveal_msg(did, a, "uphold")])
    net.fails(a, [net.reveal_msg(did, a, "uphold")], "already_revealed")
    net.produce(net.dispute(did).current.reveal_by_ms - net.now_ms + 1)    # reveal_by passed
    d = net.dispute(did)
    assert (d.state, d.current.outcome) == ("appealable", "uphold")
    net.fails(b, [net.reveal_msg(did, b, "uphold")], "reveal_closed")
    net.produce(4 * SECOND)
    net.fails("alice", [("arbitration/appeal", {"dispute_id": did, "bond": 5_000})],
              "appeal_not_allowed")                                         # closed now


def test_an_arbitrator_cannot_vote_in_their_own_dispute(net: TrustNet) -> None:
    _, _, did = claim_dispute(net, consumer="arbiter1")
    panel = drawn(net, did)
    assert "arbiter1" not in panel
    net.fails("arbiter1", [("arbitration/commit", {"dispute_id": did,
                                                   "commitment": b"\x02" * 32})],
              "arbitrator_is_party")
    net.fails("arbiter1", [("arbitration/reveal", {"dispute_id": did, "vote": "reject",
                                                   "salt": b"\x00" * 16})],
              "arbitrator_is_party")


def test_stake_rules(net: TrustNet) -> None:
    _, _, did = claim_dispute(net)
    panel = drawn(net, did)
    net.fails(panel[0], [("arbitration/unstake", {"amount": 1})], "arbitrator_seated")
    net.fails("alice", [("arbitration/stake", {"amount": 1_000})], "role_required")
    outsider = next(n for n in DEMO_ARBITRATORS if n not in panel)
    net.fails(outsider, [("arbitration/unstake", {"amount": DEMO_STAKE + 1})],
              "stake_insufficient")
    net.ok(outsider, [("arbitration/unstake", {"amount": DEMO_STAKE})])
    assert not net.query("arbitration", "arbitrator",
                         address=PrivateKey.from_name(outsider).bech32)["eligible"]
    net.ok(outsider, [("arbitration/stake", {"amount": DEMO_STAKE})])


def test_too_few_free_arbitrators_refuses_the_dispute(net: TrustNet) -> None:
    for name in DEMO_ARBITRATORS[:6]:
        net.ok(name, [("arbitration/unstake", {"amount": DEMO_STAKE})])
    rid = net.rent("alice")
    cid = net.claim(rid, CLAIM)
    net.fails("alice", [net.open_msg("claim", cid, disputed_amount=CLAIM)],
              "not_enough_arbitrators")


def test_a_tie_leaves_no_ruling_and_the_claim_times_out(net: TrustNet) -> None:
    _, cid, did = claim_dispute(net)
    a, b, c = drawn(net, did)
    assert all(r.code == "" for r in net.commit_all(did, {a: "uphold", b: "reject",
                                                          c: "uphold"}))
    assert all(r.code == "" for r in net.reveal_all(did, {a: "uphold", b: "reject"}))
    alice, carol = net.balance(addr("alice")), net.balance(addr("carol"))
    net.produce(net.dispute(did).current.reveal_by_ms - net.now_ms + 1)
    d = net.dispute(did)
    assert (d.state, d.outcome, d.current.slashed) == ("closed", "undecided", DEMO_STAKE // 10)
    # both bonds back; the claim falls back to its own timeout, which refunds the consumer
    assert net.balance(addr("carol")) == carol + 3_000
    net.produce(20 * SECOND)
    assert net.query("rental", "claim", id=cid.hex())["state"] == "timed_out"
    assert net.balance(addr("alice")) >= alice + 3_000 + CLAIM


def test_no_panel_left_to_draw_cancels_the_round(net: TrustNet) -> None:
    _, cid, did = claim_dispute(net)
    d = net.dispute(did)
    raws = [net.sign("carol", [("arbitration/respond", {"dispute_id": did,
                                                        "bond": d.current.bond})])]
    raws += [net.sign(n, [("arbitration/unstake", {"amount": DEMO_STAKE})])
             for n in DEMO_ARBITRATORS[:6]]
    assert all(r.code == "" for r in net.submit_block(raws))
    alice, carol = net.balance(addr("alice")), net.balance(addr("carol"))
    for _ in range(3):
        net.produce()
    d = net.dispute(did)
    assert (d.state, d.outcome, d.current.outcome) == ("closed", "cancelled", "cancelled")
    assert (net.balance(addr("alice")), net.balance(addr("carol"))) == (alice + 3_000,
                                                                        carol + 3_000)
    assert net.query("rental", "claim", id=cid.hex())["state"] in ("open", "timed_out")
