"""Benchmark of the authenticated state tree (sharechain.store.smt).

Builds a tree of --keys keys in a temporary LMDB environment, then times apply() of batches
of several sizes (each in its own write transaction, like a block commit), proof generation
and proof verification. Progress goes to stderr; the last line on stdout is one JSON object
with the figures.

    .venv/bin/python benchmarks/state_tree.py --keys 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import lmdb

from sharechain.store.smt import StateTree, verify_proof

MAP_BYTES = 8 * 1024**3  # sparse: only what is written takes disk space


def key_of(i: int) -> bytes:
    return b"bench/acct/%d" % i


def value_of(i: int, version: int) -> bytes:
    return b"%d:%d:" % (i, version) + bytes(48)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build(env: lmdb.Environment, tree: StateTree, keys: int, batch: int) -> float:
    t0 = time.perf_counter()
    for start in range(0, keys, batch):
        stop = min(keys, start + batch)
        with env.begin(write=True) as txn:
            tree.apply(txn, {key_of(i): value_of(i, 0) for i in range(start, stop)})
        log(f"  built {stop:>10,} keys  {time.perf_counter() - t0:7.1f} s")
    return time.perf_counter() - t0


def time_applies(
    env: lmdb.Environment, tree: StateTree, keys: int, size: int, repeats: int, rng: random.Random
) -> tuple[float, float, float]:
    """Median seconds of apply() (wall and CPU) and of apply()+commit for `size` changes.

    Each batch updates existing keys (80%), inserts new ones (10%) and deletes existing ones
    (10%); an untimed batch then restores the original content, so every batch meets the
    same tree.
    """
    apply_s: list[float] = []
    cpu_s: list[float] = []
    total_s: list[float] = []
    for rep in range(repeats):
        picked = rng.sample(range(keys), size)
        changes: dict[bytes, bytes | None] = {}
        undo: dict[bytes, bytes | None] = {}
        for j, i in enumerate(picked):
            kind = j % 10
            if kind == 8:  # insert a key that does not exist
                changes[key_of(keys + i)] = value_of(i, rep + 1)
                undo[key_of(keys + i)] = None
            elif kind == 9:  # delete
                changes[key_of(i)] = None
                undo[key_of(i)] = value_of(i, 0)
            else:
                changes[key_of(i)] = value_of(i, rep + 1)
                undo[key_of(i)] = value_of(i, 0)
        txn = env.begin(write=True)
        c0 = time.process_time()
        t0 = time.perf_counter()
        tree.apply(txn, changes)
        t1 = time.perf_counter()
        cpu_s.append(time.process_time() - c0)
        txn.commit()
        t2 = time.perf_counter()
        apply_s.append(t1 - t0)
        total_s.append(t2 - t0)
        with env.begin(write=True) as txn:
            tree.apply(txn, undo)
    median = statistics.median
    return median(apply_s), median(cpu_s), median(total_s)


def rate(fn: Callable[[], None], count: int) -> float:
    t0 = time.perf_counter()
    fn()
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--keys", type=int, default=200_000, help="keys in the tree (default 200000)")
    ap.add_argument("--build-batch", type=int, default=50_000, help="keys per build apply()")
    ap.add_argument(
        "--sizes", default="3,300,3000,30000", help="comma-separated batch sizes to time"
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed batches per size (median)")
    ap.add_argument("--proofs", type=int, default=20_000, help="proofs to generate and verify")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default=None, help="LMDB directory (default: a temp dir, removed)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if args.keys < 1 or any(not 0 < s <= args.keys for s in sizes):
        ap.error("need --keys >= 1 and every batch size in 1..keys")

    path = args.dir or tempfile.mkdtemp(prefix="smt-bench-")
    env = lmdb.open(path, map_size=MAP_BYTES, max_dbs=2, sync=False, readahead=False)
    db = env.open_db(b"smt")
    tree = StateTree(env, db)
    rng = random.Random(args.seed)
    out: dict[str, float | int] = {"keys": args.keys, "loadavg_start": os.getloadavg()[0]}
    try:
        log(f"building a tree of {args.keys:,} keys in {path}")
        out["build_s"] = round(build(env, tree, args.keys, args.build_batch), 2)
        with env.begin() as txn:
            st = txn.stat(db)
        pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        out["tree_bytes"] = pages * st["psize"]  # LMDB pages in use by the tree
        for size in sizes:
            a, c, t = time_applies(env, tree, args.keys, size, args.repeats, rng)
            log(
                f"  apply {size:>7,} keys: {a * 1e3:9.2f} ms wall, {c * 1e3:9.2f} ms cpu"
                f" (with commit {t * 1e3:9.2f} ms)"
            )
            if size < 1000:
                out[f"apply_{size}_ms"] = round(a * 1e3, 3)
            else:
                out[f"apply_{size}_s"] = round(a, 4)
            out[f"apply_{size}_cpu_ms"] = round(c * 1e3, 3)
            out[f"apply_commit_{size}_ms"] = round(t * 1e3, 3)

        n = args.proofs
        present = [key_of(i) for i in rng.sample(range(args.keys), n // 2)]
        absent = [key_of(args.keys * 2 + i) for i in range(n - n // 2)]
        probe = present + absent
        with env.begin() as txn:
            root = tree.root(txn)
            proofs = []
            out["prove_per_s"] = round(
                rate(lambda: proofs.extend(tree.prove(txn, k) for k in probe), n)
            )
        values = [
            value_of(int(k.rsplit(b"/", 1)[1]), 0) if i < len(present) else None
            for i, k in enumerate(probe)
        ]
        oks: list[bool] = []
        out["verify_per_s"] = round(
            rate(
                lambda: oks.extend(
                    verify_proof(root, k, v, p) for k, v, p in zip(probe, values, proofs)
                ),
                n,
            )
        )
        if not all(oks):
            raise SystemExit("a proof failed to verify")
        out["proof_depth_mean"] = round(statistics.fmean(p.depth for p in proofs), 2)
        log(f"  prove {out['prove_per_s']:,}/s  verify {out['verify_per_s']:,}/s")
        out["loadavg_end"] = os.getloadavg()[0]  # other load on the machine skews the figures
    finally:
        env.close()
        if args.dir is None:
            shutil.rmtree(path, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
