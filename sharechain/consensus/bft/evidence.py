"""Evidence of misbehaviour: two conflicting signed votes from one validator.

A validator that signs two votes of the same type for the same height and round but for
different blocks (nil counts as a block) has equivocated. Honest validators never do this
(the engine refuses to, and its write-ahead log makes that hold across restarts), so the
pair is proof of a fault that anyone can check with nothing but the validator's public key:
:meth:`DuplicateVoteEvidence.verify`. The pair is stored in a canonical order (by block
hash) so the same two votes always make the same evidence object. A later issue slashes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharechain.chain.types import ValidatorSet
from sharechain.consensus.bft.messages import Vote
from sharechain.crypto import sha256, verify
from sharechain.encoding import encode


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    vote_a: Vote
    vote_b: Vote

    @classmethod
    def of(cls, x: Vote, y: Vote) -> DuplicateVoteEvidence:
        a, b = (x, y) if x.block_hash <= y.block_hash else (y, x)
        return cls(a, b)

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    @property
    def key(self) -> tuple[bytes, int, int, int]:
        """What the evidence is about: (validator, height, round, vote type)."""
        a = self.vote_a
        return (a.validator, a.height, a.round, a.type)

    def hash(self) -> bytes:
        return sha256(encode(self))

    def verify(self, chain_id: str, validators: ValidatorSet) -> str | None:
        """None if this is valid evidence against a member of ``validators``, else why not."""
        a, b = self.vote_a, self.vote_b
        if (a.validator, a.height, a.round, a.type) != (b.validator, b.height, b.round, b.type):
            return "the votes are not for the same validator, height, round and type"
        if a.block_hash >= b.block_hash:
            return "the votes do not conflict (or are not in canonical order)"
        val = validators.by_address(a.validator)
        if val is None:
            return "the signer is not in the validator set"
        for v in (a, b):
            if not verify(val.pub_key, v.sign_bytes(chain_id), v.sig):
                return "a vote signature does not verify"
        return None
