"""Genesis documents: consensus limits are checked when the genesis is read."""

from __future__ import annotations

import pytest

from sharechain.errors import ShareChainError
from sharechain.node.devnet import demo_genesis
from sharechain.node.genesis import BLOCK_BYTES_LIMIT, BLOCK_BYTES_MAX_DEFAULT, parse_genesis


@pytest.mark.parametrize("consensus, says", [
    ({"block_interval": 100}, "unknown field"),
    ({"block_interval_ms": "100"}, "expected an integer"),
    ({"block_interval_ms": 0}, "block_interval_ms must be positive"),
    ({"block_txs_max": -1}, "block_txs_max must be"),
    ({"block_txs_max": 10**9}, "block_txs_max must be"),
    ({"block_bytes_max": BLOCK_BYTES_LIMIT + 1}, "block_bytes_max must be"),
    ([], "expected a map"),
])
def test_bad_consensus_limits_are_refused_with_a_clear_error(consensus, says):
    doc = demo_genesis("g")
    doc["consensus"] = consensus
    with pytest.raises(ShareChainError) as e:
        parse_genesis(doc)
    assert e.value.code == "invalid_genesis" and says in e.value.message


def test_consensus_limits_default_and_can_be_lowered():
    doc = demo_genesis("g")
    doc["consensus"] = {"block_interval_ms": 200, "block_bytes_max": 1 << 20}
    c = parse_genesis(doc).consensus
    assert (c.block_interval_ms, c.block_txs_max, c.block_bytes_max) == (200, 10_000, 1 << 20)
    del doc["consensus"]
    assert parse_genesis(doc).consensus.block_bytes_max == BLOCK_BYTES_MAX_DEFAULT
