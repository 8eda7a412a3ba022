"""Admission of wire messages in front of an engine: decode, bound, dedupe, verify once.

A :class:`Replica` is still pure (no I/O, time passed in); the asyncio driver and the
simulator both feed it raw bytes from the network and events from their own world, and
perform the actions it returns. For each message it:

1. drops it if it is larger than the wire cap, or a byte-identical copy was seen before
   (duplicates and re-broadcasts cost one hash);
2. decodes it strictly (garbage costs one failed decode and is counted);
3. routes it by height: older heights are dropped; the next ``FUTURE_HEIGHTS_MAX`` heights
   are buffered (bounded in count and bytes) and replayed when the engine gets there; any
   later height only tells the engine it has fallen behind;
4. verifies signatures exactly once, against the validator set of the engine's height —
   votes by their validator, proposals by the round's proposer (and the block's tx root),
   decisions by their commit certificate — and only then hands the engine a
   ``VoteReceived`` / ``ProposalReceived`` / ``DecisionReceived`` event.

The engine therefore never sees an unsigned or malformed vote, and never verifies anything
twice; it still checks everything that needs its state (rounds, locks, conflicts).

Every message from the network gets a :class:`Verdict`, which tells the driver whether to
pass the bytes on to other peers (gossip) and whether the peer that sent them misbehaved:

* ``ADMITTED`` — decoded, signature (or certificate) checked, new and for the engine's
  height: safe to relay. A buffered future-height message is admitted only when it is
  released and checked against its own height's validator set.
* ``REJECTED`` — oversize, undecodable, or a bad signature / proposer / tx root /
  certificate: the sender is at fault; never relayed.
* ``IGNORED`` — a duplicate, a stale or far-future message, a sync request, or anything
  that arrives before the engine runs: nobody is at fault, nothing to relay.
* ``BUFFERED`` — held for a later height; its verdict (admitted or rejected) comes when it
  is released.

``receive`` sets :attr:`Replica.last_verdict` for the bytes it was given; every admission
and rejection (those of released messages included, which can happen in ``step``) is also
queued for :meth:`Replica.take_verdicts`, which the driver drains after each call.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from sharechain.consensus.bft.engine import Engine, Phase
from sharechain.consensus.bft.events import (
    Action,
    DecisionReceived,
    Event,
    FutureHeightSeen,
    ProposalReceived,
    SyncRequested,
    VoteReceived,
)
from sharechain.consensus.bft.messages import (
    WIRE_BYTES_MAX,
    Decision,
    Message,
    Proposal,
    SyncRequest,
    Vote,
    decode_message,
)
from sharechain.consensus.bft.valset import Verifier, check_commit, index_of
from sharechain.crypto import sha256
from sharechain.errors import DecodeError, ShareChainError

FUTURE_HEIGHTS_MAX = 2
FUTURE_MSGS_MAX = 4096
FUTURE_BYTES_MAX = 16 * 1024 * 1024
SEEN_MAX = 65536
VERDICTS_MAX = FUTURE_MSGS_MAX + 1024  # undrained verdicts kept (a release adds up to 4096)

ADMITTED = "admitted"
REJECTED = "rejected"
IGNORED = "ignored"
BUFFERED = "buffered"

Decoder = Callable[[bytes], Message]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gate decided about one message from the network (see the module doc)."""

    outcome: str   # ADMITTED | REJECTED | IGNORED | BUFFERED
    reason: str    # a stats name: "valid", "garbage", "bad_signature", "duplicate", ...
    raw: bytes


