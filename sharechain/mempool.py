"""The transaction pool.

Theory of operation
-------------------
Admission runs every check that does not need the block: size, canonical decoding,
chain id, message schemas, expiry against the next height, fee against the cost table,
the signature (verified here once; the verdict travels with the :class:`Tx` object, so
block execution never verifies it again), and the nonce. A sender's transactions must
arrive in nonce order with no gap: the next acceptable nonce is the committed nonce plus
the number of that sender's transactions already pooled. Arrival order therefore keeps
every sender's nonce order, and reaping is a walk from the oldest transaction.

Limits: total bytes, total count and transactions per sender. When the pool is full, a
new transaction may evict the newest transaction of the sender whose tail pays the lowest
fee per byte, if it pays more; otherwise it is refused with ``mempool_full``.

After each committed block, :meth:`update` drops included transactions and re-checks the
rest against the new state (nonces, expiry, fee balance), dropping what can no longer
execute, so a block proposer never reaps stale transactions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

from sharechain.app.framework import App
from sharechain.app.state import Readable
from sharechain.chain.types import Tx, decode_tx
from sharechain.crypto import sha256
from sharechain.errors import DecodeError, ShareChainError
from sharechain.sigverify import SignatureVerifier, Triple

MEMPOOL_BYTES_MAX = 64 * 1024 * 1024
MEMPOOL_TXS_MAX = 200_000
MEMPOOL_TXS_PER_SENDER_MAX = 2_000


@dataclass
class MempoolLimits:
    bytes_max: int = MEMPOOL_BYTES_MAX
    txs_max: int = MEMPOOL_TXS_MAX
    txs_per_sender_max: int = MEMPOOL_TXS_PER_SENDER_MAX


class ChainFacts:
    """What admission needs to know about the committed chain."""

    def __init__(self, next_height: Callable[[], int], state: Callable[[], Readable],
                 nonce_of: Callable[[Readable, bytes], int],
                 balance_of: Callable[[Readable, bytes], int],
                 fee_per_cost_unit: Callable[[Readable], int],
                 committed_among: Callable[[list[bytes]], set[bytes]],
                 verified_tx: Callable[[bytes], Tx | None] = lambda tx_hash: None) -> None:
        self.next_height = next_height
        self.state = state
        self.nonce_of = nonce_of
        self.balance_of = balance_of
        self.fee_per_cost_unit = fee_per_cost_unit
        self.committed_among = committed_among  # which of these tx hashes are committed
        # A tx the node already decoded and verified outside the pool (in a proposal that
        # outran its gossip), reused instead of being parsed and verified again.
        self.verified_tx = verified_tx


class Mempool:
    def __init__(self, app: App, facts: ChainFacts, limits: MempoolLimits | None = None,
                 verifier: SignatureVerifier | None = None) -> None:
        self.app = app
        self.facts = facts
        self.limits = limits or MempoolLimits()
        self._txs: OrderedDict[bytes, Tx] = OrderedDict()
        self._by_sender: dict[bytes, list[Tx]] = {}
        self._committed_nonce: dict[bytes, int] = {}
        self._pending_fees: dict[bytes, int] = {}
        self.bytes = 0
        self.verifier = verifier or SignatureVerifier()
        self.stats = {"admitted": 0, "rejected": 0, "evicted": 0, "dropped_on_recheck": 0}
        # Called with (raw, hash) for every admitted tx: P2P gossip, local validators.
        self.on_admit: list[Callable[[bytes, bytes], None]] = []

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def get(self, tx_hash: bytes) -> Tx | None:
        return self._txs.get(tx_hash)

    def close(self) -> None:
        self.verifier.close()

    # ---------------------------------------------------------------- admission
    def add(self, raw: bytes) -> Tx:
        """Admit one tx (checked on the calling thread), or raise why not."""
        try:
            tx = self.parse_many([raw])[0]
            if isinstance(tx, ShareChainError):
                raise tx
            self.verify_many([tx])
            if not tx.verified:
                raise ShareChainError("invalid_signature", "the tx signature does not verify")
            return self._admit(tx)
        except ShareChainError:
            self.stats["rejected"] += 1
            raise

    async def prepare_async(self, raws: list[bytes], hashes: list[bytes] | None = None
                            ) -> list[Tx | ShareChainError]:
        """Parse a batch and verify its signatures: parsing runs here, and the event loop
        runs on while worker processes verify. :meth:`admit_many` comes next."""
        parsed = self.parse_many(raws, hashes)
        await self.verify_many_async([t for t in parsed if isinstance(t, Tx) and not t.verified])
        return parsed

    def parse_many(self, raws: list[bytes], hashes: list[bytes] | None = None
                   ) -> list[Tx | ShareChainError]:
        """Decode and schema-check txs (``hashes``, when given, are their hashes). One
        store read answers which are already committed, and those and the pooled ones are
        refused before any decoding; a tx the node has verified already (in a proposal
        that outran its gossip, see ``ChainFacts.verified_tx``) is reused, not parsed."""
        if hashes is None:
            hashes = [sha256(raw) for raw in raws]
        committed = self.facts.committed_among(hashes)
        pool = self._txs
        known = self.facts.verified_tx
        stateless_check = self.app.stateless_check
        parsed: list[Tx | ShareChainError] = []
        for raw, th in zip(raws, hashes):
            if th in pool or th in committed:
                parsed.append(_duplicate())
                continue
            tx = known(th)
            if tx is None:
                try:
                    tx = self._decode(raw, th)
                    stateless_check(tx)
                except ShareChainError as exc:
                    parsed.append(exc)
                    continue
            parsed.append(tx)
        return parsed

    def admit_many(self, parsed: list[Tx | ShareChainError]) -> list[Tx | ShareChainError]:
        """Admit parsed txs whose signatures were checked, with one state snapshot."""
        out: list[Tx | ShareChainError] = []
        state = self.facts.state()
        fee_unit = self.facts.fee_per_cost_unit(state)
        next_height = self.facts.next_height()
        for t in parsed:
            if isinstance(t, ShareChainError):
                out.append(t)
                continue
            if not t.verified:
                out.append(ShareChainError("invalid_signature", "the tx signature does not verify"))
                continue
            try:
                out.append(self._admit(t, state, fee_unit, next_height))
            except ShareChainError as exc:
                out.append(exc)
        self.stats["rejected"] += sum(1 for t in out if isinstance(t, ShareChainError))
        return out

    def verify_many(self, txs: list[Tx]) -> None:
        """Set ``verified`` on each tx, and verify the signatures its messages carry
        (worker processes for big batches; see :meth:`App.embedded_signatures`)."""
        items, extra = self._signature_work(txs)
        self._apply(txs, items, extra, self.verifier.verify(items))

    async def verify_many_async(self, txs: list[Tx]) -> None:
        items, extra = self._signature_work(txs)
        self._apply(txs, items, extra, await self.verifier.verify_async(items))

    def _signature_work(self, txs: list[Tx]) -> tuple[list[Triple], int]:
        items: list[Triple] = [(t.body.signer, t.body_bytes, t.sig) for t in txs]
        n = len(items)
        if self.app.has_embedded_signatures and txs:
            state = self.facts.state()
            for t in txs:
                try:
                    items.extend(self.app.embedded_signatures(state, t))
                except (ShareChainError, ValueError):
                    pass  # execution will report what is wrong with the message
        return items, len(items) - n

    def _apply(self, txs: list[Tx], items: list[Triple], extra: int, verdicts: bytes) -> None:
        for t, ok in zip(txs, verdicts):
            t.verified = bool(ok)
        if extra:
            n = len(txs)
            self.app.verified.record(items[n:], verdicts[n:])

    def _decode(self, raw: bytes, tx_hash: bytes) -> Tx:
        try:
            return decode_tx(raw, tx_hash)
        except DecodeError as exc:
            raise ShareChainError(exc.code if exc.code != "malformed" else "malformed_tx",
                                  exc.message) from None

    def _admit(self, tx: Tx, state: Readable | None = None, fee_unit: int | None = None,
               next_height: int | None = None) -> Tx:
        if tx.hash in self._txs:
            raise ShareChainError("duplicate_tx", "this tx is already in the pool")
        if state is None:
            state = self.facts.state()
        if fee_unit is None:
            fee_unit = self.facts.fee_per_cost_unit(state)
        if next_height is None:
            next_height = self.facts.next_height()
        body = tx.body
        if body.expiry_height and body.expiry_height < next_height:
            raise ShareChainError("tx_expired", f"tx expired at height {body.expiry_height}")
        required = self.app.required_fee(tx, fee_unit)
        if body.fee < required:
            raise ShareChainError("fee_too_low", f"fee {body.fee} is below the required {required}")
        sender = tx.sender
        queue = self._by_sender.get(sender)
        if queue is None:
            committed = self.facts.nonce_of(state, sender)
            expected = committed
        else:
            committed = self._committed_nonce[sender]
            expected = committed + len(queue)
        if body.nonce != expected:
            code = "nonce_reused" if body.nonce < expected else "nonce_in_future"
            raise ShareChainError(code, f"tx nonce {body.nonce}, account expects {expected}")
        if queue is not None and len(queue) >= self.limits.txs_per_sender_max:
            raise ShareChainError("mempool_full", "too many pending txs from this sender")
        fees = self._pending_fees.get(sender, 0) + body.fee
        if self.facts.balance_of(state, sender) < fees:
            raise ShareChainError("insufficient_funds", "balance cannot pay the fees of pending txs")
        if not self._make_room(tx):
            raise ShareChainError("mempool_full", "the pool is full and this tx pays too little")
        self._txs[tx.hash] = tx
        if queue is None:
            self._by_sender[sender] = [tx]
            self._committed_nonce[sender] = committed
        else:
            queue.append(tx)
        self._pending_fees[sender] = fees
        self.bytes += tx.size
        self.stats["admitted"] += 1
        for hook in self.on_admit:
            hook(tx.raw, tx.hash)
        return tx

    def _make_room(self, tx: Tx) -> bool:
        lim = self.limits
        while self.bytes + tx.size > lim.bytes_max or len(self._txs) + 1 > lim.txs_max:
            victim = min((q[-1] for q in self._by_sender.values()),
                         key=lambda t: Fraction(t.body.fee, t.size), default=None)
            if victim is None or victim.body.fee * tx.size >= tx.body.fee * victim.size:
                return False
            self._remove(victim)
            self.stats["evicted"] += 1
        return True

    def _remove(self, tx: Tx) -> None:
        del self._txs[tx.hash]
        self.bytes -= tx.size
        q = self._by_sender[tx.sender]
        q.remove(tx)
        self._pending_fees[tx.sender] -= tx.body.fee
        if not q:
            del self._by_sender[tx.sender]
            del self._committed_nonce[tx.sender]
            del self._pending_fees[tx.sender]

    # ---------------------------------------------------------------- proposing
    def reap(self, bytes_max: int, txs_max: int) -> list[Tx]:
        out: list[Tx] = []
        total = 0
        for tx in self._txs.values():
            if len(out) >= txs_max or total + tx.size > bytes_max:
                break
            out.append(tx)
            total += tx.size
        return out

    # ---------------------------------------------------------------- after a block
    def update(self, committed: Iterable[bytes]) -> None:
        """Drop included txs, then re-check the rest against the new committed state.

        Each sender's queue holds consecutive nonces in arrival order, so the re-check is
        per sender: drop the head the block made stale, and cut the queue at the first tx
        that can no longer execute (a nonce gap, an expiry, fees the balance cannot pay).
        A queue that stays whole is left in place: the work is two state reads per sender,
        not a rebuild of the pool."""
        for h in committed:
            tx = self._txs.get(h)
            if tx is not None:
                self._remove(tx)
        if not self._txs:
            return
        state = self.facts.state()
        next_height = self.facts.next_height()
        nonce_of, balance_of = self.facts.nonce_of, self.facts.balance_of
        dropped: list[Tx] = []
        for sender, queue in self._by_sender.items():
            nonce = nonce_of(state, sender)
            first = nonce - queue[0].body.nonce  # queue[i] holds nonce queue[0].nonce + i
            if first < 0 or first >= len(queue):
                dropped.extend(queue)  # a gap before the queue, or all of it is stale
                continue
            if (first == 0 and balance_of(state, sender) >= self._pending_fees[sender]
                    and not any(t.body.expiry_height for t in queue)):
                self._committed_nonce[sender] = nonce
                continue
            dropped.extend(queue[:first])
            balance = balance_of(state, sender)
            fees = 0
            for i in range(first, len(queue)):
                b = queue[i].body
                if (b.expiry_height and b.expiry_height < next_height) or fees + b.fee > balance:
                    dropped.extend(queue[i:])
                    break
                fees += b.fee
            self._committed_nonce[sender] = nonce
        for tx in dropped:
            self._remove(tx)
        self.stats["dropped_on_recheck"] += len(dropped)


def _duplicate() -> ShareChainError:
    return ShareChainError("duplicate_tx", "this tx is already in the pool or committed")


