"""Layered key/value state used while executing a block.

``CommittedView`` reads the last committed state through one LMDB read transaction.
``Overlay`` buffers writes above a parent (a view or another overlay): a block overlay
collects the block's writes, and each transaction runs in its own overlay, which is merged
into the block overlay or dropped. A transaction whose ante step fails drops it; one whose
message fails first rolls it back to the ante step's writes (:meth:`Overlay.savepoint`,
:meth:`Overlay.roll_back`), so the fee and nonce stay and the message's writes revert.
Deletions are recorded as ``None``. Range iteration merges the buffered writes with the
parent in key order, so modules can keep ordered indexes (deadlines, listings) and walk
only the part they need.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Protocol

import lmdb
from sortedcontainers import SortedList

_TOMBSTONE = None


class Readable(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def iter_range(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class CommittedView:
    """Committed state through a read transaction (a consistent snapshot)."""

    __slots__ = ("_txn", "_db")

    def __init__(self, txn: lmdb.Transaction, db: "lmdb._Database") -> None:
        self._txn = txn
        self._db = db

    def get(self, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._db)

    def iter_range(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._txn.cursor(db=self._db) as cur:
            if not cur.set_range(start):
                return
            for k, v in cur:
                if k >= end:
                    return
                yield k, v


class Overlay:
    """Buffered writes over a parent state.

    An ``ordered`` overlay (the block-level one, which may hold tens of thousands of
    writes) keeps its written keys in a sorted list too, so a range read costs
    O(log n + keys in range) instead of a scan of every write. Per-transaction overlays
    are small and scan their dict.
    """

    __slots__ = ("parent", "writes", "_order", "_unsorted")

    def __init__(self, parent: Readable, ordered: bool = False) -> None:
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}
        self._order: SortedList | None = SortedList() if ordered else None
        # New keys of an ordered overlay wait here until a range read needs them sorted:
        # one bulk update per range read instead of an insertion per write.
        self._unsorted: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        w = self.writes
        if key in w:
            return w[key]
        return self.parent.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        if self._order is not None and key not in self.writes:
            self._unsorted.append(key)
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        if self._order is not None and key not in self.writes:
            self._unsorted.append(key)
        self.writes[key] = _TOMBSTONE

    def savepoint(self) -> dict[bytes, bytes | None]:
        """The writes so far, for :meth:`roll_back`. For per-transaction overlays, which
        hold a handful of keys: the copy costs less than a child overlay and its merge."""
        if self._order is not None:
            raise TypeError("an ordered overlay has no savepoints")
        return self.writes.copy()

    def roll_back(self, savepoint: dict[bytes, bytes | None]) -> None:
        """Forget every write made since :meth:`savepoint` returned ``savepoint``."""
        self.writes = savepoint

    def iter_range(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Live (key, value) pairs with start <= key < end, in key order."""
        w = self.writes
        if self._order is not None:
            if self._unsorted:
                self._order.update(self._unsorted)
                self._unsorted = []
            mine = [(k, w[k]) for k in self._order.irange(start, end, inclusive=(True, False))]
        else:
            mine = sorted((k, v) for k, v in w.items() if start <= k < end)
        if not mine:
            yield from self.parent.iter_range(start, end)
            return
        overridden = {k for k, _ in mine}
        parent_items = ((k, v) for k, v in self.parent.iter_range(start, end)
                        if k not in overridden)
        for k, v in heapq.merge(mine, parent_items, key=lambda kv: kv[0]):
            if v is not None:
                yield k, v

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.iter_range(prefix, prefix_end(prefix))

    def merge_into_parent(self) -> None:
        parent = self.parent
        if not isinstance(parent, Overlay):
            raise TypeError("only an overlay can absorb writes")
        if parent._order is not None:
            pw = parent.writes
            parent._unsorted.extend([k for k in self.writes if k not in pw])
        parent.writes.update(self.writes)


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix``."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\xff" * 64
