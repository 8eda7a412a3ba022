"""Authenticated state tree: a compact sparse Merkle tree over the state, stored in LMDB.

Theory of operation
-------------------
**Shape.** Every state key ``k`` has a 256-bit path ``kh = sha256(k)``, read from the most
significant bit down (bit 0 of the path is the top bit of ``kh[0]``; 0 = left, 1 = right).
The tree is the binary trie of the key hashes *with leaf compression*: a leaf sits at the
shortest prefix of its path that no other key shares, so a subtree holding no key is *empty*,
a subtree holding exactly one key *is* that key's leaf, and a subtree holding two or more keys
is an *internal* node. Chains of internal nodes with an empty side remain where two keys share
a long prefix (this is the "compact sparse Merkle tree", Diem's Jellyfish Merkle tree with
binary nodes). The expected depth of a leaf is about ``log2(n) + 1.3``; the shape, and so the
root, is a function of the content only, never of the history of updates or their batching.

**Hash domains.** ::

    leaf(kh, v)       = sha256(0x00 || kh || sha256(v))          # 65-byte preimage
    internal(l, r)    = sha256(0x01 || l || r)                   # 65-byte preimage
    empty             = 32 zero bytes (EMPTY_ROOT; no known preimage)

The prefix byte keeps leaves and internal nodes apart (a leaf can never be passed off as an
internal node or the reverse), and the empty constant is not the output of any known input.

**Proofs.** A :class:`Proof` walks the key's path from the root until it meets a terminal
node: the key's own leaf (membership), an empty subtree, or the leaf of another key that
occupies the key's compressed position (non-membership). It carries the terminal's depth, the
sibling hashes along the path from the root downward (empty siblings are given by a bit mask
rather than spelled out), and for a leaf terminal the leaf's ``(key_hash, value_hash)``.
:func:`verify_proof` rebuilds the root from the bottom up and compares. Non-membership is
sound because in the canonical tree committed to by an honest root, every key present sits
in a leaf on its own path: if the node at a prefix ``p`` of ``sha256(k)`` is empty, or is the
leaf of a key hash ``kh' != sha256(k)`` that also starts with ``p``, then the subtree at ``p``
holds no ``k``. Faking such a node means finding a second preimage of a node hash (or a
preimage of zero), which is infeasible; the verifier also checks that ``kh'`` really lies
under ``p``. Proofs are for the **latest committed state only**: nodes are overwritten in
place, so no older version is kept.

**Storage.** Nodes are grouped in *pages* of ``PAGE_LEVELS = 4`` levels, so a path of depth
~21 touches ~6 LMDB records instead of ~21. A page is keyed by the bit path of its top node,
written as the minimal big-endian bytes of the heap index ``(1 << depth) | prefix`` (depths are
multiples of 4; the tree's root page has key ``b"\\x01"``). Inside a page the nodes have slot
numbers 1..31 in heap order: slot 1 is the page's top node, slots 2-3 one level down, ...,
slots 16-31 the four-levels-down *boundary* nodes. A boundary node that is internal is the top
node (slot 1) of its own child page, so its hash is stored twice. Record layout::

    [0:4]     leaf mask, big-endian: bit s set <=> slot s holds a leaf
    [4:996]   31 slot hashes, slot s at offset 32*s - 28; all zero = empty
    [996:]    key_hash || value_hash (64 bytes) of each leaf slot, in increasing slot order

A page exists iff its top node is internal (for the root page: iff the tree is non-empty).
Slots below an empty or leaf node are zero, so an update overwrites a page in place and no
garbage accumulates; ``check_tree`` verifies all of this.

**Updates.** :meth:`StateTree.apply` hashes and sorts the changed keys, then walks the union
of their paths once, depth first, splitting the sorted key range at each node by binary
search. Where a path ends at an empty slot or a leaf, the keys under it (the old leaf plus
the new values) are laid out afresh; on the way back up every node on the union of paths is
hashed exactly once, and a node left with one leaf and one empty child is replaced by that
leaf (that is how deletions keep the tree canonical). Each touched page is read once and
written (or deleted) once. Cost: O(changed keys x log n) hashes and O(pages on the union of
paths) LMDB reads and writes, all inside the caller's write transaction. Nothing is cached
across transactions.
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
    "EMPTY_ROOT",
    "KEY_BYTES_MAX",
    "VALUE_BYTES_MAX",
    "BATCH_KEYS_MAX",
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
_TAG = 1 << PATH_BITS  # key hashes are kept as ints with this bit set: T >> (256 - d) = heap index
_SLOTS_MAX = 1 << PAGE_LEVELS  # boundary slots are _SLOTS_MAX .. 2 * _SLOTS_MAX - 1
_MASK_BYTES = 4
_HEAD_BYTES = _MASK_BYTES + (2 * _SLOTS_MAX - 1) * HASH_BYTES  # 996
_LEAF_BYTES = 2 * HASH_BYTES
_ROOT_PAGE_KEY = b"\x01"


class TreeInvariantError(RuntimeError):
    """Internal consistency of the tree is broken: a bug, not bad input."""


class TreeCorruptError(RuntimeError):
    """A stored page is malformed or missing: the database is damaged."""


def invariant(cond: bool, msg: str) -> None:
    """Stop on a broken invariant (unlike ``assert``, not stripped by ``python -O``)."""
    if not cond:
        raise TreeInvariantError(msg)


def _node_key(index: int) -> bytes:
    """LMDB key of a page from the heap index of its top node."""
    return index.to_bytes((index.bit_length() + 7) >> 3, "big")


def _tagged(key_hash: bytes) -> int:
    return int.from_bytes(key_hash, "big") | _TAG


class _Page:
    """One page, decoded lazily: slot hashes stay in a bytearray, leaves in a dict."""

    __slots__ = ("key", "head", "leaves", "stored")

    def __init__(self, key: bytes, rec: bytes | None) -> None:
        self.key = key
        self.stored = rec is not None
        self.leaves: dict[int, bytes] = {}
        if rec is None:
            self.head = bytearray(_HEAD_BYTES)
            return
        self.head = bytearray(rec[:_HEAD_BYTES])
        mask = int.from_bytes(rec[:_MASK_BYTES], "big")
        if len(rec) != _HEAD_BYTES + _LEAF_BYTES * mask.bit_count() or mask & 1:
            raise TreeCorruptError(f"state tree page {key.hex()} is malformed")
        off = _HEAD_BYTES
        leaves = self.leaves
        while mask:
            low = mask & -mask
            leaves[low.bit_length() - 1] = rec[off : off + _LEAF_BYTES]
            off += _LEAF_BYTES
            mask ^= low

    def slot(self, s: int) -> bytes:
        off = (s << 5) - 28
        return bytes(self.head[off : off + 32])

    def encode(self) -> bytes:
        leaves = self.leaves
        mask = 0
        for s in leaves:
            mask |= 1 << s
        self.head[:_MASK_BYTES] = mask.to_bytes(_MASK_BYTES, "big")
        if not leaves:
            return bytes(self.head)
        return bytes(self.head) + b"".join([leaves[s] for s in sorted(leaves)])


def _load(get: Callable[..., Any], db: Any, key: bytes) -> _Page | None:
    rec = get(key, None, db)
    return None if rec is None else _Page(key, rec)


class _Batch:
    """One apply(): the sorted changes and the transaction they are written in."""

    def __init__(self, txn: lmdb.Transaction, db: Any, changes: Mapping[bytes, bytes | None]):
        self.txn = txn
        self.db = db
        rows: list[tuple[int, bytes | None, bytes | None]] = []
        for key, value in changes.items():
            _check_key(key)
            kh = sha256(key).digest()
            if value is None:
                rows.append((_tagged(kh), None, None))
                continue
            _check_value(value)
            leaf = kh + sha256(value).digest()
            rows.append((_tagged(kh), leaf, sha256(_LEAF + leaf).digest()))
        rows.sort(key=lambda row: row[0])
        self.ts = [row[0] for row in rows]
        self.leaf = [row[1] for row in rows]
        self.leaf_hash = [row[2] for row in rows]
        self.changed = set(self.ts)

    def run(self) -> bytes:
        get = self.txn.get
        page = _load(get, self.db, _ROOT_PAGE_KEY) or _Page(_ROOT_PAGE_KEY, None)
        self._child(page, 1, 0, 0, len(self.ts))
        root = page.slot(1)
        self._flush(page, root != _ZERO)
        return root

    def _flush(self, page: _Page, keep: bool) -> None:
        if keep:
            self.txn.put(page.key, page.encode(), True, True, False, self.db)
        elif page.stored:
            self.txn.delete(page.key, b"", self.db)

    def _child(self, page: _Page, s: int, d: int, lo: int, hi: int) -> None:
        """Apply changes lo:hi (all under the node at slot s, depth d) to that node."""
        leaf = page.leaves.get(s)
        if leaf is not None:
            self._rebuild(page, s, d, lo, hi, leaf, page.slot(s))
            return
        off = (s << 5) - 28
        if page.head[off : off + 32] == _ZERO:
            self._rebuild(page, s, d, lo, hi, None, None)
        elif s < _SLOTS_MAX:
            self._walk(page, s, d, lo, hi)
        else:
            key = _node_key(self.ts[lo] >> (PATH_BITS - d))
            sub = _load(self.txn.get, self.db, key)
            if sub is None:
                raise TreeCorruptError(f"state tree page {key.hex()} is missing")
            self._walk(sub, 1, d, lo, hi)
            self._adopt(page, s, sub)

    def _walk(self, page: _Page, s: int, d: int, lo: int, hi: int) -> None:
        """The node at slot s (< 16) is internal: recurse into the children that change."""
        ts = self.ts
        shift = PATH_BITS - 1 - d
        mid = bisect_left(ts, ((ts[lo] >> shift) | 1) << shift, lo, hi)
        if lo < mid:
            self._child(page, 2 * s, d + 1, lo, mid)
        if mid < hi:
            self._child(page, 2 * s + 1, d + 1, mid, hi)
        self._combine(page, s)

    def _combine(self, page: _Page, s: int) -> None:
        """Recompute slot s from its children, folding a lone leaf upward."""
        head = page.head
        off = (s << 6) - 28
        left = head[off : off + 32]
        right = head[off + 32 : off + 64]
        leaves = page.leaves
        if left == _ZERO:
            if right == _ZERO:
                _set_empty(page, s)
                return
            if 2 * s + 1 in leaves:
                _move_leaf(page, 2 * s + 1, s)
                return
        elif right == _ZERO and 2 * s in leaves:
            _move_leaf(page, 2 * s, s)
            return
        out = (s << 5) - 28
        head[out : out + 32] = sha256(_NODE + left + right).digest()

    def _rebuild(
        self,
        page: _Page,
        s: int,
        d: int,
        lo: int,
        hi: int,
        old: bytes | None,
        old_hash: bytes | None,
    ) -> None:
        """Slot s holds a leaf or nothing: lay out the old leaf and the new values afresh."""
        ts = self.ts[lo:hi]
        leaf = self.leaf[lo:hi]
        lh = self.leaf_hash[lo:hi]
        if old is not None:
            t_old = _tagged(old[:HASH_BYTES])
            if t_old not in self.changed:
                at = bisect_left(ts, t_old)
                ts.insert(at, t_old)
                leaf.insert(at, old)
                lh.insert(at, old_hash)
        keep = [i for i, x in enumerate(leaf) if x is not None]
        if len(keep) != len(ts):
            ts = [ts[i] for i in keep]
            leaf = [leaf[i] for i in keep]
            lh = [lh[i] for i in keep]
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
        """Write the canonical subtree of entries lo:hi at slot s (nothing lies below it)."""
        n = hi - lo
        if n == 0:
            _set_empty(page, s)
            return
        off = (s << 5) - 28
        if n == 1:
            page.head[off : off + 32] = lh[lo]
            page.leaves[s] = leaf[lo]
            return
        if s >= _SLOTS_MAX:
            sub = _Page(_node_key(ts[lo] >> (PATH_BITS - d)), None)
            self._place(sub, 1, d, ts, leaf, lh, lo, hi)
            self._adopt(page, s, sub)
            return
        shift = PATH_BITS - 1 - d
        mid = bisect_left(ts, ((ts[lo] >> shift) | 1) << shift, lo, hi)
        self._place(page, 2 * s, d + 1, ts, leaf, lh, lo, mid)
        self._place(page, 2 * s + 1, d + 1, ts, leaf, lh, mid, hi)
        page.leaves.pop(s, None)
        head = page.head
        page.head[off : off + 32] = sha256(_NODE + head[off * 2 + 28 : off * 2 + 92]).digest()

    def _adopt(self, page: _Page, s: int, sub: _Page) -> None:
        """Copy a child page's top node into boundary slot s, then store or drop the page."""
        top = sub.slot(1)
        off = (s << 5) - 28
        page.head[off : off + 32] = top
        leaf = sub.leaves.get(1)
        if leaf is None:
            page.leaves.pop(s, None)
        else:
            page.leaves[s] = leaf
        self._flush(sub, top != _ZERO and leaf is None)


