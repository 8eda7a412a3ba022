"""What a consensus engine needs from the node, and what the node needs from an engine.

The node owns the chain (store, app, mempool). A consensus driver asks it for proposals,
for validation of blocks proposed by others, and hands it committed blocks with their
commit certificate. Engines themselves are pure state machines (see ``consensus.bft``);
drivers feed them time and messages and perform the actions they return.
"""

from __future__ import annotations

from typing import Protocol

from sharechain.chain.types import Block, Commit, ValidatorSet


class ChainConnector(Protocol):
    """The node's side of the contract, implemented by :class:`sharechain.node.chain.Chain`."""

    chain_id: str

    def height(self) -> int:
        """Height of the last committed block (0 before the first block)."""

    def last_block_time_ms(self) -> int:
        """Time of the last committed block (genesis time before the first block)."""

    def validator_set(self) -> ValidatorSet:
        """Validators that sign the next block (height() + 1)."""

    def propose_block(self, height: int, time_ms: int, proposer: bytes) -> Block:
        """Build a block for ``height`` from the mempool, on top of the committed chain."""

    async def prevalidate(self, block: Block) -> str | None:
        """The slow part of validation done without holding the event loop (signatures
        of txs the node has not seen); a reason if that already shows ``block`` invalid,
        else None. :meth:`validate_block` follows and makes every check."""

    def validate_block(self, block: Block) -> str | None:
        """None if ``block`` is a valid next block, else a one-sentence reason."""

    def commit_block(self, block: Block, commit: Commit) -> None:
        """Execute and persist ``block`` with its certificate in one storage transaction."""

    def decision_at(self, height: int) -> tuple[Block, Commit] | None:
        """The committed block at ``height`` with its commit, or None if not stored.

        Consensus serves catch-up requests from it (beyond the few heights it remembers
        itself) and derives block time from it after block sync or a lost WAL."""

    def validator_set_at(self, height: int) -> ValidatorSet:
        """The validator set that signed the block at ``height`` (1 <= height <= height()),
        needed to check the previous commit when the set changed at the last height."""


class Signer(Protocol):
    """A validator's signing key; consensus signs only through this."""

    public_key: bytes
    address: bytes

    def sign(self, message: bytes) -> bytes: ...
