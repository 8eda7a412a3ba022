"""An in-memory chain for the simulator: fake transactions, real headers, strict checks.

:class:`FakeChain` implements :class:`~sharechain.consensus.interface.ChainConnector`. Its
"state" is a hash chain over the committed tx roots; its transactions are short byte
strings. It checks blocks as strictly as a real chain would check what consensus depends on:
height, previous hash, state root, validator-set hash, tx root, time after the previous
block, and that every tx is well formed. ``commit_block`` refuses an invalid block with
:class:`InvalidCommit` — in the simulator that is a validity violation, never a crash.

Validator-set changes: a ``power|<address hex>|<power>`` tx changes one validator's power
from the next height on. Only addresses in ``mutable`` may be changed and only to 1 or 2,
so the simulator can vary honest validators' power without ever handing the Byzantine ones
a third of it.
"""

from __future__ import annotations

from sharechain.chain.types import Block, Commit, Header, Validator, ValidatorSet
from sharechain.crypto import EMPTY_MERKLE_ROOT, merkle_root, sha256

ZERO_HASH = b"\x00" * 32
SIM_TXS_PER_BLOCK_MAX = 64
SIM_POWER_MAX = 2
VALCHANGE_EVERY_HEIGHTS = 4


class InvalidCommit(Exception):
    """The chain was handed a block that is not a valid next block."""


class FakeChain:
    def __init__(self, chain_id: str, validators: ValidatorSet, genesis_time_ms: int,
                 mutable: tuple[bytes, ...] = (), valchange: bool = False) -> None:
        self.chain_id = chain_id
        self.genesis_time_ms = genesis_time_ms
        self.mutable = mutable
        self.valchange = valchange
        self.blocks: list[Block] = []
        self.commits: list[Commit] = []
        self.state_root = sha256(b"genesis:" + chain_id.encode())
        self._last_hash = ZERO_HASH
        self._vset = validators
        self._vset_hash = validators.hash()
        self._vset_by_height: dict[int, ValidatorSet] = {1: validators}

    # ------------------------------------------------------------ ChainConnector

    def height(self) -> int:
        return len(self.blocks)

    def last_block_time_ms(self) -> int:
        return self.blocks[-1].header.time_ms if self.blocks else self.genesis_time_ms

    def validator_set(self) -> ValidatorSet:
        return self._vset

    def decision_at(self, height: int) -> tuple[Block, Commit] | None:
        if 1 <= height <= len(self.blocks):
            return self.blocks[height - 1], self.commits[height - 1]
        return None

    def validator_set_at(self, height: int) -> ValidatorSet:
        return self._vset_by_height[height]

    def propose_block(self, height: int, time_ms: int, proposer: bytes,
                      variant: int = 0) -> Block:
        tag = proposer[:4].hex()
        txs = [f"tx|{tag}|{height}|{variant}|{i}".encode() for i in range(1 + height % 3)]
        if self.valchange and self.mutable and height % VALCHANGE_EVERY_HEIGHTS == 0:
            target = self.mutable[(height // VALCHANGE_EVERY_HEIGHTS) % len(self.mutable)]
            power = 1 + (height // VALCHANGE_EVERY_HEIGHTS + variant) % SIM_POWER_MAX
            txs.append(f"power|{target.hex()}|{power}".encode())
        return self.make_block(height, time_ms, proposer, tuple(txs))

    def make_block(self, height: int, time_ms: int, proposer: bytes,
                   txs: tuple[bytes, ...], state_root: bytes | None = None) -> Block:
        header = Header(
            chain_id=self.chain_id, height=height, time_ms=time_ms,
            prev_hash=self._last_hash,
            tx_root=merkle_root(list(txs)),
            state_root=self.state_root if state_root is None else state_root,
            results_root=EMPTY_MERKLE_ROOT, proposer=proposer,
            validators_hash=self._vset_hash)
        return Block(header, txs)

    async def prevalidate(self, block: Block) -> str | None:
        return None  # no signatures in simulated txs

    def validate_block(self, block: Block) -> str | None:
        h = block.header
        if h.chain_id != self.chain_id:
            return "wrong chain id"
        if h.height != self.height() + 1:
            return f"height {h.height} is not the next height {self.height() + 1}"
        if h.prev_hash != self._last_hash:
            return "prev_hash does not match the last block"
        if h.state_root != self.state_root:
            return "state_root does not match the state"
        if h.results_root != EMPTY_MERKLE_ROOT:
            return "results_root does not match"
        if h.validators_hash != self._vset_hash:
            return "validators_hash does not match the validator set"
        if self._vset.by_address(h.proposer) is None:
            return "proposer is not a validator"
        if h.time_ms <= self.last_block_time_ms():
            return "block time does not move forward"
        if len(block.txs) > SIM_TXS_PER_BLOCK_MAX or merkle_root(list(block.txs)) != h.tx_root:
            return "bad tx list"
        for tx in block.txs:
            if self._parse_tx(tx) is None:
                return f"malformed tx {tx[:24]!r}"
        return None

    def commit_block(self, block: Block, commit: Commit) -> None:
        err = self.validate_block(block)
        if err is not None:
            raise InvalidCommit(f"height {block.header.height}: {err}")
        self.blocks.append(block)
        self.commits.append(commit)
        self._last_hash = block.hash()
        self.state_root = sha256(self.state_root + block.header.tx_root)
        changes = [c for c in (self._parse_tx(tx) for tx in block.txs) if isinstance(c, tuple)]
        if changes:
            powers = {v.address: v for v in self._vset.validators}
            for addr, power in changes:
                v = powers[addr]
                powers[addr] = Validator(v.pub_key, power, v.name)
            self._vset = ValidatorSet.of(list(powers.values()))
            self._vset_hash = self._vset.hash()
        self._vset_by_height[self.height() + 1] = self._vset

    # ------------------------------------------------------------ txs

    def _parse_tx(self, tx: bytes) -> str | tuple[bytes, int] | None:
        parts = tx.split(b"|")
        if parts[0] == b"tx" and len(parts) == 5:
            return "tx"
        if parts[0] == b"power" and len(parts) == 3:
            try:
                addr, power = bytes.fromhex(parts[1].decode()), int(parts[2])
            except ValueError:
                return None
            if addr in self.mutable and 1 <= power <= SIM_POWER_MAX:
                return (addr, power)
        return None
