"""``solo``: one validator that proposes and commits a block every interval.

Block time is the validator's clock, kept strictly increasing. The commit certificate is
the validator's own precommit signature, so blocks made by ``solo`` verify with the same
:func:`verify_commit` as BFT blocks (one validator holds all the power).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sharechain.chain.types import VOTE_PRECOMMIT, Commit, CommitSig, vote_sign_bytes
from sharechain.consensus.interface import ChainConnector, Signer

log = logging.getLogger("sharechain.solo")


class SoloEngine:
    def __init__(self, chain: ChainConnector, signer: Signer, interval_ms: int,
                 create_empty_blocks: bool = True, has_txs: Callable[[], bool] = lambda: True
                 ) -> None:
        if chain.validator_set().by_address(signer.address) is None:
            raise ValueError("the solo validator key is not in the validator set")
        self.chain = chain
        self.signer = signer
        self.interval_ms = interval_ms
        self.create_empty_blocks = create_empty_blocks
        self.has_txs = has_txs
        self._stop = asyncio.Event()

    def produce(self, now_ms: int) -> None:
        """Propose, sign and commit the next block at ``now_ms``."""
        c = self.chain
        height = c.height() + 1
        t = max(now_ms, c.last_block_time_ms() + 1)
        block = c.propose_block(height, t, self.signer.address)
        bh = block.hash()
        sig = self.signer.sign(vote_sign_bytes(c.chain_id, VOTE_PRECOMMIT, height, 0, bh, t))
        c.commit_block(block, Commit(height, 0, bh, (CommitSig(self.signer.address, t, sig),)))

    async def run(self, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += self.interval_ms / 1000
            delay = next_at - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    break
                except asyncio.TimeoutError:
                    pass
            else:
                next_at = time.monotonic()  # fell behind: do not try to catch up in a burst
                await asyncio.sleep(0)
            if not self.create_empty_blocks and not self.has_txs():
                continue
            self.produce(clock_ms())

    def stop(self) -> None:
        self._stop.set()
