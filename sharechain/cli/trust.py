"""``sharechain trust …``: credit and arbitration commands (a typer sub-app).

Keys are names in the keystore (or, for addresses, bech32 text); dispute ids are hex. Every
write waits for the commit and prints the result; a failed transaction prints its error code
and exits non-zero. Reads print the node's JSON.

    sharechain trust credit score alice
    sharechain trust credit explain alice --limit 3
    sharechain trust credit blacklist add regulator bob --reason "unpaid damage" \\
        --evidence 9f2c…e1 --days 30
    sharechain trust credit consent grant erin bureau --days 365
    sharechain trust credit report submit bureau erin A --days 90
    sharechain trust arbitration open-claim alice 000000000000000700 --evidence-file photo.jpg
    sharechain trust arbitration respond carol 0000000000000001
    sharechain trust arbitration commit arbiter3 0000000000000001 uphold   # prints the salt
    sharechain trust arbitration reveal arbiter3 0000000000000001 uphold <salt hex>
    sharechain trust arbitration ruling 0000000000000001
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import typer

from sharechain.cli.common import console, handle_errors
from sharechain.crypto import bech32_address, cid_of
from sharechain.errors import ShareChainError
from sharechain.cli.common import (  # the shared plumbing, under this module's names
    client_for as _client,
    load_key as _key,
    resolve as _addr,
    print_json as _print,
)

app = typer.Typer(help="Trust: credit scores, blacklist, bureau reports and arbitration.",
                  no_args_is_help=True)
credit_app = typer.Typer(help="Credit scores, tiers, blacklist, consent and bureau reports.",
                         no_args_is_help=True)
blacklist_app = typer.Typer(help="The public blacklist.", no_args_is_help=True)
consent_app = typer.Typer(help="Consent to credit bureaus.", no_args_is_help=True)
report_app = typer.Typer(help="Bureau reports.", no_args_is_help=True)
arb_app = typer.Typer(help="Disputes, panels, votes and rulings.", no_args_is_help=True)
app.add_typer(credit_app, name="credit")
app.add_typer(arb_app, name="arbitration")
credit_app.add_typer(blacklist_app, name="blacklist")
credit_app.add_typer(consent_app, name="consent")
credit_app.add_typer(report_app, name="report")

NodeOpt = typer.Option(None, "--node", help="Node API URL (env SHARECHAIN_NODE).")
KeyringOpt = typer.Option(None, "--keyring", help="Keystore folder (env SHARECHAIN_KEYRING).")
EvidenceCidOpt = typer.Option("", "--evidence-cid", help="CIDv1 of the evidence document.")
EvidenceFileOpt = typer.Option(None, "--evidence-file",
                               help="Compute the evidence CID from this file instead.")
EvidenceHashesOpt = typer.Option(..., "--evidence", help="Tx hash (hex, repeatable).")
ReasonOpt = typer.Option(..., "--reason", help="Why (one sentence).")
DAY_MS = 86_400_000


# ---------------------------------------------------------------- plumbing







def _bech(name_or_addr: str, keyring: Path | None) -> str:
    return bech32_address(_addr(name_or_addr, keyring))




def _send(sender: Any, keyring: Path | None, node: str | None, mtype: str,
          build: Any) -> dict[str, Any]:
    """Sign ``build(client)``'s message with ``sender`` (a key name, or a loaded key) and
    print the committed result."""
    from sharechain.cli.main import print_tx_result

    key = _key(sender, keyring) if isinstance(sender, str) else sender
    with _client(node) as c:
        res = c.broadcast(key, [(mtype, build(c))], check=False)
    print_tx_result(res)
    return res  # type: ignore[no-any-return]


def _build(cls: type, **fields: Any) -> Any:
    from sharechain.client.sharing import build

    return build(cls, **fields)


def _now(c: Any) -> int:
    from sharechain.client.trust import latest_time_ms

    return latest_time_ms(c)


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ShareChainError("invalid_msg", f"{what} must be hex") from None


def _evidence(cid: str, file: Path | None) -> str:
    return cid_of(file.read_bytes()) if file else cid


def _read(node: str | None, fn: Any) -> None:
    from sharechain.client.trust import ArbitrationAPI, CreditAPI

    with _client(node) as c:
        _print(fn(CreditAPI(c), ArbitrationAPI(c)))


# ==================================================================== credit reads

@credit_app.command("score")
@handle_errors
def credit_score(address: str, at_ms: int | None = typer.Option(None, help="Score as of."),
                 node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """ADDRESS's score, tier and what the tier allows."""
    a = _bech(address, keyring)
    _read(node, lambda cr, _: cr.score(a, at_ms))


