"""The asyncio driver: real timers, a real WAL, a real transport, a real chain.

Construct a :class:`BftDriver` with the node's :class:`ChainConnector`, the validator's
:class:`Signer` (None for a non-validating follower), a :class:`ConsensusTransport` and a
:class:`~sharechain.consensus.bft.wal.Wal`; ``await driver.start()`` recovers the WAL and
runs until ``await driver.stop()``.

One task owns the engine. It takes inbound bytes (from the transport's callback, through a
bounded queue) and fired timers, passes them through the :class:`Replica` and performs the
returned actions strictly in order. Before each list of actions it reports the Replica's
verdicts on inbound messages to the transport: ``relay`` for the admitted ones (the only
messages a transport may pass on to other peers), ``reject`` for the invalid ones (see
:class:`ConsensusTransport`).

* ``PersistWAL`` → ``wal.append_sync`` (in a worker thread, awaited): nothing later in the
  list — above all the ``Broadcast`` of the message just persisted — runs before the record
  is fsynced. A failing write stops the driver (``stop()`` re-raises it): a validator that
  cannot remember what it signed must not sign on.
* ``Broadcast`` → ``transport.broadcast(bytes)``, or ``transport.relay(bytes)`` for another
  validator's message the engine passes on in a stalled round (``forward``);
  ``ScheduleTimeout`` → ``loop.call_later``.
* ``RequestProposal`` / ``ValidateBlock`` / ``CommitBlock`` → the connector (``ValidateBlock``
  first awaits ``prevalidate``, which checks unseen txs' signatures in worker processes
  while the loop runs on, then ``validate_block``); the answer is fed back as an event
  (``CommitBlock`` is answered with ``StartHeight`` from the connector's new height,
  validator set and block time) after the current list is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

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
from sharechain.consensus.bft.replica import ADMITTED, REJECTED, Replica
from sharechain.consensus.bft.wal import Wal, WalDecided
from sharechain.consensus.interface import ChainConnector, Signer
from sharechain.errors import invariant

log = logging.getLogger("sharechain.consensus.bft")

INBOX_LEN_MAX = 10_000  # inbound messages waiting for the engine; more are dropped
_RESYNC = object()


class ConsensusTransport(Protocol):
    """How consensus messages reach the other validators (p2p gossip, or a LocalBus).

    The transport never forwards a message on its own: every message received from a peer
    goes to the receiver callback, and the driver answers it with at most one of

    * ``relay(msg_bytes)`` — the message decoded, its signature (or commit certificate)
      verified against the validator set of its height, and it is new (not a duplicate, not
      for a past height). Only these may be forwarded to other peers. A message for one of
      the next heights is buffered unverified and relayed when it is released (once the
      node reaches its height and verifies it), so relay may come much later than delivery,
      and a buffered message that turns out invalid is rejected then.
    * ``reject(msg_bytes, reason)`` — the message is oversize, does not decode, or carries
      a bad signature, a signature by someone who is not the validator / proposer, a wrong
      tx root or an invalid commit certificate: the peer that sent it is at fault.
      ``reason`` is a short stats name (``"garbage"``, ``"bad_signature"``, ...).

    and with neither for duplicates, stale or far-future messages, sync requests, anything
    received before the engine runs, buffered messages whose height the node skipped (block
    sync), and messages dropped because the inbox was full: nobody is known to be at fault
    and nothing is relayed.
    Both are called from the driver's task, in the order the messages were judged; both
    are best effort and must not block. ``msg_bytes`` is the same bytes object the
    transport passed to the receiver.

    The driver also calls ``relay`` for messages the engine passes on by itself: other
    validators' votes and proposal of a round that makes no progress, admitted earlier.
    The transport sends them on as it relays, to the peers that may lack them.
    """

    def broadcast(self, msg_bytes: bytes) -> None:
        """Send to every peer (not back to ourselves); best effort, must not block."""

    def set_receiver(self, callback: Callable[[bytes], None]) -> None:
        """Register the function called with every message bytes received from a peer."""

    def relay(self, msg_bytes: bytes) -> None:
        """Forward an admitted message received from a peer to the other peers."""

    def reject(self, msg_bytes: bytes, reason: str) -> None:
        """A peer sent an invalid message (for peer scoring); never forward it."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class BftDriver:
    """Runs one :class:`Engine` against a chain, a transport, a signer and a WAL."""

    def __init__(self, connector: ChainConnector, signer: Signer | None,
                 transport: ConsensusTransport, wal: Wal, config: BftConfig | None = None,
                 *, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.connector = connector
        self.signer = signer
        self.transport = transport
        self.wal = wal
        self.engine = Engine(connector.chain_id, signer, config)
        self.replica = Replica(self.engine)
        self.dropped_inbound = 0
        self._clock_ms = clock_ms
        self._inbox: asyncio.Queue[tuple[bool, object]] = asyncio.Queue()
        self._timers: set[asyncio.TimerHandle] = set()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Recover from the WAL and start consensus at the chain's next height."""
        invariant(self._task is None, "a driver starts once")
        records = await asyncio.to_thread(self.wal.recover)
        c = self.connector
        if c.height() > 0 and not any(isinstance(r, WalDecided) and r.height == c.height()
                                      for r in records):
            records = [*records, *self._stored_decision()]  # a lost or fresh WAL on an existing chain
        # Recovery runs here, not in the task, so a refused WAL fails start() itself.
        recover = Recover(c.height() + 1, c.validator_set(), c.last_block_time_ms(),
                          tuple(records))
        await self._perform_all(self.replica.step(recover, self._clock_ms()))
        self.transport.set_receiver(self.deliver)
        self._task = asyncio.create_task(self._run(), name="bft-driver")

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The engine task; it ends only by stop() or a fatal error (e.g. a failed fsync)."""
        return self._task

    def resync(self) -> None:
        """The chain advanced outside consensus (block sync): continue at its next height."""
        self._inbox.put_nowait((False, _RESYNC))

    async def stop(self) -> None:
        """Stop timers and the engine task; re-raises the error that stopped it, if any."""
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        task.result()

    @property
    def height(self) -> int:
        """The height consensus is working on (the chain's height + 1)."""
        return self.engine.height

    def deliver(self, msg_bytes: bytes) -> None:
        """Transport callback for inbound messages; never blocks, drops when saturated."""
        if self._inbox.qsize() >= INBOX_LEN_MAX:
            self.dropped_inbound += 1
            return
        self._inbox.put_nowait((True, msg_bytes))

    # ------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while True:
            is_raw, item = await self._inbox.get()
            now = self._clock_ms()
            if is_raw:
                actions = self.replica.receive(item, now)  # type: ignore[arg-type]
            elif item is _RESYNC:
                ev = self._chain_moved()
                actions = self.replica.step(ev, now) if ev is not None else []
            else:
                actions = self.replica.step(item, now)  # type: ignore[arg-type]
            await self._perform_all(actions)

    async def _perform_all(self, actions: list[Action]) -> None:
        """Perform in order; answers are fed back after the list that asked for them."""
        pending = deque([actions])
        while pending:
            self._report_verdicts()
            for action in pending.popleft():
                answer = await self._perform(action)
                if answer is not None:
                    if isinstance(answer, StartHeight):
                        await asyncio.sleep(0)  # let I/O in between heights
                    pending.append(self.replica.step(answer, self._clock_ms()))
        self._report_verdicts()

    def _report_verdicts(self) -> None:
        """Tell the transport what to relay and whom to blame (its contract above)."""
        for v in self.replica.take_verdicts():
            if v.outcome == ADMITTED:
                self.transport.relay(v.raw)
            elif v.outcome == REJECTED:
                self.transport.reject(v.raw, v.reason)

    async def _perform(self, a: Action) -> Event | None:
        if isinstance(a, PersistWAL):
            await asyncio.to_thread(self.wal.append_sync, a.record, a.data)
        elif isinstance(a, Broadcast):
            if a.forward:
                self.transport.relay(a.data)
            else:
                self.transport.broadcast(a.data)
        elif isinstance(a, ScheduleTimeout):
            self._schedule(a)
        elif isinstance(a, RequestProposal):
            invariant(self.signer is not None, "only validators propose")
            try:
                block = self.connector.propose_block(a.height, a.time_ms,
                                                     self.signer.address)  # type: ignore[union-attr]
            except Exception:  # no block from the app: the round times out
                log.exception("propose_block failed at height %d", a.height)
                return None
            return ProposalBlockReady(a.height, a.round, block)
        elif isinstance(a, ValidateBlock):
            c = self.connector
            try:
                # Signatures of txs this node has not seen yet are checked off the loop
                # (the proposal may outrun their gossip); the full check reuses the verdicts.
                err = await c.prevalidate(a.block)
                if err is None:
                    err = c.validate_block(a.block)
            except Exception as exc:  # noqa: BLE001 - a block the app cannot check is invalid
                err = f"validation raised {type(exc).__name__}: {exc}"
            return BlockValidated(a.height, a.block_hash, err)
        elif isinstance(a, CommitBlock):
            c = self.connector
            h = a.block.header.height
            if c.height() >= h:  # block sync stored it while the WAL write was in flight
                return self._chain_moved()
            c.commit_block(a.block, a.commit)
            invariant(c.height() == h, "the chain committed the block")
            return StartHeight(c.height() + 1, c.validator_set(), c.last_block_time_ms())
        elif isinstance(a, ResetWAL):
            await asyncio.to_thread(self.wal.reset, a.records)
        elif isinstance(a, LoadDecision):
            found = self.connector.decision_at(a.height)
            return DecisionLoaded(*found) if found is not None else None
        elif isinstance(a, ReportEvidence):  # the engine keeps it (``engine.evidence``)
            v = a.evidence.vote_a
            log.warning("validator %s signed two conflicting %ss at height %d round %d "
                        "(evidence %s; see /v1/evidence)", v.validator.hex(), v.kind, v.height,
                        v.round, a.evidence.hash().hex()[:16])
        return None

    def _chain_moved(self) -> StartHeight | None:
        c = self.connector
        if c.height() + 1 <= self.engine.height:
            return None
        last = self._stored_decision()
        d = last[0] if last else None
        return StartHeight(c.height() + 1, c.validator_set(), c.last_block_time_ms(),
                           d.commit if d else None, d.validators if d else None)

    def _stored_decision(self) -> list[WalDecided]:
        """The chain's last commit as a (block-less) WAL record, if the chain has it."""
        c = self.connector
        found = c.decision_at(c.height()) if c.height() > 0 else None
        if found is None:
            return []
        invariant(found[1].height == c.height(), "decision_at returns that height's commit")
        return [WalDecided(c.height(), None, found[1], c.validator_set_at(c.height()))]

    def _schedule(self, a: ScheduleTimeout) -> None:
        ev = TimeoutFired(a.kind, a.height, a.round)
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self._inbox.put_nowait((False, ev))

        handle = loop.call_later(a.delay_ms / 1000, fire)
        self._timers.add(handle)

