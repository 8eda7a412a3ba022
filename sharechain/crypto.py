"""Hashes, Ed25519 keys, addresses, Merkle trees and content identifiers.

Ed25519 keys and signing come from libsodium through PyNaCl. Signatures are verified by
ed25519-zebra under the ZIP 215 rules: every node, SDK and tool accepts exactly the same set
of signatures (a consensus rule must not depend on which library checked it), the set is
a superset of what libsodium accepts (it adds only forms no honest signer produces:
non-canonical point encodings and small-order points), and the check is about 1.5x
faster than libsodium's on this project's machines. An address is the first 20 bytes of
SHA-256 of the public key, shown as bech32 with the ``share`` prefix (``share1…``).
The Merkle tree (used for transaction roots and IoT anchors) follows RFC 6962: leaves are
hashed with a 0x00 prefix and inner nodes with 0x01, so a leaf can never pass for a node.
Documents are named by CIDv1 (raw codec, sha2-256), the form IPFS uses.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from dataclasses import dataclass

import bech32 as _bech32
import ed25519_zebra
import nacl.bindings
import nacl.exceptions
import nacl.signing

from sharechain.errors import ShareChainError

ADDRESS_HRP = "share"
ADDRESS_BYTES = 20
PUBKEY_BYTES = 32
SIGNATURE_BYTES = 64
HASH_BYTES = 32


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def address_of(pubkey: bytes) -> bytes:
    return hashlib.sha256(pubkey).digest()[:ADDRESS_BYTES]


@functools.lru_cache(maxsize=65536)
def bech32_address(addr: bytes) -> str:
    """``share1…`` text of a 20-byte address (cached: the reference bech32 code is slow)."""
    data = _bech32.convertbits(addr, 8, 5)
    assert data is not None
    return _bech32.bech32_encode(ADDRESS_HRP, data)


def parse_address(text: str) -> bytes:
    """Raw 20 address bytes from ``share1…`` text, or a clear error."""
    hrp, data = _bech32.bech32_decode(text.strip().lower()) if isinstance(text, str) else (None, None)
    if hrp != ADDRESS_HRP or data is None:
        raise ShareChainError("invalid_address", f"not a ShareChain address: {text!r}")
    raw = _bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != ADDRESS_BYTES:
        raise ShareChainError("invalid_address", f"not a ShareChain address: {text!r}")
    return bytes(raw)


_zebra_verify = ed25519_zebra.ed_verify

# Encodings of the points of small order (libsodium's list, x-sign bit clear, then set).
# ZIP 215 accepts a signature by such a key on any message; no key pair has one, so a
# key that is one of these never verifies here (as in libsodium).
_SMALL_ORDER = [bytes.fromhex(h) for h in (
    "00" * 32,
    "01" + "00" * 31,
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ec" + "ff" * 30 + "7f",
    "ed" + "ff" * 30 + "7f",
    "ee" + "ff" * 30 + "7f",
)]
SMALL_ORDER_KEYS = frozenset(_SMALL_ORDER + [k[:31] + bytes([k[31] | 0x80]) for k in _SMALL_ORDER])


def verify(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 verification (ZIP 215 rules, small-order keys refused); never raises for
    bad input."""
    try:
        if pubkey in SMALL_ORDER_KEYS:
            return False
        return _zebra_verify(signature, message, pubkey)  # False for wrong lengths too
    except TypeError:  # bytearray, memoryview: the binding takes bytes only
        try:
            args = bytes(pubkey), bytes(message), bytes(signature)
        except (TypeError, ValueError):
            return False
        return verify(*args)


class PrivateKey:
    """An Ed25519 signing key from a 32-byte seed."""

    __slots__ = ("_sk", "public_key", "address")

    def __init__(self, seed: bytes) -> None:
        self._sk = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._sk.verify_key)
        self.address: bytes = address_of(self.public_key)

    @classmethod
    def generate(cls) -> "PrivateKey":
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_name(cls, name: str) -> "PrivateKey":
        """A deterministic key for tests and demo worlds only; never for real funds."""
        return cls(sha256(b"sharechain-demo-key:" + name.encode()))

    @property
    def seed(self) -> bytes:
        return bytes(self._sk)

    def sign(self, message: bytes) -> bytes:
        return self._sk.sign(message).signature

    @property
    def bech32(self) -> str:
        return bech32_address(self.address)