@credit_app.command("explain")
@handle_errors
def credit_explain(address: str, limit: int = 5, node: str | None = NodeOpt,
                   keyring: Path | None = KeyringOpt) -> None:
    """ADDRESS's score and the events that moved it most."""
    a = _bech(address, keyring)
    _read(node, lambda cr, _: cr.explain(a, limit))


@credit_app.command("events")
@handle_errors
def credit_events(address: str, limit: int = 100, node: str | None = NodeOpt,
                  keyring: Path | None = KeyringOpt) -> None:
    """ADDRESS's credit events, oldest first."""
    a = _bech(address, keyring)
    _read(node, lambda cr, _: cr.events(a, limit))


@credit_app.command("params")
@handle_errors
def credit_params(node: str | None = NodeOpt) -> None:
    """Weights, half-life, tiers and bureau weighting."""
    _read(node, lambda cr, _: cr.params())


@credit_app.command("fraud")
@handle_errors
def credit_fraud(regulator: str, subject: str,
                 evidence: list[str] = EvidenceHashesOpt,
                 note: str = "", node: str | None = NodeOpt,
                 keyring: Path | None = KeyringOpt) -> None:
    """REGULATOR records that SUBJECT committed fraud (a fraud_upheld credit event)."""
    from sharechain.modules.credit.types import RecordFraud

    who = _addr(subject, keyring)
    hashes = tuple(_hex(e, "evidence") for e in evidence)
    _send(regulator, keyring, node, "credit/record_fraud",
          lambda c: _build(RecordFraud, subject=who, evidence=hashes, note=note))


# ---------------------------------------------------------------- blacklist

