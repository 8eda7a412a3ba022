"""A validator set indexed for consensus, built once per set and shared.

:class:`ValidatorIndex` holds what the engine asks for on every message — power and public
key by address, total power, the quorum, the set's hash and encoding, the proposer
schedule — so none of it is recomputed per vote (``Validator.address`` hashes the key on
every access).

:func:`check_commit` and :func:`median_time` are the same rules as
:func:`sharechain.chain.types.verify_commit` and
:func:`~sharechain.chain.types.weighted_median_time`, over the index and with an injectable
signature verifier (the simulator shares one memo of checked signatures across nodes).
``tests/test_bft_engine.py`` checks that they agree with the chain's versions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from sharechain.chain.types import VOTE_PRECOMMIT, Commit, ValidatorSet, vote_sign_bytes
from sharechain.consensus.bft.proposer import proposer_schedule
from sharechain.crypto import sha256, verify
from sharechain.encoding import encode

Verifier = Callable[[bytes, bytes, bytes], bool]


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
        return self.schedule[(height + round_) % len(self.schedule)]


@lru_cache(maxsize=64)
def index_of(vset: ValidatorSet) -> ValidatorIndex:
    addrs = tuple(v.address for v in vset.validators)
    return ValidatorIndex(
        validators=vset, addresses=addrs,
        power={a: v.power for a, v in zip(addrs, vset.validators, strict=True)},
        pub_key={a: v.pub_key for a, v in zip(addrs, vset.validators, strict=True)},
        total=vset.total_power, quorum=vset.quorum_power(),
        hash=sha256(encode(vset)), schedule=proposer_schedule(vset))


_CHECKED: OrderedDict[tuple[object, ...], str | None] = OrderedDict()
CHECKED_COMMITS_MAX = 4096


def check_commit(chain_id: str, idx: ValidatorIndex, commit: Commit, block_hash: bytes,
                 height: int, verifier: Verifier = verify) -> str | None:
    """None if ``commit`` certifies ``block_hash`` at ``height``, else the reason.

    Results are memoised by everything they depend on (a commit is re-checked by every
    node it reaches in one process, e.g. in the simulator, and by every proposal that
    carries it)."""
    key = (chain_id, idx.hash, commit, block_hash, height, verifier)
    if key in _CHECKED:
        return _CHECKED[key]
    err = _check_commit(chain_id, idx, commit, block_hash, height, verifier)
    _CHECKED[key] = err
    if len(_CHECKED) > CHECKED_COMMITS_MAX:
        _CHECKED.popitem(last=False)
    return err


def _check_commit(chain_id: str, idx: ValidatorIndex, commit: Commit, block_hash: bytes,
                  height: int, verifier: Verifier) -> str | None:
    if commit.height != height or commit.block_hash != block_hash:
        return "commit is for another block"
    seen: set[bytes] = set()
    power = 0
    for cs in commit.sigs:
        if cs.validator in seen:
            return "validator signed twice in one commit"
        seen.add(cs.validator)
        pub = idx.pub_key.get(cs.validator)
        if pub is None:
            return "commit signed by a non-validator"
        msg = vote_sign_bytes(chain_id, VOTE_PRECOMMIT, commit.height, commit.round,
                              block_hash, cs.time_ms)
        if not verifier(pub, msg, cs.sig):
            return "bad precommit signature in commit"
        power += idx.power[cs.validator]
    if power < idx.quorum:
        return "commit lacks more than 2/3 of voting power"
    return None


def median_time(idx: ValidatorIndex, commit: Commit) -> int:
    """The power-weighted median of the commit's precommit times."""
    pairs = sorted((cs.time_ms, idx.power[cs.validator]) for cs in commit.sigs
                   if cs.validator in idx.power)
    half = sum(p for _, p in pairs) // 2
    acc = 0
    for t, p in pairs:
        acc += p
        if acc > half:
            return t
    return pairs[-1][0] if pairs else 0
