"""Invariants checked on every simulated run.

Safety (checked as events happen, so a violation names the exact moment):

* ``agreement`` — no two honest nodes commit different blocks at one height.
* ``validity`` — a committed block was proposed (signed by a proposer and sent) and is a
  valid next block for the chain (the fake chain refuses anything else).
* ``certificate`` — the commit stored with every block verifies with ``verify_commit``
  against the validator set of its height.
* ``no_equivocation`` — no honest node ever signs two different messages for one
  (height, round, step), across crashes and restarts included.
* ``persist_before_send`` — every proposal or vote an honest node sends is in its WAL first.
* ``no_false_evidence`` — no evidence ever names an honest validator.
* ``bft_time`` — block times increase and never run ahead of the honest nodes' clocks (a
  validator lying about time cannot drag block time with it).

Liveness: once the network is healed (GST) and every honest node is up, the slowest honest
node's height must keep increasing, each step within :func:`liveness_bound_ms` of simulated
time; and the run must reach its target height.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharechain.chain.types import Block, Commit, ValidatorSet, verify_commit
from sharechain.consensus.bft.events import PRECOMMIT, PREVOTE, PROPOSE, BftConfig
from sharechain.consensus.bft.evidence import DuplicateVoteEvidence
from sharechain.consensus.bft.messages import Proposal, Vote
from sharechain.consensus.bft.valset import Verifier
from sharechain.crypto import verify
from sharechain.errors import ShareChainError


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    time_ms: int
    message: str

    def __str__(self) -> str:
        return f"{self.kind} at {self.time_ms}ms: {self.message}"


def liveness_bound_ms(config: BftConfig, faulty: int, start_round: int,
                      delay_max_ms: int) -> int:
    """Simulated time within which a height must commit after GST.

    Enough rounds for the proposer slot to pass every faulty validator twice (locks from
    the chaos before GST can cost an extra round each), each with all its timeouts and a
    few message delays, plus the pauses for re-broadcast and catch-up.
    """
    rounds = 2 * faulty + 3
    total = 0
    for r in range(start_round, start_round + rounds):
        total += sum(config.timeout_ms(k, r) for k in (PROPOSE, PREVOTE, PRECOMMIT))
        total += 6 * delay_max_ms
    return (total + config.timeout_commit_ms + 2 * config.rebroadcast_ms
            + 2 * config.sync_interval_ms)


class Checker:
    def __init__(self, chain_id: str, honest: tuple[bool, ...], names: list[str],
                 max_skew_ms: int, clock_origin_ms: int = 0,
                 verifier: Verifier = verify) -> None:
        self.chain_id = chain_id
        self.verifier = verifier
        self.clock_origin_ms = clock_origin_ms
        self.honest = honest
        self.names = names
        self.max_skew_ms = max_skew_ms
        self.violations: list[Violation] = []
        self.decided: dict[int, tuple[bytes, int]] = {}   # height -> (hash, first node)
        self.proposed: set[bytes] = set()
        self._signed: dict[tuple[bytes, int, int, int], Proposal | Vote] = {}
        self._persisted: list[dict[tuple[int, int, int], Proposal | Vote]] = [
            {} for _ in honest]
        self._honest_addrs: set[bytes] = set()

    def fail(self, kind: str, now_ms: int, message: str) -> None:
        self.violations.append(Violation(kind, now_ms, message))

    def set_honest_addresses(self, addrs: list[bytes]) -> None:
        self._honest_addrs = set(addrs)

    # ------------------------------------------------------------ observations

    def on_persisted(self, node: int, addr: bytes, rec: Proposal | Vote, now_ms: int) -> None:
        if not self.honest[node]:
            return
        step = 0 if isinstance(rec, Proposal) else rec.type
        key = (addr, rec.height, rec.round, step)
        prev = self._signed.get(key)
        if prev is not None and prev != rec:
            self.fail("no_equivocation", now_ms,
                      f"{self.names[node]} signed two different messages for height "
                      f"{rec.height} round {rec.round} step {step}")
        self._signed[key] = rec
        self._persisted[node][(rec.height, rec.round, step)] = rec

    def on_sent(self, node: int, addr: bytes, msg: object, now_ms: int) -> None:
        if isinstance(msg, Proposal):
            self.proposed.add(msg.block.hash())
        if not self.honest[node] or not isinstance(msg, (Proposal, Vote)):
            return
        if isinstance(msg, Vote) and msg.validator != addr:
            return  # a POL vote relayed for its signer
        step = 0 if isinstance(msg, Proposal) else msg.type
        if self._persisted[node].get((msg.height, msg.round, step)) != msg:
            self.fail("persist_before_send", now_ms,
                      f"{self.names[node]} sent a message for height {msg.height} round "
                      f"{msg.round} step {step} that is not in its WAL")

    def on_commit(self, node: int, block: Block, commit: Commit, vset: ValidatorSet,
                  prev_time_ms: int, now_ms: int) -> None:
        h = block.header.height
        bh = block.hash()
        first = self.decided.get(h)
        if self.honest[node]:
            if first is None:
                self.decided[h] = (bh, node)
            elif first[0] != bh:
                self.fail("agreement", now_ms,
                          f"height {h}: {self.names[first[1]]} committed "
                          f"{first[0][:4].hex()} but {self.names[node]} committed {bh[:4].hex()}")
        if bh not in self.proposed:
            self.fail("validity", now_ms, f"height {h}: committed block {bh[:4].hex()} "
                      "was never proposed")
        # The chain's own verify_commit: with the plain Ed25519 check once per height, then
        # with the cluster's verifier for every other node's commit.
        try:
            verify_commit(self.chain_id, vset, commit, bh, h,
                          verify if first is None else self.verifier)
        except ShareChainError as exc:
            self.fail("certificate", now_ms, f"height {h}: {exc.message}")
        t = block.header.time_ms
        if t <= prev_time_ms:
            self.fail("bft_time", now_ms, f"height {h}: block time {t} <= previous "
                      f"{prev_time_ms}")
        if self.honest[node] and t > self.clock_origin_ms + now_ms + self.max_skew_ms + 1:
            self.fail("bft_time", now_ms, f"height {h}: block time {t} is ahead of every "
                      f"honest clock (sim time {now_ms}, skew up to {self.max_skew_ms})")

    def on_invalid_commit(self, node: int, reason: str, now_ms: int) -> None:
        self.fail("validity", now_ms, f"{self.names[node]} was asked to commit an invalid "
                  f"block: {reason}")

    def on_evidence(self, node: int, ev: DuplicateVoteEvidence, vset: ValidatorSet,
                    now_ms: int) -> None:
        if ev.validator in self._honest_addrs:
            self.fail("no_false_evidence", now_ms,
                      f"{self.names[node]} holds evidence against an honest validator")
        err = ev.verify(self.chain_id, vset)
        if err is not None:
            self.fail("no_false_evidence", now_ms, f"evidence does not verify: {err}")
