"""Chain types: transactions, blocks, headers, commits, votes and validator sets.

A transaction is signed over the canonical encoding of its body, and the body names the
chain id, so a transaction signed for one chain is invalid on every other. The signed
transaction carries the body as bytes: the node verifies the signature over exactly the
bytes it received and never re-encodes them. ``tx hash = sha256(encoded signed tx)``.

A block is a header and a list of signed transactions (as bytes). Its hash is the hash of
the header's encoding; the header commits to the transactions through ``tx_root`` and to
the state after the previous block through ``state_root``. A block is committed by a
:class:`Commit`: precommit signatures from validators holding more than two thirds of the
voting power, which anyone who syncs the block checks with :func:`verify_commit`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sharechain.crypto import (
    ADDRESS_BYTES,
    HASH_BYTES,
    PUBKEY_BYTES,
    SIGNATURE_BYTES,
    address_of,
    merkle_root,
    sha256,
    verify,
)
from sharechain.encoding import (
    INT_MAX,
    decode,
    encode,
    from_obj,
    parse_canonical,
    require_plain,
    to_obj,
)
from sharechain.errors import DecodeError, ShareChainError

TX_BYTES_MAX = 64 * 1024
MEMO_BYTES_MAX = 256
MSGS_PER_TX_MAX = 64
CHAIN_ID_BYTES_MAX = 64
BLOCK_BYTES_MAX = 32 * 1024 * 1024
BLOCK_TXS_MAX = 20_000

VOTE_PREVOTE = 1
VOTE_PRECOMMIT = 2


@dataclass(frozen=True, slots=True)
class TxBody:
    chain_id: str
    signer: bytes          # Ed25519 public key, 32 bytes
    nonce: int             # must equal the signer's account nonce
    fee: int               # native token units, charged whatever the outcome
    expiry_height: int     # last height the tx may be included at; 0 means no expiry
    msgs: tuple[tuple[str, Any], ...]  # (type, body) pairs, decoded by the app's registry
    memo: str = ""

    def __post_init__(self) -> None:
        if len(self.signer) != PUBKEY_BYTES:
            raise ValueError("signer must be a 32-byte Ed25519 public key")
        if not 0 < len(self.chain_id) <= CHAIN_ID_BYTES_MAX:
            raise ValueError("chain_id has a bad length")
        if self.nonce < 0 or self.fee < 0 or self.expiry_height < 0:
            raise ValueError("nonce, fee and expiry_height must not be negative")
        if not 0 < len(self.msgs) <= MSGS_PER_TX_MAX:
            raise ValueError(f"a tx carries 1 to {MSGS_PER_TX_MAX} messages")
        if len(self.memo.encode()) > MEMO_BYTES_MAX:
            raise ValueError(f"memo exceeds {MEMO_BYTES_MAX} bytes")


@dataclass(frozen=True, slots=True)
class SignedTx:
    body: bytes            # canonical encoding of TxBody
    sig: bytes             # Ed25519 signature over ``body``


@dataclass(slots=True)
class Tx:
    """A decoded transaction as the node handles it (not itself encoded)."""

    raw: bytes             # encoded SignedTx, exactly as received
    hash: bytes
    body: TxBody
    body_bytes: bytes
    sig: bytes
    sender: bytes = field(default=b"")  # address of body.signer
    msgs: tuple[Any, ...] = ()          # typed message records, set by the app's decoder
    verified: bool = False              # set once the signature has been checked

    @property
    def size(self) -> int:
        return len(self.raw)


# The canonical encoding of SignedTx{body, sig}: map(2), "sig" (sorted first: shorter key),
# 64-byte string, "body", byte string. Only the body's length header varies.
_STX_PREFIX = b"\xa2\x63sig\x58\x40"
_STX_BODY_KEY = b"\x64body"


def _split_signed_tx(raw: bytes) -> tuple[bytes, bytes] | None:
    """(body, sig) if ``raw`` is exactly the canonical envelope, else None."""
    if not raw.startswith(_STX_PREFIX) or raw[71:76] != _STX_BODY_KEY or len(raw) < 77:
        return None
    sig = raw[7:71]
    head, n = raw[76], len(raw) - 77
    if 0x40 <= head < 0x58:
        ok, body = head - 0x40 == n, raw[77:]
    elif head == 0x58:
        ok, body = n >= 1 and raw[77] == n - 1 and n - 1 >= 24, raw[78:]
    elif head == 0x59:
        ok, body = n >= 2 and int.from_bytes(raw[77:79], "big") == n - 2 and n - 2 >= 256, raw[79:]
    else:
        return None
    return (body, sig) if ok else None


_BODY_FIELDS = frozenset({"chain_id", "signer", "nonce", "fee", "expiry_height", "msgs", "memo"})
_BODY_REQUIRED = _BODY_FIELDS - {"memo"}


def _body_from_obj(obj: Any) -> TxBody:
    """``from_obj(TxBody, obj)`` written out for the hot path; same checks, same errors."""
    if type(obj) is not dict or not obj.keys() <= _BODY_FIELDS or not _BODY_REQUIRED <= obj.keys():
        return from_obj(TxBody, obj, "tx.body")  # the generic path reports what is wrong
    g = obj.get
    msgs = g("msgs")
    if (type(g("chain_id")) is not str or type(g("signer")) is not bytes
            or type(g("nonce")) is not int or type(g("fee")) is not int
            or type(g("expiry_height")) is not int or type(g("memo", "")) is not str
            or type(msgs) is not list
            or not all(type(m) is list and len(m) == 2 and type(m[0]) is str for m in msgs)):
        return from_obj(TxBody, obj, "tx.body")
    try:
        return TxBody(obj["chain_id"], obj["signer"], obj["nonce"], obj["fee"],
                      obj["expiry_height"], tuple((m[0], m[1]) for m in msgs), g("memo", ""))
    except ValueError as exc:
        raise DecodeError(f"tx.body: {exc}") from None


def decode_tx(raw: bytes, tx_hash: bytes | None = None) -> Tx:
    """Parse and schema-check a signed tx (``tx_hash``: its hash, if the caller has it);
    does not verify the signature."""
    if len(raw) > TX_BYTES_MAX:
        raise ShareChainError("tx_too_large", f"tx of {len(raw)} bytes exceeds {TX_BYTES_MAX}")
    split = _split_signed_tx(raw)
    if split is not None:
        body_bytes, sig = split
    else:
        # Not the canonical envelope: decode fully to report exactly what is wrong.
        stx = from_obj(SignedTx, decode(raw, TX_BYTES_MAX, check_plain=False), "tx")
        if len(stx.sig) != SIGNATURE_BYTES:
            raise DecodeError("tx.sig: expected 64 bytes")
        raise DecodeError("tx: not the canonical encoding", "non_canonical")
    body = _body_from_obj(parse_canonical(body_bytes))  # within TX_BYTES_MAX, as raw is
    # The schema has typed every field but the message bodies, which the app's registry
    # types later: they must be plain data (no floats, no tags, integers in range) now.
    if body.nonce > INT_MAX or body.fee > INT_MAX or body.expiry_height > INT_MAX:
        raise DecodeError("integer out of range")
    for _, msg_body in body.msgs:
        require_plain(msg_body, 3)  # body -> msgs -> (type, body) -> body
    return Tx(raw=raw, hash=sha256(raw) if tx_hash is None else tx_hash, body=body,
              body_bytes=body_bytes, sig=sig, sender=address_of(body.signer))


def verify_tx_signature(tx: Tx) -> bool:
    if not tx.verified:
        tx.verified = verify(tx.body.signer, tx.body_bytes, tx.sig)
    return tx.verified


def sign_tx(body: TxBody, sign: Any) -> bytes:
    """Encoded signed tx; ``sign`` is a callable bytes -> 64-byte signature."""
    body_bytes = encode(body)
    return encode(SignedTx(body=body_bytes, sig=sign(body_bytes)))


# ---------------------------------------------------------------- validators

@dataclass(frozen=True, slots=True)
class Validator:
    pub_key: bytes
    power: int
    name: str = ""

    @property
    def address(self) -> bytes:
        return address_of(self.pub_key)


@dataclass(frozen=True)  # not slots: cached_property needs the instance __dict__
class ValidatorSet:
    """Validators ordered by address; voting power is a positive integer.

    The address index and the hash are computed once per set (``cached_property`` stores
    them in the instance ``__dict__``, outside the dataclass fields, so the encoding —
    ``encoding.to_obj`` walks ``dataclasses.fields`` — and equality are unchanged).
    """

    validators: tuple[Validator, ...]

    def __post_init__(self) -> None:
        addrs = [v.address for v in self.validators]
        if addrs != sorted(addrs) or len(set(addrs)) != len(addrs):
            raise ValueError("validators must be sorted by address and unique")
        if any(v.power <= 0 for v in self.validators) or not self.validators:
            raise ValueError("a validator set needs validators with positive power")

    @classmethod
    def of(cls, validators: list[Validator]) -> "ValidatorSet":
        return cls(tuple(sorted(validators, key=lambda v: v.address)))

    @cached_property
    def _by_address(self) -> dict[bytes, Validator]:
        return {v.address: v for v in self.validators}

    @cached_property
    def _hash(self) -> bytes:
        return sha256(encode(self))

    @cached_property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def hash(self) -> bytes:
        return self._hash

    def by_address(self, addr: bytes) -> Validator | None:
        return self._by_address.get(addr)

    def quorum_power(self) -> int:
        """The smallest power that is more than two thirds of the total."""
        return self.total_power * 2 // 3 + 1


# ---------------------------------------------------------------- blocks

@dataclass(frozen=True, slots=True)
class Header:
    chain_id: str
    height: int
    time_ms: int              # block time: ms since the Unix epoch, agreed by consensus
    prev_hash: bytes          # hash of the previous block's header (32 zero bytes at height 1)
    tx_root: bytes            # Merkle root over the encoded signed txs
    state_root: bytes         # state root after executing the previous block
    results_root: bytes       # Merkle root over the previous block's tx results
    proposer: bytes           # address of the proposing validator
    validators_hash: bytes    # hash of the validator set that signs this block

    def hash(self) -> bytes:
        return sha256(encode(self))


@dataclass(frozen=True, slots=True)
class Block:
    header: Header
    txs: tuple[bytes, ...]

    def hash(self) -> bytes:
        return self.header.hash()

    def check_shape(self) -> None:
        """Raise unless the header's tx_root is the root of the txs. A node checks one
        block twice (consensus on receipt, the chain before voting): the last match is
        remembered by the identity of the txs tuple, so the second check costs nothing."""
        global _shape_checked
        txs, root = self.txs, self.header.tx_root
        last = _shape_checked
        if last is not None and last[0] is txs and last[1] == root:
            return
        if len(txs) > BLOCK_TXS_MAX:
            raise ShareChainError("invalid_block", "too many txs in block")
        if merkle_root(list(txs)) != root:
            raise ShareChainError("invalid_block", "tx_root does not match the txs")
        _shape_checked = (txs, root)  # holds the tuple, so its identity cannot be reused


# The (txs, tx_root) pair Block.check_shape last found to match (see there).
_shape_checked: tuple[tuple[bytes, ...], bytes] | None = None


@dataclass(frozen=True, slots=True)
class CommitSig:
    validator: bytes          # address
    time_ms: int
    sig: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    height: int
    round: int
    block_hash: bytes
    sigs: tuple[CommitSig, ...]


def vote_sign_bytes(chain_id: str, vote_type: int, height: int, round_: int,
                    block_hash: bytes, time_ms: int) -> bytes:
    """What a validator signs for a prevote/precommit. ``block_hash`` b"" means nil."""
    return encode({"chain_id": chain_id, "type": vote_type, "height": height,
                   "round": round_, "block_hash": block_hash, "time_ms": time_ms,
                   "domain": "sharechain/vote"})


def verify_commit(chain_id: str, vset: ValidatorSet, commit: Commit, block_hash: bytes,
                  height: int, verifier: Callable[[bytes, bytes, bytes], bool] = verify
                  ) -> None:
    """Raise ``invalid_commit`` unless ``commit`` carries >2/3 power of valid precommits.

    ``verifier(pub_key, message, sig)`` checks one signature; consensus passes a memo of
    the signatures it already checked."""
    if commit.height != height or commit.block_hash != block_hash:
        raise ShareChainError("invalid_commit", "commit is for another block")
    seen: set[bytes] = set()
    power = 0
    for cs in commit.sigs:
        if cs.validator in seen:
            raise ShareChainError("invalid_commit", "validator signed twice in one commit")
        seen.add(cs.validator)
        val = vset.by_address(cs.validator)
        if val is None:
            raise ShareChainError("invalid_commit", "commit signed by a non-validator")
        msg = vote_sign_bytes(chain_id, VOTE_PRECOMMIT, commit.height, commit.round,
                              block_hash, cs.time_ms)
        if not verifier(val.pub_key, msg, cs.sig):
            raise ShareChainError("invalid_commit", "bad precommit signature in commit")
        power += val.power
    if power < vset.quorum_power():
        raise ShareChainError("invalid_commit", "commit lacks more than 2/3 of voting power")


def weighted_median_time(vset: ValidatorSet, commit: Commit) -> int:
    """Block time for the next height: the power-weighted median of commit timestamps."""
    vals = [vset.by_address(cs.validator) for cs in commit.sigs]
    pairs = sorted((cs.time_ms, v.power) for cs, v in zip(commit.sigs, vals, strict=True)
                   if v is not None)
    half = sum(p for _, p in pairs) // 2
    acc = 0
    for t, p in pairs:
        acc += p
        if acc > half:
            return t
    return pairs[-1][0] if pairs else 0


def encode_block(block: Block) -> bytes:
    return encode(block)


def decode_block(data: bytes) -> Block:
    block = from_obj(Block, decode(data, BLOCK_BYTES_MAX), "block")
    for name in ("prev_hash", "tx_root", "state_root", "results_root", "validators_hash"):
        if len(getattr(block.header, name)) != HASH_BYTES:
            raise DecodeError(f"block.header.{name}: expected 32 bytes")
    if len(block.header.proposer) != ADDRESS_BYTES:
        raise DecodeError("block.header.proposer: expected 20 bytes")
    return block


def decode_commit(data: bytes) -> Commit:
    return from_obj(Commit, decode(data), "commit")


def encode_commit(commit: Commit) -> bytes:
    return encode(to_obj(commit))
