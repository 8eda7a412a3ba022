"""SecretConnection over real loopback sockets: handshake, framing, tampering, limits.

No mocks: every test opens TCP sockets on 127.0.0.1 with ephemeral ports. Where a test needs
to misbehave on the wire it does so with raw stream writes or through ``FrameProxy``, a TCP
relay that understands only the frame boundaries and can alter, replay or drop frames.
"""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any, Self

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharechain.p2p.secret_conn import (
    AEAD_TAG_BYTES,
    AUTH_FRAME_BYTES_MAX,
    HELLO_BYTES,
    HELLO_MAGIC,
    NONCE_COUNTER_MAX,
    ConnectionClosed,
    DecryptError,
    FrameTooLarge,
    HandshakeError,
    HandshakeTimeout,
    InvalidPeerAddress,
    MessageTooLarge,
    NetworkMismatch,
    NonceExhausted,
    P2PError,
    PeerIdMismatch,
    SecretConnection,
    derive_session_keys,
    handshake,
    hkdf_sha256,
    node_id_from_pubkey,
    validate_node_id,
)

LOCALHOST = "127.0.0.1"
TEST_TIMEOUT_S = 10.0


def run(main: Callable[[], Awaitable[None]], timeout_s: float = TEST_TIMEOUT_S) -> None:
    """Run one async test body and fail if it leaves any task behind."""

    async def wrapper() -> None:
        async with asyncio.timeout(timeout_s):
            await main()
        await asyncio.sleep(0)
        leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not leaked, f"leaked tasks: {leaked}"

    asyncio.run(wrapper())


def new_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def key_id(key: nacl.signing.SigningKey) -> str:
    return node_id_from_pubkey(bytes(key.verify_key))


