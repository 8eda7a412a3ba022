"""The chain a node holds: store + app + mempool, behind the consensus connector.

:class:`Chain` builds proposals from the mempool, validates blocks proposed by others,
and executes and persists committed blocks. Execution reads a snapshot of committed
state, collects the whole block's writes in memory, and hands them to
:meth:`ChainStore.commit_block` for a single atomic write. Transactions that the mempool,
:meth:`prevalidate` (block sync, off the event loop) or :meth:`validate_block` already
verified are reused as objects, so no signature is verified twice on one node.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sharechain.app.builder import build_app
from sharechain.app.framework import Context, Event, TxResult
from sharechain.app.state import CommittedView, Overlay, Readable
from sharechain.chain.types import (
    Block,
    Commit,
    Header,
    Tx,
    ValidatorSet,
    decode_tx,
    verify_tx_signature,
)
from sharechain.crypto import merkle_root, sha256
from sharechain.encoding import decode, decode_trusted, encode, from_obj, to_obj
from sharechain.errors import DecodeError, ShareChainError, invariant
from sharechain.lru import BoundedMap
from sharechain.mempool import ChainFacts, Mempool, MempoolLimits
from sharechain.modules import auth
from sharechain.node.genesis import Genesis
from sharechain.sigverify import SignatureVerifier
from sharechain.store.chainstore import BlockWrite, ChainStore

log = logging.getLogger("sharechain.chain")

VALSET_KEY = b"consensus/valset"
VALSET_META_PREFIX = b"valset/"  # meta: validator-set hash -> encoded set, for every set ever used
VERIFIED_CACHE_LEN_MAX = 50_000


@dataclass
class CommittedBlock:
    block: Block
    commit: Commit
    block_hash: bytes
    results: list[TxResult]
    tx_hashes: list[bytes]
    block_events: list[Event]
    state_root: bytes


def encode_result(r: TxResult) -> bytes:
    # Built by hand: this runs once per tx and the generic record walk is several times slower.
    return encode({"code": r.code, "message": r.message, "fee": r.fee,
                   "events": [{"type": e.type, "attrs": e.attrs} for e in r.events]})


def decode_result(raw: bytes) -> TxResult:
    return from_obj(TxResult, decode(raw))


class Chain:
    def __init__(self, data_dir: str, genesis: Genesis,
                 mempool_limits: MempoolLimits | None = None,
                 check_invariants: bool = False,
                 signature_workers: int | None = None, map_bytes: int | None = None) -> None:
        """``signature_workers``: processes of the mempool's signature verifier (None: the
        default for a node alone on its machine; 0: verify on the calling thread).
        ``map_bytes``: the most the store may grow to (None: ``chainstore.MAP_BYTES``)."""
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.store = ChainStore(data_dir, map_bytes)
        self.app, self.ante, self.keepers = build_app(self.chain_id)
        self.check_invariants = check_invariants
        self.lock = threading.RLock()  # serialises commits against reads of derived caches
        if not self.store.initialized:
            self._init_genesis()
        elif self.store.genesis_doc() != genesis.encoded():
            raise ShareChainError("genesis_mismatch",
                                  "the data directory was created from a different genesis")
        self._valset = self._load_valset()
        self._verified: BoundedMap[bytes, Tx] = BoundedMap(VERIFIED_CACHE_LEN_MAX)
        self._hashes_of: tuple[tuple[bytes, ...], list[bytes]] = ((), [])  # see _tx_hashes
        self.mempool = Mempool(self.app, ChainFacts(
            next_height=lambda: self.height() + 1,
            state=self._state_view,
            nonce_of=auth.get_nonce,
            balance_of=self.keepers.bank.balance,
            fee_per_cost_unit=auth.fee_per_cost_unit,
            committed_among=self.store.committed_among,
            verified_tx=self._verified.get,
        ), mempool_limits, SignatureVerifier(signature_workers))
        self.listeners: list[Callable[[CommittedBlock], None]] = []

    def close(self) -> None:
        self.mempool.close()
        self.store.close()

    # ---------------------------------------------------------------- genesis
    def _init_genesis(self) -> None:
        g = self.genesis
        with self.store.view() as view:
            ctx = Context(Overlay(view), g.chain_id, 0, g.genesis_time_ms, b"", self.app)
            self.app.init_genesis(ctx, g.app_state)
            ctx.set_record(VALSET_KEY, g.validators)
            changes = dict(ctx.state.writes)
        self.store.write_genesis(g.encoded(), changes, g.genesis_time_ms,
                                 {VALSET_META_PREFIX + g.validators.hash(): changes[VALSET_KEY]})
        log.info("initialised chain %s from genesis", g.chain_id)

    def _load_valset(self) -> ValidatorSet:
        with self.store.view() as view:
            raw = view.get(VALSET_KEY)
        invariant(raw is not None, "validator set missing from state")
        return from_obj(ValidatorSet, decode(raw))  # type: ignore[arg-type]

    # ---------------------------------------------------------------- connector
    def height(self) -> int:
        return self.store.meta.height

    def last_block_time_ms(self) -> int:
        return self.store.meta.time_ms

    def validator_set(self) -> ValidatorSet:
        return self._valset

    def _state_view(self) -> Readable:
        # A fresh snapshot for admission checks; cheap in LMDB (a reader slot, released
        # when the view is dropped).
        return CommittedView(self.store.env.begin(buffers=False), self.store.db_state)

    def propose_block(self, height: int, time_ms: int, proposer: bytes) -> Block:
        meta = self.store.meta
        invariant(height == meta.height + 1, "proposal for a height that is not next")
        p = self.genesis.consensus
        txs = self.mempool.reap(p.block_bytes_max, p.block_txs_max)
        raws = [t.raw for t in txs]
        header = Header(
            chain_id=self.chain_id, height=height, time_ms=time_ms, prev_hash=meta.last_hash,
            tx_root=merkle_root(raws), state_root=meta.state_root,
            results_root=meta.results_root, proposer=proposer,
            validators_hash=self._valset.hash(),
        )
        return Block(header, tuple(raws))

    def validate_block(self, block: Block) -> str | None:
        try:
            self._validate(block)
        except ShareChainError as exc:
            return exc.message
        return None

    def _validate(self, block: Block) -> None:
        meta = self.store.meta
        h = block.header
        if h.chain_id != self.chain_id:
            raise ShareChainError("invalid_block", "block is for another chain")
        if h.height != meta.height + 1:
            raise ShareChainError("invalid_block", f"block height {h.height} is not {meta.height + 1}")
        if h.prev_hash != meta.last_hash:
            raise ShareChainError("invalid_block", "prev_hash does not match the last block")
        if h.state_root != meta.state_root:
            raise ShareChainError("invalid_block", "state_root does not match the executed state")
        if h.results_root != meta.results_root:
            raise ShareChainError("invalid_block", "results_root does not match")
        if h.validators_hash != self._valset.hash():
            raise ShareChainError("invalid_block", "validators_hash does not match")
        if self._valset.by_address(h.proposer) is None:
            raise ShareChainError("invalid_block", "proposer is not a validator")
        if h.time_ms <= meta.time_ms and meta.height > 0:
            raise ShareChainError("invalid_block", "block time does not increase")
        p = self.genesis.consensus
        if len(block.txs) > p.block_txs_max or sum(map(len, block.txs)) > p.block_bytes_max:
            raise ShareChainError("invalid_block", "block exceeds the size limits")
        block.check_shape()
        seen: set[bytes] = set()
        unverified: list[Tx] = []
        for raw, th in zip(block.txs, self._tx_hashes(block)):
            if th in seen:
                raise ShareChainError("invalid_block", "block repeats a tx")
            seen.add(th)
            if self._known(th) is None:
                unverified.append(self._decode_checked(raw, th))
        if self.store.committed_among(list(seen)):
            raise ShareChainError("invalid_block", "block repeats a committed tx")
        self.mempool.verify_many(unverified)
        for tx in unverified:
            if not tx.verified:
                raise ShareChainError("invalid_block", "block holds a tx with a bad signature")
            self._remember_verified(tx)

    async def prevalidate(self, block: Block) -> str | None:
        """Check the signatures of ``block``'s txs that neither the mempool nor an earlier
        validation holds, in the signature workers while the event loop runs on (block
        sync: usually none of a synced block's txs are pooled here). The verified txs are
        remembered, so :meth:`validate_block` and :meth:`commit_block` reuse them and no
        signature is verified twice. Returns why the block is invalid (a malformed tx, a
        bad signature) or None; :meth:`validate_block` still makes every check."""
        fresh: list[Tx] = []
        seen: set[bytes] = set()
        for raw, th in zip(block.txs, self._tx_hashes(block)):
            if th in seen or self._known(th) is not None:
                continue  # a repeat is validate_block's to reject
            seen.add(th)
            try:
                fresh.append(self._decode_checked(raw, th))
            except ShareChainError as exc:
                return exc.message
        if not fresh:
            return None
        await self.mempool.verify_many_async(fresh)
        bad = False
        for tx in fresh:
            if tx.verified:
                self._remember_verified(tx)
            else:
                bad = True
        return "block holds a tx with a bad signature" if bad else None

    def _remember_verified(self, tx: Tx) -> None:
        self._verified.put(tx.hash, tx)

    def _tx_hashes(self, block: Block) -> list[bytes]:
        """The hashes of ``block``'s txs, computed once per block: prevalidate, validate
        and execute walk the same block one after the other."""
        cached_txs, hashes = self._hashes_of
        if cached_txs is not block.txs:
            hashes = [sha256(raw) for raw in block.txs]
            self._hashes_of = (block.txs, hashes)
        return hashes

    def _known(self, tx_hash: bytes) -> Tx | None:
        """The verified Tx this node already holds for ``tx_hash``: pooled, or checked in
        an earlier validation."""
        return self.mempool.get(tx_hash) or self._verified.get(tx_hash)

    def _decode_checked(self, raw: bytes, tx_hash: bytes) -> Tx:
        """A block's tx this node has not seen, decoded and stateless-checked (signature
        not yet verified); ShareChainError says what is wrong with it."""
        try:
            tx = decode_tx(raw, tx_hash)
        except DecodeError as exc:
            raise ShareChainError("invalid_block", f"malformed tx: {exc.message}") from None
        self.app.stateless_check(tx)
        return tx

    # ---------------------------------------------------------------- execution
    def _tx_for(self, raw: bytes, tx_hash: bytes) -> Tx | None:
        tx = self.mempool.get(tx_hash) or self._verified.pop(tx_hash, None)
        if tx is None:
            try:
                tx = decode_tx(raw, tx_hash)
            except DecodeError:
                return None
            if not verify_tx_signature(tx):
                return None
        return tx

    def execute(self, block: Block) -> tuple[dict[bytes, bytes | None], list[TxResult],
                                              list[bytes], list[list[bytes]], list[Event]]:
        h = block.header
        with self.store.view() as view:
            block_state = Overlay(view, ordered=True)
            ctx = Context(block_state, self.chain_id, h.height, h.time_ms, h.proposer, self.app)
            ctx.prev_hash = h.prev_hash  # arbitration: panel draws are seeded from it
            self.app.begin_block(ctx)
            results: list[TxResult] = []
            hashes = self._tx_hashes(block)
            accounts: list[list[bytes]] = []
            deliver = self.app.deliver_tx
            ante = self.ante
            for raw, th in zip(block.txs, hashes):
                tx = self._tx_for(raw, th)
                if tx is None:
                    results.append(TxResult("invalid_tx", "tx is malformed or badly signed", 0))
                    accounts.append([])
                    continue
                results.append(deliver(ctx, tx, ante))
                accounts.append(_accounts_of(tx))
            self.app.end_block(ctx)
            block_events = list(ctx.events)
            changes = dict(block_state.writes)
            if self.check_invariants:
                broken = self.app.check_invariants(block_state)
                invariant(not broken, f"invariants broken at height {h.height}: {broken}")
        return changes, results, hashes, accounts, block_events

    def commit_block(self, block: Block, commit: Commit) -> None:
        with self.lock:
            invariant(block.header.height == self.height() + 1, "commit of a non-next block")
            changes, results, hashes, accounts, block_events = self.execute(block)
            # The validator set for the next height may be changed by end-block hooks.
            enc_results = [encode_result(r) for r in results]
            new_valset = changes.get(VALSET_KEY)
            invariant(VALSET_KEY not in changes or new_valset is not None,
                      "a block deleted the validator set")
            w = BlockWrite(block=block, commit=commit, state_changes=changes,
                           results=enc_results, results_root=merkle_root(enc_results),
                           block_events=encode([to_obj(e) for e in block_events]),
                           tx_hashes=hashes, tx_accounts=accounts,
                           meta_puts={VALSET_META_PREFIX + sha256(new_valset): new_valset}
                           if new_valset is not None else None)
            meta = self.store.commit_block(w)
            if new_valset is not None:
                self._valset = from_obj(ValidatorSet, decode_trusted(new_valset))
            self.mempool.update(hashes)
        cb = CommittedBlock(block, commit, meta.last_hash, results, hashes, block_events,
                            meta.state_root)
        for listener in list(self.listeners):
            try:
                listener(cb)
            except Exception:  # a broken listener must not stop the chain
                log.exception("block listener failed")

    # ---------------------------------------------------------------- history for consensus
    def decision_at(self, height: int) -> tuple[Block, Commit] | None:
        """A committed block with its commit certificate (serves peers catching up)."""
        block, commit = self.store.block(height), self.store.commit(height)
        return None if block is None or commit is None else (block, commit)

    def validator_set_at(self, height: int) -> ValidatorSet:
        """The validator set that signed block ``height`` (named by its header)."""
        block = self.store.block(height)
        invariant(block is not None, f"no block at height {height}")
        raw = self.store.meta_get(VALSET_META_PREFIX + block.header.validators_hash)  # type: ignore[union-attr]
        invariant(raw is not None, "validator set of a stored block is missing")
        return from_obj(ValidatorSet, decode(raw))  # type: ignore[arg-type]

    # ---------------------------------------------------------------- queries
    def query(self, module: str, name: str, params: dict[str, str]) -> Any:
        mod = self.app.by_name.get(module)
        if mod is None or name not in mod.queries:
            raise ShareChainError("not_found", f"no query {module}/{name}")
        with self.store.view() as view:
            return mod.queries[name](view, params)

    def tx_result(self, tx_hash: bytes) -> tuple[int, int, TxResult] | None:
        loc = self.store.tx_location(tx_hash)
        if loc is None:
            return None
        raw = self.store.tx_result(*loc)
        invariant(raw is not None, "tx index points at a missing result")
        return loc[0], loc[1], decode_result(raw)  # type: ignore[arg-type]


def _accounts_of(tx: Tx) -> list[bytes]:
    accts = [tx.sender]
    for m in tx.msgs:
        f = getattr(m, "accounts", None)
        if f is not None:
            for a in f():
                if a not in accts:
                    accts.append(a)
    return accts
