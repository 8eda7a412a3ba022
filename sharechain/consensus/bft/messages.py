"""Consensus messages: proposals, votes, decisions and sync requests, with their wire form.

Every message is a frozen dataclass with a canonical CBOR encoding. On the wire a message is
the two-item list ``[kind, body]``; :func:`decode_message` is strict (size cap, schema,
canonical bytes, field lengths, ranges) and raises :class:`DecodeError` for anything else,
so a garbage-sending peer costs one failed decode and nothing more.

What is signed
--------------
* A vote signs :func:`sharechain.chain.types.vote_sign_bytes` — the same bytes that a
  :class:`~sharechain.chain.types.Commit` carries — so the precommits an engine collects
  become a commit certificate that anyone checks with ``verify_commit``.
* A proposal signs :func:`proposal_sign_bytes`: its own domain string, the chain id, height,
  round, POL round, the block hash (the header hash; the header commits to the txs through
  ``tx_root``) and the proposer's local time. ``last_commit`` is not signed: it is a
  certificate anyone can check on its own, and it is what the block's time is derived from.
* Decisions (a block with its commit) and sync requests are not signed: a decision is
  self-certifying, a sync request asks for public data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sharechain.chain.types import (
    VOTE_PRECOMMIT,
    VOTE_PREVOTE,
    Block,
    Commit,
    vote_sign_bytes,
)
from sharechain.crypto import ADDRESS_BYTES, HASH_BYTES, SIGNATURE_BYTES
from sharechain.encoding import decode, encode, from_obj, to_obj
from sharechain.errors import DecodeError

PROPOSAL_BYTES_MAX = 4 * 1024 * 1024       # a whole block travels in one proposal
WIRE_BYTES_MAX = PROPOSAL_BYTES_MAX + 256 * 1024  # a decision carries a block and a commit
VOTE_BYTES_MAX = 1024
ROUND_MAX = 2**31 - 1
HEIGHT_MAX = 2**62
TIME_MS_MAX = 2**62
NIL = b""  # the block hash of a nil vote

PROPOSAL_DOMAIN = "sharechain/proposal"


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit; ``block_hash`` b"" is a vote for nil."""

    type: int
    height: int
    round: int
    block_hash: bytes
    time_ms: int
    validator: bytes   # address of the signer
    sig: bytes

    def sign_bytes(self, chain_id: str) -> bytes:
        return vote_sign_bytes(chain_id, self.type, self.height, self.round,
                               self.block_hash, self.time_ms)

    @property
    def kind(self) -> str:
        return "prevote" if self.type == VOTE_PREVOTE else "precommit"


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer's block for (height, round); ``pol_round`` -1 means a fresh value."""

    height: int
    round: int
    pol_round: int
    block: Block
    time_ms: int                  # the proposer's local time (informational)
    last_commit: Commit | None    # commit of height-1 the block time is derived from
    sig: bytes

    def sign_bytes(self, chain_id: str, block_hash: bytes) -> bytes:
        return proposal_sign_bytes(chain_id, self.height, self.round, self.pol_round,
                                   block_hash, self.time_ms)


@dataclass(frozen=True, slots=True)
class Decision:
    """A committed block with its certificate, sent to peers that fell behind."""

    block: Block
    commit: Commit


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """"I am at ``height`` and have not decided it": peers that have, answer a Decision.

    ``nonce`` (the sender's clock) makes each repeat of a request distinct bytes, so
    transports that drop messages they have seen before still deliver it.
    """

    height: int
    nonce: int = 0


Message = Proposal | Vote | Decision | SyncRequest

_KIND_OF: dict[type, str] = {Proposal: "proposal", Vote: "vote", Decision: "decision",
                             SyncRequest: "sync"}
_CLASS_OF: dict[str, type] = {k: c for c, k in _KIND_OF.items()}


def proposal_sign_bytes(chain_id: str, height: int, round_: int, pol_round: int,
                        block_hash: bytes, time_ms: int) -> bytes:
    return encode({"domain": PROPOSAL_DOMAIN, "chain_id": chain_id, "height": height,
                   "round": round_, "pol_round": pol_round, "block_hash": block_hash,
                   "time_ms": time_ms})


