"""The store at its limits: a full map or a full disk stops the node with a clear error,
and nothing of the block that did not fit is written."""

from __future__ import annotations

import lmdb
import pytest

from sharechain.chain.types import Tx, TxBody, sign_tx
from sharechain.consensus.solo import SoloEngine
from sharechain.crypto import PrivateKey
from sharechain.errors import FatalError
from sharechain.node.chain import Chain
from sharechain.node.devnet import demo_genesis, validator_key
from sharechain.node.genesis import parse_genesis

CID = "store-limits"
VALIDATOR = validator_key(0, CID)
ALICE = PrivateKey.from_name("alice")
SINK = PrivateKey.from_name("erin").address


def _fill(chain: Chain, blocks: int, nonce: int = 0) -> int:
    """Commit up to ``blocks`` blocks of 100 transfers; the next nonce."""
    engine = SoloEngine(chain, VALIDATOR, 100)
    for b in range(blocks):
        raws = []
        for _ in range(100):
            raws.append(sign_tx(TxBody(CID, ALICE.public_key, nonce, 100, 0,
                                       (("bank/send", {"to": SINK, "amount": 1}),)), ALICE.sign))
            nonce += 1
        parsed = chain.mempool.parse_many(raws)
        chain.mempool.verify_many([t for t in parsed if isinstance(t, Tx)])
        chain.mempool.admit_many(parsed)
        engine.produce(2_000 + 1_000 * (chain.height() + 1))
    return nonce


def test_a_full_map_writes_nothing_of_the_block_and_a_larger_map_resumes(tmp_path):
    genesis = parse_genesis(demo_genesis(CID, [VALIDATOR], genesis_time_ms=1_000))
    chain = Chain(str(tmp_path / "c"), genesis, signature_workers=0, map_bytes=2 * 2**20)
    with pytest.raises(FatalError) as err:
        _fill(chain, 1_000)
    assert err.value.code == "store_full" and "raise db_map_mib" in err.value.message
    height, root = chain.height(), chain.store.meta.state_root
    assert height > 0 and f"at height {height + 1}" in err.value.message
    assert chain.store.block_raw(height + 1) is None, "nothing of the failed block"
    used, most = chain.store.usage()
    assert most == 2 * 2**20 and used > most * 0.9
    chain.close()

    chain = Chain(str(tmp_path / "c"), genesis, signature_workers=0, map_bytes=64 * 2**20)
    try:
        assert chain.height() == height and chain.store.meta.state_root == root
        _fill(chain, 2, 100 * height)  # every block held 100 of alice's txs
        assert chain.height() == height + 2
    finally:
        chain.close()


def test_a_full_disk_is_a_clear_fatal_error_and_other_store_errors_pass_through(tmp_path,
                                                                                monkeypatch):
    genesis = parse_genesis(demo_genesis(CID, [VALIDATOR], genesis_time_ms=1_000))
    chain = Chain(str(tmp_path / "c"), genesis, signature_workers=0)
    try:
        def no_space(*_: object) -> None:
            raise lmdb.Error("mdb_txn_commit: No space left on device")

        monkeypatch.setattr(chain.store, "_write_block", no_space)
        with pytest.raises(FatalError) as err:
            _fill(chain, 1)
        assert err.value.code == "disk_full" and "free space" in err.value.message

        def broken(*_: object) -> None:
            raise lmdb.CorruptedError("mdb_get: MDB_CORRUPTED")

        monkeypatch.setattr(chain.store, "_write_block", broken)
        with pytest.raises(lmdb.CorruptedError):  # not mistaken for a full disk
            _fill(chain, 1, 100)
        assert chain.height() == 0
    finally:
        chain.close()
