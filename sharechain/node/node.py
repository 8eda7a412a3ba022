"""The node process: chain, consensus, mempool, API (and P2P) wired on one asyncio loop.

This is the only layer that does I/O with time: it reads the clock for the consensus
engine, runs the HTTP server, and turns committed blocks into notifications for clients
waiting on a transaction and for event-stream subscribers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sharechain.consensus.solo import SoloEngine
from sharechain.errors import ShareChainError
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
                           check_invariants=self.config.check_invariants,
                           signature_workers=self.config.signature_workers,
                           map_bytes=self.config.db_map_mib * 2**20)
        self.chain.listeners.append(self._on_commit)
        from sharechain.node.metrics import NodeMetrics

        self.metrics = NodeMetrics(self)
        self.chain.listeners.append(self.metrics.on_commit)
        self._waiters: dict[bytes, list[asyncio.Future[Any]]] = defaultdict(list)
        self._subscribers: set[asyncio.Queue[CommittedBlock | None]] = set()
        self.started_at = time.time()
        self.engine: Any = None
        self.p2p: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self.committed_txs = 0
        self.failure: BaseException | None = None  # what stopped the node, if not a signal
        self._store_warned_at = STORE_WARN_FRACTIONS[0]

    # ---------------------------------------------------------------- notifications
    def _on_commit(self, cb: CommittedBlock) -> None:
        self.committed_txs += len(cb.tx_hashes)
        self._check_store_room()
        if self._waiters:
            for i, h in enumerate(cb.tx_hashes):
                futs = self._waiters.pop(h, None)
                if futs:
                    for f in futs:
                        if not f.done():
                            f.set_result((cb.block.header.height, i, cb.results[i]))
        for q in list(self._subscribers):
            if q.full():
                self._close_subscriber(q)  # a slow subscriber is dropped, not waited for
            else:
                q.put_nowait(cb)

    def wait_for_tx(self, tx_hash: bytes) -> asyncio.Future[Any]:
        assert self.loop is not None
        if len(self._waiters) >= WAITERS_MAX:
            raise ShareChainError("busy", "too many clients are waiting for commits; "
                                  "submit with mode=sync and poll the tx instead")
        fut: asyncio.Future[Any] = self.loop.create_future()
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

    def _close_subscriber(self, q: asyncio.Queue[CommittedBlock | None]) -> None:
        """Drop a subscriber and make its stream end: its queue may be full, so make room
        for the closing ``None`` (the subscriber is being cut off; it loses that block)."""
        self._subscribers.discard(q)
        if q.full():
            q.get_nowait()
        q.put_nowait(None)

    # ---------------------------------------------------------------- running
    def status(self) -> dict[str, Any]:
        meta = self.chain.store.meta
        return {
            "moniker": self.config.moniker, "chain_id": self.chain.chain_id,
            "height": meta.height, "last_block_hash": meta.last_hash.hex(),
            "last_block_time_ms": meta.time_ms, "state_root": meta.state_root.hex(),
            "engine": self.config.engine, "mempool_txs": len(self.chain.mempool),
            "mempool_bytes": self.chain.mempool.bytes,
            "validators": len(self.chain.validator_set().validators),
            "node_address": self.key.bech32, "uptime_s": int(time.time() - self.started_at),
            "committed_txs_since_start": self.committed_txs,
            "syncing": bool(self.p2p is not None and self.p2p.syncing),
            "store": dict(zip(("bytes_used", "bytes_max"), self.chain.store.usage())),
            "p2p": self._p2p_status(),
            "peers": self.p2p.peer_count() if self.p2p is not None else 0,
            "consensus": self._consensus_status(),
        }

    def _bft_engine(self) -> Any:
        return getattr(getattr(self.engine, "driver", None), "engine", None)

    def _consensus_status(self) -> dict[str, Any] | None:
        """Where the BFT engine is (None on other engines): a height whose round keeps
        rising, or that sits in one step, is not being decided."""
        eng = self._bft_engine()
        if eng is None:
            return None
        return {"height": eng.height, "round": eng.round, "step": eng.phase.name.lower(),
                "locked_round": eng.locked_round}

    def _p2p_status(self) -> dict[str, Any] | None:
        if self.p2p is None:
            return None
        return {"node_id": self.p2p.peers.node_id,
                "listen": "%s:%d" % self.p2p.peers.listen_address if self.config.p2p_port else None,
                "best_peer_height": self.p2p.best_peer_height(),
                "peers": [{"id": p.peer_id, "address": f"{p.host}:{p.port}",
                           "direction": p.direction, "height": self.p2p.peer_heights.get(p.peer_id),
                           "connected_since_unix_s": int(p.connected_since_unix_s),
                           "bytes_in": p.bytes_in, "bytes_out": p.bytes_out,
                           "msgs_dropped": p.msgs_dropped, "score": p.score, "rtt_ms": p.rtt_ms,
                           **self._sync_record(p.peer_id)}
                          for p in self.p2p.peers.peers()],
                "stats": self.p2p.stats}

    def evidence(self) -> list[Any]:
        """Duplicate-vote evidence this node's BFT engine has seen (none on other engines):
        proof, checkable by anyone with the validator set, that a validator equivocated."""
        return list(getattr(self._bft_engine(), "evidence", ()))

    def _sync_record(self, peer_id: str) -> dict[str, Any]:
        timeouts, cooldown = self.p2p.sync_cooldown(peer_id)  # type: ignore[union-attr]
        return {"sync_timeouts": timeouts, "sync_cooldown_s": round(cooldown, 1)}

    def _make_network(self) -> Any:
        cfg = self.config
        if cfg.p2p_port == 0 and not cfg.persistent_peers:
            return None
        from sharechain.node.network import NodeNetwork
        from sharechain.p2p.peers import PeerManagerConfig

        pcfg = PeerManagerConfig(listen_host=cfg.p2p_host, listen_port=cfg.p2p_port,
                                 listen=cfg.p2p_port != 0, network_id=self.chain.chain_id,
                                 persistent_peers=tuple(cfg.persistent_peers),
                                 ban_ip=cfg.p2p_ban_ip)
        return NodeNetwork(self, pcfg, self.home.p2p_key())

    def _make_engine(self) -> Any:
        if self.config.engine == "solo":
            return SoloEngine(self.chain, self.key, self.genesis.consensus.block_interval_ms,
                              self.config.create_empty_blocks,
                              has_txs=lambda: len(self.chain.mempool) > 0)
        if self.config.engine == "bft":
            from sharechain.consensus.bft.driver import BftDriver
            from sharechain.consensus.bft.events import BftConfig
            from sharechain.consensus.bft.wal import FileWal

            if self.config.local_validators > 1:
                return self._make_local_cluster()
            if self.p2p is None and len(self.chain.validator_set().validators) > 1:
                raise ValueError("the bft engine with several validators needs P2P "
                                 "(set p2p_port or persistent_peers)")
            transport = self.p2p.relay if self.p2p is not None else _NoTransport()
            is_validator = self.chain.validator_set().by_address(self.key.address) is not None
            self.home.wal_dir.mkdir(parents=True, exist_ok=True)
            interval = self.genesis.consensus.block_interval_ms
            driver = BftDriver(self.chain, self.key if is_validator else None, transport,
                               FileWal(self.home.wal_dir / "consensus.wal"),
                               BftConfig(timeout_commit_ms=interval, pace_from_round_start=True))
            return _DriverRunner(driver)
        raise ValueError(f"unknown consensus engine {self.config.engine!r}")

    async def run(self, on_serving: Callable[[], None] | None = None) -> None:
        """Serve until stopped. ``on_serving`` is called once the API accepts connections
        (a CLI prints its "try this" lines then, not before the port is open)."""
        import uvicorn

        from sharechain.api.server import create_app

        self.loop = asyncio.get_running_loop()
        # Signature workers up before the first tx arrives (not spawned under load).
        await asyncio.to_thread(self.chain.mempool.verifier.start)
        self.p2p = self._make_network()
        if self.p2p is not None:
            await self.p2p.start()
            self.chain.mempool.on_admit.append(self.p2p.tx_admitted_locally)
        self.engine = self._make_engine()
        if self.p2p is not None and isinstance(self.engine, _DriverRunner):
            self.p2p.on_synced_block = self.engine.chain_advanced
        api = create_app(self)
        tune_gc()
        server = uvicorn.Server(uvicorn.Config(
            api, host=self.config.api_host, port=self.config.api_port, log_level="warning",
            lifespan="off", access_log=False))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        for sig in STOP_SIGNALS:
            try:
                self.loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):
                pass
        engine_task = asyncio.create_task(self.engine.run(), name="consensus")
        api_task = asyncio.create_task(server.serve(), name="api")
        serving_task = asyncio.create_task(_when_serving(server, on_serving), name="api-up")
        log.info("node %s: chain %s at height %d, API on http://%s:%d", self.config.moniker,
                 self.chain.chain_id, self.chain.height(), self.config.api_host,
                 self.config.api_port)
        stop_task = asyncio.create_task(self._stop.wait())
        await asyncio.wait({engine_task, api_task, stop_task},
                                     return_when=asyncio.FIRST_COMPLETED)
        self.engine.stop()
        server.should_exit = True
        serving_task.cancel()
        ended = await asyncio.gather(engine_task, api_task, serving_task, return_exceptions=True)
        for t, result in zip((engine_task, api_task), ended):
            if isinstance(result, Exception):
                log.error("task %s failed: %s", t.get_name(), result)
                if self.failure is None:
                    self.failure = result
        stop_task.cancel()
        if self.p2p is not None:
            await self.p2p.stop()
        for q in list(self._subscribers):
            self._close_subscriber(q)
        self.chain.close()
        for ch in getattr(self, "local_chains", []):
            ch.close()
        if self.failure is not None:
            raise self.failure  # after the clean-up: the process exits non-zero with it
        log.info("node stopped")

    def _make_local_cluster(self) -> Any:
        """Devnet: this node plus validators 1..N-1 as in-process chains on a LocalBus.

        Each in-process validator has its own store, mempool and WAL under
        ``HOME/validatorI``; transactions admitted by this node are forwarded to their
        mempools, so whoever proposes includes them.
        """
        from sharechain.consensus.bft.driver import BftDriver
        from sharechain.consensus.bft.events import BftConfig
        from sharechain.consensus.bft.local import LocalBus
        from sharechain.consensus.bft.wal import FileWal
        from sharechain.node.devnet import validator_key

        cfg = BftConfig(timeout_commit_ms=self.genesis.consensus.block_interval_ms,
                        pace_from_round_start=True)
        bus = LocalBus()
        self.home.wal_dir.mkdir(parents=True, exist_ok=True)
        drivers = [BftDriver(self.chain, self.key, bus.endpoint(),
                             FileWal(self.home.wal_dir / "consensus.wal"), cfg)]
        self.local_chains = []
        for i in range(1, self.config.local_validators):
            vdir = self.home.path / f"validator{i}"
            vdir.mkdir(parents=True, exist_ok=True)
            ch = Chain(str(vdir / "data"), self.genesis,
                       signature_workers=self.config.signature_workers)
            self.local_chains.append(ch)
            drivers.append(BftDriver(ch, validator_key(i, self.chain.chain_id), bus.endpoint(),
                                     FileWal(vdir / "consensus.wal"), cfg))

        def forward(raw: bytes, tx_hash: bytes) -> None:
            for ch in self.local_chains:
                if tx_hash not in ch.mempool:
                    try:
                        ch.mempool.add(raw)
                    except ShareChainError:
                        pass  # that validator already has it, or cannot take it yet

        self.chain.mempool.on_admit.append(forward)
        return _DriverRunner(*drivers)

    def request_stop(self) -> None:
        self._stop.set()

    def fail(self, exc: BaseException) -> None:
        """Stop the node because of ``exc`` (a :class:`FatalError` outside the consensus
        task, say): ``run`` cleans up, then raises it, so the process exits non-zero."""
        if self.failure is None:
            self.failure = exc
        self.request_stop()

    def _check_store_room(self) -> None:
        """Warn as the store nears its size limit (``db_map_mib``), at 90, 95 and 99 %."""
        used, cap = self.chain.store.usage()
        if used < self._store_warned_at * cap:
            return
        log.warning("the store is %d %% full (%d of %d MiB): raise db_map_mib in config.json "
                    "and restart the node before it fills, or it will stop",
                    100 * used // cap, used >> 20, cap >> 20)
        self._store_warned_at = next((f for f in STORE_WARN_FRACTIONS if used < f * cap), 2.0)


class _NoTransport:
    """Consensus transport of a lone BFT validator: nobody to talk to."""

    def broadcast(self, msg_bytes: bytes) -> None:
        pass

    def set_receiver(self, callback: Any) -> None:
        pass


class _DriverRunner:
    """Gives BFT drivers the run()/stop() shape the node expects of an engine."""

    def __init__(self, driver: Any, *others: Any) -> None:
        self.driver = driver
        self.drivers = (driver, *others)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        waits = [asyncio.ensure_future(self._stop.wait())]
        try:
            for d in self.drivers:  # inside the try: a failed start stops those started
                await d.start()
            waits += [d.task for d in self.drivers]
            # A driver task ends only on stop() or a fatal error (e.g. the WAL cannot be
            # fsynced); either way the node must stop rather than run without consensus.
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waits[0].cancel()
            for d in self.drivers:
                await d.stop()

    def stop(self) -> None:
        self._stop.set()

    def chain_advanced(self) -> None:
        """Block sync committed blocks behind consensus' back: resume at the new height."""
        self.driver.resync()


