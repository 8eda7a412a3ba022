"""Property test: tokens are conserved through disputes, whatever the parties and panels do.

Each example runs one claim dispute on a fresh demo chain with hypothesis choosing whether
the respondent posts its bond, what each panelist does (vote either way, commit and never
reveal, or do nothing), whether the loser appeals and what the appeal panel does. The chain
checks every module's invariants after every block (bank: Σ balances + Σ escrows = supply;
arbitration: stakes equal their escrows, open rounds hold exactly their bonds); at the end
the supply is what genesis minted, no bond is left in escrow and the claim is settled.
"""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sharechain.app.state import prefix_end
from sharechain.modules.arbitration.testing import TrustNet

CLAIM = 4_000
ACTS = st.sampled_from(["uphold", "reject", "silent", "commit_only"])


def play(net: TrustNet, did: bytes, acts: list[str]) -> None:
    panel = net.wait_for_panel(did)
    plan = dict(zip(panel, acts, strict=False))
    committers = {n: a if a in ("uphold", "reject") else "uphold"
                  for n, a in plan.items() if a != "silent"}
    if committers:
        assert all(r.code == "" for r in net.commit_all(did, committers))
    revealers = {n: a for n, a in plan.items() if a in ("uphold", "reject")}
    if revealers:
        d = net.dispute(did)
        if not net.keepers["arbitration"].commit_phase_over(d.current, net.now_ms + 1000):
            net.produce(d.current.commit_by_ms - net.now_ms + 1)
        assert all(r.code == "" for r in net.reveal_all(did, revealers))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(responds=st.booleans(), first=st.lists(ACTS, min_size=3, max_size=3),
       appeal=st.booleans(), appellee_responds=st.booleans(),
       second=st.lists(ACTS, min_size=5, max_size=5))
def test_tokens_are_conserved_through_disputes(responds: bool, first: list[str], appeal: bool,
                                               appellee_responds: bool,
                                               second: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        net = TrustNet(tmp)
        try:
            genesis_supply, _ = net.supply_total()
            net.offer()
            rid = net.rent("alice")
            cid = net.claim(rid, CLAIM)
            did = net.open_claim_dispute("alice", cid, CLAIM)
            if responds:
                net.respond("carol", did)
                play(net, did, first)
                for _ in range(20):
                    d = net.dispute(did)
                    if d.state != "voting":
                        break
                    net.produce(2_000)
                d = net.dispute(did)
                if appeal and d.state == "appealable":
                    loser = "carol" if d.current.outcome == "reject" else "alice"
                    net.ok(loser, [("arbitration/appeal", {"dispute_id": did,
                                                           "bond": net.bond(CLAIM, 1)})])
                    if appellee_responds:
                        net.respond("alice" if loser == "carol" else "carol", did)
                        play(net, did, second)
            for _ in range(40):
                if net.dispute(did).state == "closed":
                    break
                net.produce(2_000)
            d = net.dispute(did)
            assert d.state == "closed" and d.outcome
            event(f"{len(d.rounds)} round(s), outcome {d.outcome}")
            supply, total = net.supply_total()
            assert supply == total == genesis_supply
            with net.view() as v:
                p = b"bank/e/arbitration/bond/"
                assert list(v.iter_range(p, prefix_end(p))) == []
            claim = net.query("rental", "claim", id=cid.hex())
            settled = claim["state"] in ("resolved", "timed_out")
            assert settled or d.outcome in ("undecided", "cancelled")
        finally:
            net.close()
