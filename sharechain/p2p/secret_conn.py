"""Authenticated, encrypted connections between nodes (station-to-station, like CometBFT).

Theory of operation
-------------------
Both ends of a TCP connection run the same symmetric handshake; nobody is "client" or
"server" once the socket is open:

1. Each side sends ``HELLO_MAGIC || ephemeral X25519 public key`` (40 bytes, unframed).
2. Each side computes the X25519 shared secret and runs HKDF-SHA256 with the sorted pair of
   ephemeral keys as salt material. The output is one ChaCha20-Poly1305 key per direction
   plus a 32-byte challenge that both sides share.
3. Each side sends one encrypted frame: its long-term Ed25519 node key, a signature over the
   challenge (and over the rest of this message), the largest frame it is willing to receive,
   and its network id. Each side verifies the other's signature, the network id and, when
   dialing a known ``id@host:port``, that the key hashes to the expected node id.

The signature binds the long-term identity to this session's ephemeral keys, so an active
man in the middle, who must run two handshakes with two different shared secrets, can never
relay a valid signature. After the handshake every message is one frame:
``u32 big-endian ciphertext length || ChaCha20-Poly1305-IETF(plaintext)``, with the 4-byte
header as associated data and a per-direction 96-bit counter as nonce. Counters start at 0,
grow by one per frame and are never reused, so a replayed, reordered, dropped or modified
frame fails authentication. Any failure closes the connection: a stream cipher has no way to
resynchronise, and a peer that sends a bad frame is either broken or hostile.

Memory is bounded before anything is allocated: a frame header is checked against the
receive limit before its body is read, and the handshake's auth frame has its own small limit
because the sender is still unauthenticated at that point. The exact byte layout is in
``sharechain/p2p/README.md``.

This module does I/O only through the ``asyncio`` streams it is given; it never opens sockets.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from sharechain.crypto import address_of

# ---------------------------------------------------------------------------------------------
# Protocol constants. Changing any of these is a wire-protocol change.
# ---------------------------------------------------------------------------------------------

HELLO_MAGIC = b"SCP2P\x00\x00\x01"  # protocol name and version 1; 8 bytes
X25519_KEY_BYTES = 32
ED25519_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
HELLO_BYTES = len(HELLO_MAGIC) + X25519_KEY_BYTES
CHALLENGE_BYTES = 32
AEAD_KEY_BYTES = 32
AEAD_TAG_BYTES = nacl.bindings.crypto_aead_chacha20poly1305_ietf_ABYTES  # 16
NONCE_BYTES = nacl.bindings.crypto_aead_chacha20poly1305_ietf_NPUBBYTES  # 12
FRAME_HEADER_BYTES = 4

HKDF_SALT_DOMAIN = b"sharechain-p2p-v1 transcript"
HKDF_INFO = b"sharechain-p2p-v1 keys"
AUTH_SIGN_DOMAIN = b"sharechain-p2p-v1 auth\x00"

NETWORK_ID_BYTES_MAX = 64
# The auth frame holds a key, a signature, a u32 and a short network id; nothing larger is
# accepted from a peer that has not yet proven who it is.
AUTH_FRAME_BYTES_MAX = 256
# Nonces are 96-bit big-endian counters; the connection refuses to send or receive once the
# counter would reach this value, which is long before it could wrap.
NONCE_COUNTER_MAX = 2**96 - 1

# ---------------------------------------------------------------------------------------------
# Limits (configurable per connection; defaults here).
# ---------------------------------------------------------------------------------------------

FRAME_BYTES_MAX = 4 * 1024 * 1024  # largest ciphertext (payload + 16-byte tag) we receive
FRAME_BYTES_MIN = 1024  # a peer announcing a smaller receive limit is refused
HANDSHAKE_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 1.0
DEFAULT_NETWORK_ID = "sharechain"

NODE_ID_BYTES = 20
NODE_ID_HEX_CHARS = 2 * NODE_ID_BYTES
_NODE_ID_RE = re.compile(r"^[0-9a-f]{40}$")


# ---------------------------------------------------------------------------------------------
# Typed errors. Each carries a stable ``code`` and a sentence.
# ---------------------------------------------------------------------------------------------


class P2PError(Exception):
    """Base class of every error raised by the p2p layer."""

    code = "p2p_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidPeerAddress(P2PError):
    code = "invalid_peer_address"


class HandshakeError(P2PError):
    code = "handshake_failed"


class HandshakeTimeout(HandshakeError):
    code = "handshake_timeout"


class PeerIdMismatch(HandshakeError):
    code = "peer_id_mismatch"


class NetworkMismatch(HandshakeError):
    code = "network_mismatch"


class ConnectionClosed(P2PError):
    """The peer closed the connection, the socket failed, or this side closed it."""

    code = "connection_closed"


class FrameError(P2PError):
    """The peer sent a frame that no honest implementation sends; the connection is closed."""

    code = "frame_invalid"


class FrameTooLarge(FrameError):
    code = "frame_too_large"


class DecryptError(FrameError):
    code = "frame_decrypt_failed"


class MessageTooLarge(P2PError):
    """A local caller tried to send more than the peer accepts in one frame."""

    code = "message_too_large"


class NonceExhausted(P2PError):
    code = "nonce_exhausted"


# ---------------------------------------------------------------------------------------------
# Node ids.
# ---------------------------------------------------------------------------------------------


def node_id_from_pubkey(pubkey: bytes) -> str:
    """Return the node id: hex of the first 20 bytes of sha256(Ed25519 public key)."""
    if len(pubkey) != ED25519_KEY_BYTES:
        raise InvalidPeerAddress(f"node public key must be 32 bytes, got {len(pubkey)}")
    return address_of(pubkey).hex()  # a node id is the key's address, as for validators


def validate_node_id(node_id: str) -> str:
    """Return ``node_id`` in lower case, or raise ``InvalidPeerAddress``."""
    normalised = node_id.lower()
    if not _NODE_ID_RE.match(normalised):
        raise InvalidPeerAddress(f"node id must be {NODE_ID_HEX_CHARS} hex characters: {node_id!r}")
    return normalised


# ---------------------------------------------------------------------------------------------
# Key schedule (pure functions, tested directly).
# ---------------------------------------------------------------------------------------------


def hkdf_sha256(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with SHA-256."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    blocks: list[bytes] = []
    previous = b""
    counter = 1
    while sum(len(b) for b in blocks) < length:
        previous = hmac.new(prk, previous + info + bytes([counter]), hashlib.sha256).digest()
        blocks.append(previous)
        counter += 1
    return b"".join(blocks)[:length]


def derive_session_keys(
    local_eph_pub: bytes, remote_eph_pub: bytes, shared_secret: bytes
) -> tuple[bytes, bytes, bytes]:
    """Return ``(send_key, recv_key, challenge)`` for the side owning ``local_eph_pub``.

    The side whose ephemeral key sorts lower sends with the first 32 output bytes; the other
    side sends with the next 32. Both compute the same challenge from the last 32 bytes.
    """
    lo, hi = sorted((local_eph_pub, remote_eph_pub))
    salt = hashlib.sha256(HKDF_SALT_DOMAIN + HELLO_MAGIC + lo + hi).digest()
    okm = hkdf_sha256(salt, shared_secret, HKDF_INFO, 2 * AEAD_KEY_BYTES + CHALLENGE_BYTES)
    key_lo_sends = okm[:AEAD_KEY_BYTES]
    key_hi_sends = okm[AEAD_KEY_BYTES : 2 * AEAD_KEY_BYTES]
    challenge = okm[2 * AEAD_KEY_BYTES :]
    if local_eph_pub == lo:
        return key_lo_sends, key_hi_sends, challenge
    return key_hi_sends, key_lo_sends, challenge


def _auth_fields(frame_bytes_max: int, network_id: bytes) -> bytes:
    return frame_bytes_max.to_bytes(4, "big") + bytes([len(network_id)]) + network_id


def _auth_sign_bytes(challenge: bytes, fields: bytes) -> bytes:
    return AUTH_SIGN_DOMAIN + challenge + fields


# ---------------------------------------------------------------------------------------------
# The connection.
# ---------------------------------------------------------------------------------------------


class SecretConnection:
    """An encrypted, authenticated message stream over an asyncio reader/writer pair.

    ``send`` may be called from several tasks (each frame is encrypted and written without
    yielding, so nonce order equals wire order); ``recv`` must only be called by one task at a
    time. Every error other than ``MessageTooLarge`` leaves the connection closed.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        send_key: bytes,
        recv_key: bytes,
        peer_pubkey: bytes,
        frame_bytes_max: int = FRAME_BYTES_MAX,
        peer_frame_bytes_max: int = FRAME_BYTES_MAX,
        send_nonce: int = 0,
        recv_nonce: int = 0,
    ) -> None:
        if len(send_key) != AEAD_KEY_BYTES or len(recv_key) != AEAD_KEY_BYTES:
            raise ValueError("session keys must be 32 bytes")
        self._reader = reader
        self._writer = writer
        self._send_key = send_key
        self._recv_key = recv_key
        self._send_nonce = send_nonce
        self._recv_nonce = recv_nonce
        self._closed = False
        self._receiving = False
        self.frame_bytes_max = frame_bytes_max
        self.peer_frame_bytes_max = peer_frame_bytes_max
        self.peer_pubkey = peer_pubkey
        self.peer_id = node_id_from_pubkey(peer_pubkey)
        self.bytes_sent = 0
        self.bytes_received = 0
        self.frames_sent = 0
        self.frames_received = 0

    # -- properties -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def message_bytes_max(self) -> int:
        """Largest plaintext this side may send in one frame (the peer's announced limit)."""
        return self.peer_frame_bytes_max - AEAD_TAG_BYTES

    @property
    def remote_address(self) -> tuple[str, int] | None:
        peer = self._writer.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            return str(peer[0]), int(peer[1])
        return None

    # -- sending ----------------------------------------------------------------------------

    def _seal(self, msg: bytes) -> bytes:
        if self._closed or self._writer.transport.is_closing():
            raise ConnectionClosed("connection is closed")
        if len(msg) > self.message_bytes_max:
            raise MessageTooLarge(
                f"message of {len(msg)} bytes exceeds the peer's limit of "
                f"{self.message_bytes_max} bytes"
            )
        if self._send_nonce >= NONCE_COUNTER_MAX:
            self.abort()
            raise NonceExhausted("send nonce counter exhausted; connection closed")
        header = (len(msg) + AEAD_TAG_BYTES).to_bytes(FRAME_HEADER_BYTES, "big")
        nonce = self._send_nonce.to_bytes(NONCE_BYTES, "big")
        self._send_nonce += 1
        ciphertext = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
            msg, header, nonce, self._send_key
        )
        return header + ciphertext

    async def send(self, msg: bytes) -> None:
        """Encrypt ``msg`` as one frame, write it and wait for the socket buffer to drain."""
        frame = self._seal(msg)
        try:
            # Write before the first await so concurrent senders keep nonce order on the wire.
            self._writer.write(frame)
            self.bytes_sent += len(frame)
            self.frames_sent += 1
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self.abort()
            raise ConnectionClosed(f"send failed: {exc!r}") from exc

    # -- receiving --------------------------------------------------------------------------

    async def recv(self) -> bytes:
        """Return the next message; raise ``ConnectionClosed`` or a ``FrameError``."""
        if self._closed:
            raise ConnectionClosed("connection is closed")
        if self._receiving:
            # Two concurrent readers would consume nonces out of order: a caller bug.
            raise RuntimeError("SecretConnection.recv called concurrently")
        self._receiving = True
        try:
            return await self._recv_frame(self.frame_bytes_max)
        finally:
            self._receiving = False

    async def _recv_frame(self, frame_bytes_max: int) -> bytes:
        header = await self._read_exactly(FRAME_HEADER_BYTES)
        length = int.from_bytes(header, "big")
        if length > frame_bytes_max:
            self.abort()
            raise FrameTooLarge(
                f"peer announced a frame of {length} bytes; the limit is {frame_bytes_max}"
            )
        if length < AEAD_TAG_BYTES:
            self.abort()
            raise FrameError(f"frame of {length} bytes is shorter than the AEAD tag")
        ciphertext = await self._read_exactly(length)
        if self._recv_nonce >= NONCE_COUNTER_MAX:
            self.abort()
            raise NonceExhausted("receive nonce counter exhausted; connection closed")
        nonce = self._recv_nonce.to_bytes(NONCE_BYTES, "big")
        try:
            plaintext = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
                ciphertext, header, nonce, self._recv_key
            )
        except nacl.exceptions.CryptoError as exc:
            self.abort()
            raise DecryptError(
                "frame failed authentication (tampered, replayed or reordered)"
            ) from exc
        self._recv_nonce += 1
        self.bytes_received += FRAME_HEADER_BYTES + length
        self.frames_received += 1
        return bytes(plaintext)

    async def _read_exactly(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            self.abort()
            where = "between frames" if not exc.partial else "in the middle of a frame"
            raise ConnectionClosed(f"peer closed the connection {where}") from exc
        except (ConnectionError, OSError) as exc:
            self.abort()
            raise ConnectionClosed(f"receive failed: {exc!r}") from exc

    # -- closing ----------------------------------------------------------------------------

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent data. Idempotent."""
        self._closed = True
        # Abort even if a graceful close is under way: it may be stuck flushing to a peer that
        # stopped reading.
        self._writer.transport.abort()

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Flush and close; abort if the peer does not let us finish within ``timeout_s``."""
        self._closed = True
        try:
            if not self._writer.transport.is_closing():
                self._writer.close()
            async with asyncio.timeout(timeout_s):
                await self._writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError):
            self._writer.transport.abort()


