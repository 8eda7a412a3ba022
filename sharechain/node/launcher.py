"""Start and stop real node processes on loopback (tests, benchmarks, localnet).

A :class:`NodeProcess` runs ``python -m sharechain.cli.main start --home DIR`` as its own
OS process, waits until its API answers, and stops it with SIGTERM (or SIGKILL when a
test wants a crash).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sharechain.crypto import PrivateKey
from sharechain.node.home import Home, NodeConfig

READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_single_node_home(path: Path, genesis_doc: dict, key: PrivateKey, api_port: int,
                          **config: object) -> Home:
    h = Home(path)
    h.save_node_key(key)
    h.save_genesis(genesis_doc)
    h.save_config(NodeConfig(moniker=path.name, api_port=api_port, **config))  # type: ignore[arg-type]
    return h


class NodeProcess:
    def __init__(self, home: Home, log_path: Path | None = None,
                 args: tuple[str, ...] = ()) -> None:
        """``args``: more options for ``sharechain start`` (``--profile FILE``, say)."""
        self.home = home
        self.args = args
        self.cfg = home.load_config()
        api_host = self.cfg.api_host if self.cfg.api_host not in ("", "0.0.0.0", "::") \
            else "127.0.0.1"
        self.url = f"http://{api_host}:{self.cfg.api_port}"
        self.log_path = log_path or home.path / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> "NodeProcess":
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sharechain.cli.main", "start", "--home", str(self.home.path),
             *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}; see {self.log_path}:\n"
                                   + self.log_path.read_text()[-3000:])
            try:
                if httpx.get(self.url + "/v1/status", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"node at {self.url} not ready after {timeout_s}s")

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the crash a power cut would cause."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
