"""Prometheus metrics of a node, served at ``GET /metrics``.

Gauges are read when scraped (height, mempool, peers); counters and the block-interval
histogram are updated by the commit listener. Each node has its own registry, so several
nodes in one process (devnet, tests) do not collide.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from sharechain.node.chain import CommittedBlock
    from sharechain.node.node import Node

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeMetrics:
    def __init__(self, node: "Node") -> None:
        self.node = node
        r = self.registry = CollectorRegistry()
        self.height = Gauge("sharechain_height", "Last committed block height", registry=r)
        self.mempool_txs = Gauge("sharechain_mempool_txs", "Transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("sharechain_mempool_bytes", "Bytes in the mempool", registry=r)
        self.peers = Gauge("sharechain_peers", "Connected peers", registry=r)
        self.syncing = Gauge("sharechain_syncing", "1 while block sync is catching up", registry=r)
        self.evidence = Gauge("sharechain_consensus_evidence",
                              "Duplicate-vote evidence held (validators seen equivocating)",
                              registry=r)
        self.store_used = Gauge("sharechain_store_bytes_used",
                                "Bytes of the store (LMDB map) in use", registry=r)
        self.store_max = Gauge("sharechain_store_bytes_max",
                               "The most the store may grow to (db_map_mib)", registry=r)
        self.consensus_round = Gauge("sharechain_consensus_round",
                                     "Round of the last committed block (BFT)", registry=r)
        self.txs = Counter("sharechain_committed_txs", "Committed transactions", registry=r)
        self.failed_txs = Counter("sharechain_failed_txs",
                                  "Committed transactions whose messages failed", registry=r)
        self.blocks = Counter("sharechain_committed_blocks", "Committed blocks", registry=r)
        self.block_interval = Histogram(
            "sharechain_block_interval_seconds", "Wall time between commits (round duration)",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32), registry=r)
        self.tx_rate = Gauge("sharechain_tx_per_second",
                             "Committed tx/s over the last 10 blocks", registry=r)
        self._last_commit: float | None = None
        self._recent: list[tuple[float, int]] = []
        for name in ("admitted", "rejected", "evicted", "dropped_on_recheck"):
            c = Counter(f"sharechain_mempool_{name}", f"Mempool txs {name.replace('_', ' ')}",
                        registry=r)
            setattr(self, f"_mp_{name}", c)
        self._p2p: dict[str, Counter] = {}  # one counter per NodeNetwork.stats entry
        self._pm: dict[str, Counter | Gauge] = {}  # one per PeerManager.metrics() entry

    def on_commit(self, cb: "CommittedBlock") -> None:
        now = time.monotonic()
        if self._last_commit is not None:
            self.block_interval.observe(now - self._last_commit)
        self._last_commit = now
        self.blocks.inc()
        self.txs.inc(len(cb.tx_hashes))
        self.failed_txs.inc(sum(1 for r in cb.results if not r.ok))
        self.consensus_round.set(cb.commit.round)
        self._recent.append((now, len(cb.tx_hashes)))
        del self._recent[:-10]
        if len(self._recent) > 1:
            span = self._recent[-1][0] - self._recent[0][0]
            if span > 0:
                self.tx_rate.set(sum(n for _, n in self._recent[1:]) / span)

    def render(self) -> bytes:
        n = self.node
        self.height.set(n.chain.height())
        self.mempool_txs.set(len(n.chain.mempool))
        self.mempool_bytes.set(n.chain.mempool.bytes)
        self.peers.set(n.p2p.peer_count() if n.p2p is not None else 0)
        self.syncing.set(1 if n.p2p is not None and n.p2p.syncing else 0)
        self.evidence.set(len(n.evidence()))
        used, most = n.chain.store.usage()
        self.store_used.set(used)
        self.store_max.set(most)
        for name, value in n.chain.mempool.stats.items():
            c = getattr(self, f"_mp_{name}", None)
            if c is not None:
                c._value.set(value)
        if n.p2p is not None:
            for name, value in n.p2p.stats.items():
                c = self._p2p.get(name)
                if c is None:
                    c = self._p2p[name] = Counter(f"sharechain_p2p_{name}",
                                                  f"P2P {name.replace('_', ' ')}",
                                                  registry=self.registry)
                c._value.set(value)
            # The transport's own: connections, handshakes, bans, bytes, drops
            # (``sharechain_p2p_bans_total``, ...); ``*_total`` are counters.
            for name, value in n.p2p.peers.metrics().items():
                m = self._pm.get(name)
                if m is None:
                    what = name.removeprefix("p2p_").removesuffix("_total").replace("_", " ")
                    m = self._pm[name] = (
                        Counter(f"sharechain_{name.removesuffix('_total')}", f"P2P {what}",
                                registry=self.registry) if name.endswith("_total") else
                        Gauge(f"sharechain_{name}", f"P2P {what}", registry=self.registry))
                m._value.set(value)
        return generate_latest(self.registry)