GC_GEN0_THRESHOLD = 50_000
STORE_WARN_FRACTIONS = (0.90, 0.95, 0.99)  # of db_map_mib: the node logs a warning at each

# The signals that stop a node, or a localnet and its nodes, cleanly: Ctrl-C, SIGTERM (kill,
# a service manager, a CI timeout) and SIGHUP (the terminal closed) where the OS has it.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


async def _when_serving(server: Any, callback: Callable[[], None] | None) -> None:
    """Call ``callback`` once uvicorn's ``server`` has bound its socket."""
    if callback is None:
        return
    while not server.started:
        await asyncio.sleep(0.02)
    callback()


def tune_gc() -> None:
    """A node keeps hundreds of thousands of long-lived objects (pooled txs, caches), and
    makes short-lived ones by the million (records, events). With the default gen-0
    threshold of 700 the collector runs every few transactions and its older generations
    walk every live object, which cost about a tenth of the node's time under load. The
    objects built during start-up are frozen out of collection, and gen 0 collects after
    50,000 allocations; reference counting still frees almost everything at once."""
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def run(main: Coroutine[Any, Any, None], profile: Path | None = None) -> None:
    """Run a node's main coroutine to the end on uvloop (libuv's event loop, which moves
    the node's many small P2P and API messages through the loop at a fraction of the
    standard loop's cost), or on the standard loop where uvloop is not installed.

    With ``profile``, the main thread runs under cProfile and the statistics are written to
    that file when the node stops (``python -m pstats FILE`` reads them). Times are wall
    time spent inside Python calls: a call blocked on the disk counts, the event loop's
    idle wait is not charged to the node's functions. cProfile's default
    clock is used because a thread CPU clock is a system call per read, which slowed nodes
    about six times against about 1.7 times here: use the profile for proportions, not
    rates."""
    if profile is None:
        _run_loop(main)
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        _run_loop(main)
    finally:
        profiler.disable()
        profiler.dump_stats(str(profile))
        log.info("profile of the main thread (wall time) written to %s", profile)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