# ---------------------------------------------------------------------------------------------
# The handshake.
# ---------------------------------------------------------------------------------------------


async def handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    node_key: nacl.signing.SigningKey,
    expected_peer_id: str | None,
    timeout_s: float = HANDSHAKE_TIMEOUT_S,
    *,
    network_id: str = DEFAULT_NETWORK_ID,
    frame_bytes_max: int = FRAME_BYTES_MAX,
) -> SecretConnection:
    """Run the handshake on an open stream and return the secret connection.

    ``expected_peer_id`` is the id from an ``id@host:port`` address when dialing, or ``None``
    when accepting. On any failure the stream is aborted and a ``HandshakeError`` (or
    ``ConnectionClosed`` if the peer hung up) is raised.
    """
    expected = validate_node_id(expected_peer_id) if expected_peer_id is not None else None
    network = network_id.encode()
    if not 0 < len(network) <= NETWORK_ID_BYTES_MAX:
        raise ValueError(f"network id must be 1..{NETWORK_ID_BYTES_MAX} bytes of UTF-8")
    if not FRAME_BYTES_MIN <= frame_bytes_max < 2**32:
        raise ValueError(f"frame_bytes_max must be in [{FRAME_BYTES_MIN}, 2**32)")
    try:
        async with asyncio.timeout(timeout_s):
            return await _handshake(reader, writer, node_key, expected, network, frame_bytes_max)
    except TimeoutError as exc:
        writer.transport.abort()
        raise HandshakeTimeout(f"handshake did not finish within {timeout_s} s") from exc
    except BaseException:
        writer.transport.abort()
        raise


