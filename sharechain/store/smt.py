"""Authenticated state tree: a compact sparse Merkle tree over the state, stored in LMDB.

Theory of operation
-------------------
**Shape.** Every state key ``k`` has a 256-bit path ``kh = sha256(k)``, read from the most
significant bit down (the bit at depth 0 is the top bit of ``kh[0]``; 0 = left, 1 = right).
The tree is the binary trie of the key hashes *with leaf compression*: a leaf sits at the
shortest prefix of its path that no other key shares. So a subtree holding no key is
*empty*, a subtree holding exactly one key *is* that key's leaf, and a subtree holding two or
more keys is an *internal* node. Where two keys share a long prefix a chain of internal nodes
with one empty side remains (this is the "compact sparse Merkle tree"; Diem's Jellyfish
Merkle tree with binary nodes). The expected leaf depth is about ``log2(n) + 1.3``; the shape,
and so the root, is a function of the content only, never of the history of updates, their
order or how they were split into batches.

**Hash domains.** ::

    leaf(kh, v)    = sha256(0x00 || kh || sha256(v))       # 65-byte preimage
    internal(l, r) = sha256(0x01 || l || r)                # 65-byte preimage
    empty          = 32 zero bytes = EMPTY_ROOT            # no known preimage

The prefix byte keeps leaves and internal nodes apart (neither can pass for the other), and
the empty constant is not the hash of any known input. An empty tree has root EMPTY_ROOT; a
tree of one key has that key's leaf hash as its root.

**Proofs.** A :class:`Proof` follows the key's path from the root to the node where it ends:
the key's own leaf (membership), an empty subtree, or the leaf of another key occupying the
key's compressed position (non-membership). It carries that terminal's depth, the sibling
hashes along the path from the root downward (empty siblings as bits of ``empty_mask``, not
spelled out) and, for a leaf terminal, the leaf's ``(key_hash, value_hash)``.
:func:`verify_proof` rebuilds the root bottom-up and compares. Non-membership is sound
because in the canonical tree an honest root commits to, every present key sits in a leaf on
its own path: if the node at a prefix ``p`` of ``sha256(k)`` is empty, or is the leaf of a
key hash ``kh' != sha256(k)`` that also starts with ``p``, the subtree at ``p`` holds no
``k``. Passing off another node as that one needs a second preimage of a node hash (or a
preimage of zero); the verifier also checks that ``kh'`` really lies under ``p``. A proof is
for the **latest committed state only**: nodes are overwritten in place and no older version
is kept, so a proof must be served from the same read transaction as the root it is for.

**Storage.** Nodes are grouped into *pages* of ``PAGE_LEVELS = 4`` levels, so a path of
depth ~21 (a million keys) touches ~6 LMDB records rather than ~21. A page is keyed by the
bit path of its top node, written as the minimal big-endian bytes of the heap index
``(1 << depth) | prefix`` (page depths are multiples of 4; the root page's key is
``b"\\x01"``). Inside a page, nodes have heap-order slot numbers: slot 1 is the page's top
node, slots 2-3 the level below, ..., slots 16-31 the *boundary* nodes four levels down. A
boundary node that is internal is also slot 1 of its own child page (its hash is stored in
both). A record is compact, so the many sparse pages near the leaves stay small::

    [0:4]   occupancy bitmap, big-endian: bit s set <=> slot s is not empty
    [4:8]   leaf bitmap (a subset): bit s set <=> slot s is a leaf
    [8:]    the 32-byte hash of each occupied slot, in increasing slot order,
            then key_hash || value_hash (64 bytes) of each leaf slot, in slot order

A page exists iff its top node is internal (the root page: iff the tree is non-empty, its
top may be a leaf). Nothing is stored below a leaf or an empty node, so an update rewrites
pages in place and leaves no garbage; :func:`check_tree` verifies all of this.

**Updates.** :meth:`StateTree.apply` hashes and sorts the changed keys, then walks the union
of their paths once, depth first, splitting the sorted range at each node by binary search
(a lone key walks its path in a loop). Where a path ends at an empty slot or a leaf, the keys
under it (the old leaf and the new values) are laid out afresh. On the way back up each node
on the union of paths is hashed exactly once, and an internal node left with one leaf and an
empty side is replaced by that leaf: that is how deletions keep the tree canonical. Each
touched page is read once and written (or deleted) once, inside the caller's write
transaction; nothing is cached across transactions. Cost: O(k log n) hashes and O(pages on
the union of the k paths) LMDB reads and writes for k changed keys in a tree of n.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the light client imports verify_proof without needing LMDB
    import lmdb

__all__ = [
    "BATCH_KEYS_MAX",
    "EMPTY_ROOT",
    "KEY_BYTES_MAX",
    "VALUE_BYTES_MAX",
    "Proof",
    "StateTree",
    "TreeCorruptError",
    "TreeInvariantError",
    "check_tree",
    "invariant",
    "verify_proof",
]

HASH_BYTES = 32
EMPTY_ROOT = bytes(HASH_BYTES)
KEY_BYTES_MAX = 511  # LMDB's default key size limit, which the flat state database also has
VALUE_BYTES_MAX = 64 * 1024 * 1024
BATCH_KEYS_MAX = 10_000_000
PATH_BITS = 256
PAGE_LEVELS = 4

_ZERO = EMPTY_ROOT
_LEAF = b"\x00"
_NODE = b"\x01"
_TAG = 1 << PATH_BITS  # key hashes are kept as ints with this bit set: t >> (256 - d) = heap index
_BOUNDARY = 1 << PAGE_LEVELS  # the first boundary slot; slots run 1 .. 2 * _BOUNDARY - 1
_MAP_BYTES = 2 * _BOUNDARY // 8  # one bitmap, a bit per slot (slot 0 unused)
_BASE = 2 * _MAP_BYTES  # where the slot hashes start
_LEAF_BYTES = 2 * HASH_BYTES
_ROOT_PAGE_KEY = b"\x01"
_BELOW = [(1 << s) - 1 for s in range(2 * _BOUNDARY)]  # bitmap bits of the slots before s


class TreeInvariantError(RuntimeError):
    """Internal consistency of the tree is broken: a bug, not bad input."""


class TreeCorruptError(RuntimeError):
    """A stored page is malformed or missing: the database is damaged."""


def invariant(cond: bool, msg: str) -> None:
    """Stop on a broken invariant (unlike ``assert``, not stripped by ``python -O``)."""
    if not cond:
        raise TreeInvariantError(msg)


def _page_key(index: int) -> bytes:
    """LMDB key of a page from the heap index of its top node."""
    return index.to_bytes((index.bit_length() + 7) >> 3, "big")


def _tagged(key_hash: bytes) -> int:
    return int.from_bytes(key_hash, "big") | _TAG


class _Page:
    """One page as a mutable record: ``buf`` is the record, ``occ``/``mask`` its bitmaps."""

    __slots__ = ("buf", "key", "mask", "occ", "stored")

    def __init__(self, key: bytes, rec: bytes | None) -> None:
        self.key = key
        self.stored = rec is not None
        if rec is None:
            self.buf = bytearray(_BASE)
            self.occ = self.mask = 0
            return
        occ = int.from_bytes(rec[:_MAP_BYTES], "big")
        mask = int.from_bytes(rec[_MAP_BYTES:_BASE], "big")
        size = _BASE + (occ.bit_count() << 5) + (mask.bit_count() << 6)
        if len(rec) != size or occ & 1 or mask & ~occ:
            raise TreeCorruptError(f"state tree page {key.hex()} is malformed")
        self.buf = bytearray(rec)
        self.occ = occ
        self.mask = mask

    def slot(self, s: int) -> bytes:
        """The hash at slot s (EMPTY_ROOT if empty)."""
        occ = self.occ
        if not (occ >> s) & 1:
            return _ZERO
        off = _BASE + ((occ & _BELOW[s]).bit_count() << 5)
        return bytes(self.buf[off : off + 32])

    def leaf(self, s: int) -> bytes | None:
        """``key_hash || value_hash`` of the leaf at slot s, or None if s is not a leaf."""
        mask = self.mask
        if not (mask >> s) & 1:
            return None
        off = _BASE + (self.occ.bit_count() << 5) + ((mask & _BELOW[s]).bit_count() << 6)
        return bytes(self.buf[off : off + _LEAF_BYTES])

    def set_node(self, s: int, node_hash: bytes, leaf: bytes | None) -> None:
        """Make slot s empty (node_hash zero), a leaf, or an internal node (leaf None)."""
        buf, occ, mask = self.buf, self.occ, self.mask
        bit = 1 << s
        below = bit - 1
        at = _BASE + (occ.bit_count() << 5) + ((mask & below).bit_count() << 6)
        if mask & bit:
            if leaf is None:
                del buf[at : at + _LEAF_BYTES]
                mask ^= bit
            else:
                buf[at : at + _LEAF_BYTES] = leaf
        elif leaf is not None:
            buf[at:at] = leaf
            mask |= bit
        at = _BASE + ((occ & below).bit_count() << 5)
        if occ & bit:
            if node_hash == _ZERO:
                del buf[at : at + 32]
                occ ^= bit
            else:
                buf[at : at + 32] = node_hash
        elif node_hash != _ZERO:
            buf[at:at] = node_hash
            occ |= bit
        self.occ, self.mask = occ, mask

    def encode(self) -> bytearray:
        self.buf[:_BASE] = self.occ.to_bytes(_MAP_BYTES, "big") + self.mask.to_bytes(
            _MAP_BYTES, "big"
        )
        return self.buf


def _load(get: Callable[..., Any], db: Any, key: bytes) -> _Page | None:
    rec = get(key, None, db)
    return None if rec is None else _Page(key, rec)


def _rehash(page: _Page, s: int) -> None:
    """Recompute internal slot s (< _BOUNDARY) from its children, folding a lone leaf up."""
    occ = page.occ
    c = 2 * s
    kids = (occ >> c) & 3
    if kids == 3:
        buf = page.buf
        off = _BASE + ((occ & _BELOW[c]).bit_count() << 5)
        out = _BASE + ((occ & _BELOW[s]).bit_count() << 5)
        buf[out : out + 32] = sha256(_NODE + buf[off : off + 64]).digest()
        return
    if kids == 0:
        page.set_node(s, _ZERO, None)
        return
    child = c if kids == 1 else c + 1
    child_hash = page.slot(child)
    leaf = page.leaf(child)
    if leaf is not None:
        page.set_node(child, _ZERO, None)
        page.set_node(s, child_hash, leaf)
        return
    pair = child_hash + _ZERO if child == c else _ZERO + child_hash
    page.set_node(s, sha256(_NODE + pair).digest(), None)


class _Batch:
    """One apply(): the sorted changes and the transaction they are written in."""

    def __init__(self, txn: lmdb.Transaction, db: Any, changes: Mapping[bytes, bytes | None]):
        self.txn = txn
        self.get = txn.get
        self.put = txn.put
        self.db = db
        rows = []
        for key, value in changes.items():
            if type(key) is not bytes or not 0 < len(key) <= KEY_BYTES_MAX:
                _check_key(key)
            kh = sha256(key).digest()
            if value is None:
                rows.append((int.from_bytes(kh, "big") | _TAG, kh, None, None))
            else:
                if type(value) is not bytes or len(value) > VALUE_BYTES_MAX:
                    _check_value(value)
                data = kh + sha256(value).digest()
                rows.append(
                    (int.from_bytes(kh, "big") | _TAG, kh, data, sha256(_LEAF + data).digest())
                )
        rows.sort(key=_first)
        self.ts: list[int] = [row[0] for row in rows]
        self.kh: list[bytes] = [row[1] for row in rows]
        self.leaf: list[bytes | None] = [row[2] for row in rows]
        self.leaf_hash: list[bytes | None] = [row[3] for row in rows]
        self.changed = set(self.ts)
        invariant(len(self.changed) == len(rows), "two state keys share a sha256 hash")

    def run(self) -> bytes:
        page = self._load(_ROOT_PAGE_KEY) or _Page(_ROOT_PAGE_KEY, None)
        self._descend(page, 1, 0, 0, len(self.ts))
        root = page.slot(1)
        self._flush(page, root != _ZERO)
        return root

    def _load(self, key: bytes) -> _Page | None:
        rec = self.get(key, None, self.db)
        return None if rec is None else _Page(key, rec)

    def _load_below(self, t: int, d: int) -> _Page:
        """The stored page whose top node is at depth d on the path of tagged key hash t."""
        index = t >> (PATH_BITS - d)
        key = index.to_bytes((index.bit_length() + 7) >> 3, "big")
        rec = self.get(key, None, self.db)
        if rec is None:
            raise TreeCorruptError(f"state tree page {key.hex()} is missing")
        return _Page(key, rec)

    def _flush(self, page: _Page, keep: bool) -> None:
        if keep:
            self.put(page.key, page.encode(), True, True, False, self.db)
        elif page.stored:
            self.txn.delete(page.key, b"", self.db)

    def _adopt(self, page: _Page, s: int, sub: _Page) -> None:
        """Copy a child page's top node into boundary slot s, then store or drop the page."""
        occ = page.occ
        if sub.occ & 2 and not sub.mask & 2 and (occ >> s) & 1 and not (page.mask >> s) & 1:
            out = _BASE + ((occ & _BELOW[s]).bit_count() << 5)  # internal stays internal
            page.buf[out : out + 32] = sub.buf[_BASE : _BASE + 32]
            self.put(sub.key, sub.encode(), True, True, False, self.db)
            return
        top = sub.slot(1)
        leaf = sub.leaf(1)
        page.set_node(s, top, leaf)
        self._flush(sub, top != _ZERO and leaf is None)

    def _descend(self, page: _Page, s: int, d: int, lo: int, hi: int) -> None:
        """Apply changes lo:hi (all under the node at slot s, depth d) to that node."""
        if hi - lo == 1:
            self._descend_one(page, s, d, lo)
        elif not (page.occ >> s) & 1 or (page.mask >> s) & 1:
            self._rebuild(page, s, d, lo, hi)
        elif s < _BOUNDARY:
            self._walk(page, s, d, lo, hi)
        else:
            sub = self._load_below(self.ts[lo], d)
            self._walk(sub, 1, d, lo, hi)
            self._adopt(page, s, sub)

    def _walk(self, page: _Page, s: int, d: int, lo: int, hi: int) -> None:
        """The node at slot s (< _BOUNDARY) is internal: recurse where keys change."""
        ts = self.ts
        shift = PATH_BITS - 1 - d
        mid = bisect_left(ts, ((ts[lo] >> shift) | 1) << shift, lo, hi)
        if lo < mid:
            self._descend(page, 2 * s, d + 1, lo, mid)
        if mid < hi:
            self._descend(page, 2 * s + 1, d + 1, mid, hi)
        _rehash(page, s)

    def _descend_one(self, page: _Page, s: int, d: int, i: int) -> None:
        """_descend for a single change: walk its path in a loop, then hash back up."""
        t = self.ts[i]
        trail: list[tuple[_Page, int, _Page | None]] = []
        while (page.occ >> s) & 1 and not (page.mask >> s) & 1:
            if s >= _BOUNDARY:
                sub = self._load_below(t, d)
                trail.append((page, s, sub))
                page, s = sub, 1
            trail.append((page, s, None))
            s = 2 * s + ((t >> (PATH_BITS - 1 - d)) & 1)
            d += 1
        self._set_one(page, s, d, i)
        for page, s, sub in reversed(trail):
            if sub is not None:
                self._adopt(page, s, sub)
                continue
            occ = page.occ
            c = 2 * s
            if (occ >> c) & 3 != 3:
                _rehash(page, s)  # an empty side: maybe fold a leaf upward
                continue
            buf = page.buf
            off = _BASE + ((occ & _BELOW[c]).bit_count() << 5)
            out = _BASE + ((occ & _BELOW[s]).bit_count() << 5)
            buf[out : out + 32] = sha256(_NODE + buf[off : off + 64]).digest()

    def _set_one(self, page: _Page, s: int, d: int, i: int) -> None:
        """Slot s holds a leaf or nothing; the single change i lands there."""
        data = self.leaf[i]
        old = page.leaf(s)
        if old is not None and old[:HASH_BYTES] != self.kh[i]:
            if data is None:
                return  # deleting an absent key
            new = (self.ts[i], data, self.leaf_hash[i])
            was = (_tagged(old[:HASH_BYTES]), old, page.slot(s))
            pair = (new, was) if new[0] < was[0] else (was, new)
            ts, leaf, lh = ([x[j] for x in pair] for j in range(3))
            self._place(page, s, d, ts, leaf, lh, 0, 2)  # type: ignore[arg-type]
        elif data is not None:
            page.set_node(s, self.leaf_hash[i], data)  # type: ignore[arg-type]
        elif old is not None:
            page.set_node(s, _ZERO, None)

    def _rebuild(self, page: _Page, s: int, d: int, lo: int, hi: int) -> None:
        """Slot s holds a leaf or nothing: lay out the old leaf and the new values afresh."""
        ts = self.ts[lo:hi]
        leaf = self.leaf[lo:hi]
        lh = self.leaf_hash[lo:hi]
        old = page.leaf(s)
        if old is not None:
            t_old = _tagged(old[:HASH_BYTES])
            if t_old not in self.changed:
                at = bisect_left(ts, t_old)
                ts.insert(at, t_old)
                leaf.insert(at, old)
                lh.insert(at, page.slot(s))
        keep = [j for j, x in enumerate(leaf) if x is not None]
        if len(keep) != len(ts):
            ts = [ts[j] for j in keep]
            leaf = [leaf[j] for j in keep]
            lh = [lh[j] for j in keep]
        self._place(page, s, d, ts, leaf, lh, 0, len(ts))  # type: ignore[arg-type]

    def _place(
        self,
        page: _Page,
        s: int,
        d: int,
        ts: list[int],
        leaf: list[bytes],
        lh: list[bytes],
        lo: int,
        hi: int,
    ) -> None:
        """Write the canonical subtree of entries lo:hi at slot s, replacing a leaf or nothing."""
        n = hi - lo
        if n < 2:
            page.set_node(s, lh[lo] if n else _ZERO, leaf[lo] if n else None)
            return
        page.set_node(s, _ZERO, None)  # drop the old leaf before the children move in
        if s >= _BOUNDARY:
            sub = _Page(_page_key(ts[lo] >> (PATH_BITS - d)), None)
            self._place(sub, 1, d, ts, leaf, lh, lo, hi)
            self._adopt(page, s, sub)
            return
        shift = PATH_BITS - 1 - d
        mid = bisect_left(ts, ((ts[lo] >> shift) | 1) << shift, lo, hi)
        self._place(page, 2 * s, d + 1, ts, leaf, lh, lo, mid)
        self._place(page, 2 * s + 1, d + 1, ts, leaf, lh, mid, hi)
        pair = page.slot(2 * s) + page.slot(2 * s + 1)
        page.set_node(s, sha256(_NODE + pair).digest(), None)


