"""A validator set indexed for consensus, and each node's memo of checked signatures.

:class:`ValidatorIndex` holds what the engine asks for on every message — power and public
key by address, total power, the quorum, the set's hash, the proposer schedule — so none of
it is recomputed per vote (``Validator.address`` hashes the key on every access).

:class:`CheckedSignatures` is one node's memo of signatures that verified, keyed by
(public key, signed bytes, signature). The node's :class:`~.replica.Replica` and
:class:`~.engine.Engine` share it, so a precommit verified as a vote is not verified again
inside the commit that carries it (a proposal's ``last_commit``, a :class:`Decision`). The
simulator may pass one memo to all its nodes.

:func:`check_commit` is :func:`sharechain.chain.types.verify_commit` (the chain's one rule)
returning the reason instead of raising, with the signature verifier injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from sharechain.chain.types import Commit, ValidatorSet, verify_commit
from sharechain.consensus.bft.proposer import proposer_schedule
from sharechain.crypto import verify
from sharechain.errors import ShareChainError

Verifier = Callable[[bytes, bytes, bytes], bool]

SIGNATURES_CHECKED_MAX = 65536  # memo entries per node; the oldest go first


class CheckedSignatures:
    """A :data:`Verifier` that remembers the signatures that verified.

    Only successes are kept: a bad signature costs its sender a rejection, and junk cannot
    be replayed to fill the memo with anything but real validators' signatures.
    """

    def __init__(self, verifier: Verifier = verify,
                 entries_max: int = SIGNATURES_CHECKED_MAX) -> None:
        self._verifier = verifier
        self._entries_max = entries_max
        self._ok: dict[tuple[bytes, bytes, bytes], None] = {}

    def __call__(self, pub_key: bytes, sign_bytes: bytes, sig: bytes) -> bool:
        key = (pub_key, sign_bytes, sig)
        if key in self._ok:
            return True
        if not self._verifier(pub_key, sign_bytes, sig):
            return False
        if len(self._ok) >= self._entries_max:
            del self._ok[next(iter(self._ok))]
        self._ok[key] = None
        return True

    def __len__(self) -> int:
        return len(self._ok)


@dataclass(frozen=True, slots=True)
class ValidatorIndex:
    validators: ValidatorSet
    addresses: tuple[bytes, ...]      # in the set's order (by address)
    power: dict[bytes, int]
    pub_key: dict[bytes, bytes]
    total: int
    quorum: int                       # smallest power above two thirds
    hash: bytes                       # == validators.hash()
    schedule: tuple[bytes, ...]       # proposer slots

    def proposer(self, height: int, round_: int) -> bytes:
        """The proposer of (``height``, ``round_``): the one formula (see :mod:`.proposer`)."""
        return self.schedule[(height + round_) % len(self.schedule)]


@lru_cache(maxsize=64)
def index_of(vset: ValidatorSet) -> ValidatorIndex:
    addrs = tuple(v.address for v in vset.validators)
    return ValidatorIndex(
        validators=vset, addresses=addrs,
        power={a: v.power for a, v in zip(addrs, vset.validators, strict=True)},
        pub_key={a: v.pub_key for a, v in zip(addrs, vset.validators, strict=True)},
        total=vset.total_power, quorum=vset.quorum_power(),
        hash=vset.hash(), schedule=proposer_schedule(vset))


def check_commit(chain_id: str, idx: ValidatorIndex, commit: Commit, block_hash: bytes,
                 height: int, verifier: Verifier = verify) -> str | None:
    """None if ``commit`` certifies ``block_hash`` at ``height``, else the reason.

    Pass the node's :class:`CheckedSignatures` as ``verifier`` so signatures it has seen
    (as votes, or in an earlier copy of the commit) are not verified again."""
    try:
        verify_commit(chain_id, idx.validators, commit, block_hash, height, verifier)
    except ShareChainError as exc:
        return exc.message
    return None
