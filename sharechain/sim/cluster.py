"""N validators in one process on a simulated clock and network, all from one seed.

Each :class:`SimNode` runs the production engine behind the production admission gate
(:class:`~sharechain.consensus.bft.replica.Replica`) with an in-memory WAL in the real file
format and a :class:`~sharechain.sim.fakechain.FakeChain`. The :class:`Cluster` plays the
driver's part for all of them: one priority queue of timestamped events (deliveries, timers,
crashes, restarts, partitions, GST) processed in (time, sequence) order, and for each event
the node's actions performed strictly in order, as the asyncio driver does — WAL appends
before sends, app answers fed back as events.

Every random choice — the fault schedule, network delays, drops and duplicates, clock
skews, what Byzantine nodes do — comes from ``random.Random`` instances seeded from the
scenario's seed, and nothing iterates in hash order, so a scenario replays exactly.

A crash discards the node's engine, pending timers and in-flight inbound messages; its WAL
(sometimes with a torn, half-written last record) and its chain survive, and a restart
recovers the engine from them.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sharechain.chain.types import Validator, ValidatorSet
from sharechain.consensus.bft.engine import Engine
from sharechain.consensus.bft.events import (
    Action,
    BftConfig,
    BlockValidated,
    Broadcast,
    CommitBlock,
    DecisionLoaded,
    Event,
    LoadDecision,
    PersistWAL,
    ProposalBlockReady,
    Recover,
    ReportEvidence,
    RequestProposal,
    ResetWAL,
    ScheduleTimeout,
    StartHeight,
    TimeoutFired,
    ValidateBlock,
)
from sharechain.consensus.bft.messages import Message, Proposal, Vote, decode_message
from sharechain.consensus.bft.replica import ADMITTED, REJECTED, Replica
from sharechain.consensus.bft.valset import CheckedSignatures
from sharechain.consensus.bft.wal import MemoryWal, WalError
from sharechain.crypto import PrivateKey, verify
from sharechain.errors import DecodeError, invariant
from sharechain.sim.byzantine import (
    BEHAVIOURS,
    Behaviour,
    ByzContext,
    Colluder,
    Conspiracy,
    Honest,
    Outgoing,
)
from sharechain.sim.fakechain import FakeChain, InvalidCommit
from sharechain.sim.invariants import Checker, Violation, liveness_bound_ms
from sharechain.sim.network import CALM, NetworkFaults, SimNetwork
from sharechain.sim.trace import Trace, short

NETWORK_FAULTS = ("drops", "dups", "reorder", "partition", "crash")
CHAIN_FAULTS = ("valchange",)
BYZANTINE_FAULTS = tuple(BEHAVIOURS)
ALL_FAULTS = NETWORK_FAULTS + CHAIN_FAULTS + BYZANTINE_FAULTS

CHAIN_ID = "sharechain-sim"
GENESIS_TIME_MS = 1_700_000_000_000
CLOCK_SKEW_MS_MAX = 50
TORN_WAL_P = 0.3
CACHE_ENTRIES_MAX = 200_000

SIM_CONFIG = BftConfig(
    timeout_propose_ms=400, timeout_propose_delta_ms=100,
    timeout_prevote_ms=150, timeout_prevote_delta_ms=50,
    timeout_precommit_ms=150, timeout_precommit_delta_ms=50,
    timeout_commit_ms=0, rebroadcast_ms=300, sync_interval_ms=200)

# Event kinds in the queue.
_DELIVER, _TIMER, _CRASH, _RESTART, _PART_START, _PART_END, _HEAL = range(7)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything a run depends on; the same scenario always gives the same run."""

    seed: int
    nodes: int = 4
    byzantine: int = 1
    heights: int = 50
    faults: tuple[str, ...] = ()
    collude: bool = False                 # Byzantine nodes run the fork attack together
    chaos_ms: int | None = None           # GST; None: drawn from the seed if faults need it
    fixed_delay_ms: int | None = None     # every message takes exactly this long (bench)
    config: BftConfig = SIM_CONFIG
    # Node pairs with no direct link (a sparse mesh, for good: healing does not add them).
    # With any, nodes relay each message they admit to their peers, as real nodes do, and
    # messages between such a pair cross in two hops.
    missing_links: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        unknown = [f for f in self.faults if f not in ALL_FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; "
                             f"known: {', '.join(ALL_FAULTS)}")
        if not 0 <= self.byzantine < self.nodes or self.nodes < 1:
            raise ValueError("need 1 or more nodes and fewer Byzantine nodes than nodes")
        for a, b in self.missing_links:
            if a == b or not (0 <= a < self.nodes and 0 <= b < self.nodes):
                raise ValueError(f"missing link {a}-{b}: need two different nodes "
                                 f"of 0..{self.nodes - 1}")

    def replay_command(self) -> str:
        cmd = (f"python -m sharechain.sim run --seed {self.seed} --nodes {self.nodes} "
               f"--byzantine {self.byzantine} --heights {self.heights}")
        if self.faults:
            cmd += f" --faults {','.join(self.faults)}"
        if self.collude:
            cmd += " --collude"
        if self.missing_links:
            cmd += " --missing-links " + ",".join(f"{a}-{b}" for a, b in self.missing_links)
        return cmd


