"""The BFT engine: Tendermint-style rounds as a pure state machine.

``Engine.step(event, now_ms) -> list[Action]`` is the only way in. The engine never touches
a socket, a clock, a thread, a file or a random source; time comes in with every event.
Messages reach it already decoded and signature-checked (see
:mod:`sharechain.consensus.bft.replica`); it answers with actions the driver performs in order.

The rules (Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus", 2018), with
``q`` the smallest power above 2/3 of the total:

* **StartRound(r)**: the proposer of (h, r) proposes its ``valid`` block with its
  ``valid_round`` if it has one, else asks the app for a new block. Everyone schedules the
  propose timeout.
* **Prevote**: on the round's proposal with ``pol_round = -1``: prevote it if it is valid and
  we are not locked on another block, else nil. With ``pol_round = vr >= 0`` and q prevotes
  for it in ``vr``: prevote it if valid and (``locked_round <= vr`` or locked on it), else nil.
* **Precommit**: on q prevotes for the round's valid proposal (first time, step >= prevote):
  if in prevote step, lock on it and precommit it; in any case remember it as ``valid``.
  On q prevotes for nil: precommit nil.
* **Decide**: on q precommits for a block in *any* round of the height, with the block known
  and valid: commit it with those precommits as its certificate.
* **Timeouts**: propose → prevote nil; q prevotes of any kind then prevote timeout →
  precommit nil; q precommits of any kind then precommit timeout → next round. Each grows
  linearly with the round.
* **Round skip**: messages from validators with more than 1/3 of the power in rounds above
  ours → jump to the highest such round (a liveness rule; starting a round is always safe).

Additions that make it run on a lossy network and across crashes: own messages of the
current round are re-broadcast while a round makes no progress; a node that sees a later
height, or has a precommit quorum for a block it never received, asks peers for the
:class:`Decision` (block + commit), which it accepts on the certificate alone; every signed
message is written to the WAL before it is sent, and a restarted engine reloads them so it
can never sign a different message for the same (height, round, step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

from sharechain.chain.types import (
    VOTE_PRECOMMIT,
    VOTE_PREVOTE,
    Block,
    Commit,
    CommitSig,
    ValidatorSet,
    weighted_median_time,
)
from sharechain.consensus.bft.events import (
    CONFLICTING_VOTES_MAX,
    DECISIONS_KEPT_MAX,
    EVIDENCE_HEIGHTS_KEPT,
    EVIDENCE_KEPT_MAX,
    NEW_HEIGHT,
    PRECOMMIT,
    PREVOTE,
    PROPOSE,
    REBROADCAST,
    ROUNDS_AHEAD_MAX,
    Action,
    BftConfig,
    BlockValidated,
    Broadcast,
    CommitBlock,
    DecisionLoaded,
    DecisionReceived,
    Event,
    FutureHeightSeen,
    LoadDecision,
    PersistWAL,
    ProposalBlockReady,
    ProposalReceived,
    Recover,
    ReportEvidence,
    RequestProposal,
    ResetWAL,
    ScheduleTimeout,
    StartHeight,
    SyncRequested,
    TimeoutFired,
    ValidateBlock,
    VoteReceived,
)
from sharechain.consensus.bft.evidence import DuplicateVoteEvidence
from sharechain.consensus.bft.messages import (
    NIL,
    PROPOSAL_BYTES_MAX,
    Decision,
    Proposal,
    SyncRequest,
    Vote,
    encode_message,
)
from sharechain.consensus.bft.valset import (
    CheckedSignatures,
    ValidatorIndex,
    Verifier,
    check_commit,
    index_of,
)
from sharechain.consensus.bft.wal import WalDecided, WalRecord, WalValid
from sharechain.consensus.interface import Signer
from sharechain.crypto import verify
from sharechain.errors import ShareChainError, invariant


class Phase(IntEnum):
    STOPPED = 0     # before Recover
    NEW_HEIGHT = 1  # waiting timeout_commit before round 0
    PROPOSE = 2
    PREVOTE = 3
    PRECOMMIT = 4
    DECIDED = 5     # the height is decided; waiting for StartHeight


_PROPOSAL_KEY = 0  # _signed keys are (round, 0 | VOTE_PREVOTE | VOTE_PRECOMMIT)


class WalAheadOfChainError(ShareChainError):
    """The WAL holds signatures for a height the chain has not reached: refuse to start."""

    def __init__(self, wal_height: int, chain_height: int) -> None:
        super().__init__("wal_ahead_of_chain",
                         f"the consensus WAL has records for height {wal_height} but the "
                         f"chain is at height {chain_height - 1}; signing again could "
                         "equivocate")


@dataclass(slots=True)
class VoteSet:
    """Votes of one type in one round.

    ``total`` counts each validator once (its first vote), for the "2/3 of anything" rules.
    Tallies per block count every validator that signed a vote for that block — including
    one that also signed a conflicting vote. That is safe: two blocks cannot both reach
    more than 2/3 in one round unless more than 1/3 equivocated. And it is needed: a
    Byzantine validator can show different honest nodes different votes, and a POL that
    locked some of them may depend on the vote the others saw second.
    """

    first: dict[bytes, Vote] = field(default_factory=dict)
    by_block: dict[bytes, dict[bytes, Vote]] = field(default_factory=dict)
    power: dict[bytes, int] = field(default_factory=dict)
    conflicts: dict[bytes, int] = field(default_factory=dict)  # extra votes per validator
    total: int = 0


@dataclass(frozen=True, slots=True)
class _ProposalInfo:
    proposal: Proposal
    block_hash: bytes
    ok: bool  # header and block time checked; the app's verdict is in Engine._block_ok


@dataclass(frozen=True, slots=True)
class LastDecision:
    height: int
    block_hash: bytes
    commit: Commit
    validators: ValidatorSet


class Engine:
    """One validator's consensus state machine. Construct, then ``step(Recover(...))``."""

    def __init__(self, chain_id: str, signer: Signer | None,
                 config: BftConfig | None = None, *, verifier: Verifier = verify,
                 checked: CheckedSignatures | None = None) -> None:
        """``checked`` is the node's memo of verified signatures, shared with its Replica
        (by default a new one over ``verifier``; the simulator may share one across
        nodes)."""
        self.chain_id = chain_id
        self.checked = checked if checked is not None else CheckedSignatures(verifier)
        self.signer = signer
        self.address: bytes | None = signer.address if signer is not None else None
        self.config = config or BftConfig()
        self.phase = Phase.STOPPED
        self.height = 0
        self.round = 0
        self.evidence: list[DuplicateVoteEvidence] = []
        self.stats: dict[str, int] = {}
        self.last: LastDecision | None = None
        self._evidence_keys: set[tuple[bytes, int, int, int]] = set()
        self._decisions: dict[int, Decision | Broadcast] = {}
        self._served_ms: dict[int, int] = {}
        self._sync_sent: tuple[int, int] = (0, -(2**62))
        self._ahead: dict[bytes, int] = {}  # validator -> highest height it was seen at
        self._now = 0
        self._round0_ms: int | None = None  # when the current height's round 0 began
        self._out: list[Action] = []
        self._enter_height(0, None, 0)

    # ------------------------------------------------------------ public

    def step(self, event: Event, now_ms: int) -> list[Action]:
        """Apply one event at local time ``now_ms``; return the actions to perform in order."""
        self._now = now_ms
        self._out = []
        self._HANDLERS[type(event)](self, event)
        if Phase.NEW_HEIGHT <= self.phase < Phase.DECIDED:
            while self._rules_once():
                pass
        out, self._out = self._out, []
        return out

    def proposer(self, round_: int) -> bytes:
        """The proposer of (current height, ``round_``)."""
        invariant(self._vi is not None, "the proposer needs a validator set")
        return self._vi.proposer(self.height, round_)  # type: ignore[union-attr]

    def block_time_ms(self) -> int | None:
        """The time a block of this height proposed on our own last commit must carry."""
        t = self._time_from(self._own_last_commit())
        return None if t == -1 else t

    def pub_key_of(self, address: bytes) -> bytes | None:
        return self._pub_key.get(address)

    @property
    def validators(self) -> ValidatorSet | None:
        return self._vset

    @property
    def locked(self) -> tuple[int, bytes | None]:
        return self.locked_round, self.locked_hash

    @property
    def valid(self) -> tuple[int, bytes | None]:
        vp = self.valid_proposal
        return self.valid_round, (vp.block.hash() if vp is not None else None)

    def signed_messages(self) -> list[Proposal | Vote]:
        """What this node signed at the current height (for tests and the simulator)."""
        return list(self._signed.values())

    # ------------------------------------------------------------ height state

    def _enter_height(self, height: int, vset: ValidatorSet | None,
                      last_block_time_ms: int) -> None:
        self.height = height
        self._vset = vset
        vi = self._vi = index_of(vset) if vset is not None else None
        self._power: dict[bytes, int] = vi.power if vi is not None else {}
        self._pub_key: dict[bytes, bytes] = vi.pub_key if vi is not None else {}
        self._total = vi.total if vi is not None else 0
        self._quorum = vi.quorum if vi is not None else 1
        self._vset_hash = vi.hash if vi is not None else b""
        self.last_block_time_ms = last_block_time_ms
        self.round = 0
        self.locked_round = -1
        self.locked_hash: bytes | None = None
        self.valid_round = -1
        self.valid_proposal: Proposal | None = None
        self._proposals: dict[int, _ProposalInfo] = {}
        self._blocks: dict[bytes, Block] = {}
        self._block_ok: dict[bytes, bool | None] = {}
        self._prevotes: dict[int, VoteSet] = {}
        self._precommits: dict[int, VoteSet] = {}
        self._round_max: dict[bytes, int] = {}
        self._skip_check = False
        self._signed: dict[tuple[int, int], Proposal | Vote] = {}
        self._wire: dict[tuple[int, int], bytes] = {}  # encodings of _signed, made once
        self._forwarded: dict[int, bytes] = {}  # encodings of others' proposals passed on
        self._fired: set[tuple[str, int]] = set()
        self._commit_candidates: list[tuple[int, bytes]] = []
        self._time_by_commit: dict[Commit | None, int | None] = {}
        self._behind_since: int | None = None
        if self.last is not None and self.last.height != height - 1:
            self.last = None
        for h in [h for h in self._decisions if h < height - DECISIONS_KEPT_MAX]:
            del self._decisions[h]
        self._prune_evidence(height - EVIDENCE_HEIGHTS_KEPT)

    def _am_validator(self) -> bool:
        return self.address is not None and self.address in self._power

    # ------------------------------------------------------------ block time

    def _time_from(self, last_commit: Commit | None) -> int | None:
        """The block time a proposal carrying ``last_commit`` must have; None if invalid.

        Height 1 (no previous commit): genesis time + 1 ms. Later heights: the weighted
        median of the previous commit's precommit times, at least previous block time + 1.
        Without a known previous decision (a WAL lost or a chain synced by other means) the
        commit cannot be checked here; then only monotonicity is enforced. Our own last
        commit (one we assembled, or one the chain accepted) is not checked again.
        """
        if last_commit in self._time_by_commit:
            return self._time_by_commit[last_commit]
        floor = self.last_block_time_ms + 1
        t: int | None
        last = self.last
        if self.height == 1:
            t = floor if last_commit is None else None
        elif last_commit is None:
            t = None
        elif last is None:
            t = -1  # loose mode: any time above the floor
        elif last_commit != last.commit and check_commit(
                self.chain_id, index_of(last.validators), last_commit, last.block_hash,
                self.height - 1, self.checked) is not None:
            t = None
        else:
            t = max(weighted_median_time(last.validators, last_commit), floor)
        if len(self._time_by_commit) < 64:
            self._time_by_commit[last_commit] = t
        return t

    def _own_last_commit(self) -> Commit | None:
        return self.last.commit if self.last is not None else None

    # ------------------------------------------------------------ handlers

    def _on_recover(self, ev: Recover) -> None:
        invariant(self.phase == Phase.STOPPED, "an engine recovers once")
        for rec in ev.records:
            if rec.height > ev.height:
                raise WalAheadOfChainError(rec.height, ev.height)
        decided = [r for r in ev.records if isinstance(r, WalDecided)]
        best = max(decided, key=lambda r: r.height) if decided else None
        if best is not None and best.height >= ev.height - 1:
            self.last = LastDecision(best.height, best.commit.block_hash, best.commit,
                                     best.validators)
        self._enter_height(ev.height, ev.validators, ev.last_block_time_ms)
        if best is not None and best.height == ev.height and best.block is not None:
            # Decided before the crash, but the chain never got the block: commit it now.
            self.last = LastDecision(best.height, best.commit.block_hash, best.commit,
                                     best.validators)
            self._remember_decision(best.block, best.commit)
            self._out.append(CommitBlock(best.block, best.commit))
            self.phase = Phase.DECIDED
            return
        mine = [r for r in ev.records
                if isinstance(r, (Proposal, Vote)) and r.height == ev.height]
        self._restore_valid(ev.records)
        if not mine:
            self._start_round(0)
            return
        for m in mine:
            self._restore_signed(m)
        self.round = max(m.round for m in mine)
        precommits = [m for m in mine if isinstance(m, Vote) and m.type == VOTE_PRECOMMIT
                      and m.block_hash != NIL]
        if precommits:
            top = max(precommits, key=lambda v: v.round)
            self.locked_round, self.locked_hash = top.round, top.block_hash
        if (self.round, VOTE_PRECOMMIT) in self._signed:
            self.phase = Phase.PRECOMMIT
        elif (self.round, VOTE_PREVOTE) in self._signed:
            self.phase = Phase.PREVOTE
        else:
            self.phase = Phase.PROPOSE
            self._schedule_timeout(PROPOSE, self.round)
            self._propose_if_mine(self.round)
        self._rebroadcast()
        self._schedule_timeout(REBROADCAST, self.round)
        self.stats["recovered_signed"] = len(mine)

    def _restore_valid(self, records: tuple[WalRecord, ...]) -> None:
        """Reload the latest valid value and its POL, so we can still re-propose it."""
        valids = [r for r in records if isinstance(r, WalValid) and r.height == self.height]
        if not valids:
            return
        best = max(valids, key=lambda r: r.proposal.round)
        p = best.proposal
        h = p.block.hash()
        for v in best.pol:
            if v.block_hash == h and v.round == p.round and v.validator in self._power:
                self._add_vote(v, self._power[v.validator])
        self._proposals.setdefault(p.round, _ProposalInfo(p, h, True))
        self._blocks[h] = p.block
        self._block_ok[h] = True  # it was validated before it was recorded
        self.valid_round, self.valid_proposal = p.round, p

    def _restore_signed(self, m: Proposal | Vote) -> None:
        """Reload a message signed before a restart as if just signed (nothing is re-sent)."""
        if isinstance(m, Vote):
            self._signed[(m.round, m.type)] = m
            self._add_vote(m, self._power.get(m.validator, 0))
        else:
            self._signed[(m.round, _PROPOSAL_KEY)] = m
            self._store_own_proposal(m)

    def _on_start_height(self, ev: StartHeight) -> None:
        invariant(ev.height > self.height, "heights only move forward")
        if ev.last_commit is not None and ev.last_validators is not None \
                and ev.last_commit.height == ev.height - 1:
            # The chain moved on without us (block sync): its commit gives block time.
            self.last = LastDecision(ev.height - 1, ev.last_commit.block_hash, ev.last_commit,
                                     ev.last_validators)
        last = self.last if self.last is not None and self.last.height == ev.height - 1 else None
        keep: tuple[WalRecord, ...] = ()
        if last is not None:
            keep = (WalDecided(last.height, None, last.commit, last.validators),)
        self._out.append(ResetWAL(keep))
        self._enter_height(ev.height, ev.validators, ev.last_block_time_ms)
        if self._many_ahead():
            # Catching up: more than a third of the power is at later heights, so ask for
            # the next decision now instead of after a sync interval.
            self._behind_since = self._now
            self._request_sync()
        wait = self.config.timeout_commit_ms
        if self.config.pace_from_round_start and self._round0_ms is not None:
            wait = max(0, wait - (self._now - self._round0_ms))
        if wait > 0:
            self.phase = Phase.NEW_HEIGHT
            self._out.append(ScheduleTimeout(NEW_HEIGHT, self.height, 0, wait))
        else:
            self._start_round(0)

    def _on_proposal(self, ev: ProposalReceived) -> None:
        p = ev.proposal
        if not Phase.NEW_HEIGHT <= self.phase < Phase.DECIDED or p.height != self.height:
            return
        self._note_round(self.proposer(p.round), p.round)
        if p.round > self.round + ROUNDS_AHEAD_MAX:
            return
        have = self._proposals.get(p.round)
        if have is not None:
            if have.proposal != p:
                self._count("conflicting_proposals")
            return
        header_ok = self._header_ok(p.block)
        ok = header_ok and self._proposal_time_ok(p)
        self._proposals[p.round] = _ProposalInfo(p, ev.block_hash, ok)
        if header_ok:
            self._learn_block(p.block, ev.block_hash)

    def _header_ok(self, block: Block) -> bool:
        hd = block.header
        return (hd.height == self.height and hd.chain_id == self.chain_id
                and hd.validators_hash == self._vset_hash and hd.proposer in self._power)

    def _proposal_time_ok(self, p: Proposal) -> bool:
        t = self._time_from(p.last_commit)
        if t == -1:
            return p.block.header.time_ms > self.last_block_time_ms
        return t is not None and p.block.header.time_ms == t

    def _learn_block(self, block: Block, block_hash: bytes) -> None:
        if block_hash in self._block_ok:
            return
        self._blocks[block_hash] = block
        self._block_ok[block_hash] = None
        self._out.append(ValidateBlock(self.height, block, block_hash))

    def _on_block_validated(self, ev: BlockValidated) -> None:
        if ev.height != self.height or self._block_ok.get(ev.block_hash, False) is not None:
            return
        self._block_ok[ev.block_hash] = ev.error is None
        if ev.error is not None:
            self._count("invalid_blocks")

    def _on_vote(self, ev: VoteReceived) -> None:
        v = ev.vote
        if not Phase.NEW_HEIGHT <= self.phase < Phase.DECIDED or v.height != self.height:
            return
        power = self._power.get(v.validator)
        if power is None:
            return
        self._note_round(v.validator, v.round)
        if v.round <= self.round + ROUNDS_AHEAD_MAX:
            self._add_vote(v, power)

    def _add_vote(self, v: Vote, power: int) -> None:
        sets = self._prevotes if v.type == VOTE_PREVOTE else self._precommits
        vs = sets.get(v.round)
        if vs is None:
            vs = sets[v.round] = VoteSet()
        addr, h = v.validator, v.block_hash
        prev = vs.first.get(addr)
        if prev is None:
            vs.first[addr] = v
            vs.total += power
        elif prev.block_hash == h:
            return
        else:
            self._report_evidence(prev, v)
            voters = vs.by_block.get(h)
            if voters is not None and addr in voters:
                return
            extra = vs.conflicts.get(addr, 0)
            if extra >= CONFLICTING_VOTES_MAX and not self._evict_junk(vs, addr, h):
                self._count("conflicting_votes_dropped")
                return
            vs.conflicts[addr] = extra + 1
        voters = vs.by_block.get(h)
        if voters is None:
            voters = vs.by_block[h] = {}
        voters[addr] = v
        now = vs.power.get(h, 0) + power
        vs.power[h] = now
        if v.type == VOTE_PRECOMMIT and h != NIL and now >= self._quorum > now - power:
            self._commit_candidates.append((v.round, h))

    def _evict_junk(self, vs: VoteSet, addr: bytes, keep_for: bytes) -> bool:
        """Make room for a vote for a real block by dropping one for a hash never proposed.

        An equivocator's extra votes are capped; votes for blocks nobody proposed cannot
        help any rule, so they are the ones to go, and junk cannot crowd out a real vote.
        """
        if keep_for != NIL and keep_for not in self._blocks:
            return False
        for h, voters in vs.by_block.items():
            if h != NIL and h not in self._blocks and addr in voters \
                    and vs.first[addr].block_hash != h:
                del voters[addr]
                vs.power[h] -= self._power[addr]
                vs.conflicts[addr] -= 1
                return True
        return False

    def _report_evidence(self, a: Vote, b: Vote) -> None:
        """Report each (validator, height, round, type) once; old evidence is forgotten
        (by height, and the oldest first beyond ``EVIDENCE_KEPT_MAX``), never the new."""
        ev = DuplicateVoteEvidence.of(a, b)
        if ev.key in self._evidence_keys:
            return
        if len(self.evidence) >= EVIDENCE_KEPT_MAX:
            self._count("evidence_forgotten")
            self._evidence_keys.discard(self.evidence.pop(0).key)
        self._evidence_keys.add(ev.key)
        self.evidence.append(ev)
        self._out.append(ReportEvidence(ev))

    def _prune_evidence(self, height_min: int) -> None:
        """Forget evidence below ``height_min`` (it was reported when it was found)."""
        if self.evidence and self.evidence[0].vote_a.height < height_min:
            self.evidence = [e for e in self.evidence if e.vote_a.height >= height_min]
            self._evidence_keys = {e.key for e in self.evidence}

    def _note_round(self, validator: bytes, round_: int) -> None:
        if round_ > self._round_max.get(validator, -1):
            self._round_max[validator] = round_
            if round_ > self.round:
                self._skip_check = True

    def _on_timeout(self, ev: TimeoutFired) -> None:
        if ev.height != self.height or ev.round != self.round:
            return
        kind, phase = ev.kind, self.phase
        if kind == PROPOSE and phase == Phase.PROPOSE:
            self._prevote(NIL)
        elif kind == PREVOTE and phase == Phase.PREVOTE:
            self._precommit(NIL)
        elif kind == PRECOMMIT and Phase.PROPOSE <= phase <= Phase.PRECOMMIT:
            self._start_round(self.round + 1)
        elif kind == NEW_HEIGHT and phase == Phase.NEW_HEIGHT:
            self._start_round(0)
        elif kind == REBROADCAST and Phase.PROPOSE <= phase <= Phase.PRECOMMIT:
            self._rebroadcast()
            if self._behind_since is not None \
                    and self._now - self._behind_since >= self.config.sync_interval_ms:
                self._request_sync()  # peers' re-sends are duplicates we no longer see
            self._schedule_timeout(REBROADCAST, self.round)

    def _on_block_ready(self, ev: ProposalBlockReady) -> None:
        if (ev.height, ev.round) != (self.height, self.round) or self.phase != Phase.PROPOSE:
            return
        if (ev.round, _PROPOSAL_KEY) in self._signed:
            return
        hd = ev.block.header
        if hd.height != self.height or hd.time_ms != self._time_from(self._own_last_commit()):
            self._count("bad_app_blocks")
            return
        self._sign_proposal(ev.block, -1, self._own_last_commit())

    def _on_decision(self, ev: DecisionReceived) -> None:
        if not Phase.NEW_HEIGHT <= self.phase < Phase.DECIDED:
            return
        if ev.commit.height != self.height or ev.commit.block_hash != ev.block_hash:
            return
        self._blocks[ev.block_hash] = ev.block
        self._count("decisions_synced")
        self._decide(ev.block, ev.commit)

    def _on_sync_requested(self, ev: SyncRequested) -> None:
        h = ev.height
        decided = h < self.height or (h == self.height and self.phase == Phase.DECIDED)
        if not decided or self.phase == Phase.STOPPED \
                or self._now - self._served_ms.get(h, -(2**62)) < self.config.sync_interval_ms:
            return
        self._served_ms[h] = self._now
        if len(self._served_ms) > 4 * DECISIONS_KEPT_MAX:
            self._served_ms.pop(next(iter(self._served_ms)))
        d = self._decisions.get(h)
        if d is None:
            self._out.append(LoadDecision(h))  # older than this process remembers
            return
        if isinstance(d, Decision):  # encoded on first request only
            d = self._decisions[h] = Broadcast(d, encode_message(d))
        self._out.append(d)

    def _many_ahead(self) -> bool:
        power = sum(self._power.get(v, 0) for v, h in self._ahead.items() if h > self.height)
        return power * 3 > self._total

    def _on_decision_loaded(self, ev: DecisionLoaded) -> None:
        d = Decision(ev.block, ev.commit)
        self._out.append(Broadcast(d, encode_message(d)))

    def _on_future_height(self, ev: FutureHeightSeen) -> None:
        """Ask for the decision once peers have been ahead for a sync interval.

        Right after a commit, the fastest peers' next-height messages always arrive a little
        before our own commit; asking at once would make every height cost a sync.
        """
        if ev.validator in self._power and ev.height > self._ahead.get(ev.validator, 0):
            self._ahead[ev.validator] = ev.height
        if ev.height <= self.height or self.phase == Phase.STOPPED:
            return
        if self._behind_since is None:
            self._behind_since = self._now
        elif self._now - self._behind_since >= self.config.sync_interval_ms:
            self._request_sync()

    _HANDLERS: ClassVar[dict[type, Callable[[Engine, Any], None]]] = {
        Recover: _on_recover,
        StartHeight: _on_start_height,
        ProposalReceived: _on_proposal,
        VoteReceived: _on_vote,
        DecisionReceived: _on_decision,
        SyncRequested: _on_sync_requested,
        DecisionLoaded: _on_decision_loaded,
        FutureHeightSeen: _on_future_height,
        TimeoutFired: _on_timeout,
        ProposalBlockReady: _on_block_ready,
        BlockValidated: _on_block_validated,
    }

    # ------------------------------------------------------------ the rules

    def _rules_once(self) -> bool:
        """Apply the first rule whose condition holds; True if the state changed."""
        if self.phase == Phase.DECIDED:
            return False
        if self._commit_candidates and self._try_decide():
            return True
        if self.phase == Phase.NEW_HEIGHT:
            return False
        if self._skip_check and self._try_round_skip():
            return True
        r = self.round
        info = self._proposals.get(r)
        if info is not None:
            if self.phase == Phase.PROPOSE and self._try_prevote(info):
                return True
            if self.phase >= Phase.PREVOTE and ("polka", r) not in self._fired \
                    and self._try_polka(info):
                return True
        pv = self._prevotes.get(r)
        if self.phase == Phase.PREVOTE and pv is not None and pv.total >= self._quorum:
            if pv.power.get(NIL, 0) >= self._quorum:
                self._precommit(NIL)
                return True
            self._schedule_once(PREVOTE, r)
        pc = self._precommits.get(r)
        if pc is not None and pc.total >= self._quorum:
            self._schedule_once(PRECOMMIT, r)
        return False

    def _valid(self, info: _ProposalInfo) -> bool | None:
        """Whether the proposal is valid; None while the app has not answered."""
        if not info.ok:
            return False
        return self._block_ok.get(info.block_hash)

    def _try_prevote(self, info: _ProposalInfo) -> bool:
        p, h = info.proposal, info.block_hash
        vr = p.pol_round
        if vr >= 0:
            pol = self._prevotes.get(vr)
            if pol is None or pol.power.get(h, 0) < self._quorum:
                return False  # wait for the POL (or the propose timeout)
        valid = self._valid(info)
        if valid is None:
            return False
        unlocked = (self.locked_round == -1 if vr < 0 else self.locked_round <= vr)
        self._prevote(h if valid and (unlocked or self.locked_hash == h) else NIL)
        return True

    def _try_polka(self, info: _ProposalInfo) -> bool:
        pv = self._prevotes.get(self.round)
        h = info.block_hash
        if pv is None or pv.power.get(h, 0) < self._quorum or not self._valid(info):
            return False
        self._fired.add(("polka", self.round))
        known = self.valid_round == self.round and self.valid_proposal == info.proposal
        self.valid_round, self.valid_proposal = self.round, info.proposal
        if self._am_validator() and not known:  # (known: reloaded from the WAL)
            pol = tuple(pv.by_block[h][a] for a in self._vi.addresses  # type: ignore[union-attr]
                        if a in pv.by_block[h])
            self._out.append(PersistWAL(WalValid(info.proposal, pol)))
        if self.phase == Phase.PREVOTE:
            self.locked_round, self.locked_hash = self.round, h
            self._precommit(h)
        return True

    def _try_decide(self) -> bool:
        for r, h in self._commit_candidates:
            block = self._blocks.get(h)
            if block is None:
                self._request_sync()  # a quorum committed a block we never received
                continue
            if self._block_ok.get(h) is not True:
                continue  # not validated yet, or invalid (then more than 1/3 are faulty)
            voters = self._precommits[r].by_block[h]
            vi: ValidatorIndex = self._vi  # type: ignore[assignment]
            sigs = tuple(CommitSig(v.validator, v.time_ms, v.sig)
                         for v in (voters.get(a) for a in vi.addresses) if v is not None)
            self._decide(block, Commit(self.height, r, h, sigs))
            return True
        return False

    def _try_round_skip(self) -> bool:
        self._skip_check = False
        ahead = sorted(((rm, self._power[a]) for a, rm in self._round_max.items()
                        if rm > self.round), reverse=True)
        acc = 0
        for rm, power in ahead:
            acc += power
            if acc * 3 > self._total:
                self._count("round_skips")
                self._start_round(rm)
                return True
        return False

    # ------------------------------------------------------------ transitions

    def _start_round(self, r: int) -> None:
        if r == 0:
            self._round0_ms = self._now
        self.round = r
        self.phase = Phase.PROPOSE
        self._schedule_timeout(PROPOSE, r)
        self._schedule_timeout(REBROADCAST, r)
        self._propose_if_mine(r)
        if any(rm > r for rm in self._round_max.values()):
            self._skip_check = True

    def _propose_if_mine(self, r: int) -> None:
        if not self._am_validator() or self.proposer(r) != self.address:
            return
        signed = self._signed.get((r, _PROPOSAL_KEY))
        if signed is not None:
            return  # proposed before a restart: _rebroadcast sends that same proposal
        vp = self.valid_proposal
        if vp is not None:
            self._sign_proposal(vp.block, self.valid_round, vp.last_commit)
            return
        t = self._time_from(self._own_last_commit())
        if t is None or t == -1:
            self._count("cannot_propose")  # no previous commit to derive block time from
            return
        self._out.append(RequestProposal(self.height, r, t))

    def _sign_proposal(self, block: Block, pol_round: int, last_commit: Commit | None) -> None:
        invariant(self.signer is not None, "only a validator signs")
        h = block.hash()
        unsigned = Proposal(self.height, self.round, pol_round, block, self._now,
                            last_commit, b"")
        sig = self.signer.sign(unsigned.sign_bytes(self.chain_id, h))  # type: ignore[union-attr]
        p = Proposal(self.height, self.round, pol_round, block, self._now, last_commit, sig)
        data = encode_message(p)
        if len(data) > PROPOSAL_BYTES_MAX:
            self._count("oversize_proposals")
            return
        self._signed[(self.round, _PROPOSAL_KEY)] = p
        self._wire[(self.round, _PROPOSAL_KEY)] = data
        self._out.append(PersistWAL(p, data))
        self._out.append(Broadcast(p, data))
        if pol_round >= 0:
            self._relay_pol(pol_round, h)
        self._store_own_proposal(p, h)

    def _store_own_proposal(self, p: Proposal, block_hash: bytes | None = None) -> None:
        h = block_hash if block_hash is not None else p.block.hash()
        self._proposals.setdefault(p.round, _ProposalInfo(p, h, True))
        self._blocks[h] = p.block
        self._block_ok[h] = True  # built by our own app (or re-proposed after validation)

    def _prevote(self, block_hash: bytes) -> None:
        self.phase = Phase.PREVOTE
        self._sign_vote(VOTE_PREVOTE, block_hash)

    def _precommit(self, block_hash: bytes) -> None:
        self.phase = Phase.PRECOMMIT
        self._sign_vote(VOTE_PRECOMMIT, block_hash)

    def _sign_vote(self, vote_type: int, block_hash: bytes) -> None:
        if not self._am_validator():
            return
        key = (self.round, vote_type)
        done = self._signed.get(key)
        if done is not None:
            # Never reached by the rules (the phase moves past a step once it signed); the
            # guard makes "one signature per (height, round, step)" hold by construction.
            invariant(isinstance(done, Vote), "vote key holds a vote")
            if done.block_hash != block_hash:  # type: ignore[union-attr]
                self._count("refused_resign")
            return
        base = (self._blocks[block_hash].header.time_ms if block_hash != NIL
                else self.last_block_time_ms)
        t = max(self._now, base + 1)
        msg = Vote(vote_type, self.height, self.round, block_hash, t, self.address, b"")  # type: ignore[arg-type]
        v = Vote(vote_type, self.height, self.round, block_hash, t, self.address,  # type: ignore[arg-type]
                 self.signer.sign(msg.sign_bytes(self.chain_id)))  # type: ignore[union-attr]
        self._signed[key] = v
        data = self._wire[key] = encode_message(v)
        self._out.append(PersistWAL(v, data))
        self._out.append(Broadcast(v, data))
        self._add_vote(v, self._power[self.address])  # type: ignore[index]

    def _decide(self, block: Block, commit: Commit) -> None:
        vset = self._vset
        invariant(vset is not None, "deciding needs a validator set")
        invariant(sum(self._power.get(s.validator, 0) for s in commit.sigs) >= self._quorum,
                  "a commit carries more than 2/3 of the power")
        self._out.append(PersistWAL(WalDecided(self.height, block, commit, vset)))  # type: ignore[arg-type]
        self._out.append(CommitBlock(block, commit))
        self.last = LastDecision(self.height, commit.block_hash, commit, vset)  # type: ignore[arg-type]
        self._remember_decision(block, commit)
        self.phase = Phase.DECIDED

    def _remember_decision(self, block: Block, commit: Commit) -> None:
        self._decisions[commit.height] = Decision(block, commit)

    def _rebroadcast(self) -> None:
        """Re-send own messages of this round and the last, pass on the other validators'
        messages of those rounds, and the round proposal's POL.

        The previous round's votes matter to peers still in it: a node that moved on with
        the help of a vote they never received would otherwise leave them short of the
        2/3 they need to time out of that round, while too few have moved on to pull them
        forward by the round-skip rule.

        Other validators' messages are passed on because a relay forwards a message once,
        when it first admits it, and drops repeats: a peer that missed one (it restarted,
        or its link to the author is down) would otherwise never get it when the author
        re-sends it from two hops away, and a round that needs that peer would stall for
        good. Only a round that makes no progress re-sends, so this costs nothing while
        blocks are being decided.
        """
        start = len(self._out)
        for r in (self.round - 1, self.round):
            for step in (_PROPOSAL_KEY, VOTE_PREVOTE, VOTE_PRECOMMIT):
                m = self._signed.get((r, step))
                if m is not None:
                    data = self._wire.get((r, step))
                    if data is None:  # restored from the WAL: encode once
                        data = self._wire[(r, step)] = encode_message(m)
                    self._out.append(Broadcast(m, data))
            self._pass_on(r)
        info = self._proposals.get(self.round)
        if info is not None and info.proposal.pol_round >= 0:
            # A POL of the last round or this one is mostly on its way already.
            sent = {a.msg for a in self._out[start:] if isinstance(a, Broadcast)}
            self._relay_pol(info.proposal.pol_round, info.block_hash, sent)

    def _pass_on(self, r: int) -> None:
        """Forward the other validators' proposal (if valid) and first votes of round r."""
        info = self._proposals.get(r)
        if info is not None and self.proposer(r) != self.address and info.ok \
                and self._block_ok.get(info.block_hash) is True:
            data = self._forwarded.get(r)
            if data is None:  # a proposal carries its block: encode it once per round
                data = self._forwarded[r] = encode_message(info.proposal)
            self._out.append(Broadcast(info.proposal, data, forward=True))
        for sets in (self._prevotes, self._precommits):
            vs = sets.get(r)
            if vs is None:
                continue
            for validator, v in vs.first.items():
                if validator != self.address:
                    self._out.append(Broadcast(v, encode_message(v), forward=True))

    def _relay_pol(self, pol_round: int, block_hash: bytes,
                   sent: set[object] | frozenset[object] = frozenset()) -> None:
        """Send every prevote we hold for ``block_hash`` in ``pol_round``, not just ours
        (but those in ``sent``, being sent already).

        A POL may need a Byzantine validator's prevote that its signer will never send
        again; a node that was locked by it must pass it on, or the unlocked honest nodes
        could never see the POL and the locked ones would refuse everything else.
        """
        pv = self._prevotes.get(pol_round)
        if pv is None:
            return
        for v in pv.by_block.get(block_hash, {}).values():
            if v not in sent:
                self._out.append(Broadcast(v, encode_message(v)))

    def _request_sync(self) -> None:
        height, at = self._sync_sent
        if height == self.height and self._now - at < self.config.sync_interval_ms:
            return
        self._sync_sent = (self.height, self._now)
        req = SyncRequest(self.height, max(0, self._now))
        self._out.append(Broadcast(req, encode_message(req)))

    def _schedule_timeout(self, kind: str, r: int) -> None:
        self._out.append(ScheduleTimeout(kind, self.height, r,
                                         self.config.timeout_ms(kind, r)))

    def _schedule_once(self, kind: str, r: int) -> None:
        if (kind, r) not in self._fired:
            self._fired.add((kind, r))
            self._schedule_timeout(kind, r)

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1