@blacklist_app.command("show")
@handle_errors
def bl_show(address: str = typer.Argument(None, help="One subject (default: every entry)."),
            node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """A subject's entries, or the whole public blacklist."""
    if address:
        a = _bech(address, keyring)
        _read(node, lambda cr, _: cr.blacklist_of(a))
    else:
        _read(node, lambda cr, _: cr.blacklist_entries())


@blacklist_app.command("add")
@handle_errors
def bl_add(regulator: str, subject: str, reason: str = ReasonOpt,
           evidence: list[str] = EvidenceHashesOpt,
           days: int = typer.Option(30, help="Days until the entry expires."),
           node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """REGULATOR blacklists SUBJECT, citing tx hashes, for DAYS days."""
    from sharechain.modules.credit.types import AddBlacklist

    who = _addr(subject, keyring)
    hashes = tuple(_hex(e, "evidence") for e in evidence)
    _send(regulator, keyring, node, "credit/blacklist", lambda c: _build(
        AddBlacklist, subject=who, reason=reason, evidence=hashes,
        expires_ms=_now(c) + days * DAY_MS))


@blacklist_app.command("lift")
@handle_errors
def bl_lift(regulator: str, entry_id: int, reason: str = ReasonOpt,
            node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """REGULATOR lifts blacklist entry ENTRY_ID."""
    from sharechain.modules.credit.types import LiftBlacklist

    _send(regulator, keyring, node, "credit/lift_blacklist",
          lambda c: _build(LiftBlacklist, entry_id=entry_id, reason=reason))


# ---------------------------------------------------------------- consent and reports

@consent_app.command("grant")
@handle_errors
def consent_grant(subject: str, bureau: str, days: int = typer.Option(365),
                  node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """SUBJECT lets BUREAU report on them for DAYS days."""
    from sharechain.modules.credit.types import GrantConsent

    b = _addr(bureau, keyring)
    _send(subject, keyring, node, "credit/grant_consent", lambda c: _build(
        GrantConsent, bureau=b, until_ms=_now(c) + days * DAY_MS))


@consent_app.command("revoke")
@handle_errors
def consent_revoke(subject: str, bureau: str, node: str | None = NodeOpt,
                   keyring: Path | None = KeyringOpt) -> None:
    """SUBJECT withdraws BUREAU's consent (its report is deleted)."""
    from sharechain.modules.credit.types import RevokeConsent

    b = _addr(bureau, keyring)
    _send(subject, keyring, node, "credit/revoke_consent",
          lambda c: _build(RevokeConsent, bureau=b))


@consent_app.command("show")
@handle_errors
def consent_show(address: str, node: str | None = NodeOpt,
                 keyring: Path | None = KeyringOpt) -> None:
    """ADDRESS's consents to bureaus."""
    a = _bech(address, keyring)
    _read(node, lambda cr, _: cr.consents(a))


@report_app.command("submit")
@handle_errors
def report_submit(bureau: str, subject: str, band: str,
                  days: int = typer.Option(90, help="Days the report stays valid."),
                  report_cid: str = "", report_file: Path | None = None,
                  node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """BUREAU reports BAND (A-D) on SUBJECT, valid from now for DAYS days."""
    from sharechain.modules.credit.types import SubmitReport

    who = _addr(subject, keyring)
    cid = _evidence(report_cid, report_file)

    def msg(c: Any) -> Any:
        t = _now(c)
        return _build(SubmitReport, subject=who, band=band, valid_from_ms=t,
                      valid_until_ms=t + days * DAY_MS, report_cid=cid)
    _send(bureau, keyring, node, "credit/submit_report", msg)


@report_app.command("show")
@handle_errors
def report_show(address: str, node: str | None = NodeOpt,
                keyring: Path | None = KeyringOpt) -> None:
    """Bureau reports on ADDRESS (those counted in the score flagged)."""
    a = _bech(address, keyring)
    _read(node, lambda cr, _: cr.reports(a))


# ==================================================================== arbitration writes

@arb_app.command("stake")
@handle_errors
def arb_stake(arbitrator: str, amount: int, node: str | None = NodeOpt,
              keyring: Path | None = KeyringOpt) -> None:
    """ARBITRATOR locks AMOUNT more as stake."""
    from sharechain.modules.arbitration.types import Stake

    _send(arbitrator, keyring, node, "arbitration/stake", lambda c: _build(Stake, amount=amount))


@arb_app.command("unstake")
@handle_errors
def arb_unstake(arbitrator: str, amount: int, node: str | None = NodeOpt,
                keyring: Path | None = KeyringOpt) -> None:
    """ARBITRATOR takes AMOUNT of stake back (not while seated on a panel)."""
    from sharechain.modules.arbitration.types import Unstake

    _send(arbitrator, keyring, node, "arbitration/unstake",
          lambda c: _build(Unstake, amount=amount))


def _open(sender: str, keyring: Path | None, node: str | None, kind: str, disputed: Any,
          bond: int | None, cid: str, **fields: Any) -> None:
    """Open a dispute; ``disputed(client)`` is the amount the bond scales with."""
    from sharechain.client.trust import ArbitrationAPI
    from sharechain.modules.arbitration.types import OpenDispute

    def msg(c: Any) -> Any:
        b = bond if bond is not None else ArbitrationAPI(c).bond(disputed(c))["bond"]
        return _build(OpenDispute, kind=kind, bond=b, evidence_cid=cid, **fields)
    _send(sender, keyring, node, "arbitration/open", msg)


@arb_app.command("open-claim")
@handle_errors
def arb_open_claim(sender: str, claim_id: str, evidence_cid: str = EvidenceCidOpt,
                   evidence_file: Path | None = EvidenceFileOpt,
                   bond: int | None = typer.Option(None, help="Default: the required bond."),
                   node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """SENDER (consumer or claimant) disputes damage claim CLAIM_ID."""
    cid = _hex(claim_id, "claim_id")
    _open(sender, keyring, node, "claim",
          lambda c: int(c.query("rental", "claim", id=cid.hex())["amount"]), bond,
          _evidence(evidence_cid, evidence_file), target=cid)


@arb_app.command("open-report")
@handle_errors
def arb_open_report(sender: str, asset_id: str, seq: int, amount: int,
                    evidence_cid: str = EvidenceCidOpt,
                    evidence_file: Path | None = EvidenceFileOpt,
                    bond: int | None = typer.Option(None, help="Default: the required bond."),
                    node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """SENDER (reporter or owner) disputes report SEQ on ASSET_ID for AMOUNT of the pledge."""
    aid = _hex(asset_id, "asset_id")
    _open(sender, keyring, node, "report", lambda c: amount, bond,
          _evidence(evidence_cid, evidence_file), target=aid, seq=seq, amount=amount)


@arb_app.command("open-blacklist")
@handle_errors
def arb_open_blacklist(sender: str, entry_id: int, evidence_cid: str = EvidenceCidOpt,
                       evidence_file: Path | None = EvidenceFileOpt,
                       bond: int | None = typer.Option(None, help="Default: the required bond."),
                       node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """SENDER (the blacklisted subject) appeals blacklist entry ENTRY_ID to arbitration."""
    from sharechain.client.trust import ArbitrationAPI

    _open(sender, keyring, node, "blacklist",
          lambda c: int(ArbitrationAPI(c).params()["blacklist_dispute_amount"]), bond,
          _evidence(evidence_cid, evidence_file), seq=entry_id)


@arb_app.command("respond")
@handle_errors
def arb_respond(sender: str, dispute_id: str, evidence_cid: str = EvidenceCidOpt,
                evidence_file: Path | None = EvidenceFileOpt, node: str | None = NodeOpt,
                keyring: Path | None = KeyringOpt) -> None:
    """SENDER, the other side, posts the round's bond."""
    from sharechain.client.trust import ArbitrationAPI
    from sharechain.modules.arbitration.types import Respond

    did = _hex(dispute_id, "dispute_id")

    def msg(c: Any) -> Any:
        d = ArbitrationAPI(c).dispute(did)
        return _build(Respond, dispute_id=did, bond=int(d["rounds"][d["round"]]["bond"]),
                      evidence_cid=_evidence(evidence_cid, evidence_file))
    _send(sender, keyring, node, "arbitration/respond", msg)


@arb_app.command("evidence")
@handle_errors
def arb_evidence(sender: str, dispute_id: str, evidence_cid: str = EvidenceCidOpt,
                 evidence_file: Path | None = EvidenceFileOpt, node: str | None = NodeOpt,
                 keyring: Path | None = KeyringOpt) -> None:
    """A party attaches another evidence document."""
    from sharechain.modules.arbitration.types import AddEvidence

    did = _hex(dispute_id, "dispute_id")
    cid = _evidence(evidence_cid, evidence_file)
    _send(sender, keyring, node, "arbitration/add_evidence",
          lambda c: _build(AddEvidence, dispute_id=did, evidence_cid=cid))


@arb_app.command("commit")
@handle_errors
def arb_commit(arbitrator: str, dispute_id: str, vote: str,
               salt: str = typer.Option("", help="Salt (hex); default: a fresh random one."),
               node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """ARBITRATOR commits a sealed VOTE (uphold or reject); prints the salt to reveal with."""
    from sharechain.client.trust import ArbitrationAPI
    from sharechain.modules.arbitration.types import CommitVote

    did = _hex(dispute_id, "dispute_id")
    raw_salt = _hex(salt, "salt") if salt else secrets.token_bytes(32)
    key = _key(arbitrator, keyring)

    def msg(c: Any) -> Any:
        commitment = ArbitrationAPI(c).commitment(key, did, vote, raw_salt)
        return _build(CommitVote, dispute_id=did, commitment=commitment)
    res = _send(key, keyring, node, "arbitration/commit", msg)
    if res.get("result", {}).get("ok"):
        console.print(f"salt (keep it secret until you reveal): [bold]{raw_salt.hex()}[/bold]")


@arb_app.command("reveal")
@handle_errors
def arb_reveal(arbitrator: str, dispute_id: str, vote: str, salt: str,
               node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """ARBITRATOR reveals the VOTE and SALT committed earlier."""
    from sharechain.modules.arbitration.types import RevealVote

    did = _hex(dispute_id, "dispute_id")
    raw_salt = _hex(salt, "salt")
    _send(arbitrator, keyring, node, "arbitration/reveal",
          lambda c: _build(RevealVote, dispute_id=did, vote=vote, salt=raw_salt))


@arb_app.command("appeal")
@handle_errors
def arb_appeal(sender: str, dispute_id: str, evidence_cid: str = EvidenceCidOpt,
               evidence_file: Path | None = EvidenceFileOpt, node: str | None = NodeOpt,
               keyring: Path | None = KeyringOpt) -> None:
    """The first round's loser appeals to a larger panel (posting the appeal bond)."""
    from sharechain.client.trust import ArbitrationAPI
    from sharechain.modules.arbitration.types import Appeal

    did = _hex(dispute_id, "dispute_id")

    def msg(c: Any) -> Any:
        api = ArbitrationAPI(c)
        bond = api.bond(int(api.dispute(did)["amount"]), 1)["bond"]
        return _build(Appeal, dispute_id=did, bond=bond,
                      evidence_cid=_evidence(evidence_cid, evidence_file))
    _send(sender, keyring, node, "arbitration/appeal", msg)


# ---------------------------------------------------------------- arbitration reads

@arb_app.command("show")
@handle_errors
def arb_show(dispute_id: str, node: str | None = NodeOpt) -> None:
    """A dispute with its rounds, evidence and votes."""
    _read(node, lambda _, a: a.dispute(dispute_id))


@arb_app.command("ruling")
@handle_errors
def arb_ruling(dispute_id: str, node: str | None = NodeOpt) -> None:
    """The ruling: decided rounds, panels, revealed votes, final outcome and execution."""
    _read(node, lambda _, a: a.ruling(dispute_id))


@arb_app.command("votes")
@handle_errors
def arb_votes(dispute_id: str, round_index: int | None = typer.Option(None, "--round"),
              node: str | None = NodeOpt) -> None:
    """Commitments and revealed votes of a round (default: the current one)."""
    _read(node, lambda _, a: a.votes(dispute_id, round_index))


@arb_app.command("list")
@handle_errors
def arb_list(party: str | None = None, state: str | None = None, limit: int = 100,
             node: str | None = NodeOpt, keyring: Path | None = KeyringOpt) -> None:
    """Disputes, optionally of one PARTY and/or in one STATE."""
    p = _bech(party, keyring) if party else None
    _read(node, lambda _, a: a.disputes(p, state, limit=limit))


@arb_app.command("arbitrators")
@handle_errors
def arb_arbitrators(node: str | None = NodeOpt) -> None:
    """Every arbitrator that staked: stake, seats, record, eligibility."""
    _read(node, lambda _, a: a.arbitrators())


@arb_app.command("bond")
@handle_errors
def arb_bond(amount: int, round_index: int = typer.Option(0, "--round"),
             node: str | None = NodeOpt) -> None:
    """Each side's bond for AMOUNT in dispute (round 1: the appeal)."""
    _read(node, lambda _, a: a.bond(amount, round_index))


@arb_app.command("params")
@handle_errors
def arb_params(node: str | None = NodeOpt) -> None:
    """Panel sizes, windows, fees, bond rates and stake rules."""
    _read(node, lambda _, a: a.params())
