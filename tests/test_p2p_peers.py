"""PeerManager over real loopback sockets: mesh, reconnects, bans, limits, back-pressure.

No mocks. Nodes are real PeerManagers on 127.0.0.1 with ephemeral ports and short timings;
the restart test runs the remote node in a subprocess and kills it with SIGKILL. Hostile
peers are built from the public transport API (``handshake``) plus raw socket writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from sharechain.p2p.peers import (
    CHANNEL_CONSENSUS,
    CHANNEL_MEMPOOL,
    CHANNEL_P2P,
    ListenFailed,
    PeerAddress,
    PeerManager,
    PeerManagerConfig,
    PeerRejected,
    backoff_delay_s,
)
from sharechain.p2p.secret_conn import (
    HELLO_MAGIC,
    InvalidPeerAddress,
    P2PError,
    PeerIdMismatch,
    SecretConnection,
    handshake,
    node_id_from_pubkey,
)

LOCALHOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_TIMEOUT_S = 15.0

FAST: dict[str, Any] = {
    "listen_host": LOCALHOST,
    "listen_port": 0,
    "ping_interval_s": 0.15,
    "idle_timeout_s": 0.6,
    "handshake_timeout_s": 0.5,
    "dial_timeout_s": 0.5,
    "backoff_base_s": 0.05,
    "backoff_max_s": 0.4,
    "stable_connection_s": 0.5,
    "write_timeout_s": 3.0,
    "stop_grace_s": 0.5,
}


def run(main: Callable[[], Awaitable[None]], timeout_s: float = TEST_TIMEOUT_S) -> None:
    """Run one async test body and fail if it leaves any task behind."""

    async def wrapper() -> None:
        async with asyncio.timeout(timeout_s):
            await main()
        await asyncio.sleep(0)
        leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not leaked, f"leaked tasks: {leaked}"

    asyncio.run(wrapper())


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def key_id(key: nacl.signing.SigningKey) -> str:
    return node_id_from_pubkey(bytes(key.verify_key))


Handler = Callable[["Node", str, int, bytes], Awaitable[None] | None]


class Node:
    """A PeerManager plus a record of everything its callbacks saw."""

    def __init__(
        self,
        key: nacl.signing.SigningKey | None = None,
        handler: Handler | None = None,
        **overrides: Any,
    ) -> None:
        self.key = key or nacl.signing.SigningKey.generate()
        self.id = key_id(self.key)
        self.handler = handler
        self.inbox: list[tuple[str, int, bytes]] = []
        self.events: list[tuple[str, str]] = []
        self.pm = PeerManager(
            self.key,
            PeerManagerConfig(**{**FAST, **overrides}),
            on_message=self._on_message,
            on_peer_connected=lambda pid: self.events.append(("connected", pid)),
            on_peer_disconnected=lambda pid: self.events.append(("disconnected", pid)),
            rng=random.Random(7),
        )

    def _on_message(self, peer_id: str, channel: int, payload: bytes) -> Awaitable[None] | None:
        self.inbox.append((peer_id, channel, payload))
        if self.handler is not None:
            return self.handler(self, peer_id, channel, payload)
        return None

    @property
    def address(self) -> str:
        return f"{self.id}@{LOCALHOST}:{self.pm.listen_address[1]}"

    def connects(self, peer_id: str) -> int:
        return self.events.count(("connected", peer_id))

    def assert_callbacks_paired(self) -> None:
        """Per peer, connected and disconnected strictly alternate, starting with connected."""
        state: dict[str, bool] = {}
        for kind, pid in self.events:
            assert state.get(pid, False) == (kind == "disconnected"), (pid, self.events)
            state[pid] = kind == "connected"


async def start(*nodes: Node) -> None:
    for node in nodes:
        await node.pm.start()


async def stop(*nodes: Node) -> None:
    await asyncio.gather(*(node.pm.stop() for node in nodes))


async def raw_peer(
    port: int, key: nacl.signing.SigningKey | None = None
) -> tuple[SecretConnection, nacl.signing.SigningKey, asyncio.StreamWriter]:
    """A hand-driven peer: real handshake, then whatever the test writes (raw or framed)."""
    key = key or nacl.signing.SigningKey.generate()
    reader, writer = await asyncio.open_connection(LOCALHOST, port)
    return await handshake(reader, writer, key, None, 1.0), key, writer


# ---------------------------------------------------------------------------------------------
# Pure helpers.
# ---------------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(1)
    for attempt in range(12):
        ceiling = min(4.0, 0.1 * 2**attempt)
        for _ in range(50):
            delay = backoff_delay_s(attempt, 0.1, 4.0, rng)
            assert ceiling / 2 <= delay < ceiling
    same = [backoff_delay_s(3, 0.1, 4.0, random.Random(5)) for _ in range(2)]
    assert same[0] == same[1]
    assert backoff_delay_s(10_000, 0.1, 4.0, rng) < 4.0


def test_peer_address_parsing() -> None:
    node_id = "ab" * 20
    assert PeerAddress.parse(f"{node_id}@10.0.0.1:26656") == PeerAddress(node_id, "10.0.0.1", 26656)
    assert PeerAddress.parse(f"{node_id.upper()}@[::1]:1").host == "::1"
    assert str(PeerAddress.parse(f"{node_id}@[::1]:1")) == f"{node_id}@[::1]:1"
    for bad in ("10.0.0.1:1", f"{node_id}@10.0.0.1", f"{node_id}@h:0", f"{node_id}@h:x", "x@h:1"):
        with pytest.raises(InvalidPeerAddress):
            PeerAddress.parse(bad)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        PeerManagerConfig(ping_interval_s=5, idle_timeout_s=5)
    with pytest.raises(ValueError):
        PeerManagerConfig(channels=frozenset({CHANNEL_P2P}))
    with pytest.raises(ValueError):
        PeerManagerConfig(queue_len_max=0)


# ---------------------------------------------------------------------------------------------
# Mesh.
# ---------------------------------------------------------------------------------------------


def test_three_node_mesh_broadcast_reaches_all() -> None:
    keys = [nacl.signing.SigningKey.generate() for _ in range(3)]
    ports = [free_port() for _ in range(3)]
    addresses = [f"{key_id(k)}@{LOCALHOST}:{p}" for k, p in zip(keys, ports, strict=True)]

    async def main() -> None:
        # Everyone dials everyone: simultaneous dials create duplicates the tie-break resolves.
        nodes = [
            Node(
                keys[i],
                listen_port=ports[i],
                persistent_peers=tuple(a for j, a in enumerate(addresses) if j != i),
            )
            for i in range(3)
        ]
        await start(*nodes)
        try:
            await wait_until(lambda: all(len(n.pm.peer_ids()) == 2 for n in nodes))
            # Stay up past the idle timeout: keepalives hold the mesh together.
            await asyncio.sleep(0.8)
            assert all(len(n.pm.peer_ids()) == 2 for n in nodes)
            for node in nodes:
                assert node.pm.broadcast(CHANNEL_MEMPOOL, f"tx from {node.id}".encode()) == 2
            await wait_until(lambda: all(len(n.inbox) == 2 for n in nodes))
            for node in nodes:
                senders = {pid for pid, ch, _ in node.inbox if ch == CHANNEL_MEMPOOL}
                assert senders == {n.id for n in nodes} - {node.id}
                for pid, _, payload in node.inbox:
                    assert payload == f"tx from {pid}".encode()
            # Both ends agree on which connection survived.
            a, b, _ = nodes
            (a_view,) = [p for p in a.pm.peers() if p.peer_id == b.id]
            (b_view,) = [p for p in b.pm.peers() if p.peer_id == a.id]
            assert {a_view.direction, b_view.direction} == {"inbound", "outbound"}
            assert a_view.bytes_out > 0 and a_view.msgs_out >= 1 and a_view.rtt_ms is not None
            assert a.pm.send(b.id, CHANNEL_CONSENSUS, b"direct")
            await wait_until(lambda: (a.id, CHANNEL_CONSENSUS, b"direct") in b.inbox)
            metrics = a.pm.metrics()
            assert metrics["p2p_peers"] == 2 and metrics["p2p_bytes_sent_total"] > 0
        finally:
            await stop(*nodes)
        for node in nodes:
            node.assert_callbacks_paired()
            assert node.events[-1][0] == "disconnected"
            assert node.pm.peer_ids() == []

    run(main)


def test_simultaneous_dials_keep_the_connection_dialed_by_the_lower_id() -> None:
    async def main() -> None:
        a, b = Node(), Node()
        await start(a, b)
        low, high = sorted((a, b), key=lambda n: n.id)
        try:
            for round_ in range(5):
                # Both dial at once; the loser's dial() may be refused as a duplicate.
                results = await asyncio.gather(
                    a.pm.dial(b.address), b.pm.dial(a.address), return_exceptions=True
                )
                for result in results:
                    assert isinstance(result, str | PeerRejected), result
                await wait_until(lambda: a.pm.peer_ids() == [b.id] and b.pm.peer_ids() == [a.id])
                await asyncio.sleep(0.1)  # let any losing connection finish closing
                (low_view,) = low.pm.peers()
                (high_view,) = high.pm.peers()
                assert (low_view.direction, high_view.direction) == ("outbound", "inbound")
                # A side may briefly admit the losing connection before the winner arrives;
                # it then sees a disconnect and a connect, always in that order.
                assert low.events[-1] == ("connected", high.id)
                assert high.events[-1] == ("connected", low.id)
                assert min(low.connects(high.id), high.connects(low.id)) >= round_ + 1
                low.pm.disconnect(high.id)
                await wait_until(lambda: a.pm.peer_ids() == [] and b.pm.peer_ids() == [])
        finally:
            await stop(a, b)
        a.assert_callbacks_paired()
        b.assert_callbacks_paired()

    run(main)


def test_listen_failure_is_typed() -> None:
    async def main() -> None:
        a = Node()
        await start(a)
        clash = Node(listen_port=a.pm.listen_address[1])
        try:
            with pytest.raises(ListenFailed):
                await clash.pm.start()
        finally:
            await stop(a, clash)

    run(main)


def test_second_connection_with_same_key_replaces_first_and_callbacks_stay_paired() -> None:
    async def main() -> None:
        a = Node()
        await start(a)
        try:
            first, key, _ = await raw_peer(a.pm.listen_address[1])
            await wait_until(lambda: a.connects(key_id(key)) == 1)
            second, _, _ = await raw_peer(a.pm.listen_address[1], key)
            await wait_until(lambda: a.connects(key_id(key)) == 2)
            assert a.pm.peer_ids() == [key_id(key)]
            assert a.events[-2:] == [("disconnected", key_id(key)), ("connected", key_id(key))]
            first.abort()
            second.abort()
        finally:
            await stop(a)
        a.assert_callbacks_paired()

    run(main)


# ---------------------------------------------------------------------------------------------
# Reconnect after a crash.
# ---------------------------------------------------------------------------------------------

REMOTE_NODE = """
import asyncio, sys, nacl.signing
from sharechain.p2p.peers import PeerManager, PeerManagerConfig

