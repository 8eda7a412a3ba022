"""Tx gossip: the flush (a tx after a quiet spell goes out at once, txs that come while a
flush is recent wait and go out together, an idle node's flush task sleeps) and the answer
to a "want" (each pooled tx at most once per peer and connection)."""

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


def test_a_want_is_answered_once_per_tx_and_peer():
    from sharechain.encoding import decode, encode
    from sharechain.node.network import CHANNEL_MEMPOOL

    pooled = {b"a" * 32: SimpleNamespace(raw=b"raw-a"), b"b" * 32: SimpleNamespace(raw=b"raw-b")}
    net = NodeNetwork(SimpleNamespace(chain=SimpleNamespace(  # type: ignore[arg-type]
                          mempool=SimpleNamespace(get=pooled.get))),
                      PeerManagerConfig(listen=False, network_id="gossip-unit"),
                      nacl.signing.SigningKey.generate())
    sent: list[tuple[str, int, bytes]] = []
    queue_full = [False]

    def send(peer: str, ch: int, payload: bytes) -> bool:
        if queue_full[0]:
            return False
        sent.append((peer, ch, payload))
        return True

    net.peers.send = send  # type: ignore[method-assign]

    def want(peer: str, *hashes: bytes) -> list[bytes]:
        sent.clear()
        net._on_txs(peer, encode({"t": "want", "items": list(hashes)}))
        assert all(p == peer and ch == CHANNEL_MEMPOOL for p, ch, _ in sent)
        return [raw for _, _, payload in sent for raw in decode(payload)["items"]]

    queue_full[0] = True
    assert want("p1", b"a" * 32) == []  # not queued: it may be asked for again
    queue_full[0] = False
    assert want("p1", b"a" * 32, b"a" * 32, b"c" * 32) == [b"raw-a"], "once; c is not pooled"
    assert want("p1", b"a" * 32) == [], "each tx is sent to a peer once"
    assert want("p1", b"a" * 32, b"b" * 32) == [b"raw-b"]
    assert want("p2", b"a" * 32) == [b"raw-a"], "another peer gets it once too"
    assert net.stats["tx_wants_refused"] == 3
    net._on_disconnected("p1")
    assert want("p1", b"a" * 32) == [b"raw-a"], "a new connection starts afresh"


def test_a_peer_announcing_txs_it_never_sends_is_not_asked_without_end():
    """Announcements of unknown hashes are asked for only while the peer owes fewer than
    TX_OWED_MAX of them; the debt shrinks as its txs arrive and as time passes, and other
    peers' announcements are asked for as before."""
    from sharechain.encoding import decode, encode

    clock = [100.0]
    net = NodeNetwork(SimpleNamespace(chain=None),  # type: ignore[arg-type]
                      PeerManagerConfig(listen=False, network_id="gossip-unit"),
                      nacl.signing.SigningKey.generate())
    net.clock = lambda: clock[0]
    net._tx_in.put_nowait = lambda item: None  # type: ignore[method-assign]  # no admission here
    wanted: dict[str, int] = {}

    def send(peer: str, ch: int, payload: bytes) -> bool:
        wanted[peer] = wanted.get(peer, 0) + len(decode(payload)["items"])
        return True

    net.peers.send = send  # type: ignore[method-assign]
    cap = network_mod.TX_OWED_MAX
    junk = iter(range(10**9))

    def have(peer: str, n: int) -> None:
        for i in range(0, n, network_mod.TX_HASHES_MAX):
            hashes = [next(junk).to_bytes(32, "big")
                      for _ in range(min(network_mod.TX_HASHES_MAX, n - i))]
            net._on_txs(peer, encode({"t": "have", "items": hashes}))

    have("liar", 5 * cap)
    assert wanted == {"liar": cap}, "asked for TX_OWED_MAX, then no more"
    assert net.stats["tx_haves_ignored"] == 4 * cap
    have("honest", 100)
    assert wanted["honest"] == 100, "other peers are asked as before"
    clock[0] += 1.0  # one second forgives TX_OWED_FORGIVEN_PER_S
    have("liar", cap)
    assert wanted["liar"] == cap + int(network_mod.TX_OWED_FORGIVEN_PER_S)
    # txs that arrive pay the debt of the peer they were asked of
    raws = [b"raw-%d" % i for i in range(10)]
    from sharechain.crypto import sha256

    for raw in raws:
        net._tx_wanted.put(sha256(raw), (clock[0], "liar"))
    owed = net._owed_by("liar", clock[0])
    net._on_full_txs("liar", raws)
    assert net._owed_by("liar", clock[0]) == owed - 10
