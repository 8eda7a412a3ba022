"""The tx gossip flush: a tx after a quiet spell goes out at once, txs that come while a
flush is recent wait and go out together, and an idle node's flush task sleeps."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import nacl.signing

import sharechain.node.network as network_mod
from sharechain.node.network import NodeNetwork
from sharechain.p2p.peers import PeerManagerConfig

FLUSH_S = 0.5  # long, so "at once" and "after the interval" cannot be confused


async def _run(monkeypatch) -> None:
    monkeypatch.setattr(network_mod, "TX_GOSSIP_FLUSH_S", FLUSH_S)
    net = NodeNetwork(SimpleNamespace(chain=None),  # type: ignore[arg-type]
                      PeerManagerConfig(listen=False, network_id="gossip-unit"),
                      nacl.signing.SigningKey.generate())
    flushes: list[tuple[float, list[bytes]]] = []
    net._flush = lambda out: flushes.append(  # type: ignore[method-assign]
        (time.monotonic(), [h for h, _, _ in out]))
    task = asyncio.create_task(net._gossip_loop())
    try:
        await asyncio.sleep(0.05)
        assert flushes == [] and not net._tx_out_ready.is_set()  # idle: nothing to wake for

        t0 = time.monotonic()
        net.tx_admitted_locally(b"raw-a", b"a" * 32)
        await asyncio.sleep(0.1)
        assert [hs for _, hs in flushes] == [[b"a" * 32]]
        assert flushes[0][0] - t0 < FLUSH_S / 2  # at once, not after the interval

        net.tx_admitted_locally(b"raw-b", b"b" * 32)
        net.tx_admitted_locally(b"raw-b", b"b" * 32)  # seen already: not queued again
        net.tx_admitted_locally(b"raw-c", b"c" * 32)
        await asyncio.sleep(0.1)
        assert len(flushes) == 1  # the last flush is recent: these wait
        await asyncio.sleep(FLUSH_S)
        assert [hs for _, hs in flushes] == [[b"a" * 32], [b"b" * 32, b"c" * 32]]
        assert flushes[1][0] - flushes[0][0] >= FLUSH_S * 0.9

        await asyncio.sleep(0.05)
        assert not net._tx_out_ready.is_set() and net._tx_out == []
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_tx_gossip_flushes_at_once_after_quiet_and_batches_under_load(monkeypatch):
    asyncio.run(_run(monkeypatch))