def _first(row: tuple[int, bytes, bytes | None, bytes | None]) -> int:
    return row[0]


def _check_key(key: object) -> None:
    if not isinstance(key, bytes) or not 0 < len(key) <= KEY_BYTES_MAX:
        raise ValueError(f"state key must be 1..{KEY_BYTES_MAX} bytes")


def _check_value(value: object) -> None:
    if not isinstance(value, bytes) or len(value) > VALUE_BYTES_MAX:
        raise ValueError(f"state value must be bytes of at most {VALUE_BYTES_MAX} bytes, or None")


@dataclass(frozen=True)
class Proof:
    """A path from the root to the node where a key's path ends.

    ``depth``: depth of the terminal node (0 = the root itself).
    ``siblings``: the non-empty sibling hashes along the path, from the root downward.
    ``empty_mask``: bit i set <=> the sibling of the path node at depth i + 1 is empty.
    ``leaf``: ``(key_hash, value_hash)`` of the terminal leaf, or None if the terminal is empty.
    """

    depth: int
    siblings: tuple[bytes, ...]
    empty_mask: int
    leaf: tuple[bytes, bytes] | None

    def __post_init__(self) -> None:
        if type(self.depth) is not int or not 0 <= self.depth <= PATH_BITS:
            raise ValueError("proof depth must be an int in 0..256")
        if type(self.empty_mask) is not int or not 0 <= self.empty_mask < 1 << self.depth:
            raise ValueError("proof empty_mask must be an int below 2**depth")
        if not isinstance(self.siblings, tuple) or any(
            type(h) is not bytes or len(h) != HASH_BYTES or h == _ZERO for h in self.siblings
        ):
            raise ValueError("proof siblings must be a tuple of non-zero 32-byte hashes")
        if len(self.siblings) + self.empty_mask.bit_count() != self.depth:
            raise ValueError("proof has the wrong number of siblings for its depth")
        if self.leaf is not None and (
            not isinstance(self.leaf, tuple)
            or len(self.leaf) != 2
            or any(type(h) is not bytes or len(h) != HASH_BYTES for h in self.leaf)
        ):
            raise ValueError("proof leaf must be None or (key_hash, value_hash), 32 bytes each")

    def to_obj(self) -> dict[str, Any]:
        """A plain structure (ints, bytes, lists, None) for canonical CBOR."""
        return {
            "depth": self.depth,
            "empty_mask": self.empty_mask.to_bytes((self.depth + 7) >> 3, "big"),
            "siblings": list(self.siblings),
            "leaf": None if self.leaf is None else list(self.leaf),
        }

    @classmethod
    def from_obj(cls, obj: object) -> Proof:
        """Inverse of to_obj; raises ValueError on anything malformed."""
        if not isinstance(obj, dict) or set(obj) != {"depth", "empty_mask", "siblings", "leaf"}:
            raise ValueError("proof must be a map with depth, empty_mask, siblings, leaf")
        depth, mask, sibs, leaf = obj["depth"], obj["empty_mask"], obj["siblings"], obj["leaf"]
        if type(depth) is not int or not 0 <= depth <= PATH_BITS:
            raise ValueError("proof depth must be an int in 0..256")
        if type(mask) is not bytes or len(mask) != (depth + 7) >> 3:
            raise ValueError("proof empty_mask must be ceil(depth / 8) bytes")
        if not isinstance(sibs, list | tuple) or len(sibs) > depth:
            raise ValueError("proof siblings must be a list of at most depth hashes")
        if leaf is not None:
            if not isinstance(leaf, list | tuple) or len(leaf) != 2:
                raise ValueError("proof leaf must be None or a pair")
            leaf = (leaf[0], leaf[1])
        return cls(depth, tuple(sibs), int.from_bytes(mask, "big"), leaf)


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """True iff ``proof`` shows that under ``root`` the key holds ``value`` (None = absent)."""
    if not isinstance(proof, Proof) or type(root) is not bytes or len(root) != HASH_BYTES:
        return False
    if type(key) is not bytes or not (value is None or type(value) is bytes):
        return False
    kh = sha256(key).digest()
    path = int.from_bytes(kh, "big")
    depth = proof.depth
    if proof.leaf is None:
        if value is not None:
            return False
        node = _ZERO
    else:
        leaf_kh, leaf_vh = proof.leaf
        if value is None:
            if leaf_kh == kh or (int.from_bytes(leaf_kh, "big") ^ path) >> (PATH_BITS - depth):
                return False
        elif leaf_kh != kh or leaf_vh != sha256(value).digest():
            return False
        node = sha256(_LEAF + leaf_kh + leaf_vh).digest()
    sibs = proof.siblings
    j = len(sibs)
    mask = proof.empty_mask
    for i in range(depth - 1, -1, -1):
        if (mask >> i) & 1:
            sib = _ZERO
        else:
            j -= 1
            sib = sibs[j]
        if (path >> (PATH_BITS - 1 - i)) & 1:
            node = sha256(_NODE + sib + node).digest()
        else:
            node = sha256(_NODE + node + sib).digest()
    return node == root