@dataclass(slots=True)
class RunResult:
    scenario: Scenario
    violations: list[Violation]
    heights: int                 # the slowest honest node's committed height
    sim_ms: int
    gst_ms: int
    messages: int
    evidence: int
    wall_s: float
    stats: dict[str, int] = field(default_factory=dict)
    commit_times: dict[int, int] = field(default_factory=dict)  # height -> first honest commit
    commit_rounds: dict[int, int] = field(default_factory=dict)  # height -> its commit round

    @property
    def ok(self) -> bool:
        return not self.violations


class SharedCaches:
    """Cluster-wide memo of signature checks and decodes.

    Every node still checks every message it admits; with ``memo`` the nodes share one
    :class:`CheckedSignatures` (as a node's Replica and Engine share theirs), so the second
    node to check the same (key, message, signature) triple skips the Ed25519 arithmetic.
    """

    def __init__(self, memo: bool = True) -> None:
        """``memo`` False gives every node its own memo, as in production (for figures)."""
        self.memo = memo
        self._decoded: dict[bytes, Message | DecodeError] = {}
        self._shared = CheckedSignatures(self.verify, CACHE_ENTRIES_MAX)
        self.verify_calls = 0  # signatures actually verified (memo misses)

    def checked(self) -> CheckedSignatures:
        """The signature memo for a new node's engine."""
        return self._shared if self.memo else CheckedSignatures(self.verify)

    def verify(self, pub: bytes, msg: bytes, sig: bytes) -> bool:
        self.verify_calls += 1
        return verify(pub, msg, sig)

    def decode(self, raw: bytes) -> Message:
        m = self._decoded.get(raw)
        if m is None:
            if len(self._decoded) > CACHE_ENTRIES_MAX:
                self._decoded.clear()
            try:
                m = decode_message(raw)
            except DecodeError as exc:
                m = exc
            self._decoded[raw] = m
        if isinstance(m, DecodeError):
            raise m
        return m


@dataclass(slots=True)
class SimNode:
    idx: int
    name: str
    key: PrivateKey
    behaviour: Behaviour
    ctx: ByzContext
    chain: FakeChain
    wal: MemoryWal
    skew_ms: int
    replica: Replica | None = None
    epoch: int = 0
    seen_round: tuple[int, int] = (0, 0)

    @property
    def up(self) -> bool:
        return self.replica is not None

    @property
    def engine(self) -> Engine:
        invariant(self.replica is not None, "only a running node has an engine")
        return self.replica.engine  # type: ignore[union-attr]