async def main() -> None:
    key = nacl.signing.SigningKey(bytes.fromhex(sys.argv[1]))
    config = PeerManagerConfig(listen_host="127.0.0.1", listen_port=int(sys.argv[2]),
                               ping_interval_s=0.15, idle_timeout_s=0.6)
    def echo(peer_id, channel, payload):
        pm.send(peer_id, channel, b"echo:" + payload)
    pm = PeerManager(key, config, on_message=echo)
    await pm.start()
    print(pm.listen_address[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def spawn_remote(seed: bytes, port: int) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        REMOTE_NODE,
        seed.hex(),
        str(port),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(10):
        line = await proc.stdout.readline()
    return proc, int(line)


async def kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def test_killed_peer_is_reconnected_with_backoff() -> None:
    seed = os.urandom(32)
    remote_id = key_id(nacl.signing.SigningKey(seed))

    async def main() -> None:
        proc, port = await spawn_remote(seed, 0)
        a = Node(persistent_peers=(f"{remote_id}@{LOCALHOST}:{port}",))
        await start(a)
        try:
            await wait_until(lambda: a.pm.peer_ids() == [remote_id], timeout_s=5)
            assert a.pm.send(remote_id, CHANNEL_MEMPOOL, b"one")
            await wait_until(lambda: (remote_id, CHANNEL_MEMPOOL, b"echo:one") in a.inbox)

            await kill(proc)  # SIGKILL: no goodbye, the kernel closes the socket
            await wait_until(lambda: a.pm.peer_ids() == [])
            down_at = time.monotonic()
            await asyncio.sleep(0.8)
            failures = a.pm.metrics()["p2p_dial_failures_total"]
            # Backoff from 50 ms doubling to 400 ms allows a handful of dials in 0.8 s,
            # where a retry loop without backoff would make hundreds.
            assert 2 <= failures <= 12, failures

            proc, _ = await spawn_remote(seed, port)
            await wait_until(lambda: a.pm.peer_ids() == [remote_id], timeout_s=5)
            assert time.monotonic() - down_at < 5
            assert a.pm.send(remote_id, CHANNEL_MEMPOOL, b"two")
            await wait_until(lambda: (remote_id, CHANNEL_MEMPOOL, b"echo:two") in a.inbox)
            assert a.events == [
                ("connected", remote_id),
                ("disconnected", remote_id),
                ("connected", remote_id),
            ]
        finally:
            await stop(a)
            await kill(proc)

    run(main)


# ---------------------------------------------------------------------------------------------
# Misbehaviour and bans.
# ---------------------------------------------------------------------------------------------


def scores(node: Node) -> list[int]:
    """Scores rounded to whole points: they decay a little every second."""
    return [round(p.score) for p in node.pm.peers()]


def report_bad(node: Node, peer_id: str, channel: int, payload: bytes) -> None:
    if payload.startswith(b"bad"):
        node.pm.report(peer_id, "invalid_tx", 40)


def test_misbehaving_peer_is_banned_and_cannot_reconnect_during_the_ban() -> None:
    async def main() -> None:
        a = Node(handler=report_bad, ban_duration_s=1.2)
        await start(a)
        bad = Node(persistent_peers=(a.address,))
        await start(bad)
        try:
            await wait_until(lambda: a.pm.peer_ids() == [bad.id])
            assert bad.pm.send(a.id, CHANNEL_MEMPOOL, b"good tx")
            assert bad.pm.send(a.id, CHANNEL_MEMPOOL, b"bad tx 1")
            assert bad.pm.send(a.id, CHANNEL_MEMPOOL, b"bad tx 2")
            await wait_until(lambda: scores(a) == [80])
            assert bad.pm.send(a.id, CHANNEL_MEMPOOL, b"bad tx 3")  # 120 >= 100
            await wait_until(lambda: a.pm.is_banned(bad.id))
            banned_at = time.monotonic()
            await wait_until(lambda: a.pm.peer_ids() == [] and bad.pm.peer_ids() == [])

            # The bad node keeps redialing (it is persistent) and is refused every time.
            await asyncio.sleep(0.6)
            assert a.connects(bad.id) == 1 and bad.connects(a.id) == 1
            metrics = a.pm.metrics()
            assert metrics["p2p_bans_total"] == 1
            assert metrics["p2p_connections_rejected_banned_total"] >= 1
            assert bad.pm.metrics()["p2p_dial_failures_total"] >= 1
            with pytest.raises(PeerRejected) as info:
                await a.pm.dial(bad.address)
            assert info.value.reason == "banned"

            # When the ban expires the peer is welcome again, with a clean score.
            await wait_until(lambda: a.pm.peer_ids() == [bad.id], timeout_s=3)
            assert time.monotonic() - banned_at >= 1.0
            assert scores(a) == [0]
        finally:
            await stop(a, bad)
        a.assert_callbacks_paired()

    run(main)


def test_id_ban_without_ip_ban_refuses_after_handshake() -> None:
    async def main() -> None:
        a = Node(handler=report_bad, ban_ip=False)
        bad, good = Node(), Node()
        await start(a, bad, good)
        try:
            await bad.pm.dial(a.address)
            await wait_until(lambda: a.pm.peer_ids() == [bad.id])
            bad.pm.send(a.id, CHANNEL_MEMPOOL, b"bad" * 3)
            a.pm.report(bad.id, "test", 100)
            await wait_until(lambda: a.pm.peer_ids() == [] and bad.pm.peer_ids() == [])
            # Same IP, different key: still welcome.
            await good.pm.dial(a.address)
            await wait_until(lambda: a.pm.peer_ids() == [good.id])
            # The banned key completes the handshake, then is refused.
            before = a.pm.metrics()["p2p_connections_rejected_banned_total"]
            # The remote may hang up before or after this side admits the connection.
            with contextlib.suppress(P2PError):
                await bad.pm.dial(a.address)
            await wait_until(
                lambda: a.pm.metrics()["p2p_connections_rejected_banned_total"] == before + 1
            )
            assert a.connects(bad.id) == 1
        finally:
            await stop(a, bad, good)

    run(main)


def test_corrupt_and_oversized_frames_are_severe() -> None:
    async def main() -> None:
        a = Node(ban_ip=False, frame_bytes_max=64 * 1024)
        await start(a)
        port = a.pm.listen_address[1]
        conns: list[SecretConnection] = []

        async def connect() -> tuple[SecretConnection, str, asyncio.StreamWriter]:
            conn, key, raw = await raw_peer(port)
            conns.append(conn)
            await wait_until(lambda: a.connects(key_id(key)) == 1)
            return conn, key_id(key), raw

        try:
            # Undecryptable frame: banned at once.
            conn, peer_id, raw = await connect()
            raw.write((100).to_bytes(4, "big") + os.urandom(100))
            await wait_until(lambda: a.pm.is_banned(peer_id))

            # Oversized frame announced: banned at once, nothing read.
            conn, peer_id, raw = await connect()
            raw.write((64 * 1024 + 1).to_bytes(4, "big"))
            await wait_until(lambda: a.pm.is_banned(peer_id))

            # Malformed control message on channel 0: banned.
            conn, peer_id, raw = await connect()
            await conn.send(bytes([CHANNEL_P2P, 0x77]))
            await wait_until(lambda: a.pm.is_banned(peer_id))

            # Unknown channel: scored, not banned.
            conn, peer_id, raw = await connect()
            await conn.send(bytes([0x99]) + b"hello?")
            await wait_until(lambda: scores(a) == [25])
            assert not a.pm.is_banned(peer_id)
            assert a.pm.metrics()["p2p_bans_total"] == 3
        finally:
            for conn in conns:
                conn.abort()
            await stop(a)

    run(main)


# ---------------------------------------------------------------------------------------------
# Limits.
# ---------------------------------------------------------------------------------------------


def test_send_queue_full_drops_instead_of_blocking() -> None:
    release = asyncio.Event()

    async def stall(node: Node, peer_id: str, channel: int, payload: bytes) -> None:
        # The receiver's handler stalls, so it stops reading and TCP pushes back on the sender.
        await release.wait()

    async def main() -> None:
        a = Node(queue_len_max=8, write_timeout_s=5.0)
        b = Node(handler=stall)
        await start(a, b)
        try:
            await a.pm.dial(b.address)
            await wait_until(lambda: b.connects(a.id) == 1 and a.connects(b.id) == 1)
            payload = os.urandom(256 * 1024)
            accepted = 0
            slowest_s = 0.0
            for _ in range(200):  # 50 MiB: far more than the socket buffers hold
                started = time.perf_counter()
                accepted += a.pm.send(b.id, CHANNEL_MEMPOOL, payload)
                slowest_s = max(slowest_s, time.perf_counter() - started)
                await asyncio.sleep(0)
            await asyncio.sleep(0.2)
            assert slowest_s < 0.05, f"send blocked for {slowest_s:.3f} s"
            assert accepted < 200
            (info,) = a.pm.peers()
            assert info.msgs_dropped == 200 - accepted
            assert info.queue_len <= 8
            assert a.pm.metrics()["p2p_messages_dropped_total"] == 200 - accepted
            # Release the receiver: everything that was accepted arrives, in order.
            release.set()
            await wait_until(lambda: len(b.inbox) == accepted, timeout_s=5)
            assert a.pm.peer_ids() == [b.id]
        finally:
            release.set()
            await stop(a, b)

    run(main)


def test_inbound_limit_self_connection_and_duplicate_dial_are_refused() -> None:
    async def main() -> None:
        a = Node(inbound_peers_max=1)
        b, c = Node(), Node()
        await start(a, b, c)
        try:
            # The address names a different node than the one listening there.
            with pytest.raises(PeerIdMismatch):
                await b.pm.dial(f"{c.id}@{LOCALHOST}:{a.pm.listen_address[1]}")
            await b.pm.dial(a.address)
            await wait_until(lambda: a.pm.peer_ids() == [b.id])
            with pytest.raises(PeerRejected) as info:
                await b.pm.dial(a.address)
            assert info.value.reason == "duplicate"
            with pytest.raises(PeerRejected) as info:
                await a.pm.dial(a.address)
            assert info.value.reason == "self"
            with contextlib.suppress(P2PError):  # a may hang up before or after c's admit
                await c.pm.dial(a.address)
            await wait_until(
                lambda: a.pm.metrics()["p2p_connections_rejected_inbound_full_total"] == 1
            )
            # A connection carrying our own key is refused after the handshake.
            assert a.pm.metrics()["p2p_connections_rejected_self_total"] == 1  # the dial above
            conn, _, _ = await raw_peer(a.pm.listen_address[1], a.key)
            await wait_until(lambda: a.pm.metrics()["p2p_connections_rejected_self_total"] == 2)
            conn.abort()
            assert a.pm.peer_ids() == [b.id]
        finally:
            await stop(a, b, c)

    run(main)


def test_silent_and_garbage_connections_do_not_lock_out_honest_peers() -> None:
    async def main() -> None:
        a = Node(handshakes_pending_max=3, handshakes_pending_per_ip_max=2)
        b = Node()
        await start(a, b)
        port = a.pm.listen_address[1]
        writers: list[asyncio.StreamWriter] = []
        try:
            for _ in range(2):  # slow-loris: connect, say nothing
                _, writer = await asyncio.open_connection(LOCALHOST, port)
                writers.append(writer)
            await wait_until(lambda: a.pm.metrics()["p2p_handshakes_pending"] == 2)
            reader, writer = await asyncio.open_connection(LOCALHOST, port)
            writers.append(writer)
            assert await reader.read() == b""  # over the pending limit: closed at once
            assert a.pm.metrics()["p2p_connections_rejected_handshakes_full_total"] == 1
            # The silent ones time out and free their slots.
            await wait_until(lambda: a.pm.metrics()["p2p_handshakes_pending"] == 0)
            _, writer = await asyncio.open_connection(LOCALHOST, port)
            writers.append(writer)
            writer.write(HELLO_MAGIC[:4] + b"garbage" * 10)
            await wait_until(lambda: a.pm.metrics()["p2p_handshake_failures_total"] == 3)
            await b.pm.dial(a.address)
            await wait_until(lambda: a.pm.peer_ids() == [b.id])
        finally:
            for writer in writers:
                writer.transport.abort()
            await stop(a, b)

    run(main)


def test_silent_authenticated_peer_hits_the_idle_timeout() -> None:
    async def main() -> None:
        a = Node()
        await start(a)
        try:
            conn, key, _ = await raw_peer(a.pm.listen_address[1])
            await wait_until(lambda: a.connects(key_id(key)) == 1)
            connected_at = time.monotonic()
            # The raw peer never answers pings and never sends anything.
            await wait_until(lambda: ("disconnected", key_id(key)) in a.events, timeout_s=3)
            assert 0.5 <= time.monotonic() - connected_at < 2.0
            assert not a.pm.is_banned(key_id(key))
            conn.abort()
        finally:
            await stop(a)

    run(main)


def test_async_handler_and_send_to_unknown_peer() -> None:
    async def slow_echo(node: Node, peer_id: str, channel: int, payload: bytes) -> None:
        await asyncio.sleep(0.01)
        node.pm.send(peer_id, channel, payload[::-1])

    async def main() -> None:
        a, b = Node(), Node(handler=slow_echo)
        await start(a, b)
        try:
            assert not a.pm.send("00" * 20, CHANNEL_MEMPOOL, b"nobody")
            with pytest.raises(ValueError):
                a.pm.send(b.id, 0x77, b"unregistered channel")
            await a.pm.dial(b.address)
            await wait_until(lambda: b.pm.peer_ids() == [a.id])
            for i in range(50):
                assert a.pm.send(b.id, CHANNEL_MEMPOOL, b"msg %d" % i)
            await wait_until(lambda: len(a.inbox) == 50)
            assert [p for _, _, p in a.inbox] == [(b"msg %d" % i)[::-1] for i in range(50)]
        finally:
            await stop(a, b)

    run(main)
