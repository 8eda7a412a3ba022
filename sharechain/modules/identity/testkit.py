"""A test seam: an in-process chain over the demo genesis, one block per call.

Used by the identity, assets and iot tests (and welcome in others)::

    net = TestNet(tmp_path)
    res = net.tx("alice", [("identity/update_profile", {"name": "Al"})])
    assert res.code == ""

``tx`` signs with the demo key of a name, admits the tx to the mempool (an admission error
comes back as a result with that code and fee 0, as the API would report it), produces one
block ``block_ms`` after the previous one and returns the committed :class:`TxResult`.
Invariants of every module are checked after every block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sharechain.app.framework import TX_BASE_COST, TxResult
from sharechain.app.state import Readable, prefix_end
from sharechain.chain.types import TxBody, sign_tx
from sharechain.consensus.solo import SoloEngine
from sharechain.crypto import PrivateKey, sha256
from sharechain.encoding import to_obj
from sharechain.errors import ShareChainError
from sharechain.modules import auth
from sharechain.node.chain import Chain
from sharechain.node.devnet import demo_genesis, validator_key
from sharechain.node.genesis import parse_genesis

GENESIS_TIME_MS = 1_700_000_000_000
# state an unchanged-state check compares: the sharing modules and every escrow
WATCHED_PREFIXES = (b"identity/", b"assets/", b"iot/", b"bank/e/")


def key(name: str) -> PrivateKey:
    return PrivateKey.from_name(name)


class TestNet:
    __test__ = False  # not a pytest test class

    def __init__(self, data_dir: str | Path, doc: dict[str, Any] | None = None,
                 block_ms: int = 1000) -> None:
        self.doc = doc or demo_genesis(genesis_time_ms=GENESIS_TIME_MS)
        self.genesis = parse_genesis(self.doc)
        self.chain = Chain(str(data_dir), self.genesis, check_invariants=True)
        self.engine = SoloEngine(self.chain, validator_key(0), block_ms)
        self.block_ms = block_ms
        self.now_ms = self.genesis.genesis_time_ms
        self.chain_id = self.genesis.chain_id

    def close(self) -> None:
        self.chain.close()

    @property
    def keepers(self) -> dict[str, Any]:
        return self.chain.keepers.extra

    @contextmanager
    def view(self) -> Iterator[Readable]:
        with self.chain.store.view() as v:
            yield v

    def query(self, module: str, name: str, /, **params: str) -> Any:
        return self.chain.query(module, name, params)

    def nonce(self, addr: bytes) -> int:
        with self.view() as v:
            return auth.get_nonce(v, addr)

    def balance(self, addr: bytes) -> int:
        with self.view() as v:
            return self.chain.keepers.bank.balance(v, addr)

    def fee_for(self, msgs: list[tuple[str, Any]]) -> int:
        specs = self.chain.app.msg_specs
        return TX_BASE_COST + sum(specs[t].cost if t in specs else 0 for t, _ in msgs)

    def sign(self, who: str | PrivateKey, msgs: list[tuple[str, Any]], nonce: int | None = None,
             fee: int | None = None) -> bytes:
        k = key(who) if isinstance(who, str) else who
        plain = tuple((t, to_obj(m)) for t, m in msgs)
        body = TxBody(self.chain_id, k.public_key, self.nonce(k.address) if nonce is None
                      else nonce, self.fee_for(msgs) if fee is None else fee, 0, plain)
        return sign_tx(body, k.sign)

    def produce(self, advance_ms: int | None = None) -> None:
        self.now_ms += self.block_ms if advance_ms is None else advance_ms
        self.engine.produce(self.now_ms)
        self.now_ms = max(self.now_ms, self.chain.last_block_time_ms())

    def submit_block(self, raws: list[bytes], advance_ms: int | None = None) -> list[TxResult]:
        """Admit the raw txs and commit them in one block; admission errors become results."""
        out: list[TxResult | None] = []
        hashes = []
        for raw in raws:
            try:
                self.chain.mempool.add(raw)
                out.append(None)
            except ShareChainError as exc:
                out.append(TxResult(exc.code, exc.message, 0))
            hashes.append(sha256(raw))
        self.produce(advance_ms)
        results = []
        for r, h in zip(out, hashes):
            if r is None:
                loc = self.chain.tx_result(h)
                assert loc is not None, "an admitted tx was not committed"
                r = loc[2]
            results.append(r)
        return results

    def tx(self, who: str | PrivateKey, msgs: list[tuple[str, Any]],
           advance_ms: int | None = None) -> TxResult:
        return self.submit_block([self.sign(who, msgs)], advance_ms)[0]

    def ok(self, who: str | PrivateKey, msgs: list[tuple[str, Any]],
           advance_ms: int | None = None) -> TxResult:
        r = self.tx(who, msgs, advance_ms)
        assert r.code == "", f"{r.code}: {r.message}"
        return r

    def snapshot(self) -> dict[bytes, bytes]:
        with self.view() as v:
            return {k: val for p in WATCHED_PREFIXES for k, val in v.iter_range(p, prefix_end(p))}

    def fails(self, who: str | PrivateKey, msgs: list[tuple[str, Any]], code: str,
              advance_ms: int | None = None) -> TxResult:
        """Submit, expect error ``code`` and check the watched state did not change."""
        before = self.snapshot()
        r = self.tx(who, msgs, advance_ms)
        assert r.code == code, f"expected {code}, got {r.code or 'success'}: {r.message}"
        assert self.snapshot() == before, "a failed tx changed state"
        return r
