"""CPU to execute one block of transfers, the state machine alone (no store write).

Builds a chain with 400 funded accounts, admits ``--txs`` signed transfers, proposes a
block and runs ``Chain.execute`` on it ``--runs`` times (execute reads the committed state
and returns the block's writes, so every run does the same work), then encodes the
results. Prints the fastest and the median run in µs per tx of this thread's CPU.

Wall and thread timings drift with this machine's speed. For a repeatable figure, count
instructions under valgrind: the difference between ``--runs 2`` and ``--runs 0``, divided
by 2 × txs, is the instructions per tx (``--small-map`` keeps LMDB's address space within
what valgrind can reserve):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/execute_block.py --small-map --runs 2

Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sharechain.chain.types import TxBody, sign_tx  # noqa: E402
from sharechain.crypto import PrivateKey  # noqa: E402
from sharechain.node.chain import Chain, encode_result  # noqa: E402
from sharechain.node.devnet import demo_genesis, validator_key  # noqa: E402
from sharechain.node.genesis import parse_genesis  # noqa: E402
from sharechain.node.node import tune_gc  # noqa: E402
from sharechain.store import chainstore  # noqa: E402

CHAIN_ID = "bench-execute"
ACCOUNTS = 400


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--txs", type=int, default=3000, help="transfers in the block")
    ap.add_argument("--runs", type=int, default=10, help="executions of the block to time")
    ap.add_argument("--small-map", action="store_true",
                    help="a 1 GiB LMDB map instead of 64 GiB (for valgrind)")
    args = ap.parse_args()
    if args.small_map:
        chainstore.MAP_BYTES = 1 << 30

    vkey = validator_key(0, CHAIN_ID)
    senders = [PrivateKey.from_name(f"bench-{i}") for i in range(ACCOUNTS)]
    doc = demo_genesis(CHAIN_ID, [vkey], 200, block_txs_max=args.txs,
                       extra_accounts={f"bench-{i}": 10**12 for i in range(ACCOUNTS)},
                       genesis_time_ms=1_700_000_000_000)
    chain = Chain(tempfile.mkdtemp(prefix="sc-execute-"), parse_genesis(doc),
                  signature_workers=0)  # inline: no worker processes to start
    dest = PrivateKey.from_name("bench-sink").address
    raws = [sign_tx(TxBody(CHAIN_ID, senders[i % ACCOUNTS].public_key, i // ACCOUNTS, 20, 0,
                           (("bank/send", {"to": dest, "amount": 1}),)), senders[i % ACCOUNTS].sign)
            for i in range(args.txs)]
    pool = chain.mempool
    parsed = pool.parse_many(raws)
    pool.verify_many(parsed)
    bad = [t for t in pool.admit_many(parsed) if isinstance(t, Exception)]
    assert not bad, bad[:1]
    block = chain.propose_block(1, 1_700_000_001_000, vkey.address)
    assert len(block.txs) == args.txs
    tune_gc()

    times = []
    for _ in range(args.runs):
        t0 = time.thread_time()
        _, results, *_ = chain.execute(block)
        for r in results:
            encode_result(r)
        times.append(time.thread_time() - t0)
        assert all(r.ok for r in results), results[0]
    chain.close()
    if not times:
        print(json.dumps({"txs": args.txs, "runs": 0}))
        return
    best, median = (round(x / args.txs * 1e6, 2) for x in (min(times), statistics.median(times)))
    print(f"execute + encode results: {best} µs per tx at best, {median} median "
          f"({args.runs} runs of a {args.txs}-transfer block)")
    print(json.dumps({"txs": args.txs, "runs": args.runs, "us_per_tx_best": best,
                      "us_per_tx_median": median}))


if __name__ == "__main__":
    main()
