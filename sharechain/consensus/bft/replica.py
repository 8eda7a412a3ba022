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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

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

Decoder = Callable[[bytes], Message]


class Replica:
    """An engine behind its admission gate."""

    def __init__(self, engine: Engine, *, verifier: Verifier | None = None,
                 decoder: Decoder = decode_message,
                 checked: dict[tuple[bytes, bytes], bool] | None = None) -> None:
        """``checked`` memoises signature checks by (message hash, key); the simulator
        shares one dict across all its nodes so each message is checked once per cluster."""
        self.engine = engine
        self._verify = verifier if verifier is not None else engine.verifier
        self._checked = checked
        self._decode = decoder
        self._seen: OrderedDict[bytes, tuple[int, bytes | None] | None] = OrderedDict()
        self._future: dict[int, list[tuple[Message, int]]] = {}
        self._future_msgs = 0
        self._future_bytes = 0
        self._height = engine.height
        self.stats: dict[str, int] = {}

    def step(self, event: Event, now_ms: int) -> list[Action]:
        """Feed a local event (timer, app answer, recovery) to the engine."""
        out = self.engine.step(event, now_ms)
        self._release(out, now_ms)
        return out

    def receive(self, raw: bytes, now_ms: int) -> list[Action]:
        """Feed one message from the network."""
        if len(raw) > WIRE_BYTES_MAX:
            self._count("oversize")
            return []
        key = sha256(raw)
        if key in self._seen:
            self._count("duplicate")
            ahead = self._seen[key]
            if ahead is not None and ahead[0] > self.engine.height:
                # A re-sent message from a later height: still news that we are behind.
                out = self.engine.step(FutureHeightSeen(*ahead), now_ms)
                self._release(out, now_ms)
                return out
            return []
        try:
            msg = self._decode(raw)
        except DecodeError:
            self._remember(key)
            self._count("garbage")
            return []
        out = self._route(msg, key, len(raw), now_ms)
        self._release(out, now_ms)
        return out

    # ------------------------------------------------------------ routing

    def _route(self, msg: Message, key: bytes | None, size: int, now_ms: int) -> list[Action]:
        eng = self.engine
        if eng.phase == Phase.STOPPED:
            return []  # not remembered: the same bytes are welcome once we run
        if isinstance(msg, SyncRequest):
            # Never deduplicated: a peer repeats the same request until it is answered
            # (the engine rate-limits its answers).
            return eng.step(SyncRequested(msg.height), now_ms)
        height = msg.block.header.height if isinstance(msg, Decision) else msg.height
        if height < eng.height:
            if key is not None:
                self._remember(key)
            self._count("stale")
            return []
        if height > eng.height:
            return self._future_msg(msg, key, height, size, now_ms)
        if key is not None:
            self._remember(key)
        event = self._verified_event(msg, key)
        if event is None:
            self._count("rejected")
            return []
        return eng.step(event, now_ms)

    def _future_msg(self, msg: Message, key: bytes | None, height: int, size: int,
                    now_ms: int) -> list[Action]:
        eng = self.engine
        signer = msg.validator if isinstance(msg, Vote) else None
        if signer is not None and eng.pub_key_of(signer) is None:
            return []  # not a validator we know: not even a hint
        if (height <= eng.height + FUTURE_HEIGHTS_MAX and self._future_msgs < FUTURE_MSGS_MAX
                and self._future_bytes + size <= FUTURE_BYTES_MAX):
            self._future.setdefault(height, []).append((msg, size))
            self._future_msgs += 1
            self._future_bytes += size
            if key is not None:  # a copy is kept: later copies only hint
                self._remember(key, (height, signer))
        else:
            self._count("future_dropped")  # not remembered: a re-send gets another chance
        return eng.step(FutureHeightSeen(height, signer), now_ms)

    def _signed_by(self, pub: bytes | None, key: bytes | None,
                   sign_bytes: Callable[[], bytes], sig: bytes) -> bool:
        if pub is None:
            return False
        memo = self._checked
        if memo is None or key is None:
            return self._verify(pub, sign_bytes(), sig)
        ok = memo.get((key, pub))
        if ok is None:
            ok = memo[(key, pub)] = self._verify(pub, sign_bytes(), sig)
        return ok

    def _verified_event(self, msg: Message, key: bytes | None) -> Event | None:
        eng = self.engine
        cid = eng.chain_id
        if isinstance(msg, Vote):
            pub = eng.pub_key_of(msg.validator)
            if not self._signed_by(pub, key, lambda: msg.sign_bytes(cid), msg.sig):
                return None
            return VoteReceived(msg)
        if isinstance(msg, Proposal):
            pub = eng.pub_key_of(eng.proposer(msg.round))
            h = msg.block.hash()
            if not self._signed_by(pub, key, lambda: msg.sign_bytes(cid, h), msg.sig):
                return None
            try:
                msg.block.check_shape()
            except ShareChainError:
                return None
            return ProposalReceived(msg, h)
        if isinstance(msg, Decision):
            h = msg.block.hash()
            try:
                msg.block.check_shape()
            except ShareChainError:
                return None
            if check_commit(cid, index_of(eng.validators), msg.commit, h,
                            eng.height, self._verify) is not None:
                return None
            return DecisionReceived(msg.block, h, msg.commit)
        return None

    def _release(self, out: list[Action], now_ms: int) -> None:
        """After the engine moved to a new height, replay what was buffered for it."""
        while self.engine.height != self._height:
            self._height = self.engine.height
            for h in [h for h in self._future if h < self._height]:
                self._drop_future(h)
            for msg, _size in self._drop_future(self._height):
                out.extend(self._route(msg, None, 0, now_ms))

    def _drop_future(self, height: int) -> list[tuple[Message, int]]:
        msgs = self._future.pop(height, [])
        self._future_msgs -= len(msgs)
        self._future_bytes -= sum(s for _, s in msgs)
        return msgs

    def _remember(self, key: bytes, ahead: tuple[int, bytes | None] | None = None) -> None:
        self._seen[key] = ahead
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1