async def _handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    node_key: nacl.signing.SigningKey,
    expected_peer_id: str | None,
    network: bytes,
    frame_bytes_max: int,
) -> SecretConnection:
    eph = nacl.public.PrivateKey.generate()
    local_eph_pub = bytes(eph.public_key)
    remote_eph_pub = await _exchange_hello(reader, writer, local_eph_pub)
    try:
        shared = nacl.bindings.crypto_scalarmult(bytes(eph), remote_eph_pub)
    except nacl.exceptions.RuntimeError as exc:
        # libsodium refuses low-order points, whose shared secret would be all zeros.
        raise HandshakeError("peer sent a low-order ephemeral key") from exc
    send_key, recv_key, challenge = derive_session_keys(local_eph_pub, remote_eph_pub, shared)

    # The peer's key is unknown until its auth frame arrives; a placeholder keeps the
    # connection object usable for the two auth frames.
    conn = SecretConnection(
        reader,
        writer,
        send_key=send_key,
        recv_key=recv_key,
        peer_pubkey=bytes(ED25519_KEY_BYTES),
        frame_bytes_max=frame_bytes_max,
        peer_frame_bytes_max=AUTH_FRAME_BYTES_MAX,
    )
    fields = _auth_fields(frame_bytes_max, network)
    signature = node_key.sign(_auth_sign_bytes(challenge, fields)).signature
    await conn.send(bytes(node_key.verify_key) + signature + fields)
    try:
        auth = await conn._recv_frame(AUTH_FRAME_BYTES_MAX)
    except FrameError as exc:
        raise HandshakeError(f"invalid auth frame: {exc}") from exc
    peer_pubkey, peer_frame_max, peer_network = _verify_auth(auth, challenge)

    peer_id = node_id_from_pubkey(peer_pubkey)
    if expected_peer_id is not None and peer_id != expected_peer_id:
        raise PeerIdMismatch(f"dialed node {expected_peer_id} but the remote key is {peer_id}")
    if peer_network != network:
        raise NetworkMismatch(
            f"peer is on network {peer_network.decode(errors='replace')!r}, "
            f"this node is on {network.decode()!r}"
        )
    conn.peer_pubkey = peer_pubkey
    conn.peer_id = peer_id
    conn.peer_frame_bytes_max = peer_frame_max
    return conn


