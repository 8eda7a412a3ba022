"""BFT consensus (Tendermint family) as a pure state machine with a thin asyncio driver.

Theory of operation
-------------------
Validators with stake-weighted voting power agree on one block per height. Each height runs
rounds of three steps — propose, prevote, precommit — and a block is committed once
precommits from more than two thirds of the power for it are collected in one round; those
precommits are the block's commit certificate (:class:`sharechain.chain.types.Commit`),
checked by anyone with ``verify_commit``. Locks (a validator that precommitted a block only
prevotes another after seeing a newer proof-of-lock) make a committed block impossible to
contradict while less than a third of the power is faulty; timeouts that grow with the
round make progress certain once the network behaves. The full rules and the safety
argument are in ``docs/consensus.md``.

Layers, bottom up:

* :mod:`.messages` — Proposal, Vote, Decision, SyncRequest and their strict wire encoding.
* :mod:`.events` — the engine's input events, output actions and configuration.
* :mod:`.engine` — the state machine: ``Engine.step(event, now_ms) -> list[Action]``; no
  I/O, no clock, no randomness.
* :mod:`.replica` — decode, bound, dedupe and verify messages once before the engine.
* :mod:`.wal` — framed, checksummed write-ahead log of everything the node signed.
* :mod:`.evidence` — duplicate-vote evidence anyone can verify.
* :mod:`.proposer` — proposer rotation weighted by power.
* :mod:`.driver` — asyncio driver: timers, WAL fsync before send, transport, connector.
* :mod:`.local` — an in-process bus connecting N drivers (devnet, tests).

The seeded simulator that runs whole clusters of these engines is :mod:`sharechain.sim`.
"""

from sharechain.consensus.bft.driver import BftDriver, ConsensusTransport
from sharechain.consensus.bft.engine import Engine, Phase
from sharechain.consensus.bft.events import BftConfig
from sharechain.consensus.bft.evidence import DuplicateVoteEvidence
from sharechain.consensus.bft.local import LocalBus, LocalTransport, local_drivers
from sharechain.consensus.bft.messages import Decision, Proposal, SyncRequest, Vote
from sharechain.consensus.bft.replica import Replica
from sharechain.consensus.bft.wal import FileWal, MemoryWal, Wal, WalCorruptError, WalError

__all__ = [
    "BftConfig", "BftDriver", "ConsensusTransport", "Decision", "DuplicateVoteEvidence",
    "Engine", "FileWal", "LocalBus", "LocalTransport", "MemoryWal", "Phase", "Proposal",
    "Replica", "SyncRequest", "Vote", "Wal", "WalCorruptError", "WalError", "local_drivers",
]
