"""Peer manager: who we are connected to, what we send them, and whom we refuse.

Theory of operation
-------------------
The manager listens for inbound TCP connections and keeps one dial loop per persistent peer
(``id@host:port``). Every socket first runs the authenticated handshake of
``secret_conn``; only then does the peer id exist, so the checks that need it (self
connection, ban, duplicate, per-direction limits) run in ``_admit``, one synchronous
function, which makes them atomic on the event loop.

An admitted peer owns three tasks: a reader (decrypt, dispatch to the handler, answer pings,
enforce the idle timeout), a writer (drain the bounded send queue, enforce a write timeout)
and a pinger. Whichever ends first, or a close request (ban, replacement, ``stop``), tears
the peer down; ``on_peer_disconnected`` always follows ``on_peer_connected`` for the same
connection, and a replacing connection's ``on_peer_connected`` waits for its predecessor's
``on_peer_disconnected``.

Messages are ``channel (1 byte) || payload`` inside one encrypted frame. Channel 0 belongs to
this module (ping/pong); the node registers the others. ``send`` never blocks: it appends to
the peer's queue, bounded in messages and bytes, or drops and counts. The handler is called
from the peer's reader task, so an async handler that is slow slows only that peer (TCP
backpressure), never the others.

Misbehaviour is scored per peer id, with slow linear decay, and kept across reconnects so a
peer cannot reset it by redialing. Crossing the threshold bans the id (and, for inbound
peers, the IP) for ``ban_duration_s``. Frames that fail decryption or exceed the size limit
score the full threshold at once.

Two nodes that dial each other at the same moment end up with two connections. Both sides
keep the same one without talking about it: between connections dialed by different nodes,
the one dialed by the lower node id wins; between connections dialed by the same node, the
newer wins (only the key holder can open one, and a new one proves the peer is alive).

Time comes from an injectable monotonic clock and jitter from an injectable ``random.Random``
so tests can pin them; this layer is allowed real I/O and randomness, the cores above it are
not.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import nacl.signing

from sharechain.p2p.secret_conn import (
    CLOSE_TIMEOUT_S,
    DEFAULT_NETWORK_ID,
    FRAME_BYTES_MAX,
    HANDSHAKE_TIMEOUT_S,
    ConnectionClosed,
    FrameError,
    InvalidPeerAddress,
    MessageTooLarge,
    NetworkMismatch,
    NonceExhausted,
    P2PError,
    PeerIdMismatch,
    SecretConnection,
    handshake,
    node_id_from_pubkey,
    validate_node_id,
)

log = logging.getLogger("sharechain.p2p")

# ---------------------------------------------------------------------------------------------
# Channels. Channel 0 is reserved for this module; the node registers the others.
# ---------------------------------------------------------------------------------------------

CHANNEL_P2P = 0x00
CHANNEL_CONSENSUS = 0x20
CHANNEL_CONSENSUS_PULL = 0x21  # hashes of large consensus messages: have / want
CHANNEL_MEMPOOL = 0x30
CHANNEL_BLOCKSYNC = 0x40
DEFAULT_CHANNELS = frozenset({CHANNEL_CONSENSUS, CHANNEL_CONSENSUS_PULL, CHANNEL_MEMPOOL,
                              CHANNEL_BLOCKSYNC})

CONTROL_PING = 0x01
CONTROL_PONG = 0x02
CONTROL_MESSAGE_BYTES = 1 + 1 + 8  # channel, type, 64-bit nonce

# ---------------------------------------------------------------------------------------------
# Limits and timings (defaults of PeerManagerConfig).
# ---------------------------------------------------------------------------------------------

DEFAULT_P2P_PORT = 26656
INBOUND_PEERS_MAX = 40
OUTBOUND_PEERS_MAX = 10
HANDSHAKES_PENDING_MAX = 16
HANDSHAKES_PENDING_PER_IP_MAX = 4
DIAL_TIMEOUT_S = 5.0
PEER_QUEUE_LEN_MAX = 1024
PEER_QUEUE_BYTES_MAX = 8 * 1024 * 1024
CONTROL_QUEUE_LEN_MAX = 4
PING_INTERVAL_S = 10.0
IDLE_TIMEOUT_S = 30.0
WRITE_TIMEOUT_S = 20.0
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 60.0
STABLE_CONNECTION_S = 30.0
BAN_SCORE_THRESHOLD = 100
BAN_DURATION_S = 3600.0
SCORE_DECAY_PER_S = 1.0 / 60.0
UNKNOWN_CHANNEL_POINTS = 25
SCORES_TRACKED_MAX = 4096
BANS_TRACKED_MAX = 10_000
STOP_GRACE_S = 1.0

Direction = Literal["inbound", "outbound"]
INBOUND: Direction = "inbound"
OUTBOUND: Direction = "outbound"

MessageCallback = Callable[[str, int, bytes], Awaitable[None] | None]
PeerCallback = Callable[[str], Awaitable[None] | None]

REJECT_REASONS = (
    "self",
    "banned",
    "duplicate",
    "inbound_full",
    "outbound_full",
    "handshakes_full",
    "stopping",
)


class PeerRejected(P2PError):
    """A connection was authenticated but refused (self, banned, duplicate, limits)."""

    code = "peer_rejected"

    def __init__(self, reason: str, peer_id: str) -> None:
        super().__init__(f"connection with {peer_id} refused: {reason}")
        self.reason = reason
        self.peer_id = peer_id


class DialFailed(P2PError):
    code = "dial_failed"


class ListenFailed(P2PError):
    code = "listen_failed"


# ---------------------------------------------------------------------------------------------
# Addresses, configuration, status records.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A dialable, authenticated address: ``<40 hex node id>@<host>:<port>``."""

    peer_id: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> PeerAddress:
        peer_id, at, hostport = text.strip().partition("@")
        host, colon, port_text = hostport.rpartition(":")
        if not at or not colon or not host:
            raise InvalidPeerAddress(f"peer address must look like id@host:port: {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidPeerAddress(f"peer address has an invalid port: {text!r}")
        return cls(validate_node_id(peer_id), host, int(port_text))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.peer_id}@{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PeerManagerConfig:
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_P2P_PORT  # 0 picks an ephemeral port
    listen: bool = True
    network_id: str = DEFAULT_NETWORK_ID
    persistent_peers: tuple[str, ...] = ()
    channels: frozenset[int] = DEFAULT_CHANNELS
    inbound_peers_max: int = INBOUND_PEERS_MAX
    outbound_peers_max: int = OUTBOUND_PEERS_MAX
    handshakes_pending_max: int = HANDSHAKES_PENDING_MAX
    handshakes_pending_per_ip_max: int = HANDSHAKES_PENDING_PER_IP_MAX
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    dial_timeout_s: float = DIAL_TIMEOUT_S
    frame_bytes_max: int = FRAME_BYTES_MAX
    queue_len_max: int = PEER_QUEUE_LEN_MAX
    queue_bytes_max: int = PEER_QUEUE_BYTES_MAX
    ping_interval_s: float = PING_INTERVAL_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    write_timeout_s: float = WRITE_TIMEOUT_S
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_max_s: float = BACKOFF_MAX_S
    stable_connection_s: float = STABLE_CONNECTION_S
    ban_score_threshold: int = BAN_SCORE_THRESHOLD
    ban_duration_s: float = BAN_DURATION_S
    ban_ip: bool = True
    score_decay_per_s: float = SCORE_DECAY_PER_S
    stop_grace_s: float = STOP_GRACE_S

    def __post_init__(self) -> None:
        positive = {
            "inbound_peers_max": self.inbound_peers_max,
            "outbound_peers_max": self.outbound_peers_max,
            "handshakes_pending_max": self.handshakes_pending_max,
            "handshakes_pending_per_ip_max": self.handshakes_pending_per_ip_max,
            "handshake_timeout_s": self.handshake_timeout_s,
            "dial_timeout_s": self.dial_timeout_s,
            "queue_len_max": self.queue_len_max,
            "queue_bytes_max": self.queue_bytes_max,
            "ping_interval_s": self.ping_interval_s,
            "write_timeout_s": self.write_timeout_s,
            "backoff_base_s": self.backoff_base_s,
            "ban_score_threshold": self.ban_score_threshold,
            "ban_duration_s": self.ban_duration_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"PeerManagerConfig.{name} must be positive, got {value}")
        if self.idle_timeout_s <= self.ping_interval_s:
            raise ValueError("idle_timeout_s must exceed ping_interval_s or idle peers drop")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be at least backoff_base_s")
        if any(not 0 < c < 256 for c in self.channels):
            raise ValueError("channels must be in 1..255; channel 0 is reserved for p2p")
        for address in self.persistent_peers:
            PeerAddress.parse(address)


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One row of the node's status endpoint."""

    peer_id: str
    host: str
    port: int
    direction: Direction
    connected_since_unix_s: float
    bytes_in: int
    bytes_out: int
    msgs_in: int
    msgs_out: int
    msgs_dropped: int
    queue_len: int
    queue_bytes: int
    score: float
    rtt_ms: float | None


@dataclass
class _Counters:
    handshake_failures_total: int = 0
    dial_failures_total: int = 0
    connections_total: int = 0
    disconnects_total: int = 0
    messages_received_total: int = 0
    messages_sent_total: int = 0
    messages_dropped_total: int = 0
    bytes_received_closed: int = 0
    bytes_sent_closed: int = 0
    misbehaviour_reports_total: int = 0
    bans_total: int = 0
    handler_errors_total: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))


