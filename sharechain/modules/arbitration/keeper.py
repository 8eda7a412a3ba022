"""arbitration keeper: arbitrators and their stakes, disputes, panels, votes and rulings.

Theory of operation
-------------------
A dispute is about one thing that already exists on chain: a rental damage claim, a
fake/unsafe asset report, or a regulator's blacklist entry. It has two sides — the
**upholder** (the claimant, the reporter, the regulator) says the thing stands, the
**rejecter** (the consumer, the asset's owner, the blacklisted subject) says it does not —
and either side may open it within the thing's dispute window.

Each round has two equal **bonds**, one per side, sized by the amount in dispute and never by
what a side can afford (``Params.bond``): the opener posts at once, the respondent within
``respond_window_ms`` or loses the round by default. ``draw_delay_blocks`` blocks after both
bonds are in, the end-block draws an odd **panel** of staked arbitrators, seeded by the
previous block's hash (unknown when the bonds were posted), leaving out everyone involved.
Panelists **commit** ``sha256(dispute, round, arbitrator, vote, salt)`` and then **reveal**;
each phase has a deadline (a phase also ends early once every panelist has acted). The
**tally** takes the majority of revealed votes: the loser's bond pays the panel fees to the
panelists who voted with the majority (the rest of it goes back to the loser), the winner's
bond goes back, and panelists who did not reveal lose ``slash_bps`` of their stake to the
majority. The first round's loser may **appeal** once, to a larger panel with a larger bond.
A ruling is **executed** when final — when the appeal window closes, or when the appeal is
tallied: the claim's escrow is split (``rental.resolve_claim``), the pledge pays the reporter
(``assets.pay_pledge_compensation``), credit events are written and blacklist entries added
or lifted. Every token moves between bank escrows and balances, so disputes neither create
nor destroy tokens.

Time deadlines (respond, tally, appeal) and draw heights are kept in two ordered indexes and
the end-block walks only their due part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from sharechain.app.params import ParamStore
from sharechain.app.framework import Context, module_address
from sharechain.app.state import Readable
from sharechain.crypto import bech32_address, sha256
from sharechain.encoding import decode_trusted, encode
from sharechain.errors import ShareChainError
from sharechain.modules.arbitration import keys
from sharechain.modules.arbitration.deps import (
    AssetsPort,
    BankEscrow,
    CreditPort,
    RentalPort,
    RoleView,
)
from sharechain.modules.arbitration.states import (
    APPEALABLE,
    AWAITING_PANEL,
    AWAITING_RESPONSE,
    VOTING,
    dispute_next,
)
from sharechain.modules.arbitration.types import (
    ALREADY_COMMITTED,
    ALREADY_DISPUTED,
    ALREADY_RESPONDED,
    ALREADY_REVEALED,
    APPEAL_CLOSED,
    APPEAL_NOT_ALLOWED,
    ARBITRATOR_IS_PARTY,
    ARBITRATOR_SEATED,
    CANCELLED,
    CLAIM,
    COMMIT_CLOSED,
    DISPUTE_ID_BYTES,
    DISPUTE_NOT_FOUND,
    DISPUTE_WINDOW_CLOSED,
    EVIDENCE_PER_PARTY_MAX,
    INSUFFICIENT_BOND,
    INVALID_AMOUNT,
    NOT_A_PARTY,
    NOT_COMMITTED,
    NOT_DISPUTABLE,
    NOT_ENOUGH_ARBITRATORS,
    NOT_ON_PANEL,
    REJECT,
    REPORT,
    RESPOND_WINDOW_CLOSED,
    REVEAL_CLOSED,
    REVEAL_MISMATCH,
    REVEAL_NOT_OPEN,
    STAKE_INSUFFICIENT,
    TARGET_NOT_FOUND,
    TOO_MUCH_EVIDENCE,
    UNDECIDED,
    UPHOLD,
    VOTING_NOT_OPEN,
    AddEvidence,
    Appeal,
    Arbitrator,
    CommitVote,
    Dispute,
    Evidence,
    OpenDispute,
    Params,
    Respond,
    RevealVote,
    Round,
    Stake,
    Unstake,
    Vote,
    vote_commitment,
)
from sharechain.modules.bank import FEE_COLLECTOR
from sharechain.modules.credit.types import AS_PARTY, DISPUTE_LOST, DISPUTE_WON, FRAUD_UPHELD
from sharechain.modules.identity.common import BPS_DENOM, TIME_MS_MAX, iter_records, read_record
from sharechain.modules.identity.types import ARBITRATOR, REGULATOR

MODULE_ADDRESS = module_address("arbitration")  # adds and lifts blacklist entries by ruling
SWEEP_ITEMS_MAX = 1_000                          # draws and deadlines handled per block at most
CLAIM_PENDING = frozenset({"open", "disputed"})
REPORT_OPEN = "open"
REPORT_FAKE = "fake"

# credit event kinds and roles written on a final ruling: DISPUTE_WON, DISPUTE_LOST,
# FRAUD_UPHELD, AS_PARTY (imported from the credit module, which validates them)

_replace = dataclasses.replace


def _err(code: str, message: str) -> ShareChainError:
    return ShareChainError(code, message)


def split_evenly(amount: int, recipients: list[bytes]) -> list[tuple[bytes, int]]:
    """``amount`` in equal integer parts; the remainder goes to the first recipient."""
    if amount <= 0 or not recipients:
        return []
    part, rest = divmod(amount, len(recipients))
    out = [(r, part + (rest if i == 0 else 0)) for i, r in enumerate(recipients)]
    return [(r, a) for r, a in out if a > 0]


@dataclass(frozen=True, slots=True)
class _Target:
    """What a dispute is about, as read from the module that owns it."""

    upholder: bytes
    rejecter: bytes
    involved: frozenset[bytes]
    amount: int
    platform: bytes
    window_end_ms: int
    resume_timeout_ms: int = 0


class ArbitrationKeeper:
    def __init__(self, bank: BankEscrow, roles: RoleView, rental: RentalPort,
                 assets: AssetsPort, credit: CreditPort) -> None:
        self.bank = bank
        self.roles = roles
        self.rental = rental
        self.assets = assets
        self.credit = credit
        self.param_store = ParamStore(Params, keys.PARAMS_KEY, "arbitration")

    # ================================================================ reads
    def params(self, state: Readable) -> Params:
        return self.param_store.get(state)

    def set_params(self, ctx: Context, params: Params) -> None:
        self.param_store.set(ctx, params)

    def dispute(self, state: Readable, dispute_id: bytes) -> Dispute | None:
        return read_record(state, Dispute, keys.dispute_key(dispute_id))  # type: ignore[no-any-return]

    def dispute_of(self, state: Readable, kind: str, target: bytes, seq: int) -> bytes | None:
        return state.get(keys.target_key(kind, target, seq))

    def vote(self, state: Readable, dispute_id: bytes, round_index: int,
             arbitrator: bytes) -> Vote | None:
        return read_record(state, Vote, keys.vote_key(dispute_id, round_index, arbitrator))  # type: ignore[no-any-return]

    def votes(self, state: Readable, dispute_id: bytes, round_index: int) -> list[Vote]:
        return [v for _, v in iter_records(state, Vote, keys.vote_prefix(dispute_id, round_index))]

    def arbitrator(self, state: Readable, addr: bytes) -> Arbitrator | None:
        return read_record(state, Arbitrator, keys.arbitrator_key(addr))  # type: ignore[no-any-return]

    def arbitrators(self, state: Readable) -> Iterable[Arbitrator]:
        for _, a in iter_records(state, Arbitrator, keys.ARBITRATOR_PREFIX):
            yield a

    def eligible(self, state: Readable, exclude: Iterable[bytes] = ()) -> list[bytes]:
        """Arbitrators that may be drawn: the role, the minimum stake, not excluded; in
        address order."""
        p = self.params(state)
        skip = set(exclude)
        return [a.address for a in self.arbitrators(state)
                if a.stake >= p.min_stake and a.address not in skip
                and self.roles.has_role(state, a.address, ARBITRATOR)]

    def last_seq(self, state: Readable) -> int:
        raw = state.get(keys.SEQ_KEY)
        return 0 if raw is None else int(decode_trusted(raw))

    def _load(self, ctx: Context, dispute_id: bytes) -> Dispute:
        d = self.dispute(ctx.state, dispute_id)
        if d is None:
            raise _err(DISPUTE_NOT_FOUND, f"no dispute {dispute_id.hex()}")
        return d

    @staticmethod
    def _save(ctx: Context, d: Dispute) -> None:
        ctx.set_record(keys.dispute_key(d.id), d)

    def _save_arbitrator(self, ctx: Context, a: Arbitrator) -> None:
        ctx.set_record(keys.arbitrator_key(a.address), a)

    @staticmethod
    def _with_round(d: Dispute, rd: Round, **changes: object) -> Dispute:
        rounds = list(d.rounds)
        rounds[rd.index] = rd
        return _replace(d, rounds=tuple(rounds), **changes)

    # ================================================================ deadlines
    @staticmethod
    def _set_due(ctx: Context, d: Dispute, due_ms: int) -> Dispute:
        if d.due_ms:
            ctx.state.delete(keys.due_key(d.due_ms, d.id))
        if due_ms:
            ctx.state.set(keys.due_key(due_ms, d.id), b"")
        return _replace(d, due_ms=due_ms)

    # ================================================================ arbitrators
    def stake(self, ctx: Context, msg: Stake) -> Arbitrator:
        self.roles.require_role(ctx, ctx.sender, ARBITRATOR)
        self.bank.lock(ctx, ctx.sender, msg.amount, keys.stake_escrow(ctx.sender))
        a = self.arbitrator(ctx.state, ctx.sender) or Arbitrator(ctx.sender, 0)
        a = _replace(a, stake=a.stake + msg.amount)
        self._save_arbitrator(ctx, a)
        ctx.emit("arbitrator_staked", arbitrator=ctx.sender, amount=msg.amount, stake=a.stake)
        return a

    def unstake(self, ctx: Context, msg: Unstake) -> Arbitrator:
        a = self.arbitrator(ctx.state, ctx.sender)
        if a is None or a.stake < msg.amount:
            raise _err(STAKE_INSUFFICIENT, f"the stake is {0 if a is None else a.stake}, "
                                           f"not {msg.amount}")
        if a.seats:
            raise _err(ARBITRATOR_SEATED, f"the arbitrator sits on {a.seats} open panel(s)")
        self.bank.release(ctx, keys.stake_escrow(ctx.sender), ctx.sender, msg.amount)
        a = _replace(a, stake=a.stake - msg.amount)
        self._save_arbitrator(ctx, a)
        ctx.emit("arbitrator_unstaked", arbitrator=ctx.sender, amount=msg.amount, stake=a.stake)
        return a

    # ================================================================ open
    def _target(self, ctx: Context, msg: OpenDispute, p: Params) -> _Target:
        if msg.kind == CLAIM:
            return self._claim_target(ctx, msg, p)
        if msg.kind == REPORT:
            return self._report_target(ctx, msg, p)
        return self._blacklist_target(ctx, msg, p)

    def _claim_target(self, ctx: Context, msg: OpenDispute, p: Params) -> _Target:
        if msg.seq or msg.amount:
            raise _err(INVALID_AMOUNT, "a claim dispute names only the claim id")
        c = self.rental.claim(ctx.state, msg.target)
        r = None if c is None else self.rental.rental(ctx.state, c.rental_id)
        if c is None or r is None:
            raise _err(TARGET_NOT_FOUND, f"no claim {msg.target.hex()}")
        if c.state not in CLAIM_PENDING:
            raise _err(NOT_DISPUTABLE, f"the claim is already {c.state}")
        involved = frozenset({r.consumer, r.owner, r.operator, c.claimant} - {b""})
        return _Target(c.claimant, r.consumer, involved, c.amount, r.operator,
                       c.filed_ms + p.claim_dispute_window_ms, c.timeout_ms)

    def _report_target(self, ctx: Context, msg: OpenDispute, p: Params) -> _Target:
        a = self.assets.get(ctx.state, msg.target)
        rep = None if a is None else self.assets.report(ctx.state, msg.target, msg.seq)
        if a is None or rep is None:
            raise _err(TARGET_NOT_FOUND, f"no report {msg.seq} on asset {msg.target.hex()}")
        if rep.status != REPORT_OPEN:
            raise _err(NOT_DISPUTABLE, f"the report is already {rep.status}")
        if not 0 < msg.amount <= a.pledge_held:
            raise _err(INVALID_AMOUNT, f"the compensation sought must be 1 to the "
                                       f"{a.pledge_held} the pledge holds")
        involved = frozenset({rep.reporter, a.owner, a.operator, a.pledger} - {b""})
        return _Target(rep.reporter, a.owner, involved, msg.amount, a.operator,
                       rep.created_ms + p.report_dispute_window_ms)

    def _blacklist_target(self, ctx: Context, msg: OpenDispute, p: Params) -> _Target:
        if msg.target or msg.amount:
            raise _err(INVALID_AMOUNT, "a blacklist dispute names only the entry id (seq)")
        e = self.credit.entry(ctx.state, msg.seq)
        if e is None:
            raise _err(TARGET_NOT_FOUND, f"no blacklist entry {msg.seq}")
        if not e.active(ctx.time_ms):
            raise _err(NOT_DISPUTABLE, "the entry is lifted or expired")
        if e.ruling_id:
            raise _err(NOT_DISPUTABLE, "an entry added by a ruling is contested by appealing "
                                       f"dispute {e.ruling_id.hex()}")
        return _Target(e.added_by, e.subject, frozenset({e.subject, e.added_by}),
                       p.blacklist_dispute_amount, b"",
                       e.added_ms + p.blacklist_dispute_window_ms)

    def open(self, ctx: Context, msg: OpenDispute) -> Dispute:
        p = self.params(ctx.state)
        t = self._target(ctx, msg, p)
        who = ctx.sender
        if who not in (t.upholder, t.rejecter) or t.upholder == t.rejecter:
            raise _err(NOT_A_PARTY, f"{bech32_address(who)} is not a party to this {msg.kind}")
        if ctx.time_ms > t.window_end_ms:
            raise _err(DISPUTE_WINDOW_CLOSED, f"this {msg.kind} could be disputed until "
                                              f"{t.window_end_ms}")
        tkey = keys.target_key(msg.kind, msg.target, msg.seq)
        existing = ctx.state.get(tkey)
        if existing is not None:
            raise _err(ALREADY_DISPUTED, f"this {msg.kind} is already in dispute "
                                         f"{existing.hex()}")
        bond = p.bond(t.amount, 0)
        if msg.bond < bond:
            raise _err(INSUFFICIENT_BOND, f"the bond for {t.amount} in dispute is {bond}")
        if len(self.eligible(ctx.state, t.involved)) < p.panel_size:
            raise _err(NOT_ENOUGH_ARBITRATORS, f"fewer than {p.panel_size} staked arbitrators "
                                               "are free to sit")
        seq = self.last_seq(ctx.state) + 1
        did = keys.be8(seq)
        self.bank.lock(ctx, who, bond, keys.bond_escrow(did, 0, 0))
        now = ctx.time_ms
        rd = Round(index=0, opener=who, respondent=t.rejecter if who == t.upholder
                   else t.upholder, bond=bond, opened_ms=now,
                   respond_by_ms=now + p.respond_window_ms)
        d = Dispute(id=did, kind=msg.kind, target=msg.target, seq=msg.seq, amount=t.amount,
                    upholder=t.upholder, rejecter=t.rejecter, involved=tuple(sorted(t.involved)),
                    platform=t.platform, opener=who, state=AWAITING_RESPONSE, round=0,
                    rounds=(rd,), evidence=(Evidence(who, msg.evidence_cid, 0, now),),
                    opened_ms=now, resume_timeout_ms=t.resume_timeout_ms)
        d = self._set_due(ctx, d, rd.respond_by_ms)
        ctx.state.set(keys.SEQ_KEY, encode(seq))
        ctx.state.set(tkey, did)
        for party in (t.upholder, t.rejecter):
            ctx.state.set(keys.party_key(party, did), b"")
        if msg.kind == CLAIM:  # the claim waits for the ruling instead of timing out
            self.rental.set_claim_timeout(ctx, msg.target, TIME_MS_MAX)
        self._save(ctx, d)
        ctx.emit("dispute_opened", dispute_id=did, kind=msg.kind, target=msg.target,
                 seq=msg.seq, amount=t.amount, opener=who, respondent=rd.respondent,
                 bond=bond, respond_by_ms=rd.respond_by_ms)
        return d

    # ================================================================ respond / evidence
    def respond(self, ctx: Context, msg: Respond) -> Dispute:
        d = self._load(ctx, msg.dispute_id)
        who = ctx.sender
        if who not in (d.upholder, d.rejecter):
            raise _err(NOT_A_PARTY, "only the parties respond to a dispute")
        state = dispute_next(d.state, "respond")
        rd = d.current
        if who != rd.respondent:
            raise _err(ALREADY_RESPONDED, "this side's bond is already posted")
        if ctx.time_ms > rd.respond_by_ms:
            raise _err(RESPOND_WINDOW_CLOSED, f"the bond was due by {rd.respond_by_ms}")
        if msg.bond < rd.bond:
            raise _err(INSUFFICIENT_BOND, f"this round's bond is {rd.bond}")
        self.bank.lock(ctx, who, rd.bond, keys.bond_escrow(d.id, rd.index, 1))
        draw_height = ctx.height + self.params(ctx.state).draw_delay_blocks
        rd = _replace(rd, responded=True, draw_height=draw_height)
        d = self._with_round(d, rd, state=state)
        if msg.evidence_cid:
            d = self._add_evidence(d, who, msg.evidence_cid, ctx.time_ms)
        d = self._set_due(ctx, d, 0)
        ctx.state.set(keys.draw_key(draw_height, d.id), b"")
        self._save(ctx, d)
        ctx.emit("dispute_responded", dispute_id=d.id, round=rd.index, by=who, bond=rd.bond,
                 draw_height=draw_height)
        return d

    @staticmethod
    def _add_evidence(d: Dispute, who: bytes, cid: str, now_ms: int) -> Dispute:
        if sum(1 for e in d.evidence if e.by == who) >= EVIDENCE_PER_PARTY_MAX:
            raise _err(TOO_MUCH_EVIDENCE, f"a side attaches at most {EVIDENCE_PER_PARTY_MAX} "
                                          "evidence documents")
        return _replace(d, evidence=(*d.evidence, Evidence(who, cid, d.round, now_ms)))

    def add_evidence(self, ctx: Context, msg: AddEvidence) -> None:
        d = self._load(ctx, msg.dispute_id)
        if ctx.sender not in (d.upholder, d.rejecter):
            raise _err(NOT_A_PARTY, "only the parties attach evidence")
        dispute_next(d.state, "evidence")
        self._save(ctx, self._add_evidence(d, ctx.sender, msg.evidence_cid, ctx.time_ms))
        ctx.emit("dispute_evidence", dispute_id=d.id, by=ctx.sender, cid=msg.evidence_cid)

    # ================================================================ votes
    def _panel_round(self, ctx: Context, d: Dispute, closed_code: str) -> Round:
        """The round a panelist acts in, after the checks both commit and reveal share."""
        if ctx.sender in d.involved:
            raise _err(ARBITRATOR_IS_PARTY, "an arbitrator can not vote in a dispute they are "
                                            "involved in")
        if d.state in (AWAITING_RESPONSE, AWAITING_PANEL):
            raise _err(VOTING_NOT_OPEN, "the panel of this round is not drawn yet")
        if d.state != VOTING:
            raise _err(closed_code, "voting on this round is over")
        rd = d.current
        if ctx.sender not in rd.panel:
            raise _err(NOT_ON_PANEL, f"{bech32_address(ctx.sender)} does not sit on this panel")
        return rd

    def commit(self, ctx: Context, msg: CommitVote) -> None:
        d = self._load(ctx, msg.dispute_id)
        rd = self._panel_round(ctx, d, COMMIT_CLOSED)
        if self.vote(ctx.state, d.id, rd.index, ctx.sender) is not None:
            raise _err(ALREADY_COMMITTED, "this panelist already committed a vote")
        if ctx.time_ms > rd.commit_by_ms:
            raise _err(COMMIT_CLOSED, f"votes had to be committed by {rd.commit_by_ms}")
        state = dispute_next(d.state, "commit")
        ctx.set_record(keys.vote_key(d.id, rd.index, ctx.sender),
                       Vote(ctx.sender, msg.commitment, ctx.time_ms))
        rd = _replace(rd, commits=rd.commits + 1)
        self._save(ctx, self._with_round(d, rd, state=state))
        ctx.emit("vote_committed", dispute_id=d.id, round=rd.index, arbitrator=ctx.sender,
                 commits=rd.commits, panel=len(rd.panel))

    def commit_phase_over(self, rd: Round, now_ms: int) -> bool:
        return now_ms > rd.commit_by_ms or rd.commits == len(rd.panel)

    def reveal(self, ctx: Context, msg: RevealVote) -> None:
        d = self._load(ctx, msg.dispute_id)
        rd = self._panel_round(ctx, d, REVEAL_CLOSED)
        now = ctx.time_ms
        if now > rd.reveal_by_ms:
            raise _err(REVEAL_CLOSED, f"votes had to be revealed by {rd.reveal_by_ms}")
        if not self.commit_phase_over(rd, now):
            raise _err(REVEAL_NOT_OPEN, f"reveals open after {rd.commit_by_ms} or once every "
                                        "panelist has committed")
        v = self.vote(ctx.state, d.id, rd.index, ctx.sender)
        if v is None:
            raise _err(NOT_COMMITTED, "this panelist committed no vote")
        if v.vote:
            raise _err(ALREADY_REVEALED, "this vote is already revealed")
        if vote_commitment(d.id, rd.index, ctx.sender, msg.vote, msg.salt) != v.commitment:
            raise _err(REVEAL_MISMATCH, "the vote and salt do not match the commitment")
        state = dispute_next(d.state, "reveal")
        ctx.set_record(keys.vote_key(d.id, rd.index, ctx.sender),
                       _replace(v, vote=msg.vote, revealed_ms=now))
        up = rd.uphold_votes + (msg.vote == UPHOLD)
        rd = _replace(rd, reveals=rd.reveals + 1, uphold_votes=up,
                      reject_votes=rd.reject_votes + (msg.vote == REJECT))
        d = self._with_round(d, rd, state=state)
        if rd.reveals == rd.commits:  # nobody left to reveal: tally at the end of this block
            d = self._set_due(ctx, d, now)
        self._save(ctx, d)
        ctx.emit("vote_revealed", dispute_id=d.id, round=rd.index, arbitrator=ctx.sender,
                 vote=msg.vote)

    # ================================================================ appeal
    def position(self, d: Dispute, who: bytes) -> str:
        return UPHOLD if who == d.upholder else REJECT

    def party_with(self, d: Dispute, outcome: str) -> bytes:
        return d.upholder if outcome == UPHOLD else d.rejecter

    def appeal(self, ctx: Context, msg: Appeal) -> Dispute:
        d = self._load(ctx, msg.dispute_id)
        who = ctx.sender
        if who not in (d.upholder, d.rejecter):
            raise _err(NOT_A_PARTY, "only the parties appeal")
        if d.state != APPEALABLE:
            raise _err(APPEAL_NOT_ALLOWED, f"a dispute that is {d.state} can not be appealed")
        first = d.current
        if self.position(d, who) == first.outcome:
            raise _err(APPEAL_NOT_ALLOWED, "only the side that lost may appeal")
        if ctx.time_ms > d.due_ms:
            raise _err(APPEAL_CLOSED, f"the appeal window closed at {d.due_ms}")
        p = self.params(ctx.state)
        bond = p.bond(d.amount, 1)
        if msg.bond < bond:
            raise _err(INSUFFICIENT_BOND, f"the appeal bond for {d.amount} in dispute is {bond}")
        if len(self.eligible(ctx.state, set(d.involved) | set(first.panel))) \
                < p.appeal_panel_size:
            raise _err(NOT_ENOUGH_ARBITRATORS, f"fewer than {p.appeal_panel_size} staked "
                                               "arbitrators are free to sit on an appeal")
        state = dispute_next(d.state, "appeal")
        self.bank.lock(ctx, who, bond, keys.bond_escrow(d.id, 1, 0))
        now = ctx.time_ms
        rd = Round(index=1, opener=who, respondent=d.other_party(who), bond=bond,
                   opened_ms=now, respond_by_ms=now + p.respond_window_ms)
        d = _replace(d, state=state, round=1, rounds=(*d.rounds, rd))
        if msg.evidence_cid:
            d = self._add_evidence(d, who, msg.evidence_cid, now)
        d = self._set_due(ctx, d, rd.respond_by_ms)
        self._save(ctx, d)
        ctx.emit("dispute_appealed", dispute_id=d.id, by=who, bond=bond,
                 respond_by_ms=rd.respond_by_ms)
        return d

    # ================================================================ end block
    def end_block(self, ctx: Context) -> None:
        """Draw the panels due at this height, then handle the deadlines due by this time."""
        draws = list(islice(ctx.state.iter_range(
            keys.DRAW_PREFIX, keys.DRAW_PREFIX + keys.be8(ctx.height + 1)), SWEEP_ITEMS_MAX))
        for key, _ in draws:
            self._sweep_one(ctx, key, key[-DISPUTE_ID_BYTES:], self._draw)
        dues = list(islice(ctx.state.iter_range(
            keys.DUE_PREFIX, keys.DUE_PREFIX + keys.be8(ctx.time_ms + 1)), SWEEP_ITEMS_MAX))
        for key, _ in dues:
            self._sweep_one(ctx, key, key[-DISPUTE_ID_BYTES:], self._on_due)

    def _sweep_one(self, ctx: Context, key: bytes, dispute_id: bytes, fn: object) -> None:
        child = ctx.branch()
        child.state.delete(key)
        try:
            d = self._load(child, dispute_id)
            if key.startswith(keys.DUE_PREFIX):
                d = _replace(d, due_ms=0)  # this entry is consumed
            fn(child, d)  # type: ignore[operator]
        except ShareChainError as exc:
            # A bug-free dispute never gets here; if one does, it must not stall the sweep.
            ctx.state.delete(key)
            ctx.emit("arbitration_sweep_failed", dispute_id=dispute_id, code=exc.code,
                     message=exc.message)
            return
        ctx.merge(child)

    def _on_due(self, ctx: Context, d: Dispute) -> None:
        if d.state == AWAITING_RESPONSE:
            self._respond_timeout(ctx, d)
        elif d.state == VOTING:
            self._tally(ctx, d)
        elif d.state == APPEALABLE:
            self._close(ctx, d, "finalize", d.rounds[0].outcome)

    # ---------------------------------------------------------------- draw
    def draw_seed(self, ctx: Context, d: Dispute) -> bytes:
        return sha256(b"sharechain/arbitration/draw\x00" + ctx.prev_hash + d.id
                      + bytes((d.round,)) + keys.be8(ctx.height))

    def _draw(self, ctx: Context, d: Dispute) -> None:
        p = self.params(ctx.state)
        rd = d.current
        earlier = {a for r in d.rounds[: rd.index] for a in r.panel}
        candidates = self.eligible(ctx.state, set(d.involved) | earlier)
        size = p.size_of(rd.index)
        if len(candidates) < size:
            self._no_panel(ctx, d)
            return
        seed = self.draw_seed(ctx, d)
        panel = []
        for i in range(size):
            pick = int.from_bytes(sha256(seed + i.to_bytes(4, "big")), "big") % len(candidates)
            panel.append(candidates.pop(pick))
        for addr in panel:
            a = self.arbitrator(ctx.state, addr)
            if a is not None:
                self._save_arbitrator(ctx, _replace(a, seats=a.seats + 1))
        now = ctx.time_ms
        commit_by = now + p.commit_window_ms
        rd = _replace(rd, panel=tuple(sorted(panel)), seed=seed, commit_by_ms=commit_by,
                      reveal_by_ms=commit_by + p.reveal_window_ms)
        d = self._with_round(d, rd, state=dispute_next(d.state, "draw"))
        d = self._set_due(ctx, d, rd.reveal_by_ms)
        self._save(ctx, d)
        ctx.emit("panel_drawn", dispute_id=d.id, round=rd.index, panel=list(rd.panel),
                 commit_by_ms=rd.commit_by_ms, reveal_by_ms=rd.reveal_by_ms)

    def _no_panel(self, ctx: Context, d: Dispute) -> None:
        """Too few arbitrators left to draw: the round's bonds go back; an appeal falls back
        to the first ruling, a first round ends with no ruling."""
        rd = d.current
        self._refund(ctx, d, rd, 0)
        self._refund(ctx, d, rd, 1)
        d = self._with_round(d, _replace(rd, outcome=CANCELLED, decided_ms=ctx.time_ms))
        final = d.rounds[0].outcome if rd.index == 1 else CANCELLED
        self._close(ctx, d, "no_panel", final)

    def _refund(self, ctx: Context, d: Dispute, rd: Round, side: int) -> None:
        to = rd.opener if side == 0 else rd.respondent
        eid = keys.bond_escrow(d.id, rd.index, side)
        self.bank.release(ctx, eid, to, self.bank.escrowed(ctx, eid))

    # ---------------------------------------------------------------- respond timeout
    def _respond_timeout(self, ctx: Context, d: Dispute) -> None:
        """The respondent never posted its bond: the round's opener wins by default."""
        rd = d.current
        self._refund(ctx, d, rd, 0)
        outcome = self.position(d, rd.opener)
        d = self._with_round(d, _replace(rd, outcome=outcome, by_default=True,
                                         decided_ms=ctx.time_ms))
        ctx.emit("round_decided", dispute_id=d.id, round=rd.index, outcome=outcome,
                 by_default=True)
        self._close(ctx, d, "respond_timeout", outcome)

    # ---------------------------------------------------------------- tally
    def _tally(self, ctx: Context, d: Dispute) -> None:
        p = self.params(ctx.state)
        rd = d.current
        votes = {v.arbitrator: v for v in self.votes(ctx.state, d.id, rd.index)}
        revealers = sorted(a for a, v in votes.items() if v.vote)
        up = sum(1 for a in revealers if votes[a].vote == UPHOLD)
        rej = len(revealers) - up
        outcome = UPHOLD if up > rej else REJECT if rej > up else UNDECIDED
        majority = [a for a in revealers if votes[a].vote == outcome]
        earners = majority if outcome != UNDECIDED else revealers
        earned: dict[bytes, int] = {}
        fees = 0
        if outcome == UNDECIDED:
            self._refund(ctx, d, rd, 0)
            self._refund(ctx, d, rd, 1)
        else:
            fees = self._pay_fees(ctx, d, rd, outcome, p.panel_fee(rd.index), majority, earned)
        slashed = self._slash(ctx, rd, set(revealers), p.slash_bps, earners, earned)
        self._update_panel(ctx, rd, set(revealers), set(majority), earned)
        rd = _replace(rd, outcome=outcome, fees_paid=fees, slashed=slashed,
                      decided_ms=ctx.time_ms, uphold_votes=up, reject_votes=rej)
        d = self._with_round(d, rd)
        ctx.emit("round_decided", dispute_id=d.id, round=rd.index, outcome=outcome,
                 uphold=up, reject=rej, fees=fees, slashed=slashed, by_default=False)
        if rd.index == 0 and outcome != UNDECIDED:
            d = _replace(d, state=dispute_next(d.state, "tally"))
            d = self._set_due(ctx, d, ctx.time_ms + p.appeal_window_ms)
            self._save(ctx, d)
            return
        final = outcome if outcome != UNDECIDED or rd.index == 0 else d.rounds[0].outcome
        self._close(ctx, d, "tally_final", final)

    def _pay_fees(self, ctx: Context, d: Dispute, rd: Round, outcome: str, panel_fee: int,
                  majority: list[bytes], earned: dict[bytes, int]) -> int:
        """The loser's bond pays the panel fee to the majority, the rest back to the loser;
        the winner's bond goes back."""
        loser = self.party_with(d, REJECT if outcome == UPHOLD else UPHOLD)
        loser_side = 0 if loser == rd.opener else 1
        eid = keys.bond_escrow(d.id, rd.index, loser_side)
        fee = min(panel_fee, self.bank.escrowed(ctx, eid))
        for arb, amount in split_evenly(fee, majority):
            self.bank.release(ctx, eid, arb, amount)
            earned[arb] = earned.get(arb, 0) + amount
        self._refund(ctx, d, rd, loser_side)
        self._refund(ctx, d, rd, 1 - loser_side)
        return fee

    def _slash(self, ctx: Context, rd: Round, revealers: set[bytes], slash_bps: int,
               earners: list[bytes], earned: dict[bytes, int]) -> int:
        """Panelists who did not reveal lose ``slash_bps`` of their stake to the earners (to
        the fee collector when no one revealed)."""
        total = 0
        for arb in rd.panel:
            if arb in revealers:
                continue
            eid = keys.stake_escrow(arb)
            amount = self.bank.escrowed(ctx, eid) * slash_bps // BPS_DENOM
            if not amount:
                continue
            for to, part in split_evenly(amount, earners) or [(FEE_COLLECTOR, amount)]:
                self.bank.release(ctx, eid, to, part)
                if to != FEE_COLLECTOR:
                    earned[to] = earned.get(to, 0) + part
            a = self.arbitrator(ctx.state, arb)
            if a is not None:
                self._save_arbitrator(ctx, _replace(a, stake=a.stake - amount,
                                                    slashed=a.slashed + amount))
            ctx.emit("arbitrator_slashed", arbitrator=arb, amount=amount)
            total += amount
        return total

    def _update_panel(self, ctx: Context, rd: Round, revealers: set[bytes],
                      majority: set[bytes], earned: dict[bytes, int]) -> None:
        for arb in rd.panel:
            a = self.arbitrator(ctx.state, arb)
            if a is None:
                continue
            self._save_arbitrator(ctx, _replace(
                a, seats=max(0, a.seats - 1), served=a.served + 1,
                majority=a.majority + (arb in majority), missed=a.missed + (arb not in revealers),
                earned=a.earned + earned.get(arb, 0)))

    # ---------------------------------------------------------------- final
    def _close(self, ctx: Context, d: Dispute, action: str, outcome: str) -> None:
        d = _replace(d, state=dispute_next(d.state, action), outcome=outcome,
                     closed_ms=ctx.time_ms)
        d = self._set_due(ctx, d, 0)
        if outcome in (UPHOLD, REJECT):
            d = _replace(d, execution=self._execute(ctx, d, outcome))
            self._credit_parties(ctx, d, outcome)
        elif d.kind == CLAIM:  # no ruling: the claim falls back to its own timeout
            d = _replace(d, execution=self._guarded(ctx, lambda c: self.rental.set_claim_timeout(
                c, d.target, max(d.resume_timeout_ms, c.time_ms))))
        self._save(ctx, d)
        ctx.emit("dispute_closed", dispute_id=d.id, kind=d.kind, outcome=outcome,
                 winner=self.party_with(d, outcome) if outcome in (UPHOLD, REJECT) else b"",
                 execution=d.execution)

    def _guarded(self, ctx: Context, fn: object) -> str:
        """Run ``fn(child_ctx)``; its writes stay only if it succeeds. Returns "ok" or the
        error, so that a ruling whose object changed meanwhile still closes."""
        child = ctx.branch()
        try:
            fn(child)  # type: ignore[operator]
        except ShareChainError as exc:
            return f"failed ({exc.code}): {exc.message}"
        ctx.merge(child)
        return "ok"

    def _execute(self, ctx: Context, d: Dispute, outcome: str) -> str:
        if d.kind == CLAIM:
            return self._guarded(ctx, lambda c: self.rental.resolve_claim(
                c, d.target, d.amount if outcome == UPHOLD else 0))
        if d.kind == REPORT:
            if outcome == REJECT:
                return "ok"
            result = self._guarded(ctx, lambda c: self.assets.pay_pledge_compensation(
                c, d.target, d.upholder, d.amount))
            self.credit.record(ctx, d.rejecter, FRAUD_UPHELD, AS_PARTY, d.platform, d.id)
            rep = self.assets.report(ctx.state, d.target, d.seq)
            if rep is not None and rep.kind == REPORT_FAKE:
                self.credit.add_blacklist(
                    ctx, d.rejecter, f"fake asset: ruling of dispute {d.id.hex()}", (),
                    ctx.time_ms + self.params(ctx.state).fraud_blacklist_ms, d.id,
                    MODULE_ADDRESS)
            return result
        if outcome == UPHOLD:  # BLACKLIST: the entry stands
            return "ok"
        return self._guarded(ctx, lambda c: self.credit.lift_blacklist(
            c, d.seq, MODULE_ADDRESS, f"ruling of dispute {d.id.hex()}"))

    def _credit_parties(self, ctx: Context, d: Dispute, outcome: str) -> None:
        winner = self.party_with(d, outcome)
        for party, kind in ((winner, DISPUTE_WON), (d.other_party(winner), DISPUTE_LOST)):
            if not self.roles.has_role(ctx.state, party, REGULATOR):
                self.credit.record(ctx, party, kind, AS_PARTY, d.platform, d.id)


__all__ = ["MODULE_ADDRESS", "ArbitrationKeeper", "split_evenly"]
