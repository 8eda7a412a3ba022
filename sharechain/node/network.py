"""The node's use of the P2P layer: consensus relay, transaction gossip and block sync.

Theory of operation
-------------------
Three channels ride on the authenticated peer connections of ``sharechain.p2p``:

* **consensus** — proposals and votes are flooded: a node sends each message it signs to
  all peers, and relays each message it receives for the first time (by hash) to all peers
  but the sender. A message therefore crosses every link at most once per direction, and
  consensus keeps working while some links are down as long as the honest validators stay
  connected through any path. Large messages (proposals with txs) are relayed by their
  hash instead, and pulled by a node that has not received them from their author (see
  :class:`ConsensusRelay`), so on a full mesh each node receives each proposal once.
* **mempool** — transactions are gossiped in small batches. A node verifies a transaction
  once (mempool admission) and passes it on only if it was admitted; peers that send
  transactions with bad signatures or malformed bytes lose score and get banned. A tx a
  client handed to this node is pushed whole to every peer. A tx that came from a peer is
  only *announced* onwards (its 32-byte hash, ``have``); a peer that lacks it asks for it
  (``want``) and gets it whole. On a full mesh every node already holds what the origin
  pushed, so relaying costs each node a hash lookup per tx and peer instead of receiving,
  hashing and dropping the whole tx again; on a sparse mesh a tx still crosses every link
  it needs to, one round trip later per hop. A peer is asked for at most ``TX_OWED_MAX``
  announced txs it has not sent yet (the debt shrinks as they arrive and with time), so
  announcements of txs that do not exist cannot make a node ask without end.
* **blocksync** — nodes announce their height every ``STATUS_INTERVAL_S``. A node that sees a
  peer ahead requests the missing blocks from every peer that has them, in parallel, up to a
  window; each block is applied only after its commit certificate verifies against the
  current validator set and the block validates against the local state (so a peer cannot
  feed a block that does not extend our chain). Then consensus continues from the new height.
  A request unanswered within ``SYNC_REQUEST_TIMEOUT_S`` is asked again of another peer, and
  the silent peer sits out a cooldown (asked for nothing while another peer is ahead, its
  height not counted in ``best_peer_height`` and ``syncing``) that doubles with each further
  timeout and ends when it serves a block: a peer that announces heights it never serves
  delays a catch-up by one timeout, not one per window. Silence costs no score, as an
  honest peer may only be busy (see ``sync_gets_refused``), and a peer cooling down is still
  asked when no other peer is ahead.
  Applying a backlog never holds the event loop for more than one block: a block's tx
  signatures are checked in the signature worker processes while the loop runs on (or, on
  a node configured with no workers, on the loop for that block), and the loop gets a turn
  after each block, so consensus, peers and the API keep being served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any


from sharechain.chain.types import decode_block, decode_commit, verify_commit
from sharechain.crypto import sha256
from sharechain.encoding import decode, encode
from sharechain.errors import DecodeError, FatalError, ShareChainError
from sharechain.lru import BoundedMap
from sharechain.p2p.peers import (
    CHANNEL_BLOCKSYNC,
    CHANNEL_CONSENSUS,
    CHANNEL_CONSENSUS_PULL,
    CHANNEL_MEMPOOL,
    PeerManager,
    PeerManagerConfig,
)

if TYPE_CHECKING:
    from sharechain.node.node import Node

log = logging.getLogger("sharechain.network")

SEEN_LEN_MAX = 200_000
PEER_RECORDS_MAX = 1024  # peers remembered by a per-peer record (ids are free to make)
TX_GOSSIP_BATCH_MAX = 512
TX_HASHES_MAX = 4096  # hashes in one have/want message
TX_WANT_TIMEOUT_S = 2.0  # ask another announcer when a requested tx has not come
TX_GOSSIP_FLUSH_S = 0.02
TX_SERVED_MAX = 32_768  # hashes remembered per peer as sent to it in answer to a "want"
# Announced txs a peer may owe this node (asked of it, not arrived): past this its further
# announcements are not asked for. The debt shrinks as the txs arrive, and by
# TX_OWED_FORGIVEN_PER_S as time passes (a tx that came in a block never arrives by gossip).
TX_OWED_MAX = 8_192
TX_OWED_FORGIVEN_PER_S = 2_048.0
STATUS_INTERVAL_S = 1.0
SYNC_WINDOW = 64
SYNC_REQUEST_TIMEOUT_S = 5.0
# A peer that lets a block request time out is asked for nothing, and its height is not
# counted, for a cooldown that doubles with each further timeout (from the request timeout
# up to this cap) and ends when it next serves a block.
SYNC_COOLDOWN_MAX_S = 300.0
SYNC_MSG_BYTES_MAX = 40 * 1024 * 1024
SYNC_REPLY_ROOM_MIN = 64 * 1024  # a block request is not served into a fuller peer queue
SYNC_REPLY_OVERHEAD = 64  # a block reply's bytes besides its block and commit (keys, headers)
BAD_TX_POINTS = 10
BAD_BLOCK_POINTS = 50
BAD_MESSAGE_POINTS = 20
# Rejections that prove the sending peer relayed something no honest node would.
INVALID_TX_CODES = frozenset({"invalid_signature", "malformed_tx", "non_canonical", "unknown_field",
                              "wrong_chain_id", "tx_too_large", "invalid_msg", "unknown_msg_type"})
TX_IN_BATCHES_MAX = 256  # gossiped tx batches waiting for admission
# Rejections that may not hold later (the tx can become admissible).
TRANSIENT_TX_CODES = frozenset({"nonce_in_future", "mempool_full", "insufficient_funds"})
REPEATS_DELIVERED_MAX = 8  # copies of one consensus message handed to the driver, at most
REDELIVER_AFTER_S = 0.5  # a repeat this soon after a delivery is the flood's copy, not a re-send
# Consensus messages this large (proposals with txs) are relayed by announcement: peers get
# the hash and ask for the message if they lack it. Their author still sends them whole.
ANNOUNCE_BYTES_MIN = 16 * 1024
PULL_DELAY_S = 0.1  # wait this long for a direct copy before asking an announcer
PULL_TIMEOUT_S = 1.0  # then ask the next announcer if the message has not come
PULLS_PER_PEER_MAX = 8  # messages being asked for on one peer's announcement, at once
PULL_ANNOUNCERS_MAX = 16  # announcers remembered per message
HELD_MESSAGES_MAX = 8  # large messages kept to answer requests (a proposal is <= 4 MiB)
SERVED_PULLS_MAX = 64  # messages sent to one peer on request, each once per connection


class _Seen:
    """What the relay remembers of one consensus message."""

    __slots__ = ("origin", "deliveries", "last_s", "settled")

    def __init__(self, origin: str, now_s: float, settled: bool = False) -> None:
        self.origin = origin        # the peer it first came from ("" for our own)
        self.deliveries = 1         # copies handed to the driver
        self.last_s = now_s         # when the last one was
        self.settled = settled      # the driver admitted or rejected it: repeats stop here


class _Pull:
    """A large consensus message announced to this node that it has not received."""

    __slots__ = ("starter", "announcers", "asked")

    def __init__(self, announcer: str) -> None:
        self.starter = announcer       # the first announcer, whose pull quota it uses
        self.announcers = [announcer]  # peers that have it, in the order they said so
        self.asked = ""                # the peer asked last ("" : none yet)


class ConsensusRelay:
    """The BFT driver's transport over the peer manager.

    A message from a peer goes to the driver first; only when the driver reports it
    admitted (decoded, signature checked, new) is it relayed to the other peers, and a
    message it rejects (undecodable, bad signature) costs the peer that sent it. So junk
    travels one hop at most, and its sender is banned after a few.

    A repeat of a message is delivered again until the driver has settled it (admitted or
    rejected), as the transport contract asks: a message that arrived before the driver
    ran, or too far ahead to be used, is news when a validator re-sends it (the engines
    rebroadcast for exactly that, every few seconds). The copies that flooding brings in
    within ``REDELIVER_AFTER_S`` of a delivery are the same news and stop here, as do
    repeats of a settled message; one message is delivered at most
    ``REPEATS_DELIVERED_MAX`` times, so a peer cannot flood the driver's inbox with copies.

    Flooding a large message would bring each node one copy per peer: with n validators a
    proposal would cross every link, n - 1 copies into each node. So a message of at least
    ``ANNOUNCE_BYTES_MIN`` is sent whole only by the node that broadcasts it (its author,
    to every peer); a relay sends its hash (``have``, on ``CHANNEL_CONSENSUS_PULL``). A node
    that lacks the message ``PULL_DELAY_S`` after the first announcement (its direct copy
    is not on the way: the link to the author is down, or the copy was dropped) asks an
    announcer for it (``want``), and the next announcer after each ``PULL_TIMEOUT_S``. On a
    full mesh each node then receives each proposal once; on a sparse mesh a proposal
    takes one round trip and the delay longer per hop. One peer's announcements start at
    most ``PULLS_PER_PEER_MAX`` pulls at a time, so hashes of messages that do not exist
    cannot make a node ask without end.
    """

    def __init__(self, peers: PeerManager,
                 clock: Callable[[], float] = time.monotonic,
                 call_later: Callable[..., Any] | None = None,
                 stats: dict[str, int] | None = None) -> None:
        """``stats``: the dict its counters go in (the node's P2P stats)."""
        self.peers = peers
        self._clock = clock
        self._call_later = call_later or (
            lambda delay, fn, *args: asyncio.get_running_loop().call_later(delay, fn, *args))
        self._seen: BoundedMap[bytes, _Seen] = BoundedMap(SEEN_LEN_MAX)  # by message hash
        self._receiver: Callable[[bytes], None] | None = None
        self._held: BoundedMap[bytes, bytes] = BoundedMap(HELD_MESSAGES_MAX)  # hash -> message
        # Messages being pulled, at most PULLS_PER_PEER_MAX started by any one peer's
        # announcements, so announcing junk hashes cannot make a node ask without end.
        self._pulls: dict[bytes, _Pull] = {}
        self._pulls_by: dict[str, int] = {}  # starter -> pulls under way
        # peer -> messages sent it on request: each once per connection, so a peer cannot
        # make this node send a proposal again and again, yet one that reconnects (it
        # restarted and lost what it had) can ask again.
        self._served: BoundedMap[str, BoundedMap[bytes, None]] = BoundedMap(PEER_RECORDS_MAX)
        self.stats = stats if stats is not None else {}
        self.stats.update(consensus_announced=0, consensus_pulled=0, consensus_pulls_served=0,
                          consensus_haves_ignored=0)

    def broadcast(self, msg_bytes: bytes) -> None:
        key = sha256(msg_bytes)
        self._seen.put(key, _Seen("", self._clock(), settled=True))
        if len(msg_bytes) >= ANNOUNCE_BYTES_MIN:
            self._held.put(key, msg_bytes)
        self.peers.broadcast(CHANNEL_CONSENSUS, msg_bytes)

    def set_receiver(self, callback: Callable[[bytes], None]) -> None:
        self._receiver = callback

    def on_message(self, peer_id: str, payload: bytes) -> None:
        key = sha256(payload)
        entry = self._seen.get(key)
        now = self._clock()
        if entry is None:
            self._seen.put(key, _Seen(peer_id, now))
            if self._pulls:
                pull = self._end_pull(key)
                if pull is not None and pull.asked == peer_id:
                    self.stats["consensus_pulled"] += 1
        elif (entry.settled or entry.deliveries >= REPEATS_DELIVERED_MAX
              or now - entry.last_s < REDELIVER_AFTER_S):
            return
        else:
            entry.deliveries += 1
            entry.last_s = now
        if self._receiver is not None:
            self._receiver(payload)

    def _settle(self, msg_bytes: bytes) -> tuple[str, bytes]:
        """Mark a message judged; returns the peer it first came from ("" if unknown) and
        the message's hash (so a relay hashes a proposal once)."""
        key = sha256(msg_bytes)
        entry = self._seen.get(key)
        if entry is None:
            return "", key
        entry.settled = True
        return entry.origin, key

    def relay(self, msg_bytes: bytes) -> None:
        origin, key = self._settle(msg_bytes)
        exclude = (origin,) if origin else ()
        if len(msg_bytes) < ANNOUNCE_BYTES_MIN:
            self.peers.broadcast(CHANNEL_CONSENSUS, msg_bytes, exclude=exclude)
            return
        self._held.put(key, msg_bytes)
        self.stats["consensus_announced"] += 1
        self.peers.broadcast(CHANNEL_CONSENSUS_PULL, encode({"t": "have", "h": key}),
                             exclude=exclude)

    def on_pull_message(self, peer_id: str, payload: bytes) -> None:
        """A ``have`` or ``want`` of a large consensus message, by its hash."""
        try:
            m = decode(payload, 128)
            kind, key = m["t"], m["h"]
            if kind not in ("have", "want") or type(key) is not bytes or len(key) != 32:
                raise DecodeError("bad consensus pull message")
        except (DecodeError, KeyError, TypeError):
            self.peers.report(peer_id, "malformed consensus pull message", BAD_MESSAGE_POINTS)
            return
        if kind == "want":
            held = self._held.get(key)
            if held is None:
                return
            served = self._served.get(peer_id)
            if served is None:
                served = BoundedMap(SERVED_PULLS_MAX)
                self._served.put(peer_id, served)
            if served.add_new(key, None):
                if self.peers.send(peer_id, CHANNEL_CONSENSUS, held):
                    self.stats["consensus_pulls_served"] += 1
                else:
                    served.pop(key)  # its queue is full: it may ask again
            return
        if key in self._seen:
            return  # received already (or sent: it is ours)
        pull = self._pulls.get(key)
        if pull is None:
            started = self._pulls_by.get(peer_id, 0)
            if started >= PULLS_PER_PEER_MAX:
                self.stats["consensus_haves_ignored"] += 1
                return
            pull = self._pulls[key] = _Pull(peer_id)
            self._pulls_by[peer_id] = started + 1
            self._call_later(PULL_DELAY_S, self._pull_due, key, pull)
        elif peer_id not in pull.announcers and len(pull.announcers) < PULL_ANNOUNCERS_MAX:
            pull.announcers.append(peer_id)

    def peer_gone(self, peer_id: str) -> None:
        """A connection ended: what it was sent on request may be asked for again on the
        next one, and it is no longer an announcer to ask."""
        self._served.pop(peer_id)
        for pull in self._pulls.values():
            if peer_id in pull.announcers:
                pull.announcers.remove(peer_id)

    def _pull_due(self, key: bytes, pull: _Pull) -> None:
        """Ask the next announcer for a message that has not come (none left: give up;
        a later announcement starts again). ``pull``: the pull this timer belongs to (a
        timer of a pull that ended is void, whatever came after it)."""
        if self._pulls.get(key) is not pull:
            return
        if key in self._seen:  # it came another way (our own broadcast, say)
            self._end_pull(key)
            return
        while pull.announcers:
            peer = pull.announcers.pop(0)
            if self.peers.send(peer, CHANNEL_CONSENSUS_PULL, encode({"t": "want", "h": key})):
                pull.asked = peer
                self._call_later(PULL_TIMEOUT_S, self._pull_due, key, pull)
                return
        self._end_pull(key)

    def _end_pull(self, key: bytes) -> _Pull | None:
        pull = self._pulls.pop(key, None)
        if pull is not None:
            left = self._pulls_by[pull.starter] - 1
            if left:
                self._pulls_by[pull.starter] = left
            else:
                del self._pulls_by[pull.starter]
        return pull

    def reject(self, msg_bytes: bytes, reason: str) -> None:
        origin, _ = self._settle(msg_bytes)
        if origin:
            self.peers.report(origin, f"invalid consensus message: {reason}",
                              BAD_MESSAGE_POINTS)


class NodeNetwork:
    def __init__(self, node: "Node", config: PeerManagerConfig, node_key: Any) -> None:
        self.node = node
        self.chain = node.chain
        self.peers = PeerManager(node_key, config, on_message=self._on_message,
                                 on_peer_connected=self._on_connected,
                                 on_peer_disconnected=self._on_disconnected)
        self.stats: dict[str, int] = {}
        self.relay = ConsensusRelay(self.peers, stats=self.stats)
        self._tx_seen: BoundedMap[bytes, None] = BoundedMap(SEEN_LEN_MAX)
        self._tx_out: list[tuple[bytes, bytes, str | None]] = []  # (hash, raw, source peer)
        self._tx_out_ready = asyncio.Event()  # set while _tx_out holds something
        # hash -> (asked at, the peer asked)
        self._tx_wanted: BoundedMap[bytes, tuple[float, str]] = BoundedMap(SEEN_LEN_MAX)
        # peer -> (txs asked of it and not arrived, when that was counted): a peer announcing
        # hashes of txs it never sends cannot make this node ask without end.
        self._tx_owed: BoundedMap[str, tuple[float, float]] = BoundedMap(PEER_RECORDS_MAX)
        # Per peer, the txs already sent to it in answer to a "want": each is sent once per
        # connection, so a peer cannot make this node send the same txs again and again (a
        # 128 KiB "want" can draw ~600 KiB of txs). The hot path pays nothing for it: a
        # full mesh rarely asks, since whole txs usually arrive before their announcements.
        self._tx_served: dict[str, BoundedMap[bytes, None]] = {}
        # Gossiped batches wait here for admission, which one task does in arrival order
        # (a sender's nonces stay in order) while the loop runs on during verification.
        self._tx_in: asyncio.Queue[tuple[str, list[tuple[bytes, bytes]]]] = asyncio.Queue(
            TX_IN_BATCHES_MAX)
        self.peer_heights: dict[str, int] = {}
        self._pending: dict[int, tuple[str, float]] = {}  # height -> (asked peer, asked at)
        # peer -> (timeouts since it last served a block, end of its cooldown); kept across
        # reconnections, so a peer cannot shed its record by reconnecting.
        self._sync_cooldown: BoundedMap[str, tuple[int, float]] = BoundedMap(PEER_RECORDS_MAX)
        self._received: dict[int, tuple[str, bytes, bytes]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self.syncing = False
        self.clock: Callable[[], float] = time.monotonic  # block sync's timeouts (tests set it)
        self.on_synced_block: Callable[[], None] | None = None
        self.stats.update({"txs_gossiped_in": 0, "txs_gossiped_out": 0, "tx_hashes_announced": 0,
                      "txs_requested": 0, "blocks_synced": 0, "bad_peer_msgs": 0,
                      "tx_batches_dropped": 0, "tx_wants_refused": 0, "sync_gets_refused": 0,
                      "sync_timeouts": 0, "tx_haves_ignored": 0})

    def peer_count(self) -> int:
        return len(self.peers.peer_ids())

    async def start(self) -> None:
        await self.peers.start()
        self._tasks = [asyncio.create_task(self._status_loop(), name="p2p-status"),
                       asyncio.create_task(self._gossip_loop(), name="p2p-gossip"),
                       asyncio.create_task(self._admit_loop(), name="p2p-tx-admit"),
                       asyncio.create_task(self._sync_loop(), name="p2p-sync")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.peers.stop()

    # ---------------------------------------------------------------- dispatch
    def _on_connected(self, peer_id: str) -> None:
        self._send_status(peer_id)

    def _on_disconnected(self, peer_id: str) -> None:
        self.peer_heights.pop(peer_id, None)
        for h in [h for h, (p, _) in self._pending.items() if p == peer_id]:
            del self._pending[h]  # asked again of another peer at the next step
        self._tx_served.pop(peer_id, None)
        self.relay.peer_gone(peer_id)

    def _on_message(self, peer_id: str, channel: int, payload: bytes) -> None:
        if channel == CHANNEL_CONSENSUS:
            self.relay.on_message(peer_id, payload)
        elif channel == CHANNEL_CONSENSUS_PULL:
            self.relay.on_pull_message(peer_id, payload)
        elif channel == CHANNEL_MEMPOOL:
            self._on_txs(peer_id, payload)
        elif channel == CHANNEL_BLOCKSYNC:
            self._on_sync(peer_id, payload)

    def _bad(self, peer_id: str, reason: str, points: int) -> None:
        self.stats["bad_peer_msgs"] += 1
        self.peers.report(peer_id, reason, points)

    # ---------------------------------------------------------------- tx gossip
    def tx_admitted_locally(self, raw: bytes, tx_hash: bytes) -> None:
        if self._tx_seen.add_new(tx_hash, None):
            self._queue_out(tx_hash, raw, None)

    def _queue_out(self, tx_hash: bytes, raw: bytes, source: str | None) -> None:
        if not self._tx_out:
            self._tx_out_ready.set()
        self._tx_out.append((tx_hash, raw, source))

    def _on_txs(self, peer_id: str, payload: bytes) -> None:
        try:
            # Typed right here (a kind and a list of byte strings), so no plain-data walk.
            m = decode(payload, SYNC_MSG_BYTES_MAX, check_plain=False)
            if type(m) is not dict:
                raise DecodeError("tx gossip must be a map")
            kind, items = m["t"], m["items"]
            if type(kind) is not str or type(items) is not list \
                    or not all(type(x) is bytes for x in items):
                raise DecodeError("items must be byte strings")
        except (DecodeError, KeyError, TypeError):
            self._bad(peer_id, "malformed tx gossip", BAD_MESSAGE_POINTS)
            return
        if kind == "txs" and len(items) <= TX_GOSSIP_BATCH_MAX:
            self._on_full_txs(peer_id, items)
        elif kind in ("have", "want") and len(items) <= TX_HASHES_MAX and \
                all(len(h) == 32 for h in items):
            if kind == "have":
                self._on_have(peer_id, items)
            else:
                self._on_want(peer_id, items)
        else:
            self._bad(peer_id, "malformed tx gossip", BAD_MESSAGE_POINTS)

    def _on_have(self, peer_id: str, hashes: list[bytes]) -> None:
        now = self.clock()
        seen, wanted = self._tx_seen, self._tx_wanted
        room = TX_OWED_MAX - self._owed_by(peer_id, now)
        want = []
        for h in hashes:
            if h in seen:
                continue
            asked = wanted.get(h)
            if asked is None or now - asked[0] > TX_WANT_TIMEOUT_S:
                if len(want) >= room:
                    self.stats["tx_haves_ignored"] += 1
                    continue
                wanted.put(h, (now, peer_id))
                want.append(h)
        if want:
            self.stats["txs_requested"] += len(want)
            self._tx_owed.put(peer_id, (TX_OWED_MAX - room + len(want), now))
            self.peers.send(peer_id, CHANNEL_MEMPOOL, encode({"t": "want", "items": want}))

    def _owed_by(self, peer_id: str, now: float) -> float:
        """Txs asked of ``peer_id`` that have not arrived, less what time has forgiven."""
        owed = self._tx_owed.get(peer_id)
        if owed is None:
            return 0.0
        return max(0.0, owed[0] - (now - owed[1]) * TX_OWED_FORGIVEN_PER_S)

    def _on_want(self, peer_id: str, hashes: list[bytes]) -> None:
        served = self._tx_served.get(peer_id)
        if served is None:
            served = self._tx_served[peer_id] = BoundedMap(TX_SERVED_MAX)
        pool = self.chain.mempool
        picked: list[tuple[bytes, bytes]] = []
        for h in hashes:
            if h in served:  # sent already (or asked twice in this request)
                self.stats["tx_wants_refused"] += 1
            elif (tx := pool.get(h)) is not None:
                served.put(h, None)
                picked.append((h, tx.raw))
        for i in range(0, len(picked), TX_GOSSIP_BATCH_MAX):
            chunk = picked[i:i + TX_GOSSIP_BATCH_MAX]
            if not self.peers.send(peer_id, CHANNEL_MEMPOOL,
                                   encode({"t": "txs", "items": [raw for _, raw in chunk]})):
                for h, _ in chunk:  # not queued (the peer's queue is full): it may ask again
                    served.pop(h)

    def _on_full_txs(self, peer_id: str, raws: list[bytes]) -> None:
        seen = self._tx_seen
        fresh = [(h, raw) for raw in raws if seen.add_new(h := sha256(raw), None)]
        if not fresh:
            return
        if len(self._tx_wanted):
            now = self.clock()
            for h, _ in fresh:
                asked = self._tx_wanted.pop(h)
                if asked is not None:  # the peer asked has one tx less to answer for
                    owed = self._owed_by(asked[1], now)
                    if owed:
                        self._tx_owed.put(asked[1], (owed - 1, now))
        self.stats["txs_gossiped_in"] += len(fresh)
        try:
            self._tx_in.put_nowait((peer_id, fresh))
        except asyncio.QueueFull:  # overloaded: drop the batch, accept these txs again later
            self.stats["tx_batches_dropped"] += 1
            for h, _ in fresh:
                seen.pop(h)

    async def _admit_loop(self) -> None:
        mempool = self.chain.mempool
        while True:
            peer_id, fresh = await self._tx_in.get()
            try:
                parsed = await mempool.prepare_async([raw for _, raw in fresh],
                                                     [h for h, _ in fresh])
            except Exception:  # never let one batch stop gossip admission
                log.exception("gossiped tx batch failed")
                continue
            for (h, raw), res in zip(fresh, mempool.admit_many(parsed)):
                if not isinstance(res, ShareChainError):
                    self._queue_out(h, raw, peer_id)
                elif res.code in INVALID_TX_CODES:
                    self._bad(peer_id, f"gossiped an invalid tx ({res.code})", BAD_TX_POINTS)
                elif res.code in TRANSIENT_TX_CODES:
                    self._tx_seen.pop(h)  # may become admissible: accept it again later

    async def _gossip_loop(self) -> None:
        """Flush queued txs to peers, at most once per ``TX_GOSSIP_FLUSH_S``: a tx that
        comes after a quiet spell goes out at once, and under load the txs of each interval
        go out together. An idle node does not wake for it."""
        loop = asyncio.get_running_loop()
        last = -TX_GOSSIP_FLUSH_S
        while True:
            await self._tx_out_ready.wait()
            wait = last + TX_GOSSIP_FLUSH_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._tx_out_ready.clear()
            out, self._tx_out = self._tx_out, []
            last = loop.time()
            if out:
                self._flush(out)

    def _flush(self, out: list[tuple[bytes, bytes, str | None]]) -> None:
        """Push txs from clients whole to every peer; announce the ones that came from a
        peer to every other peer."""
        own = [raw for _, raw, src in out if src is None]
        for i in range(0, len(own), TX_GOSSIP_BATCH_MAX):
            self.peers.broadcast(CHANNEL_MEMPOOL,
                                 encode({"t": "txs", "items": own[i:i + TX_GOSSIP_BATCH_MAX]}))
        by_source: dict[str, list[bytes]] = {}
        for h, _, src in out:
            if src is not None:
                by_source.setdefault(src, []).append(h)
        for src, hashes in by_source.items():
            for i in range(0, len(hashes), TX_HASHES_MAX):
                self.peers.broadcast(CHANNEL_MEMPOOL,
                                     encode({"t": "have", "items": hashes[i:i + TX_HASHES_MAX]}),
                                     exclude=(src,))
            self.stats["tx_hashes_announced"] += len(hashes)
        self.stats["txs_gossiped_out"] += len(own)

    # ---------------------------------------------------------------- block sync
    def _send_status(self, peer_id: str | None = None) -> None:
        msg = encode({"t": "status", "height": self.chain.height()})
        if peer_id is None:
            self.peers.broadcast(CHANNEL_BLOCKSYNC, msg)
        else:
            self.peers.send(peer_id, CHANNEL_BLOCKSYNC, msg)

    async def _status_loop(self) -> None:
        while True:
            self._send_status()
            await asyncio.sleep(STATUS_INTERVAL_S)

    def _on_sync(self, peer_id: str, payload: bytes) -> None:
        try:
            m = decode(payload, SYNC_MSG_BYTES_MAX)
            kind, height = m["t"], m["height"]
            if type(kind) is not str or type(height) is not int or height < 0:
                raise DecodeError("bad sync message fields")
        except (DecodeError, KeyError, TypeError):
            self._bad(peer_id, "malformed sync message", BAD_MESSAGE_POINTS)
            return
        if kind == "status":
            self.peer_heights[peer_id] = height
        elif kind == "get":
            # A request is ~20 bytes and its answer up to a whole block: serve it only if the
            # answer can be queued, so a peer that asks faster than it reads cannot make this
            # node read and encode blocks only to drop them. It asks again after its timeout.
            room = self.peers.queue_room(peer_id)
            if room < SYNC_REPLY_ROOM_MIN:
                self.stats["sync_gets_refused"] += 1
                return
            raw = self.chain.store.block_raw(height)
            commit = self.chain.store.commit_raw(height)
            if raw is None or commit is None:
                reply = {"t": "none", "height": height}
            elif len(raw) + len(commit) + SYNC_REPLY_OVERHEAD > room:
                self.stats["sync_gets_refused"] += 1
                return
            else:
                reply = {"t": "block", "height": height, "block": raw, "commit": commit}
            self.peers.send(peer_id, CHANNEL_BLOCKSYNC, encode(reply))
        elif kind in ("block", "none"):
            pending = self._pending.get(height)
            if pending is None or pending[0] != peer_id:
                return  # an answer we did not ask this peer for
            del self._pending[height]
            if kind == "none":
                if height <= self.peer_heights.get(peer_id, -1):
                    # It announced this height and now says it has no such block.
                    self._bad(peer_id, "denied a block it announced", BAD_MESSAGE_POINTS)
            elif type(m.get("block")) is bytes and type(m.get("commit")) is bytes:
                self._sync_cooldown.pop(peer_id)  # it serves again: its record is cleared
                if height > self.chain.height():
                    self._received[height] = (peer_id, m["block"], m["commit"])
            else:
                self._bad(peer_id, "malformed block reply", BAD_MESSAGE_POINTS)

    def best_peer_height(self) -> int:
        """The greatest height a peer announced, not counting peers in a sync cooldown."""
        return max(self._sync_heights(self.clock()).values(), default=0)

    def _sync_heights(self, now: float) -> dict[str, int]:
        """Announced heights of the peers block sync may ask (those not cooling down)."""
        cooling = self._sync_cooldown
        if not len(cooling):
            return self.peer_heights
        return {p: h for p, h in self.peer_heights.items()
                if now >= (cooling.get(p) or (0, 0.0))[1]}

    def sync_cooldown(self, peer_id: str) -> tuple[int, float]:
        """(request timeouts since the peer last served a block, seconds of cooldown left)."""
        strikes, until = self._sync_cooldown.get(peer_id) or (0, 0.0)
        return strikes, max(0.0, until - self.clock())

    def _sync_timed_out(self, peer_id: str, now: float) -> None:
        """A request to ``peer_id`` went unanswered. Requests sent before its cooldown
        began time out together and count once."""
        self.stats["sync_timeouts"] += 1
        strikes, until = self._sync_cooldown.get(peer_id) or (0, 0.0)
        if now < until:
            return
        strikes += 1
        cooldown = min(SYNC_COOLDOWN_MAX_S, SYNC_REQUEST_TIMEOUT_S * 2 ** min(strikes - 1, 16))
        self._sync_cooldown.put(peer_id, (strikes, now + cooldown))
        log.info("peer %s left block requests unanswered (%d time(s)); asked only if no "
                 "other peer is ahead for %.0f s", peer_id[:8], strikes, cooldown)

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            try:
                await self._sync_step()
            except FatalError as exc:  # the store is full, say: no use trying again
                self.node.fail(exc)
                return
            except Exception:
                log.exception("block sync step failed")

    async def _sync_step(self) -> None:
        ours = self.chain.height()
        now = self.clock()
        for h, (peer, at) in list(self._pending.items()):
            if h <= ours:
                del self._pending[h]  # committed meanwhile: its answer is no longer needed
            elif now - at >= SYNC_REQUEST_TIMEOUT_S:
                del self._pending[h]
                self._sync_timed_out(peer, now)
        self.syncing = max(self._sync_heights(now).values(), default=0) > ours + 1
        if max(self.peer_heights.values(), default=0) <= ours:
            self._pending.clear()
            self._received.clear()
            return
        # Apply what arrived, in height order. Each block yields the loop (its signatures
        # are checked in the worker processes, and the loop gets a turn after it commits),
        # so consensus timers, peers and the API run on while a backlog is applied.
        applied = False
        while True:
            ours = self.chain.height()  # consensus may have committed during an await
            got = self._received.pop(ours + 1, None)
            if got is None:
                break
            peer_id, block_raw, commit_raw = got
            if not await self._apply(peer_id, ours + 1, block_raw, commit_raw):
                break
            applied = True
            await asyncio.sleep(0)
        ours = self.chain.height()
        for h in [h for h in self._received if h <= ours]:
            del self._received[h]  # committed by consensus meanwhile
        if applied and self.on_synced_block is not None:
            self.on_synced_block()
        # Request the window, spreading heights over the peers that have them and are not
        # cooling down after a timeout (a request that times out is asked again of another);
        # only if no other peer is ahead, of those cooling down (a busy peer that refused
        # some requests may be the one peer to sync from).
        heights = self.peer_heights
        now = self.clock()  # blocks were applied since the step began
        holders = (sorted(p for p, h in self._sync_heights(now).items() if h > ours)
                   or sorted(p for p, h in heights.items() if h > ours))
        if not holders:
            return
        best = max(heights[p] for p in holders)
        for i, h in enumerate(range(ours + 1, min(best, ours + SYNC_WINDOW) + 1)):
            if h in self._received or h in self._pending:
                continue
            peer = holders[i % len(holders)]
            if heights[peer] < h:
                peer = next((p for p in holders if heights[p] >= h), peer)
            if self.peers.send(peer, CHANNEL_BLOCKSYNC, encode({"t": "get", "height": h})):
                self._pending[h] = (peer, now)

    async def _apply(self, peer_id: str, height: int, block_raw: bytes,
                     commit_raw: bytes) -> bool:
        """Apply one synced block; False if it was not (bad, or no longer next)."""
        chain = self.chain
        try:
            block = decode_block(block_raw)
            commit = decode_commit(commit_raw)
            verify_commit(chain.chain_id, chain.validator_set(), commit, block.hash(), height)
            # Signatures are checked off the loop; validate_block then reuses the verdicts.
            reason = await chain.prevalidate(block)
            if chain.height() + 1 != height:
                return False  # consensus committed it meanwhile
            if reason is None:
                reason = chain.validate_block(block)
            if reason is not None:
                raise ShareChainError("invalid_block", reason)
        except ShareChainError as exc:
            log.warning("peer %s sent a bad block %d: %s", peer_id[:8], height, exc.message)
            self._bad(peer_id, f"bad synced block: {exc.message}", BAD_BLOCK_POINTS)
            return False
        if chain.height() + 1 != height:
            return False
        chain.commit_block(block, commit)
        self.stats["blocks_synced"] += 1
        return True