@dataclass
class _Score:
    points: float
    updated_at_s: float
    ip: str | None


def backoff_delay_s(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d) with d = min(max, base * 2^n).

    Jitter keeps a fleet of nodes that lost the same peer from redialing it in lockstep.
    """
    ceiling = min(max_s, base_s * 2.0 ** min(attempt, 32))
    return ceiling * (0.5 + 0.5 * rng.random())


# ---------------------------------------------------------------------------------------------
# One connected peer.
# ---------------------------------------------------------------------------------------------


class _Peer:
    def __init__(
        self,
        conn: SecretConnection,
        direction: Direction,
        dialer_id: str,
        host: str,
        port: int,
        now_s: float,
        wall_s: float,
    ) -> None:
        self.conn = conn
        self.peer_id = conn.peer_id
        self.direction = direction
        self.dialer_id = dialer_id
        self.host = host
        self.port = port
        self.connected_at_s = now_s
        self.connected_since_unix_s = wall_s
        self.queue: deque[bytes] = deque()
        self.queue_bytes = 0
        self.control: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.closing = asyncio.Event()
        self.finished = asyncio.Event()
        self.close_reason = ""
        self.abort_on_close = False
        self.notified = False
        self.predecessor: _Peer | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.msgs_in = 0
        self.msgs_out = 0
        self.msgs_dropped = 0
        self.ping_seq = 0
        self.ping_sent_at_s: float | None = None
        self.rtt_s: float | None = None

    def request_close(self, reason: str, *, abort: bool) -> None:
        if not self.closing.is_set():
            self.close_reason = reason
            self.closing.set()
        if abort:
            # Stop reading from a hostile peer now, not after the tasks wind down.
            self.abort_on_close = True
            self.conn.abort()


# ---------------------------------------------------------------------------------------------
# The manager.
# ---------------------------------------------------------------------------------------------


class PeerManager:
    """Owns the listener, the dial loops and every peer connection of one node.

    All methods must be called from the event loop thread. ``send``, ``broadcast``, ``report``,
    ``peers`` and ``metrics`` never block.
    """

    def __init__(
        self,
        node_key: nacl.signing.SigningKey,
        config: PeerManagerConfig,
        *,
        on_message: MessageCallback | None = None,
        on_peer_connected: PeerCallback | None = None,
        on_peer_disconnected: PeerCallback | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = node_key
        self._cfg = config
        self.node_id = node_id_from_pubkey(bytes(node_key.verify_key))
        self._on_message = on_message
        self._on_peer_connected = on_peer_connected
        self._on_peer_disconnected = on_peer_disconnected
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._wall_clock = wall_clock
        self._persistent = [PeerAddress.parse(a) for a in config.persistent_peers]
        self._peers: dict[str, _Peer] = {}
        self._scores: dict[str, _Score] = {}
        self._bans_by_id: dict[str, float] = {}
        self._bans_by_ip: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = False
        self._stopping = False
        self._handshakes_pending = 0
        self._handshakes_pending_by_ip: dict[str, int] = {}
        # Streams still in their handshake, so stop() can cut them short.
        self._handshaking: set[asyncio.StreamWriter] = set()
        self._counters = _Counters()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the listener and start dialing persistent peers. A manager starts once."""
        if self._started:
            raise RuntimeError("PeerManager.start called twice")
        self._started = True
        self._stop_event = asyncio.Event()
        if self._cfg.listen:
            try:
                self._server = await asyncio.start_server(
                    self._accept, self._cfg.listen_host, self._cfg.listen_port
                )
            except OSError as exc:
                self._stopping = True
                where = f"{self._cfg.listen_host}:{self._cfg.listen_port}"
                raise ListenFailed(f"cannot listen on {where}: {exc}") from exc
        for address in self._persistent:
            if address.peer_id == self.node_id:
                log.warning("p2p: ignoring persistent peer %s: it is this node", address)
                continue
            self._spawn(self._persistent_loop(address), f"p2p-dial-{address.peer_id[:8]}")

    async def stop(self) -> None:
        """Close the listener and every connection, and wait for all tasks to finish."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._handshaking):
            writer.transport.abort()
        for peer in list(self._peers.values()):
            peer.request_close("node stopping", abort=False)
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._cfg.stop_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def listen_address(self) -> tuple[str, int]:
        """The bound (host, port); useful when ``listen_port`` was 0."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("PeerManager is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def dial(self, address: str) -> str:
        """Connect once to ``id@host:port`` (no retries) and return the peer id.

        Raises ``PeerRejected`` if the peer is already connected, banned, this node, or the
        outbound limit is reached; ``DialFailed`` or a ``HandshakeError`` otherwise.
        """
        peer = await self._connect(PeerAddress.parse(address))
        self._spawn(self._run_peer(peer), f"p2p-peer-{peer.peer_id[:8]}")
        return peer.peer_id

    # -- sending ----------------------------------------------------------------------------

    def send(self, peer_id: str, channel: int, payload: bytes) -> bool:
        """Queue ``payload`` for one peer. Returns False if not connected, too big, or full."""
        self._check_channel(channel)
        peer = self._peers.get(peer_id)
        if peer is None or peer.closing.is_set():
            return False
        return self._enqueue(peer, bytes([channel]) + payload)

    def broadcast(self, channel: int, payload: bytes, exclude: Iterable[str] = ()) -> int:
        """Queue ``payload`` for every connected peer not in ``exclude``; return how many."""
        self._check_channel(channel)
        skip = set(exclude)
        # One frame object shared by all queues: broadcasting costs one copy, not one per peer.
        frame = bytes([channel]) + payload
        queued = 0
        for peer in list(self._peers.values()):
            if peer.peer_id not in skip and not peer.closing.is_set():
                queued += self._enqueue(peer, frame)
        return queued

    def _check_channel(self, channel: int) -> None:
        if channel not in self._cfg.channels:
            raise ValueError(f"channel {channel:#04x} is not registered")

    def _enqueue(self, peer: _Peer, frame: bytes) -> bool:
        too_big = len(frame) > peer.conn.message_bytes_max
        full = (
            len(peer.queue) >= self._cfg.queue_len_max
            or peer.queue_bytes + len(frame) > self._cfg.queue_bytes_max
        )
        if too_big or full:
            peer.msgs_dropped += 1
            self._counters.messages_dropped_total += 1
            return False
        peer.queue.append(frame)
        peer.queue_bytes += len(frame)
        peer.wake.set()
        return True

    # -- misbehaviour and bans --------------------------------------------------------------

    def report(self, peer_id: str, reason: str, points: int) -> None:
        """Add misbehaviour points; crossing the threshold disconnects and bans the peer."""
        if points <= 0:
            raise ValueError("misbehaviour points must be positive")
        now = self._clock()
        peer = self._peers.get(peer_id)
        ip = peer.host if peer is not None and peer.direction == INBOUND else None
        score = self._decayed_score(peer_id, now)
        score.points += points
        score.ip = ip or score.ip
        self._counters.misbehaviour_reports_total += 1
        log.info("p2p: peer %s misbehaved (%s, +%d -> %.0f)", peer_id, reason, points, score.points)
        if score.points >= self._cfg.ban_score_threshold:
            self._scores.pop(peer_id, None)
            self.ban(peer_id, reason, ip=score.ip)

    def ban(
        self, peer_id: str, reason: str, *, ip: str | None = None, duration_s: float | None = None
    ) -> None:
        """Ban ``peer_id`` (and ``ip`` if given and IP bans are on) and disconnect it."""
        until = self._clock() + (duration_s if duration_s is not None else self._cfg.ban_duration_s)
        _bounded_put(self._bans_by_id, peer_id, until, self._clock())
        banned_ip = ip if self._cfg.ban_ip else None
        if banned_ip is not None:
            _bounded_put(self._bans_by_ip, banned_ip, until, self._clock())
        self._counters.bans_total += 1
        log.warning("p2p: banned peer %s (ip %s) for %s", peer_id, banned_ip or "-", reason)
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.request_close(f"banned: {reason}", abort=True)

    def unban(self, peer_id: str) -> None:
        """Lift a ban on ``peer_id`` (an operator action; IP bans stay until they expire)."""
        self._bans_by_id.pop(peer_id, None)

    def is_banned(self, peer_id: str) -> bool:
        return self._ban_remaining_s(self._bans_by_id, peer_id) > 0

    def disconnect(self, peer_id: str, reason: str = "requested") -> bool:
        """Close the connection to ``peer_id`` without penalty; persistent peers redial."""
        peer = self._peers.get(peer_id)
        if peer is None:
            return False
        peer.request_close(reason, abort=False)
        return True

    def _decayed_score(self, peer_id: str, now: float) -> _Score:
        score = self._scores.pop(peer_id, None)
        if score is None:
            score = _Score(0.0, now, None)
        elapsed = max(0.0, now - score.updated_at_s)
        score.points = max(0.0, score.points - elapsed * self._cfg.score_decay_per_s)
        score.updated_at_s = now
        # Re-inserting keeps the dict ordered by last update, so the stalest entry goes first.
        self._scores[peer_id] = score
        if len(self._scores) > SCORES_TRACKED_MAX:
            del self._scores[next(iter(self._scores))]
        return score

    def _ban_remaining_s(self, bans: dict[str, float], key: str) -> float:
        until = bans.get(key)
        if until is None:
            return 0.0
        remaining = until - self._clock()
        if remaining <= 0:
            del bans[key]
            return 0.0
        return remaining

    # -- status and metrics -----------------------------------------------------------------

    def peer_ids(self) -> list[str]:
        return sorted(self._peers)

    def queue_room(self, peer_id: str) -> int:
        """Bytes of messages that can still be queued for the peer now (0 if it is not
        connected or its queue is full): lets a sender skip work whose result would be
        dropped."""
        peer = self._peers.get(peer_id)
        if peer is None or peer.closing.is_set() or len(peer.queue) >= self._cfg.queue_len_max:
            return 0
        return max(0, self._cfg.queue_bytes_max - peer.queue_bytes)

    def peers(self) -> list[PeerInfo]:
        now = self._clock()
        rows = []
        for peer in sorted(self._peers.values(), key=lambda p: p.peer_id):
            score = self._scores.get(peer.peer_id)
            points = 0.0
            if score is not None:
                decay = (now - score.updated_at_s) * self._cfg.score_decay_per_s
                points = max(0.0, score.points - decay)
            rows.append(
                PeerInfo(
                    peer_id=peer.peer_id,
                    host=peer.host,
                    port=peer.port,
                    direction=peer.direction,
                    connected_since_unix_s=peer.connected_since_unix_s,
                    bytes_in=peer.conn.bytes_received,
                    bytes_out=peer.conn.bytes_sent,
                    msgs_in=peer.msgs_in,
                    msgs_out=peer.msgs_out,
                    msgs_dropped=peer.msgs_dropped,
                    queue_len=len(peer.queue),
                    queue_bytes=peer.queue_bytes,
                    score=round(points, 2),
                    rtt_ms=None if peer.rtt_s is None else peer.rtt_s * 1000.0,
                )
            )
        return rows

    def metrics(self) -> dict[str, int]:
        """Flat counters and gauges, named for Prometheus (``*_total`` are counters)."""
        c = self._counters
        live = list(self._peers.values())
        now_bans = sum(1 for until in self._bans_by_id.values() if until > self._clock())
        out = {
            "p2p_peers": len(live),
            "p2p_peers_inbound": sum(1 for p in live if p.direction == INBOUND),
            "p2p_peers_outbound": sum(1 for p in live if p.direction == OUTBOUND),
            "p2p_handshakes_pending": self._handshakes_pending,
            "p2p_bans_active": now_bans,
            "p2p_connections_total": c.connections_total,
            "p2p_disconnects_total": c.disconnects_total,
            "p2p_handshake_failures_total": c.handshake_failures_total,
            "p2p_dial_failures_total": c.dial_failures_total,
            "p2p_messages_received_total": c.messages_received_total,
            "p2p_messages_sent_total": c.messages_sent_total,
            "p2p_messages_dropped_total": c.messages_dropped_total,
            "p2p_bytes_received_total": c.bytes_received_closed
            + sum(p.conn.bytes_received for p in live),
            "p2p_bytes_sent_total": c.bytes_sent_closed + sum(p.conn.bytes_sent for p in live),
            "p2p_misbehaviour_reports_total": c.misbehaviour_reports_total,
            "p2p_bans_total": c.bans_total,
            "p2p_handler_errors_total": c.handler_errors_total,
            "p2p_connections_rejected_total": sum(c.rejected.values()),
        }
        for reason, count in c.rejected.items():
            out[f"p2p_connections_rejected_{reason}_total"] = count
        return out

    # -- accepting and dialing --------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain function, so asyncio does not wrap it in a task we cannot track.
        peername = writer.get_extra_info("peername")
        host, port = (str(peername[0]), int(peername[1])) if peername else ("?", 0)
        reason = None
        if self._stopping:
            reason = "stopping"
        elif self._ban_remaining_s(self._bans_by_ip, host) > 0:
            reason = "banned"
        elif (
            self._handshakes_pending >= self._cfg.handshakes_pending_max
            or self._handshakes_pending_by_ip.get(host, 0)
            >= self._cfg.handshakes_pending_per_ip_max
        ):
            reason = "handshakes_full"
        if reason is not None:
            # Refuse before the handshake: a banned or flooding host costs us no crypto.
            self._counters.rejected[reason] += 1
            writer.transport.abort()
            return
        self._handshakes_pending += 1
        self._handshakes_pending_by_ip[host] = self._handshakes_pending_by_ip.get(host, 0) + 1
        self._handshaking.add(writer)
        self._spawn(self._handle_inbound(reader, writer, host, port), "p2p-inbound")

    async def _handle_inbound(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        try:
            conn = await self._handshake(reader, writer, None)
        except P2PError as exc:
            self._counters.handshake_failures_total += 1
            log.debug("p2p: inbound handshake from %s:%d failed: %s", host, port, exc)
            return
        finally:
            self._handshakes_pending -= 1
            left = self._handshakes_pending_by_ip.pop(host) - 1
            if left:
                self._handshakes_pending_by_ip[host] = left
            self._handshaking.discard(writer)
        try:
            peer = self._admit(conn, INBOUND, host, port)
        except PeerRejected as exc:
            log.debug("p2p: %s", exc)
            return
        await self._run_peer(peer)

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, expected: str | None
    ) -> SecretConnection:
        return await handshake(
            reader,
            writer,
            self._key,
            expected,
            self._cfg.handshake_timeout_s,
            network_id=self._cfg.network_id,
            frame_bytes_max=self._cfg.frame_bytes_max,
        )

    async def _connect(self, address: PeerAddress) -> _Peer:
        # The cheap checks first: no socket for a peer we would refuse anyway.
        reason = self._refusal(address.peer_id, OUTBOUND)
        if reason is None and address.peer_id in self._peers:
            reason = "duplicate"
        if reason is not None:
            self._counters.rejected[reason] += 1
            raise PeerRejected(reason, address.peer_id)
        try:
            async with asyncio.timeout(self._cfg.dial_timeout_s):
                reader, writer = await asyncio.open_connection(address.host, address.port)
        except (OSError, TimeoutError) as exc:
            raise DialFailed(f"could not connect to {address}: {exc!r}") from exc
        self._handshaking.add(writer)
        try:
            conn = await self._handshake(reader, writer, address.peer_id)
        finally:
            self._handshaking.discard(writer)
        return self._admit(conn, OUTBOUND, address.host, address.port)

    async def _persistent_loop(self, address: PeerAddress) -> None:
        attempt = 0
        while not self._stopping:
            existing = self._peers.get(address.peer_id)
            if existing is not None:
                # Already connected (perhaps it dialed us): wait for that connection to end.
                await existing.finished.wait()
                continue
            ban_left_s = self._ban_remaining_s(self._bans_by_id, address.peer_id)
            if ban_left_s > 0:
                await self._sleep(ban_left_s)
                continue
            try:
                peer = await self._connect(address)
            except P2PError as exc:
                self._counters.dial_failures_total += 1
                delay_s = self._backoff(attempt)
                attempt += 1
                # A wrong key or network is a configuration error worth an operator's eye;
                # an unreachable peer is routine.
                level = (
                    logging.WARNING
                    if isinstance(exc, PeerIdMismatch | NetworkMismatch)
                    else logging.DEBUG
                )
                log.log(level, "p2p: dial %s failed (%s); retry in %.2f s", address, exc, delay_s)
                await self._sleep(delay_s)
                continue
            await self._run_peer(peer)
            if self._clock() - peer.connected_at_s >= self._cfg.stable_connection_s:
                attempt = 0
            # Back off after a disconnect too, or a peer that accepts then drops us at once
            # would have us redialing in a hot loop.
            await self._sleep(self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return backoff_delay_s(
            attempt, self._cfg.backoff_base_s, self._cfg.backoff_max_s, self._rng
        )

    async def _sleep(self, delay_s: float) -> None:
        """Sleep, but wake at once when the manager stops."""
        if self._stop_event is None:
            return
        try:
            async with asyncio.timeout(delay_s):
                await self._stop_event.wait()
        except TimeoutError:
            pass

    def _admit(self, conn: SecretConnection, direction: Direction, host: str, port: int) -> _Peer:
        """Decide whether an authenticated connection becomes a peer; no awaits inside."""
        peer_id = conn.peer_id
        dialer_id = self.node_id if direction == OUTBOUND else peer_id
        existing = self._peers.get(peer_id)
        if existing is not None:
            duplicate = not _new_connection_wins(existing.dialer_id, dialer_id)
            reason = "duplicate" if duplicate else self._refusal(peer_id, None)
        else:
            reason = self._refusal(peer_id, direction)
        if reason is not None:
            self._counters.rejected[reason] += 1
            conn.abort()
            raise PeerRejected(reason, peer_id)
        peer = _Peer(conn, direction, dialer_id, host, port, self._clock(), self._wall_clock())
        if existing is not None:
            peer.predecessor = existing
            existing.request_close("replaced by a newer connection", abort=False)
        self._peers[peer_id] = peer
        self._counters.connections_total += 1
        return peer

    def _refusal(self, peer_id: str, direction: Direction | None) -> str | None:
        """Why a connection with ``peer_id`` would be refused; ``direction`` checks limits."""
        if self._stopping:
            return "stopping"
        if peer_id == self.node_id:
            return "self"
        if self.is_banned(peer_id):
            return "banned"
        if direction == INBOUND and self._count(INBOUND) >= self._cfg.inbound_peers_max:
            return "inbound_full"
        if direction == OUTBOUND and self._count(OUTBOUND) >= self._cfg.outbound_peers_max:
            return "outbound_full"
        return None

    def _count(self, direction: Direction) -> int:
        return sum(1 for p in self._peers.values() if p.direction == direction)

    # -- running a peer ---------------------------------------------------------------------

    async def _run_peer(self, peer: _Peer) -> None:
        try:
            if peer.predecessor is not None:
                await peer.predecessor.finished.wait()
                peer.predecessor = None
            if peer.closing.is_set():
                return
            log.info("p2p: connected %s peer %s at %s", peer.direction, peer.peer_id, peer.host)
            peer.notified = True
            await self._call_handler(self._on_peer_connected, peer.peer_id)
            peer.tasks = [
                asyncio.create_task(self._read_loop(peer), name=f"p2p-read-{peer.peer_id[:8]}"),
                asyncio.create_task(self._write_loop(peer), name=f"p2p-write-{peer.peer_id[:8]}"),
                asyncio.create_task(self._ping_loop(peer), name=f"p2p-ping-{peer.peer_id[:8]}"),
            ]
            closing = asyncio.create_task(peer.closing.wait())
            try:
                await asyncio.wait([*peer.tasks, closing], return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                await asyncio.gather(closing, return_exceptions=True)
        finally:
            await self._teardown(peer)

    async def _teardown(self, peer: _Peer) -> None:
        try:
            peer.request_close(peer.close_reason or "connection ended", abort=False)
            for task in peer.tasks:
                task.cancel()
            if self._peers.get(peer.peer_id) is peer:
                del self._peers[peer.peer_id]
            await asyncio.gather(*peer.tasks, return_exceptions=True)
            if peer.abort_on_close:
                peer.conn.abort()
            else:
                await peer.conn.close(CLOSE_TIMEOUT_S)
            self._counters.disconnects_total += 1
            self._counters.bytes_received_closed += peer.conn.bytes_received
            self._counters.bytes_sent_closed += peer.conn.bytes_sent
            log.info("p2p: disconnected peer %s: %s", peer.peer_id, peer.close_reason)
            if peer.notified:
                await self._call_handler(self._on_peer_disconnected, peer.peer_id)
        except asyncio.CancelledError:
            peer.conn.abort()
            raise
        finally:
            peer.finished.set()

    async def _read_loop(self, peer: _Peer) -> None:
        try:
            while True:
                async with asyncio.timeout(self._cfg.idle_timeout_s):
                    frame = await peer.conn.recv()
                await self._dispatch(peer, frame)
        except TimeoutError:
            peer.request_close("idle timeout", abort=True)
        except FrameError as exc:
            # Undecryptable or oversized frames come only from broken or hostile peers.
            self.report(peer.peer_id, exc.code, self._cfg.ban_score_threshold)
            peer.request_close(exc.code, abort=True)
        except (ConnectionClosed, NonceExhausted) as exc:
            peer.request_close(exc.message, abort=True)

    async def _dispatch(self, peer: _Peer, frame: bytes) -> None:
        if not frame:
            self.report(peer.peer_id, "empty_frame", self._cfg.ban_score_threshold)
            return
        channel = frame[0]
        if channel == CHANNEL_P2P:
            self._on_control(peer, frame)
            return
        if channel not in self._cfg.channels:
            self.report(peer.peer_id, f"unknown_channel_{channel:#04x}", UNKNOWN_CHANNEL_POINTS)
            return
        peer.msgs_in += 1
        self._counters.messages_received_total += 1
        if self._on_message is None:
            return
        try:
            result = self._on_message(peer.peer_id, channel, frame[1:])
            if inspect.isawaitable(result):
                await result
        except Exception:
            # A handler bug must not take the connection, or the node, down with it.
            self._counters.handler_errors_total += 1
            log.exception("p2p: message handler failed on channel %#04x", channel)

    def _on_control(self, peer: _Peer, frame: bytes) -> None:
        if len(frame) != CONTROL_MESSAGE_BYTES or frame[1] not in (CONTROL_PING, CONTROL_PONG):
            self.report(peer.peer_id, "bad_control_message", self._cfg.ban_score_threshold)
            return
        if frame[1] == CONTROL_PING:
            if len(peer.control) < CONTROL_QUEUE_LEN_MAX:
                peer.control.append(bytes([CHANNEL_P2P, CONTROL_PONG]) + frame[2:])
                peer.wake.set()
            return
        if peer.ping_sent_at_s is not None and int.from_bytes(frame[2:], "big") == peer.ping_seq:
            peer.rtt_s = self._clock() - peer.ping_sent_at_s
            peer.ping_sent_at_s = None

    async def _write_loop(self, peer: _Peer) -> None:
        try:
            while True:
                while not peer.control and not peer.queue:
                    peer.wake.clear()
                    await peer.wake.wait()
                is_data = not peer.control
                if is_data:
                    frame = peer.queue.popleft()
                    peer.queue_bytes -= len(frame)
                else:
                    frame = peer.control.popleft()
                async with asyncio.timeout(self._cfg.write_timeout_s):
                    await peer.conn.send(frame)
                if is_data:
                    peer.msgs_out += 1
                    self._counters.messages_sent_total += 1
        except TimeoutError:
            peer.request_close("write timeout: peer is not reading", abort=True)
        except (ConnectionClosed, NonceExhausted, MessageTooLarge) as exc:
            peer.request_close(exc.message, abort=True)

    async def _ping_loop(self, peer: _Peer) -> None:
        while True:
            await asyncio.sleep(self._cfg.ping_interval_s)
            if len(peer.control) < CONTROL_QUEUE_LEN_MAX:
                peer.ping_seq = (peer.ping_seq + 1) % 2**64
                peer.ping_sent_at_s = self._clock()
                peer.control.append(
                    bytes([CHANNEL_P2P, CONTROL_PING]) + peer.ping_seq.to_bytes(8, "big")
                )
                peer.wake.set()

    # -- helpers ----------------------------------------------------------------------------

    async def _call_handler(self, callback: PeerCallback | None, peer_id: str) -> None:
        if callback is None:
            return
        try:
            result = callback(peer_id)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._counters.handler_errors_total += 1
            log.exception("p2p: peer connect/disconnect handler failed")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(self._guard(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            # Every expected failure is handled where it happens; this is a bug, but one
            # connection's bug must not go unnoticed nor take the others down.
            log.exception("p2p: task failed")


def _new_connection_wins(existing_dialer_id: str, new_dialer_id: str) -> bool:
    """The tie-break both ends of a duplicate connection compute identically."""
    if existing_dialer_id == new_dialer_id:
        return True
    return new_dialer_id < existing_dialer_id


def _bounded_put(table: dict[str, float], key: str, until_s: float, now_s: float) -> None:
    """Insert into a ban table that never holds more than BANS_TRACKED_MAX entries."""
    table.pop(key, None)
    if len(table) >= BANS_TRACKED_MAX:
        for expired in [k for k, v in table.items() if v <= now_s]:
            del table[expired]
    while len(table) >= BANS_TRACKED_MAX:
        del table[next(iter(table))]
    table[key] = until_s
