"""Cost of the tx-hash index in LMDB: one write per block against batched, sorted writes.

Builds two LMDB indexes of random 32-byte tx hashes -> 12-byte positions, block by block,
one synced write transaction per block, as the chain store does: "per block" inserts each
block's hashes in that block's transaction; "batched" holds them in memory and inserts
``--batch`` of them at once, sorted (what ``ChainStore`` does, see its docstring). Prints
the µs per tx and the bytes written to disk per tx (from /proc/self/io, Linux) for each
fifth of the run, so the growth with the index's size shows.

    .venv/bin/python benchmarks/tx_index.py --blocks 100 --txs 2000

Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import tempfile
import time

import lmdb

_HI = struct.Struct(">QI")


def written_bytes() -> int:
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(path: str, blocks: int, txs: int, batch: int, label: str) -> list[dict]:
    env = lmdb.open(path, map_size=8 * 1024**3, max_dbs=2)
    db = env.open_db(b"txs")
    held: list[tuple[bytes, bytes]] = []
    fifths = []
    step = max(1, blocks // 5)
    t0, w0 = time.perf_counter(), written_bytes()
    for h in range(1, blocks + 1):
        pairs = [(os.urandom(32), _HI.pack(h, i)) for i in range(txs)]
        with env.begin(write=True) as txn:
            if batch <= 0:
                txn.cursor(db=db).putmulti(pairs)
            else:
                held.extend(pairs)
                if len(held) >= batch:
                    held.sort()
                    txn.cursor(db=db).putmulti(held)
                    held = []
            txn.put(b"height", struct.pack(">Q", h))  # every block writes something
        if h % step == 0:
            t1, w1 = time.perf_counter(), written_bytes()
            n = step * txs
            fifths.append({"index_entries": h * txs,
                           "us_per_tx": round((t1 - t0) / n * 1e6, 2),
                           "bytes_written_per_tx": round((w1 - w0) / n)})
            print(f"{label:9} {h * txs:>9,} entries: {fifths[-1]['us_per_tx']:6.2f} µs/tx, "
                  f"{fifths[-1]['bytes_written_per_tx']:>6,} B written/tx", flush=True)
            t0, w0 = t1, w1
    env.close()
    return fifths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blocks", type=int, default=100)
    ap.add_argument("--txs", type=int, default=2000, help="txs per block")
    ap.add_argument("--batch", type=int, default=32_768, help="entries per batched write")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sc-txidx-")
    try:
        per_block = run(f"{tmp}/a", args.blocks, args.txs, 0, "per block")
        batched = run(f"{tmp}/b", args.blocks, args.txs, args.batch, "batched")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"blocks": args.blocks, "txs_per_block": args.txs, "batch": args.batch,
                      "per_block": per_block, "batched": batched}))


if __name__ == "__main__":
    main()
