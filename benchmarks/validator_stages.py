"""CPU per transaction of one BFT validator, stage by stage, without sockets.

Two in-process chains share a genesis: the proposer admits transfers and proposes blocks;
the validator measured here does what a non-proposing validator does with each tx and each
block: parse and admit the gossiped txs (signatures verified inline, on this thread, and
timed apart), decode the proposal, validate it, execute and commit it (state tree, LMDB,
indexes, mempool update). Every stage is timed with this thread's CPU clock, so the figures
do not depend on what else the machine runs; they do follow its speed, which drifts, so
compare runs made back to back.

    .venv/bin/python benchmarks/validator_stages.py --blocks 10 --txs 3000

Last line: one JSON object of µs per tx for each stage and their total.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time

from sharechain.chain.types import Commit, TxBody, decode_block, encode_block, sign_tx
from sharechain.crypto import PrivateKey
from sharechain.node.chain import Chain
from sharechain.node.devnet import demo_genesis, validator_key
from sharechain.node.genesis import parse_genesis
from sharechain.node.node import tune_gc

CHAIN_ID = "bench-stages"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--txs", type=int, default=3000, help="transfers per block")
    ap.add_argument("--accounts", type=int, default=400)
    args = ap.parse_args()

    vkey = validator_key(0, CHAIN_ID)
    senders = [PrivateKey.from_name(f"bench-{i}") for i in range(args.accounts)]
    doc = demo_genesis(CHAIN_ID, [vkey], 200, block_txs_max=args.txs,
                       extra_accounts={f"bench-{i}": 10**12 for i in range(args.accounts)},
                       genesis_time_ms=1_700_000_000_000)
    genesis = parse_genesis(doc)
    tmp = tempfile.mkdtemp(prefix="sc-stages-")
    # No signature workers: verification is timed on this thread.
    proposer = Chain(f"{tmp}/a", genesis, signature_workers=0)
    validator = Chain(f"{tmp}/b", genesis, signature_workers=0)
    dest = PrivateKey.from_name("bench-sink").address
    nonces = [0] * len(senders)
    blocks = []
    for _ in range(args.blocks):
        raws = []
        while len(raws) < args.txs:
            i = len(raws) % len(senders)
            k = senders[i]
            raws.append(sign_tx(TxBody(CHAIN_ID, k.public_key, nonces[i], 20, 0,
                                       (("bank/send", {"to": dest, "amount": 1}),)), k.sign))
            nonces[i] += 1
        blocks.append(raws)
    tune_gc()

    stages = dict.fromkeys(["parse", "verify", "admit", "proposal_decode", "validate",
                            "commit"], 0.0)
    clock = time.thread_time
    total_txs = 0
    for b, raws in enumerate(blocks):
        # The proposer admits and proposes (not measured).
        p = proposer.mempool
        parsed = p.parse_many(raws)
        p.verify_many(parsed)
        p.admit_many(parsed)
        height = proposer.height() + 1
        block = proposer.propose_block(height, 1_700_000_000_000 + 1000 * height, vkey.address)
        commit = Commit(height, 0, block.hash(), ())
        wire = encode_block(block)
        # The validator: gossip admission, then the proposal, then the commit.
        m = validator.mempool
        t0 = clock()
        parsed = m.parse_many(raws)
        t1 = clock()
        m.verify_many(parsed)
        t2 = clock()
        admitted = m.admit_many(parsed)
        t3 = clock()
        got = decode_block(wire)
        t4 = clock()
        err = validator.validate_block(got)
        t5 = clock()
        validator.commit_block(got, commit)
        t6 = clock()
        proposer.commit_block(block, commit)
        assert err is None, err
        bad = [t for t in admitted if isinstance(t, Exception)]
        assert not bad, f"{len(bad)} txs refused, first: {bad[:1]}"
        assert validator.store.meta.state_root == proposer.store.meta.state_root
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            stages[k] += v
        total_txs += len(raws)
    us = {k: round(v / total_txs * 1e6, 1) for k, v in stages.items()}
    us["total"] = round(sum(stages.values()) / total_txs * 1e6, 1)
    us["total_without_verify"] = round(us["total"] - us["verify"], 1)
    for k, v in us.items():
        print(f"{k:22s} {v:7.1f} µs/tx")
    print(json.dumps({"txs": total_txs, "us_per_tx": us}))
    proposer.close()
    validator.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
