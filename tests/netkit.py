"""Helpers for multi-process network tests: a BFT testnet on loopback and a cuttable proxy."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from sharechain.node.launcher import NodeProcess, free_port
from sharechain.node.testnet import write_testnet


class LinkProxy:
    """A TCP forwarder for one directed link; ``cut()`` drops it, ``heal()`` restores it."""

    __test__ = False

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.blocked = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.blocked:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        self.blocked = True
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def heal(self) -> None:
        self.blocked = False

    def close(self) -> None:
        self._stop = True
        self.cut()
        self.sock.close()


class LocalTestnet:
    __test__ = False  # a helper, not a test class

    def __init__(self, root: Path, validators: int = 4, interval_ms: int = 300,
                 proxies: bool = False, full_nodes: int = 0) -> None:
        n = validators + full_nodes
        self.p2p_ports = [free_port() for _ in range(n)]
        self.api_ports = [free_port() for _ in range(n)]
        self.proxies: dict[tuple[int, int], LinkProxy] = {}
        dial = None
        if proxies:
            for i in range(n):
                for j in range(n):
                    if i != j:
                        self.proxies[(i, j)] = LinkProxy(self.p2p_ports[j])
            dial = lambda i, j: f"127.0.0.1:{self.proxies[(i, j)].port}"  # noqa: E731
        self.homes = write_testnet(root, validators, "net-test", block_interval_ms=interval_ms,
                                   full_nodes=full_nodes, p2p_ports=self.p2p_ports,
                                   api_ports=self.api_ports, dial_address=dial)
        self.procs = [NodeProcess(h) for h in self.homes]
        self._on_stop: list[Callable[[], object]] = []

    def __enter__(self) -> "LocalTestnet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on_stop(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` first when the testnet stops (say, to end a load thread)."""
        self._on_stop.append(fn)

    def start(self, which: list[int] | None = None) -> None:
        for i in which if which is not None else range(len(self.procs)):
            self.procs[i].start(wait=False)
        for i in which if which is not None else range(len(self.procs)):
            self.procs[i].wait_ready()

    def stop(self) -> None:
        """End every callback's work, then stop every node and close every link proxy."""
        while self._on_stop:
            self._on_stop.pop()()
        for p in self.procs:
            p.stop()
        for px in self.proxies.values():
            px.close()

    def status(self, i: int) -> dict:
        return httpx.get(self.procs[i].url + "/v1/status", timeout=5).json()

    def height(self, i: int) -> int:
        return int(self.status(i)["height"])

    def wait_height(self, nodes: list[int], height: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if all(self.height(i) >= height for i in nodes):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"nodes {nodes} did not reach height {height}: "
                             f"{[self._safe_height(i) for i in nodes]}")

    def _safe_height(self, i: int) -> int | None:
        try:
            return self.height(i)
        except httpx.HTTPError:
            return None

    def block(self, i: int, h: int) -> dict:
        return httpx.get(f"{self.procs[i].url}/v1/blocks/{h}", timeout=5).json()

    def assert_same_chain(self, nodes: list[int], upto: int) -> None:
        """Every node has the same block hash and state root at every height."""
        for h in range(1, upto + 1):
            blocks = [self.block(i, h) for i in nodes]
            seen = {(b["hash"], b["header"]["state_root"]) for b in blocks}
            assert len(seen) == 1, f"nodes disagree at height {h}: {seen}"

    def partition(self, group_a: list[int], group_b: list[int]) -> None:
        for i in group_a:
            for j in group_b:
                self.proxies[(i, j)].cut()
                self.proxies[(j, i)].cut()

    def heal_all(self) -> None:
        for px in self.proxies.values():
            px.heal()
