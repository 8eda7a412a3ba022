"""The authenticated state tree against a dict model and a naive reference Merkle root."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterator
from functools import cache
from hashlib import sha256

import cborx
import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sharechain.store.smt import (
    EMPTY_ROOT,
    KEY_BYTES_MAX,
    Proof,
    StateTree,
    check_tree,
    verify_proof,
)

MAP_BYTES = 256 * 1024 * 1024


# ---------------------------------------------------------------- the model


def reference_root(content: dict[bytes, bytes]) -> bytes:
    """The root straight from the definition: a canonical compressed binary trie."""
    items = sorted((sha256(k).digest(), sha256(v).digest()) for k, v in content.items())

    def node(part: list[tuple[bytes, bytes]], depth: int) -> bytes:
        if not part:
            return bytes(32)
        if len(part) == 1:
            return sha256(b"\x00" + part[0][0] + part[0][1]).digest()
        left = [x for x in part if not (x[0][depth // 8] >> (7 - depth % 8)) & 1]
        right = [x for x in part if (x[0][depth // 8] >> (7 - depth % 8)) & 1]
        return sha256(b"\x01" + node(left, depth + 1) + node(right, depth + 1)).digest()

    return node(items, 0)


def prefix_bits(a: bytes, b: bytes) -> int:
    x = int.from_bytes(sha256(a).digest(), "big") ^ int.from_bytes(sha256(b).digest(), "big")
    return 256 - x.bit_length()


@cache
def deep_keys() -> tuple[bytes, ...]:
    """Keys whose hashes share long prefixes, so paths cross several page boundaries.

    Found by brute force: the pair with the longest common hash prefix among 2**17 keys
    (~30 bits), plus keys sharing 12+ bits with that pair, which branch off at various depths.
    """
    keys = [b"deep-%d" % i for i in range(1 << 17)]
    ordered = sorted(keys, key=lambda k: sha256(k).digest())
    best = max(range(len(ordered) - 1), key=lambda i: prefix_bits(ordered[i], ordered[i + 1]))
    pair = ordered[best : best + 2]
    near = [k for k in ordered if k not in pair and prefix_bits(k, pair[0]) >= 12][:4]
    return tuple(pair + near)


POOL = tuple(b"k%d" % i for i in range(24)) + deep_keys()
VALUES = (b"", b"a", b"b", b"v" * 100)
batches = st.dictionaries(
    st.sampled_from(POOL), st.one_of(st.none(), st.sampled_from(VALUES)), max_size=12
)


@pytest.fixture
def env_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="smt-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def open_tree(path: str, name: bytes = b"smt") -> tuple[lmdb.Environment, StateTree, object]:
    env = lmdb.open(path, map_size=MAP_BYTES, max_dbs=4, sync=False)
    db = env.open_db(name)
    return env, StateTree(env, db), db


def apply_model(model: dict[bytes, bytes], changes: dict[bytes, bytes | None]) -> None:
    for k, v in changes.items():
        if v is None:
            model.pop(k, None)
        else:
            model[k] = v


def root_of(env: lmdb.Environment, tree: StateTree) -> bytes:
    with env.begin() as txn:
        return tree.root(txn)


def check_proofs(
    env: lmdb.Environment, tree: StateTree, model: dict[bytes, bytes], keys: tuple[bytes, ...]
) -> None:
    """Every key proves its model value; wrong values, siblings and roots fail, and a proof
    replayed for other keys never proves anything false."""
    with env.begin() as txn:
        root = tree.root(txn)
        proofs = {k: tree.prove(txn, k) for k in keys}
    other_root = sha256(root).digest()
    for key, proof in proofs.items():
        value = model.get(key)
        assert verify_proof(root, key, value, proof), key
        assert Proof.from_obj(cborx.loads(cborx.dumps(proof.to_obj()))) == proof
        assert not verify_proof(other_root, key, value, proof)
        for wrong in (None, b"", b"a", b"zz"):
            if wrong != value:
                assert not verify_proof(root, key, wrong, proof)
        for other in keys[:8]:  # used for another key, it can only ever prove the truth
            for v in (value, None, b"", b"a", model.get(other)):
                if verify_proof(root, other, v, proof):
                    assert v == model.get(other), (key, other, v)
        for i in range(len(proof.siblings)):
            sibs = list(proof.siblings)
            sibs[i] = bytes([sibs[i][0] ^ 1]) + sibs[i][1:]
            bad = Proof(proof.depth, tuple(sibs), proof.empty_mask, proof.leaf)
            assert not verify_proof(root, key, value, bad)
        if proof.leaf is not None:
            kh, vh = proof.leaf
            bad = Proof(proof.depth, proof.siblings, proof.empty_mask, (kh, sha256(vh).digest()))
            assert not verify_proof(root, key, value, bad)


# ---------------------------------------------------------------- stateful model test


class TreeMachine(RuleBasedStateMachine):
    """Random histories of committed, aborted and emptying batches, with reopens."""

    def __init__(self) -> None:
        super().__init__()
        self.path = tempfile.mkdtemp(prefix="smt-test-")
        self.env, self.tree, self.db = open_tree(self.path)
        self.model: dict[bytes, bytes] = {}

    def teardown(self) -> None:
        self.env.close()
        shutil.rmtree(self.path, ignore_errors=True)

    @rule(changes=batches)
    def commit_batch(self, changes: dict[bytes, bytes | None]) -> None:
        before = root_of(self.env, self.tree)
        with self.env.begin(write=True) as txn:
            root = self.tree.apply(txn, changes)
            assert self.tree.root(txn) == root
        apply_model(self.model, changes)
        with self.env.begin() as txn:  # an old membership proof fails against the new root
            for key, value in changes.items():
                if value is not None and root != before:
                    assert not verify_proof(before, key, value, self.tree.prove(txn, key))

    @rule(changes=batches)
    def aborted_batch(self, changes: dict[bytes, bytes | None]) -> None:
        before = root_of(self.env, self.tree)
        txn = self.env.begin(write=True)
        self.tree.apply(txn, changes)
        txn.abort()
        assert root_of(self.env, self.tree) == before

    @rule()
    def empty_the_tree(self) -> None:
        changes: dict[bytes, bytes | None] = {k: None for k in self.model}
        changes[b"never-there"] = None
        with self.env.begin(write=True) as txn:
            assert self.tree.apply(txn, changes) == EMPTY_ROOT
        self.model.clear()

    @rule()
    def reopen(self) -> None:
        before = root_of(self.env, self.tree)
        self.env.close()
        self.env, self.tree, self.db = open_tree(self.path)
        assert root_of(self.env, self.tree) == before

    @invariant()
    def matches_model(self) -> None:
        root = root_of(self.env, self.tree)
        assert root == reference_root(self.model)
        with self.env.begin() as txn:
            assert check_tree(txn, self.db) == len(self.model)
        check_proofs(self.env, self.tree, self.model, POOL)


TestTreeMachine = TreeMachine.TestCase
TestTreeMachine.settings = settings(
    max_examples=50,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---------------------------------------------------------------- history independence


@settings(max_examples=50, deadline=None)
@given(
    content=st.dictionaries(st.sampled_from(POOL), st.sampled_from(VALUES), max_size=30),
    detour=st.dictionaries(st.sampled_from(POOL), st.sampled_from(VALUES), max_size=10),
    rnd=st.randoms(use_true_random=False),
)
def test_root_depends_only_on_content(
    content: dict[bytes, bytes], detour: dict[bytes, bytes], rnd: random.Random
) -> None:
    path = tempfile.mkdtemp(prefix="smt-test-")
    try:
        env = lmdb.open(path, map_size=MAP_BYTES, max_dbs=4, sync=False)
        trees = [StateTree(env, env.open_db(name)) for name in (b"one", b"each", b"detour")]
        items = list(content.items())
        rnd.shuffle(items)
        with env.begin(write=True) as txn:
            trees[0].apply(txn, dict(items))  # one batch
            for k, v in reversed(items):  # one key at a time, in another order
                trees[1].apply(txn, {k: v})
            # a detour: other values and extra keys first, then the content in random splits
            trees[2].apply(txn, detour)
            undo = {k: None for k in detour if k not in content}
            rest = items + list(undo.items())
            rnd.shuffle(rest)
            while rest:
                cut = rnd.randint(1, len(rest))
                trees[2].apply(txn, dict(rest[:cut]))
                rest = rest[cut:]
            roots = {t.root(txn) for t in trees}
        assert roots == {reference_root(content)}
        env.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- larger trees, fixed seeds


def test_thousands_of_keys_in_random_batches(env_dir: str) -> None:
    env, tree, db = open_tree(env_dir)
    rng = random.Random(7)
    model: dict[bytes, bytes] = {}
    keys = [b"key-%d" % i for i in range(3000)] + list(deep_keys())
    first = {k: b"v0-" + k for k in keys[:2000]}
    with env.begin(write=True) as txn:
        tree.apply(txn, first)
    apply_model(model, dict(first))
    for step in range(12):
        size = rng.choice([1, 2, 7, 60, 400, 1500])
        changes: dict[bytes, bytes | None] = {}
        for k in rng.sample(keys, size):
            changes[k] = None if rng.random() < 0.35 else b"v%d-" % step + k
        with env.begin(write=True) as txn:
            root = tree.apply(txn, changes)
            apply_model(model, changes)
            assert root == reference_root(model)
            assert check_tree(txn, db) == len(model)
    check_proofs(env, tree, model, tuple(rng.sample(keys, 40)) + deep_keys())
    order = list(model)
    rng.shuffle(order)
    with env.begin(write=True) as txn:  # empty it in uneven splits
        for part in (order[:1], order[1:500], order[500:]):
            tree.apply(txn, {k: None for k in part})
        assert tree.root(txn) == EMPTY_ROOT
        assert check_tree(txn, db) == 0
    env.close()


def test_deep_paths_split_and_merge_across_pages(env_dir: str) -> None:
    env, tree, db = open_tree(env_dir)
    a, b, *near = deep_keys()
    assert prefix_bits(a, b) >= 24  # several page boundaries between root and leaves
    model: dict[bytes, bytes] = {}
    steps: list[dict[bytes, bytes | None]] = [
        {a: b"1"},
        {b: b"2"},
        {near[0]: b"3"},
        {a: None},
        {a: b"4", b: None},
        {near[1]: b"5", near[2]: b"6"},
        {near[0]: None, near[1]: None},
        {b: b"7"},
        {a: None, b: None, near[2]: None},
        {a: b"8", b: b"9"},
        {a: None},
        {b: None},
    ]
    for changes in steps:
        with env.begin(write=True) as txn:
            root = tree.apply(txn, changes)
            apply_model(model, changes)
            assert root == reference_root(model)
            assert check_tree(txn, db) == len(model)
        check_proofs(env, tree, model, deep_keys() + (b"k0",))
    assert root_of(env, tree) == EMPTY_ROOT
    env.close()


# ---------------------------------------------------------------- edges, persistence, errors


def test_empty_tree(env_dir: str) -> None:
    env, tree, db = open_tree(env_dir)
    with env.begin(write=True) as txn:
        assert tree.root(txn) == EMPTY_ROOT == bytes(32)
        assert tree.apply(txn, {}) == EMPTY_ROOT
        assert tree.apply(txn, {b"absent": None}) == EMPTY_ROOT
        proof = tree.prove(txn, b"absent")
        assert check_tree(txn, db) == 0
    assert proof == Proof(0, (), 0, None)
    assert verify_proof(EMPTY_ROOT, b"absent", None, proof)
    assert not verify_proof(EMPTY_ROOT, b"absent", b"", proof)
    env.close()


def test_hash_domains_are_as_documented(env_dir: str) -> None:
    env, tree, _ = open_tree(env_dir)
    with env.begin(write=True) as txn:
        root = tree.apply(txn, {b"a": b"1"})
    leaf_a = sha256(b"\x00" + sha256(b"a").digest() + sha256(b"1").digest()).digest()
    assert root == leaf_a
    with env.begin(write=True) as txn:
        root = tree.apply(txn, {b"b": b"2"})
    leaf_b = sha256(b"\x00" + sha256(b"b").digest() + sha256(b"2").digest()).digest()
    depth = prefix_bits(b"a", b"b")
    a_first = sha256(b"a").digest() < sha256(b"b").digest()
    node = sha256(b"\x01" + (leaf_a + leaf_b if a_first else leaf_b + leaf_a)).digest()
    path_a = int.from_bytes(sha256(b"a").digest(), "big")
    for i in reversed(range(depth)):  # the chain above the split has empty siblings
        z = bytes(32)
        node = sha256(b"\x01" + (z + node if (path_a >> (255 - i)) & 1 else node + z)).digest()
    assert root == node
    env.close()


def test_reopen_and_aborted_txn_keep_the_committed_root(env_dir: str) -> None:
    env, tree, _ = open_tree(env_dir)
    content = {b"k%d" % i: b"v%d" % i for i in range(200)}
    with env.begin(write=True) as txn:
        committed = tree.apply(txn, content)
    txn = env.begin(write=True)
    assert tree.apply(txn, {b"k1": None, b"k2": b"x", b"new": b"y"}) != committed
    txn.abort()
    assert root_of(env, tree) == committed
    env.close()
    env, tree, db = open_tree(env_dir)
    assert root_of(env, tree) == committed == reference_root(content)
    with env.begin() as txn:
        assert check_tree(txn, db) == 200
    check_proofs(env, tree, content, (b"k1", b"k2", b"new", b"k199"))
    env.close()


def test_bad_input_raises_and_writes_nothing(env_dir: str) -> None:
    env, tree, db = open_tree(env_dir)
    with env.begin(write=True) as txn:
        before = tree.apply(txn, {b"a": b"1"})
    for changes in (
        {b"": b"x"},
        {b"x" * (KEY_BYTES_MAX + 1): b"x"},
        {"str": b"x"},
        {b"ok": "not bytes"},
        {b"ok": b"1", b"bad": 5},
    ):
        with env.begin(write=True) as txn:
            with pytest.raises(ValueError):
                tree.apply(txn, changes)  # type: ignore[arg-type]
            assert tree.root(txn) == before
            assert check_tree(txn, db) == 1
        with env.begin() as txn, pytest.raises(ValueError):
            tree.prove(txn, b"")
    env.close()


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        {"depth": 0, "empty_mask": b"", "siblings": []},
        {"depth": -1, "empty_mask": b"", "siblings": [], "leaf": None},
        {"depth": 257, "empty_mask": bytes(33), "siblings": [], "leaf": None},
        {"depth": True, "empty_mask": b"\x00", "siblings": [], "leaf": None},
        {"depth": 1, "empty_mask": b"", "siblings": [], "leaf": None},
        {"depth": 1, "empty_mask": b"\x00", "siblings": [], "leaf": None},
        {"depth": 1, "empty_mask": b"\x02", "siblings": [], "leaf": None},
        {"depth": 1, "empty_mask": b"\x00", "siblings": [bytes(32)], "leaf": None},
        {"depth": 1, "empty_mask": b"\x00", "siblings": [b"\x01" * 31], "leaf": None},
        {"depth": 1, "empty_mask": b"\x00", "siblings": ["x" * 32], "leaf": None},
        {"depth": 1, "empty_mask": b"\x01", "siblings": [b"\x01" * 32], "leaf": None},
        {"depth": 0, "empty_mask": b"", "siblings": [], "leaf": [b"\x01" * 32]},
        {"depth": 0, "empty_mask": b"", "siblings": [], "leaf": [b"\x01" * 32, b"\x02"]},
        {"depth": 0, "empty_mask": b"", "siblings": b"", "leaf": None},
        {"depth": 0, "empty_mask": 0, "siblings": [], "leaf": None},
        {"depth": 0, "empty_mask": b"", "siblings": [], "leaf": None, "extra": 1},
    ],
)
def test_malformed_proof_objects_are_rejected(obj: object) -> None:
    with pytest.raises(ValueError):
        Proof.from_obj(obj)


def test_verify_rejects_junk_arguments() -> None:
    proof = Proof(0, (), 0, None)
    assert verify_proof(EMPTY_ROOT, b"k", None, proof)
    assert not verify_proof(EMPTY_ROOT[:31], b"k", None, proof)
    assert not verify_proof(EMPTY_ROOT, "k", None, proof)  # type: ignore[arg-type]
    assert not verify_proof(EMPTY_ROOT, b"k", "v", proof)  # type: ignore[arg-type]
    assert not verify_proof(EMPTY_ROOT, b"k", None, proof.to_obj())  # type: ignore[arg-type]


def test_non_membership_by_another_leaf_must_share_the_path(env_dir: str) -> None:
    env, tree, _ = open_tree(env_dir)
    with env.begin(write=True) as txn:
        root = tree.apply(txn, {b"a": b"1"})
        proof = tree.prove(txn, b"zzz")  # the lone leaf a sits at the root
    assert proof.leaf is not None and proof.depth == 0
    assert verify_proof(root, b"zzz", None, proof)
    assert not verify_proof(root, b"a", None, proof)  # a is present: no absence proof
    env.close()
