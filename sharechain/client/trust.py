"""SDK for the credit and arbitration modules: every message and query.

    from sharechain.client import Client
    from sharechain.client.trust import ArbitrationAPI, CreditAPI
    c = Client("http://127.0.0.1:8700")
    credit = CreditAPI(c)
    credit.score(alice.address)["tier"]                        # "B"
    credit.explain(alice.address)["top_events"]                # what moved it most
    arb = ArbitrationAPI(c)
    did = arb.open_claim_dispute(alice, claim_id, evidence_cid)  # bond computed for you
    arb.respond(carol, did)
    panel = arb.wait_for_panel(did)                            # bech32 addresses
    salt = arb.commit(arbiter_key, did, "uphold")              # keep the salt secret...
    arb.reveal(arbiter_key, did, "uphold", salt)               # ...until the reveal
    arb.ruling(did)["outcome"]

Writes sign with the given key, wait for the commit and raise
:class:`~sharechain.client.TxFailed` with the chain's stable error code if the tx failed
(``check=False`` returns the result instead). Messages are built as typed records first, so
bad input fails locally with the code the chain would give. Reads return the node's JSON
(addresses as bech32 text, ids and hashes as hex). Score reads pass the latest block time as
``at_ms`` unless told otherwise, so they are exact even when credit state has been idle.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sharechain.client.client import Client
from sharechain.client.rental import event_attrs
from sharechain.client.sharing import Addr, Id, _ModuleAPI, addr, build, hex_id
from sharechain.crypto import PrivateKey, bech32_address
from sharechain.errors import ShareChainError
from sharechain.modules.arbitration.types import (
    AddEvidence,
    Appeal,
    CommitVote,
    OpenDispute,
    Respond,
    RevealVote,
    Stake,
    Unstake,
    vote_commitment,
)
from sharechain.modules.credit.types import (
    AddBlacklist,
    GrantConsent,
    LiftBlacklist,
    RecordFraud,
    RevokeConsent,
    SubmitReport,
)

SALT_BYTES = 32


def _bech(a: Addr) -> str:
    return bech32_address(addr(a))


def latest_time_ms(c: Client) -> int:
    """The block time of the latest block (what the chain calls "now")."""
    return int(c.block()["header"]["time_ms"])


# ==================================================================== credit

class CreditAPI(_ModuleAPI):
    module = "credit"

    # ------------------------------------------------------------ consent and bureau reports
    def grant_consent(self, key: PrivateKey, bureau: Addr, until_ms: int,
                      **kw: Any) -> dict[str, Any]:
        """Let ``bureau`` report on the signer until ``until_ms`` (block time)."""
        return self._tx(key, "credit/grant_consent",
                        build(GrantConsent, bureau=addr(bureau), until_ms=until_ms), **kw)

    def revoke_consent(self, key: PrivateKey, bureau: Addr, **kw: Any) -> dict[str, Any]:
        """End the consent; the bureau's report on the signer is deleted with it."""
        return self._tx(key, "credit/revoke_consent", build(RevokeConsent, bureau=addr(bureau)),
                        **kw)

    def submit_report(self, key: PrivateKey, subject: Addr, band: str, valid_from_ms: int,
                      valid_until_ms: int, report_cid: str = "", **kw: Any) -> dict[str, Any]:
        """A bureau's report (band A-D) on a subject who consented."""
        return self._tx(key, "credit/submit_report", build(
            SubmitReport, subject=addr(subject), band=band, valid_from_ms=valid_from_ms,
            valid_until_ms=valid_until_ms, report_cid=report_cid), **kw)

    # ------------------------------------------------------------ regulator decisions
    def blacklist(self, key: PrivateKey, subject: Addr, reason: str,
                  evidence: list[Id], expires_ms: int, **kw: Any) -> int:
        """Blacklist ``subject`` (regulator) citing tx hashes; returns the entry id."""
        res = self._tx(key, "credit/blacklist", build(
            AddBlacklist, subject=addr(subject), reason=reason,
            evidence=tuple(hex_id(e) for e in evidence), expires_ms=expires_ms), **kw)
        return int(event_attrs(res, "blacklisted")[0]["entry_id"])

    def lift_blacklist(self, key: PrivateKey, entry_id: int, reason: str,
                       **kw: Any) -> dict[str, Any]:
        return self._tx(key, "credit/lift_blacklist",
                        build(LiftBlacklist, entry_id=entry_id, reason=reason), **kw)

    def record_fraud(self, key: PrivateKey, subject: Addr, evidence: list[Id], note: str = "",
                     **kw: Any) -> dict[str, Any]:
        return self._tx(key, "credit/record_fraud", build(
            RecordFraud, subject=addr(subject), evidence=tuple(hex_id(e) for e in evidence),
            note=note), **kw)

    # ------------------------------------------------------------ reads
    def _at(self, at_ms: int | None) -> int:
        return latest_time_ms(self.c) if at_ms is None else at_ms

    def score(self, address: Addr, at_ms: int | None = None) -> dict[str, Any]:
        """Score, its parts, tier and what the tier allows (deposit multiplier, rentals at
        once, asset classes)."""
        return self._q("score", address=_bech(address), at_ms=self._at(at_ms))  # type: ignore[no-any-return]

    def explain(self, address: Addr, limit: int = 5, at_ms: int | None = None) -> dict[str, Any]:
        """The score and the events that moved it most."""
        return self._q("explain", address=_bech(address), limit=limit,  # type: ignore[no-any-return]
                       at_ms=self._at(at_ms))

    def events(self, address: Addr, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("events", address=_bech(address), limit=limit)["events"]  # type: ignore[no-any-return]

    def blacklist_of(self, address: Addr, at_ms: int | None = None) -> dict[str, Any]:
        return self._q("blacklist", address=_bech(address), at_ms=self._at(at_ms))  # type: ignore[no-any-return]

    def blacklist_entries(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("blacklist", after=after, limit=limit,  # type: ignore[no-any-return]
                       at_ms=self._at(None))["entries"]

    def entry(self, entry_id: int) -> dict[str, Any]:
        return self._q("entry", id=entry_id, at_ms=self._at(None))  # type: ignore[no-any-return]

    def consents(self, address: Addr) -> list[dict[str, Any]]:
        return self._q("consents", address=_bech(address),  # type: ignore[no-any-return]
                       at_ms=self._at(None))["consents"]

    def reports(self, address: Addr) -> list[dict[str, Any]]:
        return self._q("reports", address=_bech(address),  # type: ignore[no-any-return]
                       at_ms=self._at(None))["reports"]

    def params(self) -> dict[str, Any]:
        return self._q("params")  # type: ignore[no-any-return]


# ==================================================================== arbitration

class ArbitrationAPI(_ModuleAPI):
    module = "arbitration"

    # ------------------------------------------------------------ arbitrators
    def stake(self, key: PrivateKey, amount: int, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "arbitration/stake", build(Stake, amount=amount), **kw)

    def unstake(self, key: PrivateKey, amount: int, **kw: Any) -> dict[str, Any]:
        return self._tx(key, "arbitration/unstake", build(Unstake, amount=amount), **kw)

    # ------------------------------------------------------------ disputes
    def _open(self, key: PrivateKey, kind: str, evidence_cid: str, amount_in_dispute: int,
              bond: int | None, kw: dict[str, Any], **fields: Any) -> str:
        b = self.bond(amount_in_dispute)["bond"] if bond is None else bond
        res = self._tx(key, "arbitration/open", build(
            OpenDispute, kind=kind, bond=b, evidence_cid=evidence_cid, **fields), **kw)
        return str(event_attrs(res, "dispute_opened")[0]["dispute_id"])

    def open_claim_dispute(self, key: PrivateKey, claim_id: Id, evidence_cid: str,
                           bond: int | None = None, **kw: Any) -> str:
        """Dispute a rental damage claim (either party); returns the dispute id (hex)."""
        claim = self.c.query("rental", "claim", id=hex_id(claim_id).hex())
        return self._open(key, "claim", evidence_cid, int(claim["amount"]), bond, kw,
                          target=hex_id(claim_id))

    def open_report_dispute(self, key: PrivateKey, asset_id: Id, seq: int, amount: int,
                            evidence_cid: str, bond: int | None = None, **kw: Any) -> str:
        """Dispute a fake/unsafe asset report, seeking ``amount`` of the pledge."""
        return self._open(key, "report", evidence_cid, amount, bond, kw,
                          target=hex_id(asset_id), seq=seq, amount=amount)

    def open_blacklist_dispute(self, key: PrivateKey, entry_id: int, evidence_cid: str,
                               bond: int | None = None, **kw: Any) -> str:
        """Appeal a regulator's blacklist entry to arbitration."""
        amount = int(self.params()["blacklist_dispute_amount"])
        return self._open(key, "blacklist", evidence_cid, amount, bond, kw, seq=entry_id)

    def respond(self, key: PrivateKey, dispute_id: Id, bond: int | None = None,
                evidence_cid: str = "", **kw: Any) -> dict[str, Any]:
        """Post the other side's bond (the round's bond unless given)."""
        d = self.dispute(dispute_id)
        b = int(d["rounds"][d["round"]]["bond"]) if bond is None else bond
        return self._tx(key, "arbitration/respond", build(
            Respond, dispute_id=hex_id(dispute_id), bond=b, evidence_cid=evidence_cid), **kw)

    def add_evidence(self, key: PrivateKey, dispute_id: Id, evidence_cid: str,
                     **kw: Any) -> dict[str, Any]:
        return self._tx(key, "arbitration/add_evidence", build(
            AddEvidence, dispute_id=hex_id(dispute_id), evidence_cid=evidence_cid), **kw)

    def appeal(self, key: PrivateKey, dispute_id: Id, bond: int | None = None,
               evidence_cid: str = "", **kw: Any) -> dict[str, Any]:
        """The first round's loser appeals to a larger panel (the appeal bond unless given)."""
        d = self.dispute(dispute_id)
        b = self.bond(int(d["amount"]), 1)["bond"] if bond is None else bond
        return self._tx(key, "arbitration/appeal", build(
            Appeal, dispute_id=hex_id(dispute_id), bond=b, evidence_cid=evidence_cid), **kw)

    # ------------------------------------------------------------ votes
    def commitment(self, key: PrivateKey, dispute_id: Id, vote: str, salt: bytes,
                   round_index: int | None = None) -> bytes:
        if round_index is None:
            round_index = int(self.dispute(dispute_id)["round"])
        return vote_commitment(hex_id(dispute_id), round_index, key.address, vote, salt)

    def commit(self, key: PrivateKey, dispute_id: Id, vote: str, salt: bytes | None = None,
               **kw: Any) -> bytes:
        """Commit a vote; returns the salt, which the reveal needs (keep it secret)."""
        salt = salt or secrets.token_bytes(SALT_BYTES)
        c = self.commitment(key, dispute_id, vote, salt)
        self._tx(key, "arbitration/commit",
                 build(CommitVote, dispute_id=hex_id(dispute_id), commitment=c), **kw)
        return salt

    def reveal(self, key: PrivateKey, dispute_id: Id, vote: str, salt: bytes,
               **kw: Any) -> dict[str, Any]:
        return self._tx(key, "arbitration/reveal", build(
            RevealVote, dispute_id=hex_id(dispute_id), vote=vote, salt=salt), **kw)

    # ------------------------------------------------------------ reads
    def dispute(self, dispute_id: Id) -> dict[str, Any]:
        return self._q("dispute", id=hex_id(dispute_id).hex())  # type: ignore[no-any-return]

    def ruling(self, dispute_id: Id) -> dict[str, Any]:
        return self._q("ruling", id=hex_id(dispute_id).hex())  # type: ignore[no-any-return]

    def votes(self, dispute_id: Id, round_index: int | None = None) -> dict[str, Any]:
        return self._q("votes", id=hex_id(dispute_id).hex(), round=round_index)  # type: ignore[no-any-return]

    def disputes(self, party: Addr | None = None, state: str | None = None,
                 after: Id | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("disputes", party=None if party is None else _bech(party),  # type: ignore[no-any-return]
                       state=state, after=None if after is None else hex_id(after).hex(),
                       limit=limit)["disputes"]

    def of_target(self, kind: str, target: Id = b"", seq: int = 0) -> str | None:
        t = hex_id(target)
        return self._q("of_target", kind=kind, target=t.hex() if t else None,  # type: ignore[no-any-return]
                       seq=seq)["dispute_id"]

    def arbitrator(self, address: Addr) -> dict[str, Any]:
        return self._q("arbitrator", address=_bech(address))  # type: ignore[no-any-return]

    def arbitrators(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._q("arbitrators", limit=limit)["arbitrators"]  # type: ignore[no-any-return]

    def bond(self, amount: int, round_index: int = 0) -> dict[str, Any]:
        return self._q("bond", amount=amount, round=round_index)  # type: ignore[no-any-return]

    def params(self) -> dict[str, Any]:
        return self._q("params")  # type: ignore[no-any-return]

    # ------------------------------------------------------------ waiting
    def wait_for(self, dispute_id: Id, done: Any, timeout_s: float = 60.0) -> dict[str, Any]:
        """Poll the dispute until ``done(dispute_json)`` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            d = self.dispute(dispute_id)
            if done(d):
                return d
            if time.monotonic() > deadline:
                raise ShareChainError("timeout", f"dispute {hex_id(dispute_id).hex()} is still "
                                                 f"{d['state']}")
            time.sleep(0.1)

    def wait_for_panel(self, dispute_id: Id, timeout_s: float = 60.0) -> list[str]:
        """The current round's panel (bech32 addresses) once drawn."""
        d = self.wait_for(dispute_id, lambda d: bool(d["rounds"][d["round"]]["panel"]),
                          timeout_s)
        return list(d["rounds"][d["round"]]["panel"])

    def wait_for_state(self, dispute_id: Id, states: tuple[str, ...],
                       timeout_s: float = 60.0) -> dict[str, Any]:
        return self.wait_for(dispute_id, lambda d: d["state"] in states, timeout_s)


__all__ = ["ArbitrationAPI", "CreditAPI", "latest_time_ms"]