# ---------------------------------------------------------------- Merkle (RFC 6962)

_LEAF_PREFIX, _NODE_PREFIX = b"\x00", b"\x01"  # RFC 6962's domain separation
_sha256 = hashlib.sha256


def _leaf(data: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE_PREFIX + left + right).digest()


EMPTY_MERKLE_ROOT = sha256(b"")


# The list forms below write _leaf and _node out: a block's roots hash thousands of leaves
# and pairs, and a call per hash costs more than the hash.
def _leaves(items: list[bytes]) -> list[bytes]:
    return [_sha256(_LEAF_PREFIX + x).digest() for x in items]


def _parent_level(level: list[bytes]) -> list[bytes]:
    nxt = [_sha256(_NODE_PREFIX + a + b).digest() for a, b in zip(level[::2], level[1::2])]
    if len(level) % 2:
        nxt.append(level[-1])  # an odd node is promoted, as in RFC 6962's split rule
    return nxt


def merkle_root(items: list[bytes]) -> bytes:
    """Root over ``items`` (leaf data, not pre-hashed); the empty list has sha256(b"")."""
    if not items:
        return EMPTY_MERKLE_ROOT
    level = _leaves(items)
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


@dataclass(frozen=True)
class MerkleProof:
    index: int
    total: int
    siblings: tuple[bytes, ...]  # bottom-up


def merkle_proof(items: list[bytes], index: int) -> MerkleProof:
    if not 0 <= index < len(items):
        raise ShareChainError("invalid_index", "leaf index out of range")
    level = _leaves(items)
    siblings: list[bytes] = []
    i = index
    while len(level) > 1:
        sib = i ^ 1
        if sib < len(level):
            siblings.append(level[sib])
        level = _parent_level(level)
        i //= 2
    return MerkleProof(index, len(items), tuple(siblings))


def verify_merkle_proof(root: bytes, item: bytes, proof: MerkleProof) -> bool:
    if not 0 <= proof.index < proof.total:
        return False
    h = _leaf(item)
    i, width = proof.index, proof.total
    sibs = iter(proof.siblings)
    try:
        while width > 1:
            sib = i ^ 1
            if sib < width:
                s = next(sibs)
                h = _node(s, h) if i & 1 else _node(h, s)
            i //= 2
            width = (width + 1) // 2
    except StopIteration:
        return False
    return next(sibs, None) is None and h == root


# ---------------------------------------------------------------- content identifiers

def cid_of(data: bytes) -> str:
    """CIDv1 (raw codec, sha2-256, base32) of a document, as IPFS names it."""
    from multiformats import CID, multihash

    return str(CID("base32", 1, "raw", multihash.digest(data, "sha2-256")))


CID_TEXT_BYTES_MAX = 256


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and shift:
                raise ValueError("varint not minimal")
            return value, i
        shift += 7


def parse_cid(text: str) -> tuple[int, int, int, bytes]:
    """(version, codec, multihash code, digest) of a CID, or raise ``invalid_cid``.

    CIDv1 in its canonical base32 form (``b…``, the form IPFS prints) is parsed here
    directly; other multibase forms and CIDv0 go through the ``multiformats`` library,
    which is exact but slow (it type-checks at run time).
    """
    bad = ShareChainError("invalid_cid", f"not a valid content identifier: {text!r}")
    if not isinstance(text, str) or not text or len(text) > CID_TEXT_BYTES_MAX:
        raise bad
    if text[0] == "b" and text[1:].islower() or text[0] == "B" and text[1:].isupper():
        body = text[1:].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
            version, i = _varint(raw, 0)
            codec, i = _varint(raw, i)
            code, i = _varint(raw, i)
            length, i = _varint(raw, i)
        except (ValueError, binascii.Error):
            raise bad from None
        if version != 1 or len(raw) - i != length or length == 0:
            raise bad
        # Re-encoding must give the same text: rejects non-zero padding bits.
        if base64.b32encode(raw).decode().rstrip("=").lower() != text[1:].lower():
            raise bad
        return 1, codec, code, raw[i:]
    from multiformats import CID

    try:
        cid = CID.decode(text)
    except Exception:
        raise bad from None
    return cid.version, cid.codec.code, cid.hashfun.code, bytes(cid.raw_digest)


def check_cid(text: str) -> str:
    """Validate a CID string (v0 or v1); returns it, or raises ``invalid_cid``."""
    parse_cid(text)
    return text
