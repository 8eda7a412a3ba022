"""A test seam for the credit and arbitration tests: the real chain over the devnet demo world.

:class:`TrustNet` extends the identity test net (LMDB chain, mempool, solo engine, every
module's invariants after every block) with the steps the trust stories repeat: offer, rent
and settle a bike, file a claim, open and answer a dispute, wait for the panel, commit and
reveal votes. The demo world's genesis gives eight staked arbitrators (``arbitrator`` and
``arbiter1``..``arbiter7``), a bureau with ``erin``'s consent and short arbitration windows.

    net = TrustNet(tmp_path)
    net.offer()                                  # carol offers BIKE-0001
    rid = net.rent("alice")                      # reserved, started, returned, settled
    cid = net.claim(rid, 3_000)
    did = net.open_claim_dispute("alice", cid, 3_000)
    net.respond("carol", did)
    panel = net.wait_for_panel(did)              # names of the drawn arbitrators
    net.vote(did, {name: "uphold" for name in panel})
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from sharechain.app.framework import TxResult
from sharechain.app.state import prefix_end
from sharechain.crypto import PrivateKey, cid_of
from sharechain.encoding import decode_trusted
from sharechain.modules.arbitration.genesis import DEMO_ARBITRATORS
from sharechain.modules.arbitration.types import vote_commitment
from sharechain.modules.assets.types import asset_id_of
from sharechain.modules.identity.testkit import TestNet

SECOND = 1_000
BIKE = asset_id_of("bike", "BIKE-0001")      # carol's, operated by bikeco, pledged
TERMS: dict[str, int] = {
    "price_per_unit": 1_000, "unit_ms": SECOND, "deposit": 20_000,
    "min_duration_ms": 2 * SECOND, "max_duration_ms": 60 * SECOND,
    "cancel_window_ms": 5 * SECOND, "cancel_fee": 500, "late_fee_per_unit": 2_000,
    "grace_ms": SECOND, "damage_cap": 5_000, "claim_window_ms": 30 * SECOND,
    "min_credit_tier": 0,
}
# state a failed tx must leave untouched (balances change by the fee, so only escrows)
TRUST_PREFIXES = (b"credit/", b"arbitration/", b"rental/", b"assets/", b"identity/", b"bank/e/")
NAMES = {PrivateKey.from_name(n).address: n for n in DEMO_ARBITRATORS}


def addr(name: str) -> bytes:
    return PrivateKey.from_name(name).address


def evidence(text: str) -> str:
    return cid_of(text.encode())


class TrustNet(TestNet):
    __test__ = False

    def __init__(self, data_dir: str | Path, doc: dict[str, Any] | None = None,
                 block_ms: int = SECOND) -> None:
        super().__init__(data_dir, doc, block_ms)
        self.salts: dict[tuple[bytes, str], bytes] = {}

    # ------------------------------------------------------------ state checks
    def snapshot(self) -> dict[bytes, bytes]:
        with self.view() as v:
            return {k: val for p in TRUST_PREFIXES for k, val in v.iter_range(p, prefix_end(p))}

    def supply_total(self) -> tuple[int, int]:
        """(recorded supply, Σ balances + Σ escrows)."""
        with self.view() as v:
            total = 0
            for p in (b"bank/b/", b"bank/e/"):
                total += sum(int(decode_trusted(x)) for _, x in v.iter_range(p, prefix_end(p)))
            return self.chain.keepers.bank.supply(v), total

    # ------------------------------------------------------------ rentals
    def offer(self, owner: str = "carol", asset_id: bytes = BIKE, **terms: int) -> None:
        t = dict(TERMS, **terms)
        self.ok(owner, [("rental/offer", {"asset_id": asset_id, "terms": t})])

    def reserve(self, consumer: str, asset_id: bytes = BIKE, duration_ms: int = 3 * SECOND,
                start_in_ms: int = SECOND) -> tuple[TxResult, bytes]:
        start = self.now_ms + start_in_ms
        r = self.tx(consumer, [("rental/reserve", {"asset_id": asset_id, "start_ms": start,
                                                   "end_ms": start + duration_ms})])
        rid = next((e.attrs["rental_id"] for e in r.events if e.type == "rental_reserved"), b"")
        return r, rid

    def rent(self, consumer: str, provider: str = "carol", asset_id: bytes = BIKE,
             late_ms: int = 0) -> bytes:
        """Reserve, start (both sign), return after the window (+ ``late_ms``) and confirm."""
        r, rid = self.reserve(consumer, asset_id)
        assert r.code == "", f"{r.code}: {r.message}"
        self.ok(consumer, [("rental/start", {"rental_id": rid})])
        self.ok(provider, [("rental/start", {"rental_id": rid})])
        self.ok(consumer, [("rental/return", {"rental_id": rid})], advance_ms=2 * SECOND
                + late_ms)
        self.ok(provider, [("rental/confirm_return", {"rental_id": rid})])
        return rid

    def claim(self, rental_id: bytes, amount: int, provider: str = "carol") -> bytes:
        r = self.ok(provider, [("rental/claim", {"rental_id": rental_id, "amount": amount,
                                                 "reason": "scratched frame",
                                                 "evidence": evidence("photo")})])
        return bytes(next(e.attrs["claim_id"] for e in r.events if e.type == "claim_filed"))

    # ------------------------------------------------------------ disputes
    def bond(self, amount: int, round_index: int = 0) -> int:
        return int(self.query("arbitration", "bond", amount=str(amount),
                              round=str(round_index))["bond"])

    def open_msg(self, kind: str, target: bytes = b"", seq: int = 0, amount: int = 0,
                 bond: int | None = None, disputed_amount: int = 0) -> tuple[str, Any]:
        b = self.bond(disputed_amount or amount) if bond is None else bond
        return ("arbitration/open", {"kind": kind, "target": target, "seq": seq,
                                     "amount": amount, "bond": b,
                                     "evidence_cid": evidence(f"{kind} opening statement")})

    def open_dispute(self, who: str, msg: tuple[str, Any]) -> bytes:
        r = self.ok(who, [msg])
        return bytes(next(e.attrs["dispute_id"] for e in r.events
                          if e.type == "dispute_opened"))

    def open_claim_dispute(self, who: str, claim_id: bytes, claim_amount: int) -> bytes:
        return self.open_dispute(who, self.open_msg("claim", claim_id,
                                                    disputed_amount=claim_amount))

    def dispute(self, dispute_id: bytes) -> Any:
        with self.view() as v:
            return self.keepers["arbitration"].dispute(v, dispute_id)

    def respond(self, who: str, dispute_id: bytes, bond: int | None = None) -> TxResult:
        d = self.dispute(dispute_id)
        b = d.current.bond if bond is None else bond
        return self.ok(who, [("arbitration/respond", {"dispute_id": dispute_id, "bond": b,
                                                      "evidence_cid": evidence("answer")})])

    def wait_for_panel(self, dispute_id: bytes, blocks_max: int = 10) -> list[str]:
        for _ in range(blocks_max):
            d = self.dispute(dispute_id)
            if d.current.panel:
                return [NAMES[a] for a in d.current.panel]
            self.produce()
        raise AssertionError("no panel was drawn")

    def commit_msg(self, dispute_id: bytes, name: str, vote: str) -> tuple[str, Any]:
        d = self.dispute(dispute_id)
        salt = self.salts.setdefault((dispute_id + bytes((d.round,)), name),
                                     secrets.token_bytes(16))
        c = vote_commitment(dispute_id, d.round, addr(name), vote, salt)
        return ("arbitration/commit", {"dispute_id": dispute_id, "commitment": c})

    def reveal_msg(self, dispute_id: bytes, name: str, vote: str) -> tuple[str, Any]:
        d = self.dispute(dispute_id)
        salt = self.salts[(dispute_id + bytes((d.round,)), name)]
        return ("arbitration/reveal", {"dispute_id": dispute_id, "vote": vote, "salt": salt})

    def commit_all(self, dispute_id: bytes, votes: dict[str, str]) -> list[TxResult]:
        raws = [self.sign(n, [self.commit_msg(dispute_id, n, v)]) for n, v in votes.items()]
        return self.submit_block(raws)

    def reveal_all(self, dispute_id: bytes, votes: dict[str, str]) -> list[TxResult]:
        raws = [self.sign(n, [self.reveal_msg(dispute_id, n, v)]) for n, v in votes.items()]
        return self.submit_block(raws)

    def vote(self, dispute_id: bytes, votes: dict[str, str]) -> None:
        """Commit all in one block, reveal all in the next (the tally runs at its end)."""
        for r in self.commit_all(dispute_id, votes) + self.reveal_all(dispute_id, votes):
            assert r.code == "", f"{r.code}: {r.message}"