def _set_empty(page: _Page, s: int) -> None:
    off = (s << 5) - 28
    page.head[off : off + 32] = _ZERO
    page.leaves.pop(s, None)


def _move_leaf(page: _Page, src: int, dst: int) -> None:
    head = page.head
    a = (src << 5) - 28
    b = (dst << 5) - 28
    head[b : b + 32] = head[a : a + 32]
    head[a : a + 32] = _ZERO
    page.leaves[dst] = page.leaves.pop(src)


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
        if not isinstance(sibs, list | tuple):
            raise ValueError("proof siblings must be a list")
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
    """The Merkle commitment over the state, kept in one named LMDB database of its own."""

    def __init__(self, env: lmdb.Environment, db: Any) -> None:
        self._env = env
        self._db = db

    def root(self, txn: lmdb.Transaction) -> bytes:
        """Root hash of the state as seen by ``txn``; EMPTY_ROOT for an empty tree."""
        page = _load(txn.get, self._db, _ROOT_PAGE_KEY)
        return EMPTY_ROOT if page is None else page.slot(1)

    def apply(self, txn: lmdb.Transaction, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Apply ``key -> value`` changes (None deletes) inside the caller's write txn.

        Raises ValueError (and writes nothing) on a malformed key or value; returns the new
        root.
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
        kh = sha256(key).digest()
        path = int.from_bytes(kh, "big")
        get, db = txn.get, self._db
        page = _load(get, db, _ROOT_PAGE_KEY)
        if page is None:
            return Proof(0, (), 0, None)
        s, d, mask = 1, 0, 0
        sibs: list[bytes] = []
        while True:
            leaf = page.leaves.get(s)
            if leaf is not None:
                return Proof(d, tuple(sibs), mask, (leaf[:HASH_BYTES], leaf[HASH_BYTES:]))
            if page.slot(s) == _ZERO:
                return Proof(d, tuple(sibs), mask, None)
            if s >= _SLOTS_MAX:
                key_ = _node_key((path | _TAG) >> (PATH_BITS - d))
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
    """Walk the whole tree and check every structural invariant; return the number of keys.

    Checks: each internal hash matches its children; the tree is canonical (no internal node
    with fewer than two keys below it); every leaf lies on its own key's path; slots below
    leaves and empty nodes are zero; a page exists iff its top node is internal and its slot
    1 equals the parent's boundary slot; no page is unreachable.
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
    leaf = page.leaves.get(s)
    if leaf is not None or h == _ZERO:
        _check_zero_below(page, s)
        if leaf is None:
            return 0
        invariant(h == sha256(_LEAF + leaf).digest(), "leaf hash mismatch")
        t = _tagged(leaf[:HASH_BYTES])
        invariant(t >> (PATH_BITS - d) == index, "leaf is off its key's path")
        return 1
    if s >= _SLOTS_MAX:
        key = _node_key(index)
        sub = _load(get, db, key)
        if sub is None:
            raise TreeInvariantError(f"missing page {key.hex()}")
        invariant(sub.slot(1) == h and 1 not in sub.leaves, "page top differs from parent slot")
        seen.add(key)
        return _check_node(get, db, sub, 1, d, index, seen)
    left = _check_node(get, db, page, 2 * s, d + 1, 2 * index, seen)
    right = _check_node(get, db, page, 2 * s + 1, d + 1, 2 * index + 1, seen)
    invariant(left + right >= 2, f"non-canonical internal node at depth {d}")
    invariant(h == sha256(_NODE + page.slot(2 * s) + page.slot(2 * s + 1)).digest(), "bad hash")
    return left + right


def _check_zero_below(page: _Page, s: int) -> None:
    width = 1
    while s < _SLOTS_MAX:
        s, width = 2 * s, 2 * width
        for c in range(s, s + width):
            invariant(page.slot(c) == _ZERO and c not in page.leaves, "stale slot below a leaf")