class HandshakeServer:
    """A listener that runs the real handshake on every connection and queues the outcome."""

    def __init__(self, key: nacl.signing.SigningKey, timeout_s: float = 2.0, **kw: Any) -> None:
        self.key = key
        self.timeout_s = timeout_s
        self.kw = kw
        self.results: asyncio.Queue[SecretConnection | BaseException] = asyncio.Queue()
        self.conns: list[SecretConnection] = []  # both ends, so __aexit__ closes them all
        self.raw_writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._accept, LOCALHOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for conn in self.conns:
            conn.abort()
        for writer in self.raw_writers:
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._run(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await handshake(reader, writer, self.key, None, self.timeout_s, **self.kw)
        except Exception as exc:  # noqa: BLE001 - the outcome under test, whatever it is
            await self.results.put(exc)
            return
        self.conns.append(conn)
        await self.results.put(conn)

    async def dial(
        self, key: nacl.signing.SigningKey, expected: str | None, port: int = 0, **kw: Any
    ) -> SecretConnection:
        """Dial this server (or ``port``, e.g. a proxy in front of it) and track the result."""
        conn, _ = await self.dial_raw(key, expected, port, **kw)
        return conn

    async def dial_raw(
        self, key: nacl.signing.SigningKey, expected: str | None, port: int = 0, **kw: Any
    ) -> tuple[SecretConnection, asyncio.StreamWriter]:
        """Like ``dial``, also returning the socket's writer so a test can write raw bytes."""
        reader, writer = await asyncio.open_connection(LOCALHOST, port or self.port)
        conn = await handshake(reader, writer, key, expected, 2.0, **kw)
        self.conns.append(conn)
        return conn, writer

    async def raw_connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(LOCALHOST, self.port)
        self.raw_writers.append(writer)
        return reader, writer

    async def next_result(self, timeout_s: float = 3.0) -> SecretConnection | BaseException:
        async with asyncio.timeout(timeout_s):
            return await self.results.get()

    async def next_conn(self) -> SecretConnection:
        result = await self.next_result()
        assert isinstance(result, SecretConnection), result
        return result


async def raw_connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(LOCALHOST, port)


async def assert_eof(reader: asyncio.StreamReader, timeout_s: float = 2.0) -> None:
    """The other side closed (or reset) the connection; anything already in flight is ok."""
    async with asyncio.timeout(timeout_s):
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass


Mutator = Callable[[int, bytes], list[bytes]]


class FrameProxy:
    """A TCP relay between a dialer and a server that can rewrite dialer-to-server frames.

    It passes the 40-byte hello through, then splits the stream on frame boundaries and sends
    ``mutate(index, frame)`` upstream instead of each frame (frame 0 is the auth frame).
    """

    def __init__(self, upstream_port: int, mutate: Mutator) -> None:
        self.upstream_port = upstream_port
        self.mutate = mutate
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._accept, LOCALHOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        self._spawn(self._relay(reader, writer))

    async def _relay(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        ureader, uwriter = await asyncio.open_connection(LOCALHOST, self.upstream_port)
        self.writers.append(uwriter)
        self._spawn(self._pipe(ureader, cwriter))
        try:
            uwriter.write(await creader.readexactly(HELLO_BYTES))
            index = 0
            while True:
                header = await creader.readexactly(4)
                body = await creader.readexactly(int.from_bytes(header, "big"))
                for out in self.mutate(index, header + body):
                    uwriter.write(out)
                await uwriter.drain()
                index += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            uwriter.transport.abort()
            cwriter.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.transport.abort()


# ---------------------------------------------------------------------------------------------
# Pure parts: KDF, ids.
# ---------------------------------------------------------------------------------------------


def test_hkdf_matches_rfc5869_case_1() -> None:
    okm = hkdf_sha256(
        salt=bytes(range(13)), ikm=b"\x0b" * 22, info=bytes(range(0xF0, 0xFA)), length=42
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_session_keys_mirror_each_other() -> None:
    a, b, secret = os.urandom(32), os.urandom(32), os.urandom(32)
    a_send, a_recv, a_challenge = derive_session_keys(a, b, secret)
    b_send, b_recv, b_challenge = derive_session_keys(b, a, secret)
    assert (a_send, a_recv, a_challenge) == (b_recv, b_send, b_challenge)
    assert len({a_send, a_recv, a_challenge}) == 3


def test_node_id_is_40_hex_of_sha256_prefix() -> None:
    key = new_key()
    node_id = key_id(key)
    assert len(node_id) == 40 and validate_node_id(node_id.upper()) == node_id
    for bad in ("", "xyz", node_id[:-1], node_id + "0", "g" * 40):
        with pytest.raises(InvalidPeerAddress):
            validate_node_id(bad)


# ---------------------------------------------------------------------------------------------
# Handshake.
# ---------------------------------------------------------------------------------------------


def test_handshake_succeeds_both_ways_and_messages_flow() -> None:
    server_key, client_key = new_key(), new_key()

    async def main() -> None:
        async with HandshakeServer(server_key) as server:
            client = await server.dial(client_key, key_id(server_key))
            accepted = await server.next_conn()
            assert client.peer_id == key_id(server_key)
            assert client.peer_pubkey == bytes(server_key.verify_key)
            assert accepted.peer_id == key_id(client_key)
            assert accepted.peer_pubkey == bytes(client_key.verify_key)
            await client.send(b"hello server")
            assert await accepted.recv() == b"hello server"
            await accepted.send(b"hello client")
            assert await client.recv() == b"hello client"
            await client.close()
            with pytest.raises(ConnectionClosed):
                await accepted.recv()

    run(main)


def test_wrong_expected_peer_id_is_rejected() -> None:
    server_key, client_key, other_key = new_key(), new_key(), new_key()

    async def main() -> None:
        async with HandshakeServer(server_key) as server:
            with pytest.raises(PeerIdMismatch) as info:
                await server.dial(client_key, key_id(other_key))
            assert key_id(other_key) in str(info.value) and key_id(server_key) in str(info.value)
            # The server may have finished its half, but the dialer hung up on it at once.
            result = await server.next_result()
            if isinstance(result, SecretConnection):
                with pytest.raises(ConnectionClosed):
                    await result.recv()

    run(main)


def test_network_mismatch_is_rejected() -> None:
    server_key, client_key = new_key(), new_key()

    async def main() -> None:
        async with HandshakeServer(server_key, network_id="sharechain-main") as server:
            with pytest.raises(NetworkMismatch):
                await server.dial(client_key, None, network_id="sharechain-test")
            assert isinstance(await server.next_result(), (NetworkMismatch, ConnectionClosed))

    run(main)


def test_garbage_instead_of_hello_fails_cleanly_and_listener_keeps_accepting() -> None:
    server_key, client_key = new_key(), new_key()

    async def main() -> None:
        async with HandshakeServer(server_key) as server:
            _, writer = await server.raw_connect()
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(64))
            assert isinstance(await server.next_result(), HandshakeError)
            writer.close()
            client = await server.dial(client_key, key_id(server_key))
            accepted = await server.next_conn()
            await client.send(b"still alive")
            assert await accepted.recv() == b"still alive"

    run(main)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.binary(min_size=0, max_size=400), st.booleans())
def test_any_garbage_after_a_valid_hello_is_a_typed_failure(garbage: bytes, hello: bool) -> None:
    server_key = new_key()

    async def main() -> None:
        async with HandshakeServer(server_key, timeout_s=0.5) as server:
            _, writer = await server.raw_connect()
            prefix = HELLO_MAGIC + os.urandom(32) if hello else b""
            writer.write(prefix + garbage)
            writer.write_eof()
            result = await server.next_result()
            assert isinstance(result, P2PError), repr(result)
            writer.transport.abort()

    run(main)


def test_low_order_and_reflected_ephemeral_keys_are_refused() -> None:
    server_key = new_key()

    async def main() -> None:
        async with HandshakeServer(server_key) as server:
            _, writer = await server.raw_connect()
            writer.write(HELLO_MAGIC + bytes(32))
            result = await server.next_result()
            assert isinstance(result, HandshakeError) and "low-order" in str(result)
            writer.close()

            reader, writer = await server.raw_connect()
            writer.write(await reader.readexactly(HELLO_BYTES))  # echo the server's own hello
            result = await server.next_result()
            assert isinstance(result, HandshakeError) and "reflected" in str(result)
            writer.close()

    run(main)


def test_oversized_auth_frame_from_unauthenticated_peer_is_refused() -> None:
    server_key = new_key()

    async def main() -> None:
        async with HandshakeServer(server_key) as server:
            reader, writer = await server.raw_connect()
            writer.write(HELLO_MAGIC + os.urandom(32))
            writer.write((AUTH_FRAME_BYTES_MAX + 1).to_bytes(4, "big"))
            result = await server.next_result()
            assert isinstance(result, HandshakeError) and "frame_too_large" in str(result)
            await assert_eof(reader)
            writer.close()

    run(main)


def test_slow_loris_handshake_times_out_without_blocking_others() -> None:
    server_key, client_key = new_key(), new_key()

    async def main() -> None:
        async with HandshakeServer(server_key, timeout_s=0.3) as server:
            reader, writer = await server.raw_connect()
            writer.write(HELLO_MAGIC[:3])  # a few bytes, then silence
            started = time.monotonic()
            client = await server.dial(client_key, key_id(server_key))
            accepted = await server.next_conn()
            await client.send(b"not starved")
            assert await accepted.recv() == b"not starved"
            assert isinstance(await server.next_result(), HandshakeTimeout)
            assert 0.25 <= time.monotonic() - started < 2.0
            await assert_eof(reader)
            writer.close()

    run(main)


# ---------------------------------------------------------------------------------------------
# Frames.
# ---------------------------------------------------------------------------------------------


def test_many_frames_round_trip_in_order_both_directions() -> None:
    server_key, client_key = new_key(), new_key()
    sizes = [0, 1, 15, 16, 17, 1023, 1024, 65536, 200_000] + [i % 3000 for i in range(1500)]
    messages = [os.urandom(n) for n in sizes]

    async def pump(src: SecretConnection, dst: SecretConnection) -> None:
        async def sender() -> None:
            for msg in messages:
                await src.send(msg)

        send_task = asyncio.create_task(sender())
        received = [await dst.recv() for _ in messages]
        await send_task
        assert received == messages

    async def main() -> None:
        async with HandshakeServer(server_key) as server:
            client = await server.dial(client_key, key_id(server_key))
            accepted = await server.next_conn()
            await asyncio.gather(pump(client, accepted), pump(accepted, client))
            # The counters include the handshake's auth frame.
            assert client.frames_sent == accepted.frames_received == len(messages) + 1

    run(main)


def test_tampered_ciphertext_is_detected_and_connection_closed() -> None:
    server_key, client_key = new_key(), new_key()

    def flip_a_bit_in_frame_2(index: int, frame: bytes) -> list[bytes]:
        if index != 2:
            return [frame]
        tampered = bytearray(frame)
        tampered[10] ^= 0x01
        return [bytes(tampered)]

    async def main() -> None:
        server = HandshakeServer(server_key)
        async with server, FrameProxy(server.port, flip_a_bit_in_frame_2) as proxy:
            client = await server.dial(client_key, key_id(server_key), port=proxy.port)
            accepted = await server.next_conn()
            await client.send(b"first, intact")
            await client.send(b"second, tampered in flight")
            assert await accepted.recv() == b"first, intact"
            with pytest.raises(DecryptError):
                await accepted.recv()
            assert accepted.closed
            with pytest.raises(ConnectionClosed):
                await accepted.recv()
            with pytest.raises(ConnectionClosed):
                await client.recv()

    run(main)


def test_replayed_frame_is_rejected() -> None:
    server_key, client_key = new_key(), new_key()
    captured: dict[int, bytes] = {}

    def replay_frame_1_after_frame_2(index: int, frame: bytes) -> list[bytes]:
        captured[index] = frame
        return [frame, captured[1]] if index == 2 else [frame]

    async def main() -> None:
        server = HandshakeServer(server_key)
        async with server, FrameProxy(server.port, replay_frame_1_after_frame_2) as proxy:
            client = await server.dial(client_key, key_id(server_key), port=proxy.port)
            accepted = await server.next_conn()
            await client.send(b"pay 10 tokens")
            await client.send(b"something else")
            assert await accepted.recv() == b"pay 10 tokens"
            assert await accepted.recv() == b"something else"
            with pytest.raises(DecryptError):
                await accepted.recv()  # the captured "pay 10 tokens", resent
            assert accepted.closed

    run(main)


def test_dropped_frame_breaks_the_stream() -> None:
    server_key, client_key = new_key(), new_key()

    def drop_frame_1(index: int, frame: bytes) -> list[bytes]:
        return [] if index == 1 else [frame]

    async def main() -> None:
        server = HandshakeServer(server_key)
        async with server, FrameProxy(server.port, drop_frame_1) as proxy:
            client = await server.dial(client_key, key_id(server_key), port=proxy.port)
            accepted = await server.next_conn()
            await client.send(b"dropped by the network")
            await client.send(b"arrives with the wrong nonce")
            with pytest.raises(DecryptError):
                await accepted.recv()

    run(main)


def test_oversize_frame_announcement_disconnects_without_allocating() -> None:
    server_key, client_key = new_key(), new_key()

    async def main() -> None:
        async with HandshakeServer(server_key) as server:
            client, raw = await server.dial_raw(client_key, key_id(server_key))
            accepted = await server.next_conn()
            # Announce a 4 GiB frame on the client's raw socket, then keep the socket open.
            raw.write(b"\xff\xff\xff\xff" + b"x" * 1000)
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                with pytest.raises(FrameTooLarge):
                    await accepted.recv()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 1024 * 1024, f"recv allocated {peak} bytes for a rejected frame"
            assert accepted.closed
            with pytest.raises(ConnectionClosed):
                await client.recv()

    run(main)


def test_frame_limit_is_configurable_and_announced_to_the_sender() -> None:
    server_key, client_key = new_key(), new_key()
    limit = 2048

    async def main() -> None:
        async with HandshakeServer(server_key, frame_bytes_max=limit) as server:
            client, raw = await server.dial_raw(client_key, key_id(server_key))
            accepted = await server.next_conn()
            assert client.message_bytes_max == limit - AEAD_TAG_BYTES
            biggest = os.urandom(limit - AEAD_TAG_BYTES)
            await client.send(biggest)
            assert await accepted.recv() == biggest
            # One byte more is refused locally; the connection stays usable.
            with pytest.raises(MessageTooLarge):
                await client.send(biggest + b"!")
            await client.send(b"ok")
            assert await accepted.recv() == b"ok"
            # A sender that ignores the announced limit is cut off.
            raw.write((limit + 1).to_bytes(4, "big"))
            with pytest.raises(FrameTooLarge):
                await accepted.recv()

    run(main)


def test_nonce_counter_never_wraps() -> None:
    key_a, key_b = os.urandom(32), os.urandom(32)
    pub = bytes(new_key().verify_key)

    async def main() -> None:
        accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        accepted = asyncio.Queue()
        server = await asyncio.start_server(lambda r, w: accepted.put_nowait((r, w)), LOCALHOST, 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await raw_connect(port)
        sreader, swriter = await accepted.get()
        start = NONCE_COUNTER_MAX - 1
        sender = SecretConnection(
            reader, writer, send_key=key_a, recv_key=key_b, peer_pubkey=pub, send_nonce=start
        )
        receiver = SecretConnection(
            sreader, swriter, send_key=key_b, recv_key=key_a, peer_pubkey=pub, recv_nonce=start
        )
        await sender.send(b"last nonce")
        assert await receiver.recv() == b"last nonce"
        with pytest.raises(NonceExhausted):
            await sender.send(b"would reuse a nonce")
        assert sender.closed
        receiver.abort()
        server.close()
        await server.wait_closed()

    run(main)