class StateTree:
    """The Merkle commitment over the state, kept in a named LMDB database of its own.

    ``db`` is a named database with default flags (no dupsort, no integer keys) that holds
    nothing but tree pages, e.g. ``env.open_db(b"smt")``. All reads and writes go through
    the transaction handed to each call; ``env`` is not used for I/O. Read a root and its
    proofs in one read transaction. PAGE_LEVELS is a storage format, not a consensus rule:
    roots do not depend on it, but changing it means rebuilding this database.
    """

    def __init__(self, env: lmdb.Environment, db: Any) -> None:
        self._env = env
        self._db = db

    def root(self, txn: lmdb.Transaction) -> bytes:
        """Root hash of the state as ``txn`` sees it; EMPTY_ROOT for an empty tree."""
        page = _load(txn.get, self._db, _ROOT_PAGE_KEY)
        return EMPTY_ROOT if page is None else page.slot(1)

    def apply(self, txn: lmdb.Transaction, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Apply ``key -> value`` changes (None deletes) inside the caller's write txn.

        Returns the new root. A malformed key or value raises ValueError before anything is
        written. Deleting an absent key and re-setting an unchanged value are no-ops.
        """
        if len(changes) > BATCH_KEYS_MAX:
            raise ValueError(f"a batch holds at most {BATCH_KEYS_MAX} keys")
        batch = _Batch(txn, self._db, changes)
        if not batch.ts:
            return self.root(txn)
        return batch.run()

    def prove(self, txn: lmdb.Transaction, key: bytes) -> Proof:
        """Membership proof if ``key`` is present, non-membership proof otherwise."""
        _check_key(key)
        path = int.from_bytes(sha256(key).digest(), "big")
        get, db = txn.get, self._db
        page = _load(get, db, _ROOT_PAGE_KEY)
        if page is None:
            return Proof(0, (), 0, None)
        s, d, mask = 1, 0, 0
        sibs: list[bytes] = []
        while True:
            leaf = page.leaf(s)
            if leaf is not None:
                return Proof(d, tuple(sibs), mask, (leaf[:HASH_BYTES], leaf[HASH_BYTES:]))
            if not (page.occ >> s) & 1:
                return Proof(d, tuple(sibs), mask, None)
            if s >= _BOUNDARY:
                key_ = _page_key((path | _TAG) >> (PATH_BITS - d))
                sub = _load(get, db, key_)
                if sub is None:
                    raise TreeCorruptError(f"state tree page {key_.hex()} is missing")
                page, s = sub, 1
            bit = (path >> (PATH_BITS - 1 - d)) & 1
            sib = page.slot(2 * s + 1 - bit)
            if sib == _ZERO:
                mask |= 1 << d
            else:
                sibs.append(sib)
            s = 2 * s + bit
            d += 1


def check_tree(txn: lmdb.Transaction, db: Any) -> int:
    """Walk the whole tree, check every structural invariant, return the number of keys.

    Checks: each internal hash matches its children; the tree is canonical (every internal
    node has two or more keys below it); each leaf lies on its own key's path; nothing is
    stored below a leaf or an empty node; a page exists iff its top node is internal (or, for
    the root page, iff the tree is non-empty) and its slot 1 equals the parent's boundary
    slot; no stored page is unreachable. Meant for tests and offline audits: it reads it all.
    """
    get = txn.get
    seen: set[bytes] = set()
    root_page = _load(get, db, _ROOT_PAGE_KEY)
    count = 0
    if root_page is not None:
        seen.add(_ROOT_PAGE_KEY)
        invariant(root_page.slot(1) != _ZERO, "stored root page has an empty root")
        count = _check_node(get, db, root_page, 1, 0, 1, seen)
    with txn.cursor(db=db) as cur:
        stored = set(cur.iternext(keys=True, values=False))
    invariant(stored == seen, f"{len(stored - seen)} unreachable state tree pages")
    return count


def _check_node(
    get: Callable[..., Any], db: Any, page: _Page, s: int, d: int, index: int, seen: set[bytes]
) -> int:
    """Check the subtree at slot s (heap index ``index``, depth d); return its key count."""
    h = page.slot(s)
    leaf = page.leaf(s)
    if leaf is not None or h == _ZERO:
        below = 0
        width = 1
        c = s
        while c < _BOUNDARY:
            c, width = 2 * c, 2 * width
            below |= ((1 << width) - 1) << c
        invariant(not page.occ & below, "a slot below a leaf or an empty node is occupied")
        if leaf is None:
            return 0
        invariant(h == sha256(_LEAF + leaf).digest(), "leaf hash mismatch")
        invariant(_tagged(leaf[:HASH_BYTES]) >> (PATH_BITS - d) == index, "leaf off its path")
        return 1
    if s >= _BOUNDARY:
        key = _page_key(index)
        sub = _load(get, db, key)
        if sub is None:
            raise TreeInvariantError(f"missing page {key.hex()}")
        invariant(sub.slot(1) == h and sub.leaf(1) is None, "page top differs from parent slot")
        seen.add(key)
        return _check_node(get, db, sub, 1, d, index, seen)
    left = _check_node(get, db, page, 2 * s, d + 1, 2 * index, seen)
    right = _check_node(get, db, page, 2 * s + 1, d + 1, 2 * index + 1, seen)
    invariant(left + right >= 2, f"non-canonical internal node at depth {d}")
    invariant(h == sha256(_NODE + page.slot(2 * s) + page.slot(2 * s + 1)).digest(), "bad hash")
    return left + right