async def _exchange_hello(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local_eph_pub: bytes
) -> bytes:
    try:
        writer.write(HELLO_MAGIC + local_eph_pub)
        await writer.drain()
        hello = await reader.readexactly(HELLO_BYTES)
    except asyncio.IncompleteReadError as exc:
        raise ConnectionClosed("peer closed the connection during the handshake") from exc
    except (ConnectionError, OSError) as exc:
        raise ConnectionClosed(f"handshake I/O failed: {exc!r}") from exc
    if hello[: len(HELLO_MAGIC)] != HELLO_MAGIC:
        raise HandshakeError("peer did not send a ShareChain p2p v1 hello")
    remote_eph_pub = hello[len(HELLO_MAGIC) :]
    if remote_eph_pub == local_eph_pub:
        # Our own key reflected back: an attacker trying to make us talk to ourselves.
        raise HandshakeError("peer reflected our ephemeral key")
    return remote_eph_pub


def _verify_auth(auth: bytes, challenge: bytes) -> tuple[bytes, int, bytes]:
    fixed = ED25519_KEY_BYTES + ED25519_SIGNATURE_BYTES + 4 + 1
    if len(auth) < fixed:
        raise HandshakeError(f"auth message of {len(auth)} bytes is too short")
    peer_pubkey = auth[:ED25519_KEY_BYTES]
    signature = auth[ED25519_KEY_BYTES : ED25519_KEY_BYTES + ED25519_SIGNATURE_BYTES]
    fields = auth[ED25519_KEY_BYTES + ED25519_SIGNATURE_BYTES :]
    peer_frame_max = int.from_bytes(fields[:4], "big")
    network_len = fields[4]
    peer_network = fields[5:]
    if len(peer_network) != network_len or network_len == 0:
        raise HandshakeError("auth message has a malformed network id")
    if peer_frame_max < FRAME_BYTES_MIN:
        raise HandshakeError(f"peer accepts frames of only {peer_frame_max} bytes")
    try:
        nacl.signing.VerifyKey(peer_pubkey).verify(_auth_sign_bytes(challenge, fields), signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise HandshakeError("peer's signature over the session challenge is invalid") from exc
    return peer_pubkey, peer_frame_max, peer_network
