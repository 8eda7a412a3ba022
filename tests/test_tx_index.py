"""The tx-hash index is written in batches: every committed tx is found at once, from the
map in memory or the ``txs`` database, across flushes and restarts."""

from __future__ import annotations

import pytest

from sharechain.chain.types import Tx, TxBody, sign_tx
from sharechain.consensus.solo import SoloEngine
from sharechain.crypto import PrivateKey, sha256
from sharechain.errors import ShareChainError
from sharechain.node.chain import Chain
from sharechain.node.devnet import demo_genesis, validator_key
from sharechain.node.genesis import parse_genesis
from sharechain.store import chainstore

CID = "tx-index"
VALIDATOR = validator_key(0, CID)
ALICE = PrivateKey.from_name("alice")
SINK = PrivateKey.from_name("erin").address
GENESIS = parse_genesis(demo_genesis(CID, [VALIDATOR], genesis_time_ms=1_000))


def _commit_blocks(chain: Chain, blocks: int, nonce: int, per_block: int = 100) -> list[bytes]:
    """Commit ``blocks`` blocks of alice's transfers from ``nonce`` on; their raw txs."""
    engine = SoloEngine(chain, VALIDATOR, per_block)
    out = []
    for _ in range(blocks):
        raws = [sign_tx(TxBody(CID, ALICE.public_key, nonce + i, 100, 0,
                               (("bank/send", {"to": SINK, "amount": 1}),)), ALICE.sign)
                for i in range(per_block)]
        nonce += per_block
        parsed = chain.mempool.parse_many(raws)
        chain.mempool.verify_many([t for t in parsed if isinstance(t, Tx)])
        assert all(isinstance(t, Tx) for t in chain.mempool.admit_many(parsed))
        engine.produce(2_000 + 1_000 * (chain.height() + 1))
        out += raws
    return out


def _in_txs_db(chain: Chain, tx_hash: bytes) -> bool:
    store = chain.store
    with store.env.begin(db=store.db_txs) as txn:
        return txn.get(tx_hash) is not None


def _check_all_found(chain: Chain, raws: list[bytes]) -> None:
    hashes = [sha256(r) for r in raws]
    assert chain.store.committed_among(hashes) == set(hashes)
    for i, h in enumerate(hashes):
        assert chain.store.tx_location(h) == (1 + i // 100, i % 100)
        assert chain.tx_result(h) is not None


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(chainstore, "TX_INDEX_BATCH", 250)
    monkeypatch.setattr(chainstore, "TX_INDEX_BLOCKS", 64)


def test_entries_wait_in_memory_until_a_batch_fills_and_are_found_throughout(tmp_path, small_batches):
    chain = Chain(str(tmp_path / "c"), GENESIS, signature_workers=0)
    try:
        raws = _commit_blocks(chain, 2, 0)  # 200 entries: below the batch
        _check_all_found(chain, raws)
        assert not any(_in_txs_db(chain, sha256(r)) for r in raws)
        assert chain.store.meta_get(b"txidx_height") == (0).to_bytes(8, "big")

        raws += _commit_blocks(chain, 1, 200)  # 300: the third block writes all of them
        _check_all_found(chain, raws)
        assert all(_in_txs_db(chain, sha256(r)) for r in raws)
        assert chain.store.meta_get(b"txidx_height") == (3).to_bytes(8, "big")

        raws += _commit_blocks(chain, 1, 300)
        _check_all_found(chain, raws)
        assert not _in_txs_db(chain, sha256(raws[-1]))
    finally:
        chain.close()


def test_a_committed_tx_held_only_in_memory_is_refused_by_the_mempool(tmp_path, small_batches):
    chain = Chain(str(tmp_path / "c"), GENESIS, signature_workers=0)
    try:
        raws = _commit_blocks(chain, 1, 0)
        assert not _in_txs_db(chain, sha256(raws[0]))
        [res] = chain.mempool.parse_many([raws[0]])
        assert isinstance(res, ShareChainError) and res.code == "duplicate_tx"
    finally:
        chain.close()


def test_a_restart_rebuilds_the_entries_not_yet_written(tmp_path, small_batches):
    path = str(tmp_path / "c")
    chain = Chain(path, GENESIS, signature_workers=0)
    raws = _commit_blocks(chain, 2, 0)
    chain.close()

    chain = Chain(path, GENESIS, signature_workers=0)
    try:
        _check_all_found(chain, raws)
        raws += _commit_blocks(chain, 2, 200)  # the flush after the restart writes all
        _check_all_found(chain, raws)
        assert all(_in_txs_db(chain, sha256(r)) for r in raws[:300])
    finally:
        chain.close()


def test_the_block_cap_flushes_a_quiet_chain(tmp_path, monkeypatch):
    monkeypatch.setattr(chainstore, "TX_INDEX_BATCH", 10**9)
    monkeypatch.setattr(chainstore, "TX_INDEX_BLOCKS", 3)
    chain = Chain(str(tmp_path / "c"), GENESIS, signature_workers=0)
    try:
        raws = _commit_blocks(chain, 2, 0, per_block=5)
        assert not any(_in_txs_db(chain, sha256(r)) for r in raws)
        raws += _commit_blocks(chain, 1, 10, per_block=5)
        assert all(_in_txs_db(chain, sha256(r)) for r in raws)
        assert chain.store.meta_get(b"txidx_height") == (3).to_bytes(8, "big")
    finally:
        chain.close()


def test_a_store_without_the_marker_has_every_block_in_the_database(tmp_path, monkeypatch):
    """Stores written before batching index every block at once and have no marker."""
    monkeypatch.setattr(chainstore, "TX_INDEX_BATCH", 1)  # every block writes its entries
    path = str(tmp_path / "c")
    chain = Chain(path, GENESIS, signature_workers=0)
    raws = _commit_blocks(chain, 2, 0)
    with chain.store.env.begin(write=True) as txn:
        txn.delete(b"txidx_height", db=chain.store.db_meta)
    chain.close()

    chain = Chain(path, GENESIS, signature_workers=0)
    try:
        assert chain.store._txidx_height == 2 and not chain.store._recent
        _check_all_found(chain, raws)
    finally:
        chain.close()
