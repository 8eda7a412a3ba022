"""The node process: chain, consensus, mempool, API (and P2P) wired on one asyncio loop.

This is the only layer that does I/O with time: it reads the clock for the consensus
engine, runs the HTTP server, and turns committed blocks into notifications for clients
waiting on a transaction and for event-stream subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import defaultdict
from typing import Any

from sharechain.consensus.solo import SoloEngine
from sharechain.mempool import MempoolLimits
from sharechain.node.chain import Chain, CommittedBlock
from sharechain.node.genesis import load_genesis
from sharechain.node.home import Home, NodeConfig

log = logging.getLogger("sharechain.node")

SUBSCRIBER_QUEUE_LEN_MAX = 1024
WAITERS_MAX = 100_000


class Node:
    def __init__(self, home: Home, config: NodeConfig | None = None) -> None:
        self.home = home
        self.config = config or home.load_config()
        self.genesis = load_genesis(home.genesis_file)
        self.key = home.node_key()
        self.chain = Chain(str(home.data_dir), self.genesis,
                           MempoolLimits(self.config.mempool_bytes_max, self.config.mempool_txs_max),
                           check_invariants=self.config.check_invariants)
        self.chain.listeners.append(self._on_commit)
        self._waiters: dict[bytes, list[asyncio.Future[Any]]] = defaultdict(list)
        self._subscribers: set[asyncio.Queue[CommittedBlock | None]] = set()
        self.started_at = time.time()
        self.engine: Any = None
        self.p2p: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self.committed_txs = 0

    # ---------------------------------------------------------------- notifications
    def _on_commit(self, cb: CommittedBlock) -> None:
        self.committed_txs += len(cb.tx_hashes)
        if self._waiters:
            for i, h in enumerate(cb.tx_hashes):
                futs = self._waiters.pop(h, None)
                if futs:
                    for f in futs:
                        if not f.done():
                            f.set_result((cb.block.header.height, i, cb.results[i]))
        for q in list(self._subscribers):
            if q.full():
                self._subscribers.discard(q)  # a slow subscriber is dropped, not waited for
                q.put_nowait(None) if not q.full() else None
            else:
                q.put_nowait(cb)

    def wait_for_tx(self, tx_hash: bytes) -> asyncio.Future[Any]:
        assert self.loop is not None
        fut: asyncio.Future[Any] = self.loop.create_future()
        if len(self._waiters) < WAITERS_MAX:
            self._waiters[tx_hash].append(fut)
        return fut

    def cancel_wait(self, tx_hash: bytes, fut: asyncio.Future[Any]) -> None:
        lst = self._waiters.get(tx_hash)
        if lst and fut in lst:
            lst.remove(fut)
            if not lst:
                del self._waiters[tx_hash]

    def subscribe(self) -> asyncio.Queue[CommittedBlock | None]:
        q: asyncio.Queue[CommittedBlock | None] = asyncio.Queue(SUBSCRIBER_QUEUE_LEN_MAX)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[CommittedBlock | None]) -> None:
        self._subscribers.discard(q)

    # ---------------------------------------------------------------- running
    def status(self) -> dict[str, Any]:
        meta = self.chain.store.meta
        return {
            "moniker": self.config.moniker, "chain_id": self.chain.chain_id,
            "height": meta.height, "last_block_hash": meta.last_hash.hex(),
            "last_block_time_ms": meta.time_ms, "state_root": meta.state_root.hex(),
            "engine": self.config.engine, "mempool_txs": len(self.chain.mempool),
            "mempool_bytes": self.chain.mempool.bytes, "validators": len(self.chain.validator_set().validators),
            "node_address": self.key.bech32, "uptime_s": int(time.time() - self.started_at),
            "committed_txs_since_start": self.committed_txs,
            "syncing": False,
            "peers": self.p2p.peer_count() if self.p2p is not None else 0,
        }

    def _make_engine(self) -> Any:
        if self.config.engine == "solo":
            return SoloEngine(self.chain, self.key, self.genesis.consensus.block_interval_ms,
                              self.config.create_empty_blocks,
                              has_txs=lambda: len(self.chain.mempool) > 0)
        raise ValueError(f"unknown consensus engine {self.config.engine!r}")

    async def run(self) -> None:
        import uvicorn

        from sharechain.api.server import create_app

        self.loop = asyncio.get_running_loop()
        self.engine = self._make_engine()
        api = create_app(self)
        server = uvicorn.Server(uvicorn.Config(
            api, host=self.config.api_host, port=self.config.api_port, log_level="warning",
            lifespan="off", access_log=False))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):
                pass
        engine_task = asyncio.create_task(self.engine.run(), name="consensus")
        api_task = asyncio.create_task(server.serve(), name="api")
        log.info("node %s: chain %s at height %d, API on http://%s:%d", self.config.moniker,
                 self.chain.chain_id, self.chain.height(), self.config.api_host,
                 self.config.api_port)
        stop_task = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({engine_task, api_task, stop_task},
                                     return_when=asyncio.FIRST_COMPLETED)
        self.engine.stop()
        server.should_exit = True
        for t in (engine_task, api_task):
            if t in done and t.exception() is not None:
                log.error("task %s failed: %r", t.get_name(), t.exception())
        await asyncio.gather(engine_task, api_task, return_exceptions=True)
        stop_task.cancel()
        for q in list(self._subscribers):
            q.put_nowait(None) if not q.full() else None
        self.chain.close()
        log.info("node stopped")

    def request_stop(self) -> None:
        self._stop.set()
