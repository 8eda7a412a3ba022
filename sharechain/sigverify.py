"""Batch signature verification in worker processes.

Why processes: libsodium drops the interpreter lock while it checks one signature, but
the Python loop around each call needs the lock back. When the node's main thread is busy
executing a block or parsing a batch, a verifying thread gets the lock only when the main
thread is made to yield it (every ``sys.getswitchinterval()``, 5 ms), so a verifying thread
checks about one signature per 5 ms exactly when the node is busiest. A worker process has
its own interpreter lock: it verifies a whole chunk at libsodium's speed while the main
thread keeps executing, and the transfer costs one pickled list of (key, message,
signature) triples out and one bytes object back.

Small batches (under ``INLINE_MAX``) are checked on the calling thread: their cost is below
the round trip to a worker.

Workers pay only when the node has a core to spare for them. Where several nodes share a
machine's cores (a localnet of four validators on two cores), every core is already busy
with some node's main thread, so workers add nothing but their cost: each verdict then
takes a pickled round trip, two helper threads per node wake for it, and the extra
processes crowd the cores. There a node does better verifying on its own thread
(``processes=0``); :func:`shared_machine_processes` gives the count for N nodes on one
machine, and a node's ``signature_workers`` setting chooses it (see ``NodeConfig``).

If the pool breaks (a worker killed), the batch is verified inline and a fresh pool is
started on the next call, so a verdict is never lost.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sharechain.crypto import verify
from sharechain.lru import BoundedMap

log = logging.getLogger("sharechain.sigverify")

INLINE_MAX = 64  # batches up to this size are verified on the calling thread
Triple = tuple[bytes, bytes, bytes]  # (public key, signed message, signature)


def verify_chunk(items: Sequence[Triple]) -> bytes:
    """One byte per item: 1 if its signature verifies, else 0 (runs in a worker)."""
    return bytes([verify(pk, msg, sig) for pk, msg, sig in items])


PROCESSES_MAX = 2  # workers per node by default: more buy little beside one main thread


def default_processes() -> int:
    """Workers for a node that has the machine to itself: one per core, at most
    ``PROCESSES_MAX``."""
    return max(1, min(PROCESSES_MAX, os.cpu_count() or 1))


def shared_machine_processes(nodes: int, cores: int | None = None) -> int:
    """Workers per node when ``nodes`` nodes share this machine: the cores left once each
    node's main thread has one, split between the nodes (at most ``PROCESSES_MAX`` each,
    often 0)."""
    cores = cores or os.cpu_count() or 1
    return min(PROCESSES_MAX, max(0, (cores - nodes) // max(1, nodes)))


class SignatureVerifier:
    """Verifies batches of Ed25519 signatures in ``processes`` worker processes.

    ``processes=0`` verifies everything on the calling thread (tests, tiny nodes).
    Workers are started on first use and stopped by :meth:`close`.
    """

    def __init__(self, processes: int | None = None) -> None:
        self.processes = default_processes() if processes is None else processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------ pool
    def _executor(self) -> ProcessPoolExecutor | None:
        if self.processes <= 0 or self._closed:
            return None
        with self._lock:
            if self._pool is None:
                # forkserver: workers start from a clean interpreter, not a fork of a
                # process that runs threads and an event loop.
                ctx = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(self.processes, mp_context=ctx)
            return self._pool

    def start(self) -> None:
        """Start the worker processes now and wait until each has answered. Otherwise they
        start on the first batch big enough for them, which then waits a second or more
        for processes to spawn and import (a node calls this before it serves)."""
        pool = self._executor()
        if pool is None:
            return
        try:
            for f in [pool.submit(verify_chunk, []) for _ in range(self.processes)]:
                f.result()
        except (BrokenProcessPool, RuntimeError):
            self._drop_pool(pool)  # the next batch starts a fresh pool

    def _drop_pool(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, items: Sequence[Triple]
                ) -> tuple[ProcessPoolExecutor, list[Future[bytes]]] | None:
        """Chunks of ``items`` handed to the workers, or None to verify inline."""
        if len(items) <= INLINE_MAX:
            return None
        pool = self._executor()
        if pool is None:
            return None
        n = min(self.processes, max(1, len(items) // INLINE_MAX))
        step = -(-len(items) // n)
        try:
            return pool, [pool.submit(verify_chunk, items[i:i + step])
                          for i in range(0, len(items), step)]
        except (BrokenProcessPool, RuntimeError):
            self._drop_pool(pool)
            return None

    def _broken(self, pool: ProcessPoolExecutor, items: Sequence[Triple]) -> bytes:
        log.warning("a signature worker died; verifying this batch inline")
        self._drop_pool(pool)
        return verify_chunk(items)

    # ------------------------------------------------------------ verification
    def verify(self, items: Sequence[Triple]) -> bytes:
        """Verdicts for ``items``, blocking until they are all checked."""
        sent = self._submit(items)
        if sent is None:
            return verify_chunk(items)
        pool, futures = sent
        try:
            return b"".join(f.result() for f in futures)
        except BrokenProcessPool:
            return self._broken(pool, items)

    async def verify_async(self, items: Sequence[Triple]) -> bytes:
        """:meth:`verify` for the event loop: the loop runs on while workers verify."""
        sent = self._submit(items)
        if sent is None:
            return verify_chunk(items)
        pool, futures = sent
        try:
            parts = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        except BrokenProcessPool:
            return self._broken(pool, items)
        return b"".join(parts)


VERIFIED_LEN_MAX = 200_000


class VerifiedSignatures:
    """Signatures carried inside messages that this node has already found valid.

    The mempool verifies them in its workers at admission and records the good ones here;
    block execution then looks a signature up instead of verifying it again. Only valid
    verdicts are kept, so a lookup answers exactly what a fresh check would (a miss just
    verifies), and the state machine stays deterministic. Bounded: the oldest fall out.
    """

    def __init__(self, len_max: int = VERIFIED_LEN_MAX) -> None:
        self._valid: BoundedMap[Triple, bool] = BoundedMap(len_max)

    def __len__(self) -> int:
        return len(self._valid)

    def record(self, items: Sequence[Triple], verdicts: bytes) -> None:
        for item, ok in zip(items, verdicts):
            if ok:
                self._valid.put(item, True)

    def check(self, pubkey: bytes, message: bytes, signature: bytes) -> bool:
        if (pubkey, message, signature) in self._valid:
            return True
        return verify(pubkey, message, signature)
