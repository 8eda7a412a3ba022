"""The trust stories, told against a running node through the SDK only.

Cast (the devnet's demo world, keys derived from names): **carol** provides bikes, **bikeco**
and **carshare** are two competing platforms, the **faucet** funds newcomers, eight staked
arbitrators (**arbitrator**, **arbiter1**..**arbiter7**) sit on panels, the **bureau** is a
registered credit bureau and **erin** consented to it in genesis. Each run uses fresh riders
and a fresh bike, so the stories can be told again on the same devnet.

1. *A late rider.* A newcomer (score 680, tier B: the deposit as offered) brings a bike back
   late; the late event drops the score to 640 (tier C) and the next reservation's deposit is
   1.5 times the offer.
2. *A provider changes platform.* carol's bike moves from bikeco to carshare; her score and
   its explanation are the same whichever platform asks, and the next ride on carshare adds
   to the same record.
3. *A damage claim disputed.* carol claims 3 000 of a rider's deposit; the rider opens a
   dispute with a bond, carol posts hers, a panel of three is drawn from a block hash, the
   panelists commit and reveal (2 to 1), the appeal window passes and the ruling moves the
   claim to carol, the fee to the majority and the credit events to both.
4. *A bureau report with consent.* The bureau's band-A report on erin lifts her score; a
   report on a rider who never consented is refused until the rider consents; erin revokes
   her consent and the report stops counting.

:func:`run_trust` tells all four and returns a :class:`TrustResult` the integration tests
check; each story is also a function of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer

from sharechain.client import Client, TxFailed
from sharechain.client.rental import RentalAPI, event_attrs, terms
from sharechain.client.sharing import AssetsAPI
from sharechain.client.trust import ArbitrationAPI, CreditAPI, latest_time_ms
from sharechain.crypto import PrivateKey, bech32_address, cid_of
from sharechain.modules.arbitration.genesis import DEMO_ARBITRATORS

SECOND = 1_000
TERMS = {
    "price_per_unit": 1_000, "unit_ms": SECOND, "deposit": 20_000,
    "min_duration_ms": 2 * SECOND, "max_duration_ms": 60 * SECOND,
    "cancel_window_ms": 5 * SECOND, "cancel_fee": 500, "late_fee_per_unit": 2_000,
    "grace_ms": SECOND, "damage_cap": 5_000, "claim_window_ms": 30 * SECOND,
}
NEWCOMER_FUNDS = 1_000_000
CLAIM = 3_000


def key(name: str) -> PrivateKey:
    return PrivateKey.from_name(name)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class TrustResult:
    late_rider: dict[str, Any] = field(default_factory=dict)
    provider: dict[str, Any] = field(default_factory=dict)
    dispute: dict[str, Any] = field(default_factory=dict)
    bureau: dict[str, Any] = field(default_factory=dict)
    tx_hashes: list[str] = field(default_factory=list)


class TrustStories:
    def __init__(self, client: Client, out: Callable[[str], None] = print) -> None:
        self.c = client
        self.out = out
        self.rentals = RentalAPI(client)
        self.assets = AssetsAPI(client)
        self.credit = CreditAPI(client)
        self.arb = ArbitrationAPI(client)
        self.stamp = f"{now_ms() % 10**10:010d}"
        self.result = TrustResult()
        self._riders = 0

    # ------------------------------------------------------------ plumbing
    def step(self, title: str, res: dict[str, Any]) -> dict[str, Any]:
        self.result.tx_hashes.append(res["hash"])
        self.out(f"  ✓ {title}  tx {res['hash'][:16]}… at height {res['height']}")
        return res

    def standing(self, who: PrivateKey | str) -> dict[str, Any]:
        a = who.address if isinstance(who, PrivateKey) else who
        return self.credit.score(a)

    def show(self, label: str, s: dict[str, Any]) -> None:
        self.out(f"    {label}: score {s['score']} (on-chain {s['onchain_score']}), tier "
                 f"{s['tier']}, deposit ×{s['deposit_multiplier_bps'] / 10_000:g}, "
                 f"{s['max_concurrent_rentals']} rentals at once")

    def newcomer(self, role: str) -> PrivateKey:
        """A fresh, funded participant (a new key each run)."""
        self._riders += 1
        k = key(f"trust-demo/{self.stamp}/{role}{self._riders}")
        self.c.send(key("faucet"), k.address, NEWCOMER_FUNDS)
        return k

    def new_bike(self, label: str) -> str:
        """carol's new bike on bikeco: defined, confirmed by bikeco, pledged, offered."""
        carol, bikeco = key("carol"), key("bikeco")
        code = f"BIKE-T{self.stamp}{label}"
        bike = AssetsAPI.asset_id("bike", code).hex()
        self.assets.define(carol, "bike", code, cid_of(f"trust demo bike {code}".encode()),
                           bikeco.address)
        self.assets.attest(bikeco, bike, "platform")
        self.assets.pledge(carol, bike)
        self.rentals.offer(carol, bike, terms(**TERMS))
        self.out(f"    carol's bike {code} is confirmed, pledged and offered on bikeco")
        return bike

    def deposit_quote(self, rider: PrivateKey, bike: str) -> int:
        """Reserve a window ahead of the cancel window, read the deposit, cancel for free."""
        start = now_ms() + 20 * SECOND
        res = self.rentals.reserve_tx(rider, bike, start, start + 2 * SECOND)
        e = event_attrs(res, "rental_reserved")[0]
        self.rentals.cancel(rider, e["rental_id"])
        return int(e["deposit"])

    def ride(self, rider: PrivateKey, bike: str, late_s: float = 0.0) -> str:
        """Reserve 2 s from now, start (both sign), ride, return (late by ``late_s``),
        carol confirms the return. Returns the rental id."""
        start = max(now_ms(), latest_time_ms(self.c)) + 300
        rid = self.rentals.reserve(rider, bike, start, start + 2 * SECOND)
        self.rentals.start(rider, rid)
        self.rentals.start(key("carol"), rid)
        # back at the reserved end, or past end + 1 s grace + late_s
        until = start + 2 * SECOND + (int((1 + late_s) * SECOND) if late_s else 0)
        while max(now_ms(), latest_time_ms(self.c)) < until:
            time.sleep(0.1)
        self.rentals.return_(rider, rid)
        self.step(f"ride {rid} settled ({'late' if late_s else 'on time'})",
                  self.rentals.confirm_return(key("carol"), rid))
        return rid

    # ------------------------------------------------------------ 1. a late rider
    def late_rider(self) -> dict[str, Any]:
        self.out("\n1. A late rider: the score falls and the next deposit rises")
        bike = self.new_bike("L")
        rider = self.newcomer("rider")
        before = self.standing(rider)
        self.show("newcomer", before)
        deposit_before = self.deposit_quote(rider, bike)
        self.out(f"    deposit asked: {deposit_before:,} (offer: {TERMS['deposit']:,})")
        self.ride(rider, bike, late_s=2.0)
        after = self.standing(rider)
        self.show("after the late return", after)
        deposit_after = self.deposit_quote(rider, bike)
        self.out(f"    deposit asked now: {deposit_after:,}")
        top = self.credit.explain(rider.address)["top_events"]
        self.out("    why: " + ", ".join(f"{e['kind']} {e['weight']:+}" for e in top))
        out = {"rider": rider.bech32, "score_before": before["score"],
               "tier_before": before["tier"], "deposit_before": deposit_before,
               "score_after": after["score"], "tier_after": after["tier"],
               "deposit_after": deposit_after, "top_kinds": [e["kind"] for e in top]}
        self.result.late_rider = out
        return out

    # ------------------------------------------------------------ 2. a provider moves
    def provider_moves(self) -> dict[str, Any]:
        self.out("\n2. A provider moves from bikeco to carshare and keeps her reputation")
        carol = key("carol")
        bike = self.new_bike("P")
        self.ride(self.newcomer("rider"), bike)
        on_a = self.standing(carol)
        self.show("carol, as any platform sees her", on_a)
        self.step("carol moves her bike to carshare (assets/set_operator)",
                  self.assets.set_operator(carol, bike, key("carshare").address))
        moved = self.standing(carol)
        self.ride(self.newcomer("rider"), bike)
        on_b = self.standing(carol)
        self.show("carol after a ride on carshare", on_b)
        platforms = [e["platform"] for e in self.credit.events(carol.address)]
        names = {key("bikeco").bech32: "bikeco", key("carshare").bech32: "carshare"}
        self.out("    her record names the platforms: "
                 + ", ".join(names.get(p, p) for p in platforms[-2:]))
        out = {"score_on_a": on_a["score"], "score_after_move": moved["score"],
               "score_on_b": on_b["score"], "platforms": platforms}
        self.result.provider = out
        return out

    # ------------------------------------------------------------ 3. a disputed claim
    def disputed_claim(self) -> dict[str, Any]:
        self.out("\n3. A damage claim disputed: a panel is drawn, votes are committed and "
                 "revealed, the ruling moves the funds")
        carol = key("carol")
        bike = self.new_bike("D")
        rider = self.newcomer("rider")
        rid = self.ride(rider, bike)
        res = self.step(f"carol claims {CLAIM:,} of the deposit for damage", self.c.broadcast(
            carol, [("rental/claim", {"rental_id": bytes.fromhex(rid), "amount": CLAIM,
                                      "reason": "bent wheel",
                                      "evidence": cid_of(b"photo of a bent wheel")})]))
        claim_id = event_attrs(res, "claim_filed")[0]["claim_id"]
        bond = self.arb.bond(CLAIM)
        self.out(f"    each side's bond: {bond['bond']:,} (the panel's fees, "
                 f"{bond['panel_size']} × seat fee, or 10 % of the amount if larger)")
        did = self.arb.open_claim_dispute(rider, claim_id, cid_of(b"the wheel was bent before"))
        self.out(f"  ✓ the rider opens dispute {did}")
        self.arb.respond(carol, did, evidence_cid=cid_of(b"check-out photo"))
        self.out("  ✓ carol posts her bond")
        panel = self.arb.wait_for_panel(did)
        names = {key(n).bech32: n for n in DEMO_ARBITRATORS}
        self.out("    panel drawn from a block hash: " + ", ".join(names[p] for p in panel))
        votes = {p: ("reject" if i == 2 else "uphold") for i, p in enumerate(panel)}
        balances_before = {p: self.c.balance(p) for p in panel}
        salts = {p: self.arb.commit(key(names[p]), did, v) for p, v in votes.items()}
        self.out("  ✓ the panel commits sealed votes")
        for p, v in votes.items():
            self.arb.reveal(key(names[p]), did, v, salts[p])
        self.out("  ✓ the panel reveals: " + ", ".join(f"{names[p]} {v}"
                                                         for p, v in votes.items()))
        carol_before = self.c.balance(carol.address)
        d = self.arb.wait_for_state(did, ("closed",))
        ruling = self.arb.ruling(did)
        self.out(f"    ruling: {ruling['outcome']} (final), execution: {ruling['execution']}")
        claim = self.rentals.get_claim(claim_id)
        carol_gain = self.c.balance(carol.address) - carol_before
        earned = {names[p]: self.c.balance(p) - balances_before[p] for p in panel}
        self.out(f"    carol received {carol_gain:,}; the panel's net take (fees − tx fees): "
                 + ", ".join(f"{n} {v:+,}" for n, v in earned.items()))
        rider_events = [e["kind"] for e in self.credit.events(rider.address)]
        self.out(f"    the rider's record: {', '.join(rider_events)}")
        out = {"dispute_id": did, "panel": [names[p] for p in panel],
               "outcome": d["outcome"], "execution": d["execution"],
               "claim_state": claim["state"], "paid_provider": claim["paid_provider"],
               "carol_gain": carol_gain, "earned": earned, "rider_events": rider_events,
               "votes": [v["vote"] for v in ruling["rounds"][0]["votes"]]}
        self.result.dispute = out
        return out

    # ------------------------------------------------------------ 4. a bureau report
    def bureau_report(self) -> dict[str, Any]:
        self.out("\n4. A bureau report, given with the subject's consent")
        bureau, erin = key("bureau"), key("erin")
        t = latest_time_ms(self.c)
        before = self.standing(erin)
        self.step("the bureau reports band A on erin (she consented in genesis)",
                  self.credit.submit_report(bureau, erin.address, "A", t, t + 86_400_000,
                                            cid_of(b"bureau report on erin")))
        with_report = self.standing(erin)
        self.out(f"    erin: {before['score']} → {with_report['score']} (on-chain "
                 f"{with_report['onchain_score']}, bureau {with_report['bureau_score']}, "
                 "bureau weight 20 %)")
        rider = self.newcomer("subject")
        try:
            self.credit.submit_report(bureau, rider.address, "B", t, t + 86_400_000)
            refused = ""
        except TxFailed as exc:
            refused = exc.code
        self.out(f"  ✗ a report on someone who never consented is refused ({refused})")
        self.step("the subject consents for a day (credit/grant_consent)",
                  self.credit.grant_consent(rider, bureau.address, t + 86_400_000))
        self.step("now the bureau's report is accepted", self.credit.submit_report(
            bureau, rider.address, "B", t, t + 86_400_000))
        self.step("erin revokes her consent (credit/revoke_consent)",
                  self.credit.revoke_consent(erin, bureau.address))
        revoked = self.standing(erin)
        self.out(f"    erin: {revoked['score']} again, {revoked['bureau_reports']} reports "
                 "counted")
        out = {"score_before": before["score"], "score_with_report": with_report["score"],
               "bureau_score": with_report["bureau_score"], "refused": refused,
               "subject_reports": len(self.credit.reports(rider.address)),
               "score_after_revoke": revoked["score"],
               "reports_after_revoke": revoked["bureau_reports"]}
        self.result.bureau = out
        return out

    def run(self) -> TrustResult:
        self.out(f"ShareChain trust stories on {self.c.url} (chain {self.c.chain_id})")
        self.late_rider()
        self.provider_moves()
        self.disputed_claim()
        self.bureau_report()
        self.out("\nDone: every score, ruling and vote above is public — try "
                 f"`/v1/query/credit/explain?address={bech32_address(key('carol').address)}`")
        return self.result


def run_trust(client: Client, out: Callable[[str], None] = print) -> TrustResult:
    """Tell the four trust stories against the node ``client`` talks to."""
    return TrustStories(client, out).run()


# A tiny app of its own, for use without the ``sharechain demo`` group.
app = typer.Typer(help="The trust stories (credit and arbitration) against a running node.")


@app.command()
def main(node: str = typer.Option("http://127.0.0.1:8700", "--node",
                                  help="Node API URL.")) -> None:
    with Client(node) as c:
        run_trust(c)
