"""The node's storage: state, authenticated tree, blocks and indexes in one LMDB environment.

Theory of operation
-------------------
Everything a committed block changes — state values, state-tree nodes, the block, its
commit certificate, the transaction results and every index — is written in exactly one
LMDB write transaction (:meth:`ChainStore.commit_block`). LMDB commits are atomic and
durable (``sync=True``), so after a crash the last block is either wholly present or
wholly absent, and the state always matches the stored height. The same holds when the
store reaches its size limit (``map_bytes``, the node's ``db_map_mib``) or the disk fills:
the block's transaction is aborted whole and :class:`~sharechain.errors.FatalError` says
which, so the node stops and resumes from the last block once given room.

Named databases:

  state       state key -> value (flat, for fast reads)
  smt         state-tree nodes (see ``store.smt``)
  blocks      height (8 bytes BE) -> encoded Block
  commits     height -> encoded Commit
  hashes      block hash -> height
  txs         tx hash -> height (8) + index (4), for every block up to ``txidx_height``
  results     height (8) + index (4) -> encoded TxResult
  block_ev    height -> encoded begin/end-block events
  acct_txs    address (20) + height (8) + index (4) -> tx hash
  meta        chain metadata: height, state_root, results_root, time_ms, last_hash, genesis,
              txidx_height

**The tx-hash index is written in batches.** Tx hashes are random, so once the ``txs``
database outgrows a block, each of a block's inserts lands on a page of its own: LMDB copies
and writes a whole page per tx. That cost grows with the chain's history (on the project's
machine, 2,000-tx blocks, ``benchmarks/tx_index.py``: ~3 µs per tx at 40,000 txs, ~11 µs at
200,000, ~14 µs at 600,000, with 1 KB, 12 KB and 24 KB written to disk per tx by each
block's fsync) until a 4-validator localnet could no longer keep up with a load it had
carried for its first ten seconds. Batched, the same runs cost 2.3–3.9 µs and 0.1–1.6 KB. So
a committed block's ``(tx hash, position)`` pairs first go to a map in memory, and every
``TX_INDEX_BATCH`` txs (or ``TX_INDEX_BLOCKS`` blocks) they are written to ``txs`` together,
sorted, inside that block's write transaction: many inserts share each page they touch.
``txidx_height`` in ``meta`` says which blocks ``txs`` covers; the blocks above it are all
stored, so a node that restarts rebuilds the map by hashing their txs (at most
``TX_INDEX_BLOCKS`` blocks). Lookups (:meth:`ChainStore.tx_location`,
:meth:`ChainStore.committed_among`) consult the map first, then ``txs``. The map changes
only after the block's transaction has committed (entries are added in one C call; a flushed
map is replaced, not cleared), so a reader on another thread sees a committed tx either in
the map or in ``txs``. A store without ``txidx_height`` (written before batching) has every
block in ``txs``.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lmdb

from sharechain.app.state import CommittedView
from sharechain.chain.types import Block, Commit, decode_block, decode_commit, encode_block, encode_commit
from sharechain.crypto import EMPTY_MERKLE_ROOT, sha256
from sharechain.encoding import decode, encode
from sharechain.errors import FatalError
from sharechain.store.smt import StateTree

MAP_BYTES = 64 * 1024**3  # sparse; grows on disk only as used
_NO_SPACE = os.strerror(errno.ENOSPC)
_H = struct.Struct(">Q")
_HI = struct.Struct(">QI")
TX_INDEX_BATCH = 32_768  # tx-hash index entries held in memory before they are written
TX_INDEX_BLOCKS = 64     # blocks held at most, so a restart rehashes at most this many
_TXIDX_KEY = b"txidx_height"


def hkey(height: int) -> bytes:
    return _H.pack(height)


@dataclass(frozen=True)
class Meta:
    height: int
    state_root: bytes
    results_root: bytes
    time_ms: int
    last_hash: bytes


@dataclass
class BlockWrite:
    """Everything one committed block writes."""

    block: Block
    commit: Commit
    state_changes: Mapping[bytes, bytes | None]
    results: list[bytes]              # encoded TxResult per tx, in order
    results_root: bytes
    block_events: bytes               # encoded begin/end-block events
    tx_hashes: list[bytes]
    tx_accounts: list[list[bytes]]    # addresses to index each tx under
    meta_puts: dict[bytes, bytes] | None = None  # extra meta records (e.g. a new validator set)


class ChainStore:
    def __init__(self, path: str, map_bytes: int | None = None) -> None:
        """``map_bytes``: the most the store may grow to (LMDB's map size; the file is
        sparse and grows only as used). An existing store larger than it keeps its size."""
        os.makedirs(path, exist_ok=True)
        self.env = lmdb.open(path, max_dbs=16, map_size=map_bytes or MAP_BYTES, sync=True, metasync=True,
                             max_readers=512, readahead=False)
        o = self.env.open_db
        self.db_state = o(b"state")
        self.db_smt = o(b"smt")
        self.db_blocks = o(b"blocks")
        self.db_commits = o(b"commits")
        self.db_hashes = o(b"hashes")
        self.db_txs = o(b"txs")
        self.db_results = o(b"results")
        self.db_block_ev = o(b"block_ev")
        self.db_acct_txs = o(b"acct_txs")
        self.db_meta = o(b"meta")
        self.tree = StateTree(self.env, self.db_smt)
        self._page_bytes = int(self.env.stat()["psize"])
        self._meta = self._load_meta()
        # Tx hash -> packed position, for the blocks above self._txidx_height (see above).
        self._recent: dict[bytes, bytes] = {}
        self._txidx_height = self._load_tx_index()

    def close(self) -> None:
        self.env.close()

    # ---------------------------------------------------------------- metadata
    def _load_meta(self) -> Meta | None:
        with self.env.begin(db=self.db_meta) as txn:
            raw = txn.get(b"meta")
        if raw is None:
            return None
        m = decode(raw)
        return Meta(m["height"], m["state_root"], m["results_root"], m["time_ms"], m["last_hash"])

    def _load_tx_index(self) -> int:
        """The height ``txs`` covers; rebuilds the map of the blocks above it."""
        height = self._meta.height if self._meta is not None else 0
        with self.env.begin() as txn:
            raw = txn.get(_TXIDX_KEY, db=self.db_meta)
            covered = height if raw is None else _H.unpack(raw)[0]
            recent = {}
            for h in range(covered + 1, height + 1):
                block_raw = txn.get(hkey(h), db=self.db_blocks)
                if block_raw is None:
                    raise FatalError("store_corrupt", f"block {h} is missing from the store")
                for i, tx in enumerate(decode_block(block_raw).txs):
                    recent[sha256(tx)] = _HI.pack(h, i)
        self._recent = recent
        return covered

    @property
    def meta(self) -> Meta:
        if self._meta is None:
            raise RuntimeError("store has no genesis yet")
        return self._meta

    @property
    def initialized(self) -> bool:
        return self._meta is not None

    def meta_get(self, key: bytes) -> bytes | None:
        with self.env.begin(db=self.db_meta) as txn:
            return txn.get(key)

    def genesis_doc(self) -> bytes | None:
        with self.env.begin(db=self.db_meta) as txn:
            return txn.get(b"genesis")

    @staticmethod
    def _meta_bytes(m: Meta) -> bytes:
        return encode({"height": m.height, "state_root": m.state_root,
                       "results_root": m.results_root, "time_ms": m.time_ms,
                       "last_hash": m.last_hash})

    # ---------------------------------------------------------------- writes
    def write_genesis(self, genesis_bytes: bytes, changes: Mapping[bytes, bytes | None],
                      time_ms: int, meta_puts: dict[bytes, bytes] | None = None) -> Meta:
        with self.env.begin(write=True) as txn:
            for k, v in (meta_puts or {}).items():
                txn.put(k, v, db=self.db_meta)
            self._put_state(txn, changes)
            root = self.tree.apply(txn, changes)
            meta = Meta(0, root, EMPTY_MERKLE_ROOT, time_ms, b"\x00" * 32)
            txn.put(b"genesis", genesis_bytes, db=self.db_meta)
            txn.put(b"meta", self._meta_bytes(meta), db=self.db_meta)
        self._meta = meta
        return meta

    def _put_state(self, txn: lmdb.Transaction, changes: Mapping[bytes, bytes | None]) -> None:
        db = self.db_state
        puts = [(k, v) for k, v in changes.items() if v is not None]
        if len(puts) != len(changes):
            for k, v in changes.items():
                if v is None:
                    txn.delete(k, db=db)
        # One C call for all the puts (a Python-level put per key costs more than LMDB's work).
        txn.cursor(db=db).putmulti(puts)

    def commit_block(self, w: BlockWrite) -> Meta:
        """Persist one block and everything it changed, atomically."""
        h = w.block.header.height
        try:
            meta = self._write_block(w)
        except lmdb.MapFullError:
            raise FatalError("store_full", f"the store reached its size limit of "
                             f"{self.usage()[1] / 2**20:,.0f} MiB at height {h}, and nothing "
                             "of that block was written: raise db_map_mib in the node's "
                             "config.json and start it again") from None
        except lmdb.Error as exc:
            if _NO_SPACE not in str(exc):
                raise
            raise FatalError.disk_full(f"the store (nothing of block {h} was written)") from None
        self._meta = meta
        return meta

    def _write_block(self, w: BlockWrite) -> Meta:
        h = w.block.header.height
        hk = hkey(h)
        block_hash = w.block.hash()
        with self.env.begin(write=True) as txn:
            self._put_state(txn, w.state_changes)
            root = self.tree.apply(txn, w.state_changes)
            put = txn.put
            put(hk, encode_block(w.block), db=self.db_blocks)
            put(hk, encode_commit(w.commit), db=self.db_commits)
            put(block_hash, hk, db=self.db_hashes)
            put(hk, w.block_events, db=self.db_block_ev)
            positions = [_HI.pack(h, i) for i in range(len(w.tx_hashes))]
            indexed = list(zip(w.tx_hashes, positions))
            covered = self._txidx_height
            flush = (len(self._recent) + len(indexed) >= TX_INDEX_BATCH
                     or h - covered >= TX_INDEX_BLOCKS)
            if flush:  # sorted: equal hashes by position, so the latest wins, as in the map
                txn.cursor(db=self.db_txs).putmulti(sorted([*self._recent.items(), *indexed]))
                covered = h
            put(_TXIDX_KEY, _H.pack(covered), db=self.db_meta)
            txn.cursor(db=self.db_results).putmulti(zip(positions, w.results))
            txn.cursor(db=self.db_acct_txs).putmulti(
                [(a + pos, th) for th, pos, accts in zip(w.tx_hashes, positions, w.tx_accounts)
                 for a in accts])
            for k, v in (w.meta_puts or {}).items():
                put(k, v, db=self.db_meta)
            meta = Meta(h, root, w.results_root, w.block.header.time_ms, block_hash)
            put(b"meta", self._meta_bytes(meta), db=self.db_meta)
        # Committed: now readers may see the block's txs. One C call adds them all (no other
        # thread runs meanwhile); a flushed map is replaced, so a reader holding it still
        # finds what it held.
        if flush:
            self._recent = {}
        else:
            self._recent.update(indexed)
        self._txidx_height = covered
        return meta

    def usage(self) -> tuple[int, int]:
        """(bytes in use, the most the store may grow to). In use: the pages up to the
        highest one written, free pages LMDB will reuse included."""
        info = self.env.info()
        return (int(info["last_pgno"]) + 1) * self._page_bytes, int(info["map_size"])

    # ---------------------------------------------------------------- reads
    @contextmanager
    def view(self) -> Iterator[CommittedView]:
        with self.env.begin(buffers=False) as txn:
            yield CommittedView(txn, self.db_state)

    def block(self, height: int) -> Block | None:
        with self.env.begin(db=self.db_blocks) as txn:
            raw = txn.get(hkey(height))
        return None if raw is None else decode_block(raw)

    def block_raw(self, height: int) -> bytes | None:
        with self.env.begin(db=self.db_blocks) as txn:
            return txn.get(hkey(height))

    def commit_raw(self, height: int) -> bytes | None:
        with self.env.begin(db=self.db_commits) as txn:
            return txn.get(hkey(height))

    def commit(self, height: int) -> Commit | None:
        with self.env.begin(db=self.db_commits) as txn:
            raw = txn.get(hkey(height))
        return None if raw is None else decode_commit(raw)

    def height_of_hash(self, block_hash: bytes) -> int | None:
        with self.env.begin(db=self.db_hashes) as txn:
            raw = txn.get(block_hash)
        return None if raw is None else _H.unpack(raw)[0]

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        raw = self._recent.get(tx_hash)  # the map first: see "written in batches" above
        if raw is None:
            with self.env.begin(db=self.db_txs) as txn:
                raw = txn.get(tx_hash)
        return None if raw is None else _HI.unpack(raw)

    def committed_among(self, tx_hashes: list[bytes]) -> set[bytes]:
        """Which of ``tx_hashes`` are committed, in one read transaction."""
        if not tx_hashes:
            return set()
        recent = self._recent  # the map first: see "written in batches" above
        with self.env.begin(db=self.db_txs) as txn:
            get = txn.get
            return {h for h in tx_hashes if h in recent or get(h) is not None}

    def tx_result(self, height: int, index: int) -> bytes | None:
        with self.env.begin(db=self.db_results) as txn:
            return txn.get(_HI.pack(height, index))

    def block_events(self, height: int) -> bytes | None:
        with self.env.begin(db=self.db_block_ev) as txn:
            return txn.get(hkey(height))

    def account_txs(self, addr: bytes, limit: int, before_height: int | None = None
                    ) -> list[tuple[int, int, bytes]]:
        """Newest first: (height, index, tx hash) of txs that touched ``addr``."""
        out: list[tuple[int, int, bytes]] = []
        upper = addr + (_HI.pack(before_height, 0) if before_height is not None else b"\xff" * 12)
        with self.env.begin(db=self.db_acct_txs) as txn, txn.cursor() as cur:
            if not cur.set_range(upper):
                if not cur.last():
                    return out
            else:
                if not cur.prev():
                    return out
            while len(out) < limit:
                k, v = cur.item()
                if not k.startswith(addr):
                    break
                hh, ii = _HI.unpack(k[20:])
                out.append((hh, ii, v))
                if not cur.prev():
                    break
        return out

    def prove(self, key: bytes) -> tuple[bytes | None, Any, int, bytes]:
        """(value, proof, height, state root) from one consistent snapshot."""
        with self.env.begin() as txn:
            value = txn.get(key, db=self.db_state)
            proof = self.tree.prove(txn, key)
            m = decode(txn.get(b"meta", db=self.db_meta))
            return value, proof, m["height"], m["state_root"]