class Cluster:
    def __init__(self, sc: Scenario, trace: Trace | None = None,
                 caches: SharedCaches | None = None, stop_on_violation: bool = True) -> None:
        self.sc = sc
        self.trace = trace or Trace("off", keep=False)
        self.caches = caches or SharedCaches()
        self.stop_on_violation = stop_on_violation
        self.now = 0
        self._queue: list[tuple[int, int, int, Any, Any]] = []
        self._seq = 0
        self.msgs_by_kind: dict[str, int] = {}
        self.commit_times: dict[int, int] = {}
        self.commit_rounds: dict[int, int] = {}
        fr = random.Random(f"{sc.seed}:faults")
        n = sc.nodes
        self.keys = [PrivateKey.from_name(f"sim-{i}") for i in range(n)]
        self.names = [f"n{i}" for i in range(n)]
        self._name_by_addr = {k.address: self.names[i] for i, k in enumerate(self.keys)}
        byz = sorted(fr.sample(range(n), sc.byzantine))
        self.honest = tuple(i not in byz for i in range(n))
        vset = ValidatorSet.of([Validator(k.public_key, 1, self.names[i])
                                for i, k in enumerate(self.keys)])
        mutable = tuple(self.keys[i].address for i in range(n) if self.honest[i])
        self.faults = self._network_faults(fr)
        self.net = SimNetwork(random.Random(f"{sc.seed}:net"), self.faults,
                              fixed_delay_ms=sc.fixed_delay_ms, missing_links=sc.missing_links)
        self.checker = Checker(CHAIN_ID, self.honest, self.names, CLOCK_SKEW_MS_MAX,
                               GENESIS_TIME_MS, verifier=self.caches.checked())
        self.checker.set_honest_addresses(list(mutable))
        behaviours = self._behaviours(byz)
        self.nodes: list[SimNode] = []
        for i in range(n):
            chain = FakeChain(CHAIN_ID, vset, GENESIS_TIME_MS, mutable,
                              valchange="valchange" in sc.faults)
            peers = tuple(j for j in range(n) if j != i)
            ctx = ByzContext(i, self.keys[i], CHAIN_ID, peers,
                             random.Random(f"{sc.seed}:byz:{i}"), chain)
            skew = fr.randint(-CLOCK_SKEW_MS_MAX, CLOCK_SKEW_MS_MAX)
            self.nodes.append(SimNode(i, self.names[i], self.keys[i], behaviours[i], ctx,
                                      chain, MemoryWal(), skew))
        plot = next((b.plot for b in behaviours if isinstance(b, Colluder)), None)
        if plot is not None:
            plot.members = [self.nodes[i].ctx for i in byz]
            honest_ids = [i for i in range(n) if self.honest[i]]
            plot.side_a = frozenset(honest_ids[: (len(honest_ids) + 1) // 2])
        self.gst_ms = self._schedule_faults(fr)
        self.faulty = n - sum(self.honest)
        self._deadline: int | None = None
        self._min_height = 0
        self.time_limit_ms = (self.gst_ms + self._bound(40)
                              + (sc.heights + 2) * self._bound(0))

    # ------------------------------------------------------------ setup

    def _network_faults(self, fr: random.Random) -> NetworkFaults:
        f = NetworkFaults()
        if "drops" in self.sc.faults:
            f.drop_p = fr.uniform(0.05, 0.3)
        if "dups" in self.sc.faults:
            f.dup_p = fr.uniform(0.05, 0.3)
        if "reorder" in self.sc.faults:
            f.delay_min_ms, f.delay_max_ms = 1, fr.randint(100, 400)
        return f

    def _behaviours(self, byz: list[int]) -> list[Behaviour]:
        out: list[Behaviour] = [Honest() for _ in range(self.sc.nodes)]
        if self.sc.collude:
            plot = Conspiracy()
            for i in byz:
                out[i] = Colluder(plot)
            return out
        kinds = [k for k in self.sc.faults if k in BEHAVIOURS] or list(BEHAVIOURS)
        for j, i in enumerate(byz):
            out[i] = BEHAVIOURS[kinds[j % len(kinds)]]()
        return out

    def _schedule_faults(self, fr: random.Random) -> int:
        sc = self.sc
        timed = [f for f in sc.faults if f in NETWORK_FAULTS]
        chaos = sc.chaos_ms if sc.chaos_ms is not None else (
            fr.randint(500, 3000) if timed else 0)
        honest_ids = [i for i in range(sc.nodes) if self.honest[i]]
        if "partition" in sc.faults and chaos > 0:
            for pid in range(fr.randint(1, 3)):
                start = fr.randrange(chaos)
                end = min(chaos, start + fr.randint(100, 1000))
                size = fr.randint(1, sc.nodes - 1)
                side = frozenset(fr.sample(range(sc.nodes), size))
                self._push(start, _PART_START, pid, side)
                self._push(end, _PART_END, pid, None)
        if "crash" in sc.faults and chaos > 0 and honest_ids:
            for _ in range(fr.randint(1, 3)):
                node = fr.choice(honest_ids)
                at = fr.randrange(chaos)
                self._push(at, _CRASH, node, None)
                self._push(min(chaos, at + fr.randint(50, 1000)), _RESTART, node, None)
        self._push(chaos, _HEAL, None, None)
        return chaos

    def _bound(self, start_round: int) -> int:
        hops = 2 if self.sc.missing_links else 1  # relayed: a message may take two hops
        return liveness_bound_ms(self.sc.config, self.sc.nodes - sum(self.honest),
                                 start_round, hops * (self.sc.fixed_delay_ms or CALM.delay_max_ms))

    def _push(self, at: int, kind: int, a: Any, b: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, a, b))

    # ------------------------------------------------------------ the loop

    def run(self, max_wall_s: float | None = None) -> RunResult:
        t0 = time.perf_counter()
        if self.trace.on:
            self._trace_header()
        for node in self.nodes:
            self._start(node)
        done = False
        events = 0
        while self._queue and not done:
            at, _, kind, a, b = heapq.heappop(self._queue)
            if at > self.time_limit_ms:
                break
            self.now = at
            self._dispatch(kind, a, b)
            events += 1
            if self.checker.violations and self.stop_on_violation:
                break
            if self._deadline is not None and self.now > self._deadline:
                self.checker.fail("liveness", self.now,
                                  f"no new height for every honest node within the bound "
                                  f"after GST (slowest honest height {self._min_height})")
                break
            done = self._min_height >= self.sc.heights
            if max_wall_s is not None and events % 256 == 0 \
                    and time.perf_counter() - t0 > max_wall_s:
                break
        if not done and not self.checker.violations and max_wall_s is None:
            self.checker.fail("liveness", self.now,
                              f"target height {self.sc.heights} not reached by every honest "
                              f"node (slowest at {self._min_height})")
        for v in self.checker.violations:
            self.trace.log(v.time_ms, "!!", f"VIOLATION {v}")
        stats: dict[str, int] = dict(self.msgs_by_kind)
        stats.update(dropped=self.net.dropped, duplicated=self.net.duplicated,
                     verify_calls=self.caches.verify_calls)
        for node in self.nodes:
            if node.replica is not None:
                for k, n in list(node.replica.stats.items()) + list(node.engine.stats.items()):
                    stats[k] = stats.get(k, 0) + n
        return RunResult(self.sc, list(self.checker.violations), self._min_height, self.now,
                         self.gst_ms, self.net.sent,
                         sum(len(n.engine.evidence) for n in self.nodes if n.up),
                         time.perf_counter() - t0, stats, dict(self.commit_times),
                         dict(self.commit_rounds))

    def _local(self, node: SimNode) -> int:
        """The node's own clock: simulated time since genesis, plus its skew."""
        return GENESIS_TIME_MS + self.now + node.skew_ms

    def _trace_header(self) -> None:
        sc, f = self.sc, self.faults
        roles = ", ".join(f"{n.name}={n.behaviour.name}" for n in self.nodes
                          if not n.behaviour.honest) or "none"
        log = self.trace.log
        log(0, "sim", f"seed {sc.seed}: {sc.nodes} validators, Byzantine: {roles}; "
            f"faults: {','.join(sc.faults) or 'none'}; GST at {self.gst_ms} ms")
        if self.gst_ms:
            log(0, "sim", f"before GST: drop {f.drop_p:.2f}, duplicate {f.dup_p:.2f}, "
                f"delay {f.delay_min_ms}-{f.delay_max_ms} ms; after: delay "
                f"{CALM.delay_min_ms}-{CALM.delay_max_ms} ms, nothing lost")

    def _dispatch(self, kind: int, a: Any, b: Any) -> None:
        if kind == _DELIVER:
            node = self.nodes[a]
            if node.replica is not None:
                self._perform(node, node.replica.receive(b, self._local(node)))
                self._take_verdicts(node)
        elif kind == _TIMER:
            node_idx, epoch, ev = a
            node = self.nodes[node_idx]
            if node.replica is not None and node.epoch == epoch:
                if self.trace.full:
                    self.trace.log(self.now, node.name, f"timeout {ev.kind} h={ev.height} "
                                   f"r={ev.round}")
                self._perform(node, node.replica.step(ev, self._local(node)))
                self._take_verdicts(node)
        elif kind == _CRASH:
            self._crash(self.nodes[a])
        elif kind == _RESTART:
            node = self.nodes[a]
            if not node.up:
                self._start(node)
        elif kind == _PART_START:
            self.net.add_partition(a, b)
            if self.trace.on and not self.net.healed:
                side = ",".join(self.names[i] for i in sorted(b))
                self.trace.log(self.now, "net", f"partition {a} starts: {{{side}}} | rest")
        elif kind == _PART_END:
            self.net.remove_partition(a)
            if self.trace.on:
                self.trace.log(self.now, "net", f"partition {a} ends")
        elif kind == _HEAL:
            self.net.heal()
            if self.trace.on:
                self.trace.log(self.now, "net", "GST: network healed, all honest nodes up")
            self._set_deadline()

    def _set_deadline(self) -> None:
        top = max((n.engine.round for n in self.nodes if n.up and self.honest[n.idx]),
                  default=0)
        self._deadline = self.now + self._bound(top)

    # ------------------------------------------------------------ node lifecycle

    def _start(self, node: SimNode) -> None:
        eng = Engine(CHAIN_ID, node.key, self.sc.config, checked=self.caches.checked())
        node.replica = Replica(eng, decoder=self.caches.decode)
        node.epoch += 1
        try:
            records = node.wal.recover()
        except WalError as exc:
            self.checker.fail("wal", self.now, f"{node.name}: {exc}")
            node.replica = None
            return
        c = node.chain
        if self.trace.on and node.epoch > 1:
            self.trace.log(self.now, node.name, f"restart at height {c.height() + 1} with "
                           f"{len(records)} WAL records")
        ev = Recover(c.height() + 1, c.validator_set(), c.last_block_time_ms(), tuple(records))
        self._perform(node, node.replica.step(ev, self._local(node)))

    def _crash(self, node: SimNode) -> None:
        if not node.up:
            return
        node.replica = None
        node.epoch += 1
        torn = node.ctx.rng.random() < TORN_WAL_P
        if torn:
            junk = Vote(1, 1, 0, b"", 0, node.key.address, b"\x00" * 64)
            node.wal.tear(junk, node.ctx.rng.randint(1, 60))
        if self.trace.on:
            self.trace.log(self.now, node.name,
                           "crash" + (" (torn WAL tail)" if torn else ""))

    # ------------------------------------------------------------ performing actions

    def _perform(self, node: SimNode, actions: list[Action]) -> None:
        pending = deque([actions])
        while pending and node.replica is not None:
            for a in pending.popleft():
                answer = self._do(node, a)
                if answer is not None and node.replica is not None:
                    pending.append(node.replica.step(answer, self._local(node)))
        if node.replica is not None and self.trace.on:
            eng = node.engine
            hr = (eng.height, eng.round)
            if hr != node.seen_round and eng.round > 0:
                self.trace.log(self.now, node.name, f"round {eng.round} at h={eng.height}")
            node.seen_round = hr

    def _do(self, node: SimNode, a: Action) -> Event | None:
        if isinstance(a, Broadcast):
            if a.forward:  # another validator's message passed on: honest nodes only
                if node.behaviour.honest:
                    self._send(node, (None, a.data, a.msg), own=False)
                return None
            for out in node.behaviour.outbound(node.ctx, a.msg, a.data):
                self._send(node, out)
        elif isinstance(a, PersistWAL):
            node.wal.append_sync(a.record, a.data)
            if isinstance(a.record, (Proposal, Vote)):
                self.checker.on_persisted(node.idx, node.key.address, a.record, self.now)
        elif isinstance(a, ScheduleTimeout):
            self._push(self.now + a.delay_ms, _TIMER,
                       (node.idx, node.epoch, TimeoutFired(a.kind, a.height, a.round)), None)
        elif isinstance(a, RequestProposal):
            block = node.chain.propose_block(a.height, a.time_ms, node.key.address)
            return ProposalBlockReady(a.height, a.round, block)
        elif isinstance(a, ValidateBlock):
            return BlockValidated(a.height, a.block_hash, node.chain.validate_block(a.block))
        elif isinstance(a, CommitBlock):
            return self._commit(node, a)
        elif isinstance(a, ResetWAL):
            node.wal.reset(a.records)
        elif isinstance(a, LoadDecision):
            found = node.chain.decision_at(a.height)
            return DecisionLoaded(*found) if found is not None else None
        elif isinstance(a, ReportEvidence):
            vset = node.engine.validators
            invariant(vset is not None, "evidence is found at a height with validators")
            self.checker.on_evidence(node.idx, a.evidence, vset, self.now)
            if self.trace.on:
                v = a.evidence.vote_a
                who = self._name_by_addr.get(v.validator, "?")
                self.trace.log(self.now, node.name, f"evidence: {who} double-signed "
                               f"{v.kind} h={v.height} r={v.round}")
        return None

    def _take_verdicts(self, node: SimNode) -> None:
        """The relay contract. On a full mesh every peer already gets every broadcast, so
        admitted messages need no relay; with missing links an honest node relays each
        message it admits to its peers, once, as the P2P relay does. Rejections are counted."""
        if node.replica is None:
            return
        relays = bool(self.sc.missing_links) and node.behaviour.honest
        for v in node.replica.take_verdicts():
            if v.outcome == ADMITTED and relays:
                self._send(node, (None, v.raw, self.caches.decode(v.raw)), own=False)
            elif v.outcome == REJECTED:
                self.msgs_by_kind["rejected_" + v.reason] = (
                    self.msgs_by_kind.get("rejected_" + v.reason, 0) + 1)

    def _commit(self, node: SimNode, a: CommitBlock) -> Event | None:
        c = node.chain
        vset, prev_time = c.validator_set(), c.last_block_time_ms()
        try:
            c.commit_block(a.block, a.commit)
        except InvalidCommit as exc:
            self.checker.on_invalid_commit(node.idx, str(exc), self.now)
            return None
        h = a.block.header.height
        self.checker.on_commit(node.idx, a.block, a.commit, vset, prev_time, self.now)
        if self.honest[node.idx]:
            self.commit_times.setdefault(h, self.now)
            self.commit_rounds.setdefault(h, a.commit.round)
            self._progress()
        if self.trace.on:
            self.trace.log(self.now, node.name,
                           f"commit h={h} r={a.commit.round} {short(a.block.hash())} "
                           f"txs={len(a.block.txs)} time=+{a.block.header.time_ms - GENESIS_TIME_MS}"
                           f" sigs={len(a.commit.sigs)}")
        return StartHeight(c.height() + 1, c.validator_set(), c.last_block_time_ms())

    def _progress(self) -> None:
        low = min(n.chain.height() for n in self.nodes if self.honest[n.idx])
        if low > self._min_height:
            self._min_height = low
            if self._deadline is not None:
                self._set_deadline()

    def _send(self, node: SimNode, out: Outgoing, own: bool = True) -> None:
        dst, raw, msg = out
        if own:
            self.checker.on_sent(node.idx, node.key.address, msg, self.now)
        kind = type(msg).__name__ if msg is not None else "junk"
        targets = node.ctx.peers if dst is None else (dst,)
        self.msgs_by_kind[kind] = self.msgs_by_kind.get(kind, 0) + len(targets)
        full = self.trace.full
        for peer in targets:
            delays = self.net.delays(node.idx, peer)
            for d in delays:
                self._push(self.now + d, _DELIVER, peer, raw)
            if full:
                what = _describe(msg)
                fate = "lost" if not delays else "+".join(f"{d}ms" for d in delays)
                self.trace.log(self.now, node.name, f"-> {self.names[peer]} {what} [{fate}]")


def _describe(msg: Message | None) -> str:
    if msg is None:
        return "junk"
    if isinstance(msg, Vote):
        return f"{msg.kind} h={msg.height} r={msg.round} {short(msg.block_hash)}"
    if isinstance(msg, Proposal):
        return (f"proposal h={msg.height} r={msg.round} pol={msg.pol_round} "
                f"{short(msg.block.hash())}")
    return type(msg).__name__.lower()


def run_scenario(sc: Scenario, trace: Trace | None = None) -> RunResult:
    return Cluster(sc, trace).run()
