"""Inputs and outputs of the engine: events in, actions out, plus its configuration.

The engine is driven only through :meth:`Engine.step(event, now_ms)
<sharechain.consensus.bft.engine.Engine.step>`, which returns a list of actions. The driver
(asyncio in production, the cluster in the simulator) performs the actions **in order**;
actions that produce an answer (a block built, a block validated, a block committed) are
answered with the matching event. The one ordering rule that matters for safety: a
:class:`PersistWAL` is performed (written and fsynced) before any later action of the same
list, so nothing the node signed leaves it before it is durable.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharechain.chain.types import Block, Commit, ValidatorSet
from sharechain.consensus.bft.evidence import DuplicateVoteEvidence
from sharechain.consensus.bft.messages import Message, Proposal, Vote
from sharechain.consensus.bft.wal import WalRecord

# Timer kinds.
PROPOSE = "propose"
PREVOTE = "prevote"
PRECOMMIT = "precommit"
NEW_HEIGHT = "new_height"
REBROADCAST = "rebroadcast"

TIMEOUT_MS_MAX = 10 * 60 * 1000          # a round's timeout stops growing here
ROUNDS_AHEAD_MAX = 8                     # votes/proposals kept for rounds this far ahead
DECISIONS_KEPT_MAX = 32                  # recent decisions served to peers that fell behind
EVIDENCE_KEPT_MAX = 4096                 # evidence held by an engine (the oldest goes first)
EVIDENCE_HEIGHTS_KEPT = 1000             # evidence older than this many heights is forgotten
CONFLICTING_VOTES_MAX = 4                # extra votes kept per equivocator per round and type


@dataclass(frozen=True, slots=True)
class BftConfig:
    """Timeouts (milliseconds). A step's timeout is ``base + delta * round``."""

    timeout_propose_ms: int = 3000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 1000
    timeout_prevote_delta_ms: int = 500
    timeout_precommit_ms: int = 1000
    timeout_precommit_delta_ms: int = 500
    timeout_commit_ms: int = 1000     # pause after a commit before the next height's round 0
    # True: the pause is shortened by the time the height took since its round 0 began, so
    # heights start every ``timeout_commit_ms`` (a block interval) when rounds are quicker,
    # and back to back when they are slower, instead of interval + round time.
    pace_from_round_start: bool = False
    rebroadcast_ms: int = 2000        # resend own votes of the round while it makes no progress
    sync_interval_ms: int = 1000      # at most one sync request / answer per height per interval

    def timeout_ms(self, kind: str, round_: int) -> int:
        if kind == PROPOSE:
            base, delta = self.timeout_propose_ms, self.timeout_propose_delta_ms
        elif kind == PREVOTE:
            base, delta = self.timeout_prevote_ms, self.timeout_prevote_delta_ms
        elif kind == PRECOMMIT:
            base, delta = self.timeout_precommit_ms, self.timeout_precommit_delta_ms
        elif kind == NEW_HEIGHT:
            return self.timeout_commit_ms
        else:
            return self.rebroadcast_ms
        return min(base + delta * round_, TIMEOUT_MS_MAX)


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Recover:
    """Start (or restart) at ``height`` with the records recovered from the WAL."""

    height: int
    validators: ValidatorSet
    last_block_time_ms: int
    records: tuple[WalRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class StartHeight:
    """The chain committed the decided block; its next height begins.

    ``last_commit`` and ``last_validators`` (the commit of ``height - 1`` and the set that
    signed it) are needed only when the chain advanced without this engine deciding, e.g.
    by block sync: block time is derived from that commit.
    """

    height: int
    validators: ValidatorSet
    last_block_time_ms: int
    last_commit: Commit | None = None
    last_validators: ValidatorSet | None = None


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A proposal whose signature (by the round's proposer) and tx root were checked."""

    proposal: Proposal
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class VoteReceived:
    """A vote whose signature was checked against the current validator set."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class DecisionReceived:
    """A block for the current height with a commit that verified against the current set."""

    block: Block
    block_hash: bytes
    commit: Commit


@dataclass(frozen=True, slots=True)
class SyncRequested:
    height: int


@dataclass(frozen=True, slots=True)
class FutureHeightSeen:
    """A message for a later height arrived: this node may have fallen behind.

    ``validator`` is the vote's signer (unverified: the set of a later height is not known
    yet), or None for other messages.
    """

    height: int
    validator: bytes | None = None


@dataclass(frozen=True, slots=True)
class DecisionLoaded:
    """Answer to :class:`LoadDecision`: a committed block and its commit from the store."""

    block: Block
    commit: Commit


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    kind: str
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class ProposalBlockReady:
    """Answer to :class:`RequestProposal`."""

    height: int
    round: int
    block: Block


@dataclass(frozen=True, slots=True)
class BlockValidated:
    """Answer to :class:`ValidateBlock`; ``error`` None means valid."""

    height: int
    block_hash: bytes
    error: str | None


Event = (Recover | StartHeight | ProposalReceived | VoteReceived | DecisionReceived
         | SyncRequested | FutureHeightSeen | DecisionLoaded | TimeoutFired
         | ProposalBlockReady | BlockValidated)


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Broadcast:
    msg: Message
    data: bytes  # the wire encoding, made once
    # Another validator's message passed on during a stalled round (``Engine._rebroadcast``):
    # the driver hands it to ``transport.relay``, which may send a large one by announcement.
    forward: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    kind: str
    height: int
    round: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class RequestProposal:
    """Ask the app for a block; answer with :class:`ProposalBlockReady`."""

    height: int
    round: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    """Ask the app whether a proposed block is valid; answer with :class:`BlockValidated`."""

    height: int
    block: Block
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class PersistWAL:
    """Append and fsync ``record`` before performing any later action.

    ``data``, when not empty, is the record's encoding (a signed message's wire bytes are
    exactly its WAL record), so the driver need not encode it again.
    """

    record: WalRecord
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class ResetWAL:
    """Atomically replace the log with ``records`` (done when a new height starts)."""

    records: tuple[WalRecord, ...]


@dataclass(frozen=True, slots=True)
class CommitBlock:
    """Hand the decided block and its certificate to the chain; answer with StartHeight."""

    block: Block
    commit: Commit


@dataclass(frozen=True, slots=True)
class LoadDecision:
    """A peer asked for an older height than this process remembers: read it from the
    chain store if the connector can (answer :class:`DecisionLoaded`), else ignore."""

    height: int


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    evidence: DuplicateVoteEvidence


Action = (Broadcast | ScheduleTimeout | RequestProposal | ValidateBlock | PersistWAL
          | ResetWAL | CommitBlock | LoadDecision | ReportEvidence)