class Replica:
    """An engine behind its admission gate."""

    def __init__(self, engine: Engine, *, verifier: Verifier | None = None,
                 decoder: Decoder = decode_message) -> None:
        """Signatures are checked through the engine's memo (:attr:`Engine.checked`), so a
        precommit checked here as a vote is not checked again inside a commit;
        ``verifier`` replaces it (a test seam)."""
        self.engine = engine
        self._verify: Verifier = verifier if verifier is not None else engine.checked
        self._decode = decoder
        self._seen: OrderedDict[bytes, tuple[int, bytes | None] | None] = OrderedDict()
        self._future: dict[int, list[tuple[Message, bytes]]] = {}
        self._future_msgs = 0
        self._future_bytes = 0
        self._height = engine.height
        self._verdicts: deque[Verdict] = deque(maxlen=VERDICTS_MAX)
        self.last_verdict: Verdict | None = None
        self.stats: dict[str, int] = {}

    def step(self, event: Event, now_ms: int) -> list[Action]:
        """Feed a local event (timer, app answer, recovery) to the engine."""
        out = self.engine.step(event, now_ms)
        self._release(out, now_ms)
        return out

    def receive(self, raw: bytes, now_ms: int) -> list[Action]:
        """Feed one message from the network; its verdict is left in :attr:`last_verdict`."""
        out: list[Action] = []
        self.last_verdict = self._receive(raw, now_ms, out)
        if self.last_verdict.outcome in (ADMITTED, REJECTED):
            self._verdicts.append(self.last_verdict)
        self._release(out, now_ms)
        return out

    def take_verdicts(self) -> list[Verdict]:
        """Admissions and rejections since the last call, in order (for relay and bans)."""
        out = list(self._verdicts)
        self._verdicts.clear()
        return out

    def _receive(self, raw: bytes, now_ms: int, out: list[Action]) -> Verdict:
        if len(raw) > WIRE_BYTES_MAX:
            self._count("oversize")
            return Verdict(REJECTED, "oversize", raw)
        key = sha256(raw)
        if key in self._seen:
            self._count("duplicate")
            ahead = self._seen[key]
            if ahead is not None and ahead[0] > self.engine.height:
                # A re-sent message from a later height: still news that we are behind.
                out.extend(self.engine.step(FutureHeightSeen(*ahead), now_ms))
            return Verdict(IGNORED, "duplicate", raw)
        try:
            msg = self._decode(raw)
        except DecodeError:
            self._remember(key)
            self._count("garbage")
            return Verdict(REJECTED, "garbage", raw)
        return self._route(msg, raw, key, now_ms, out)

    # ------------------------------------------------------------ routing

    def _route(self, msg: Message, raw: bytes, key: bytes | None, now_ms: int,
               out: list[Action]) -> Verdict:
        """Admit, buffer or drop ``msg``; the engine's actions are appended to ``out``.

        ``key`` is None for a buffered message being released (remembered when buffered).
        """
        eng = self.engine
        if eng.phase == Phase.STOPPED:
            return Verdict(IGNORED, "not_running", raw)  # not remembered: welcome once we run
        if isinstance(msg, SyncRequest):
            # Never deduplicated: a peer repeats the same request until it is answered
            # (the engine rate-limits its answers). Not relayed: it asks its own peers.
            out.extend(eng.step(SyncRequested(msg.height), now_ms))
            return Verdict(IGNORED, "sync_request", raw)
        height = msg.block.header.height if isinstance(msg, Decision) else msg.height
        if height < eng.height:
            if key is not None:
                self._remember(key)
            self._count("stale")
            return Verdict(IGNORED, "stale", raw)
        if height > eng.height:
            return self._future_msg(msg, raw, key, height, now_ms, out)
        if key is not None:
            self._remember(key)
        event = self._verified_event(msg)
        if isinstance(event, str):
            self._count("rejected")
            return Verdict(REJECTED, event, raw)
        out.extend(eng.step(event, now_ms))
        return Verdict(ADMITTED, "valid", raw)

    def _future_msg(self, msg: Message, raw: bytes, key: bytes | None, height: int,
                    now_ms: int, out: list[Action]) -> Verdict:
        eng = self.engine
        signer = msg.validator if isinstance(msg, Vote) else None
        if signer is not None and eng.pub_key_of(signer) is None:
            return Verdict(IGNORED, "future_unknown_signer", raw)  # not even a hint
        size = len(raw)
        if (height <= eng.height + FUTURE_HEIGHTS_MAX and self._future_msgs < FUTURE_MSGS_MAX
                and self._future_bytes + size <= FUTURE_BYTES_MAX):
            self._future.setdefault(height, []).append((msg, raw))
            self._future_msgs += 1
            self._future_bytes += size
            if key is not None:  # a copy is kept: later copies only hint
                self._remember(key, (height, signer))
            verdict = Verdict(BUFFERED, "future", raw)
        else:
            self._count("future_dropped")  # not remembered: a re-send gets another chance
            verdict = Verdict(IGNORED, "future_dropped", raw)
        out.extend(eng.step(FutureHeightSeen(height, signer), now_ms))
        return verdict

    def _verified_event(self, msg: Message) -> Event | str:
        """The engine event for a message of the current height, or why it is invalid."""
        eng = self.engine
        cid = eng.chain_id
        if isinstance(msg, Vote):
            pub = eng.pub_key_of(msg.validator)
            if pub is None:
                return "not_a_validator"
            if not self._verify(pub, msg.sign_bytes(cid), msg.sig):
                return "bad_signature"
            return VoteReceived(msg)
        if isinstance(msg, Proposal):
            pub = eng.pub_key_of(eng.proposer(msg.round))
            h = msg.block.hash()
            if pub is None or not self._verify(pub, msg.sign_bytes(cid, h), msg.sig):
                return "bad_signature"
            try:
                msg.block.check_shape()
            except ShareChainError:
                return "bad_block_shape"
            return ProposalReceived(msg, h)
        if isinstance(msg, Decision):
            h = msg.block.hash()
            try:
                msg.block.check_shape()
            except ShareChainError:
                return "bad_block_shape"
            if check_commit(cid, index_of(eng.validators), msg.commit, h,  # type: ignore[arg-type]
                            eng.height, self._verify) is not None:
                return "bad_commit"
            return DecisionReceived(msg.block, h, msg.commit)
        return "unknown_message"

    def _release(self, out: list[Action], now_ms: int) -> None:
        """After the engine moved to a new height, replay what was buffered for it."""
        while self.engine.height != self._height:
            self._height = self.engine.height
            for h in [h for h in self._future if h < self._height]:
                self._drop_future(h)
            for msg, raw in self._drop_future(self._height):
                verdict = self._route(msg, raw, None, now_ms, out)
                if verdict.outcome in (ADMITTED, REJECTED):
                    self._verdicts.append(verdict)

    def _drop_future(self, height: int) -> list[tuple[Message, bytes]]:
        msgs = self._future.pop(height, [])
        self._future_msgs -= len(msgs)
        self._future_bytes -= sum(len(raw) for _, raw in msgs)
        return msgs

    def _remember(self, key: bytes, ahead: tuple[int, bytes | None] | None = None) -> None:
        self._seen[key] = ahead
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1
