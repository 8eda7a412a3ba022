"""A harness for driving one engine by hand: in unit tests and in golden transcripts.

:class:`Harness` holds deterministic validator keys (``PrivateKey.from_name``), one engine
under test, and an in-memory chain (the simulator's :class:`FakeChain`) to build and check
blocks. It signs proposals and votes on behalf of the other validators and can perform the
engine's app requests the way a driver would (:meth:`Harness.drive`). Never used by a node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sharechain.chain.types import (
    VOTE_PRECOMMIT,
    VOTE_PREVOTE,
    Block,
    Commit,
    Validator,
    ValidatorSet,
)
from sharechain.consensus.bft.engine import Engine
from sharechain.consensus.bft.events import (
    Action,
    BftConfig,
    BlockValidated,
    CommitBlock,
    Event,
    PersistWAL,
    ProposalBlockReady,
    ProposalReceived,
    Recover,
    RequestProposal,
    ResetWAL,
    StartHeight,
    ValidateBlock,
    VoteReceived,
)
from sharechain.consensus.bft.messages import NIL, Proposal, Vote
from sharechain.consensus.bft.wal import MemoryWal, WalRecord
from sharechain.crypto import PrivateKey
from sharechain.sim.fakechain import FakeChain

TEST_CONFIG = BftConfig(
    timeout_propose_ms=1000, timeout_propose_delta_ms=500,
    timeout_prevote_ms=300, timeout_prevote_delta_ms=100,
    timeout_precommit_ms=300, timeout_precommit_delta_ms=100,
    timeout_commit_ms=0, rebroadcast_ms=2000, sync_interval_ms=500)
CHAIN_ID = "test-chain"
GENESIS_MS = 1_000_000


def make_validators(names: Sequence[str], powers: Sequence[int] | None = None
                    ) -> tuple[dict[str, PrivateKey], ValidatorSet]:
    keys = {n: PrivateKey.from_name(n) for n in names}
    powers = powers or [1] * len(names)
    vset = ValidatorSet.of([Validator(keys[n].public_key, p, n)
                            for n, p in zip(names, powers, strict=True)])
    return keys, vset


class Harness:
    def __init__(self, names: Sequence[str] = ("v0", "v1", "v2", "v3"),
                 powers: Sequence[int] | None = None, me: str | None = "v0",
                 config: BftConfig = TEST_CONFIG) -> None:
        self.keys, self.vset = make_validators(names, powers)
        self.names = {k.address: n for n, k in self.keys.items()}
        self.me = me
        self.config = config
        self.chain = FakeChain(CHAIN_ID, self.vset, GENESIS_MS)
        self.wal = MemoryWal()
        self.engine = self.new_engine()
        self.now = 0
        self.log: list[Action] = []

    def new_engine(self) -> Engine:
        return Engine(CHAIN_ID, self.keys[self.me] if self.me else None, self.config)

    # ------------------------------------------------------------ stepping

    def step(self, event: Event, now: int | None = None) -> list[Action]:
        if now is not None:
            self.now = now
        out = self.engine.step(event, self.now)
        for a in out:
            if isinstance(a, PersistWAL):
                self.wal.append_sync(a.record, a.data)
            elif isinstance(a, ResetWAL):
                self.wal.reset(a.records)
        self.log.extend(out)
        return out

    def drive(self, event: Event, now: int | None = None) -> list[Action]:
        """Step, then answer app requests (build, validate, commit) as a driver would."""
        pending = [event]
        out: list[Action] = []
        while pending:
            acts = self.step(pending.pop(0), now)
            out.extend(acts)
            for a in acts:
                answer = self.answer(a)
                if answer is not None:
                    pending.append(answer)
        return out

    def answer(self, a: Action) -> Event | None:
        c = self.chain
        if isinstance(a, RequestProposal):
            me = self.keys[self.me].address  # type: ignore[index]
            return ProposalBlockReady(a.height, a.round, c.propose_block(a.height, a.time_ms, me))
        if isinstance(a, ValidateBlock):
            return BlockValidated(a.height, a.block_hash, c.validate_block(a.block))
        if isinstance(a, CommitBlock):
            c.commit_block(a.block, a.commit)
            return StartHeight(c.height() + 1, c.validator_set(), c.last_block_time_ms())
        return None

    def start(self, records: Iterable[WalRecord] = (), now: int = 0,
              auto: bool = True) -> list[Action]:
        """Recover (start) the engine; ``auto`` answers its app requests like a driver."""
        c = self.chain
        ev = Recover(c.height() + 1, c.validator_set(), c.last_block_time_ms(), tuple(records))
        return self.drive(ev, now) if auto else self.step(ev, now)

    def restart(self, now: int | None = None, auto: bool = True) -> list[Action]:
        """A crash and restart: a fresh engine recovers from this harness's WAL."""
        self.engine = self.new_engine()
        return self.start(self.wal.recover(), self.now if now is None else now, auto)

    # ------------------------------------------------------------ other validators

    def addr(self, name: str) -> bytes:
        return self.keys[name].address

    def proposer(self, round_: int) -> str:
        return self.names[self.engine.proposer(round_)]

    def block(self, proposer: str, variant: int = 0, time_ms: int | None = None) -> Block:
        h = self.chain.height() + 1
        t = time_ms if time_ms is not None else self.block_time()
        return self.chain.propose_block(h, t, self.addr(proposer), variant)

    def block_time(self) -> int:
        t = self.engine.block_time_ms()
        assert t is not None
        return t

    def proposal(self, round_: int, block: Block, pol_round: int = -1,
                 signer: str | None = None, last_commit: Commit | None = None,
                 time_ms: int = 0) -> ProposalReceived:
        signer = signer or self.proposer(round_)
        h = self.chain.height() + 1
        if last_commit is None and self.engine.last is not None:
            last_commit = self.engine.last.commit
        u = Proposal(h, round_, pol_round, block, time_ms, last_commit, b"")
        bh = block.hash()
        sig = self.keys[signer].sign(u.sign_bytes(CHAIN_ID, bh))
        return ProposalReceived(Proposal(h, round_, pol_round, block, time_ms, last_commit,
                                         sig), bh)

    def vote(self, name: str, kind: str, round_: int, block: Block | bytes | None,
             time_ms: int | None = None) -> VoteReceived:
        vt = VOTE_PREVOTE if kind == "prevote" else VOTE_PRECOMMIT
        bh = block.hash() if isinstance(block, Block) else (block or NIL)
        t = time_ms if time_ms is not None else GENESIS_MS + 10_000 + self.now
        u = Vote(vt, self.chain.height() + 1, round_, bh, t, self.addr(name), b"")
        return VoteReceived(Vote(vt, u.height, round_, bh, t, u.validator,
                                 self.keys[name].sign(u.sign_bytes(CHAIN_ID))))

    def votes(self, names: Iterable[str], kind: str, round_: int,
              block: Block | bytes | None) -> list[list[Action]]:
        return [self.drive(self.vote(n, kind, round_, block)) for n in names]