def encode_tagged(kind: str, record: Any) -> bytes:
    return encode([kind, to_obj(record)])


def encode_message(msg: Message) -> bytes:
    return encode_tagged(_KIND_OF[type(msg)], msg)


def decode_tagged(data: bytes, classes: dict[str, type], max_bytes: int) -> Any:
    obj = decode(data, max_bytes)
    if type(obj) is not list or len(obj) != 2 or type(obj[0]) is not str:
        raise DecodeError("expected [kind, body]")
    cls = classes.get(obj[0])
    if cls is None:
        raise DecodeError(f"unknown message kind {obj[0]!r}")
    return from_obj(cls, obj[1], obj[0])


def decode_message(data: bytes) -> Message:
    """Strictly decode one wire message, or raise :class:`DecodeError`."""
    msg = decode_tagged(data, _CLASS_OF, WIRE_BYTES_MAX)
    check_message(msg, len(data))
    return msg


# ---------------------------------------------------------------- shape checks

def _need(cond: bool, what: str) -> None:
    if not cond:
        raise DecodeError(what)


def check_vote(v: Vote) -> None:
    _need(v.type in (VOTE_PREVOTE, VOTE_PRECOMMIT), "vote.type: unknown vote type")
    _need(1 <= v.height <= HEIGHT_MAX, "vote.height out of range")
    _need(0 <= v.round <= ROUND_MAX, "vote.round out of range")
    _need(len(v.block_hash) in (0, HASH_BYTES), "vote.block_hash: expected 0 or 32 bytes")
    _need(0 <= v.time_ms <= TIME_MS_MAX, "vote.time_ms out of range")
    _need(len(v.validator) == ADDRESS_BYTES, "vote.validator: expected 20 bytes")
    _need(len(v.sig) == SIGNATURE_BYTES, "vote.sig: expected 64 bytes")


def check_block(b: Block) -> None:
    h = b.header
    for name in ("prev_hash", "tx_root", "state_root", "results_root", "validators_hash"):
        _need(len(getattr(h, name)) == HASH_BYTES, f"block.header.{name}: expected 32 bytes")
    _need(len(h.proposer) == ADDRESS_BYTES, "block.header.proposer: expected 20 bytes")
    _need(1 <= h.height <= HEIGHT_MAX, "block.header.height out of range")
    _need(0 <= h.time_ms <= TIME_MS_MAX, "block.header.time_ms out of range")


def check_commit(c: Commit) -> None:
    _need(1 <= c.height <= HEIGHT_MAX and 0 <= c.round <= ROUND_MAX, "commit out of range")
    _need(len(c.block_hash) == HASH_BYTES, "commit.block_hash: expected 32 bytes")
    for s in c.sigs:
        _need(len(s.validator) == ADDRESS_BYTES and len(s.sig) == SIGNATURE_BYTES,
              "commit sig has a bad shape")


def check_message(msg: Any, size: int) -> None:
    if isinstance(msg, Vote):
        _need(size <= VOTE_BYTES_MAX, "vote too large")
        check_vote(msg)
    elif isinstance(msg, Proposal):
        _need(size <= PROPOSAL_BYTES_MAX, "proposal too large")
        _need(1 <= msg.height <= HEIGHT_MAX, "proposal.height out of range")
        _need(0 <= msg.round <= ROUND_MAX, "proposal.round out of range")
        _need(-1 <= msg.pol_round < msg.round, "proposal.pol_round must be in [-1, round)")
        _need(0 <= msg.time_ms <= TIME_MS_MAX, "proposal.time_ms out of range")
        _need(len(msg.sig) == SIGNATURE_BYTES, "proposal.sig: expected 64 bytes")
        check_block(msg.block)
        if msg.last_commit is not None:
            check_commit(msg.last_commit)
    elif isinstance(msg, Decision):
        check_block(msg.block)
        check_commit(msg.commit)
    elif isinstance(msg, SyncRequest):
        _need(1 <= msg.height <= HEIGHT_MAX, "sync.height out of range")
        _need(0 <= msg.nonce <= TIME_MS_MAX, "sync.nonce out of range")
