"""``sharechain testnet`` and ``sharechain localnet``: multi-validator networks."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import httpx
import typer
from rich.live import Live
from rich.table import Table

from sharechain.cli.common import console, handle_errors
from sharechain.errors import ShareChainError
from sharechain.node.home import Home


def register(app: typer.Typer) -> None:
    @app.command("testnet")
    @handle_errors
    def testnet(validators: int = typer.Option(4, min=1, max=64),
                out: Path = typer.Option(..., help="Folder for the node homes."),
                chain_id: str = "sharechain-testnet",
                host: str = typer.Option("127.0.0.1", help="Address peers dial, for every "
                                         "node (one machine)."),
                hosts: Optional[str] = typer.Option(
                    None, help="Comma-separated address of each node, validators first, for "
                               "a network across machines, e.g. 10.0.0.1,10.0.0.2,10.0.0.3,"
                               "10.0.0.4 (nodes on different hosts share the base ports)."),
                base_p2p_port: int = 26656, base_api_port: int = 8700,
                block_interval_ms: int = 1000, full_nodes: int = 0,
                force: bool = False) -> None:
        """Write node homes for a BFT network: keys, shared genesis, peer lists."""
        from sharechain.node.testnet import write_testnet

        host_list = [h.strip() for h in hosts.split(",")] if hosts else None
        if out.exists() and any(out.iterdir()):
            if not force:
                raise ShareChainError("home_exists", f"{out} is not empty; use --force")
            shutil.rmtree(out)
        homes = write_testnet(out, validators, chain_id, host, base_p2p_port, base_api_port,
                              block_interval_ms, full_nodes, hosts=host_list)
        t = Table("node", "p2p id", "p2p address", "listens on", "api", "role")
        for i, h in enumerate(homes):
            cfg = h.load_config()
            t.add_row(h.path.name, h.p2p_node_id(),
                      f"{host_list[i] if host_list else host}:{cfg.p2p_port}",
                      f"{cfg.p2p_host}:{cfg.p2p_port}", f"http://{cfg.api_host}:{cfg.api_port}",
                      "validator" if i < validators else "full")
        console.print(t)
        if host_list:
            console.print(f"copy {out}/nodeN to the machine at the address of nodeN, then on "
                          "each: sharechain start --home nodeN")
        else:
            console.print(f"start each with: sharechain start --home {out}/nodeN")

    @app.command("localnet")
    @handle_errors
    def localnet(validators: int = typer.Option(4, min=1, max=16),
                 dir: Optional[Path] = typer.Option(None, help="Keep the homes here "
                                                    "(default: a temporary folder)."),
                 base_p2p_port: int = 26656, base_api_port: int = 8700,
                 block_interval_ms: int = 1000) -> None:
        """Start a BFT network of N node processes on loopback and show their status live."""
        from sharechain.node.launcher import NodeProcess
        from sharechain.node.node import STOP_SIGNALS
        from sharechain.node.testnet import write_testnet

        root = dir or Path(tempfile.mkdtemp(prefix="sharechain-localnet-"))
        if not (root / "node0" / "config.json").exists():
            write_testnet(root, validators, base_p2p_port=base_p2p_port,
                          base_api_port=base_api_port, block_interval_ms=block_interval_ms)
        procs = [NodeProcess(Home(root / f"node{i}")) for i in range(validators)]
        # The nodes run in sessions of their own (a terminal's Ctrl-C reaches only this
        # process), so every signal that stops a node stops this process through the same
        # path as Ctrl-C, which stops the nodes, instead of leaving them without a parent.
        previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
        try:
            for p in procs:
                p.start(wait=False)
            console.print(f"localnet of {validators} validators in {root}; Ctrl-C stops them")
            if console.is_terminal:
                with Live(_table(procs), console=console, refresh_per_second=2) as live:
                    while True:
                        time.sleep(1)
                        live.update(_table(procs))
            else:  # a log file or a pipe: a plain status line now and then, not a redrawn table
                while True:
                    console.print(_status_line(procs), soft_wrap=True)
                    time.sleep(PLAIN_STATUS_INTERVAL_S)
        except KeyboardInterrupt:
            pass
        finally:
            for sig in STOP_SIGNALS:  # a second signal now would cut the stop short
                signal.signal(sig, signal.SIG_IGN)
            for p in procs:  # all asked at once; each then gets its own time to finish
                if p.proc is not None and p.proc.poll() is None:
                    p.proc.send_signal(signal.SIGTERM)
            for p in procs:
                p.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            console.print("stopped")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


PLAIN_STATUS_INTERVAL_S = 5.0


def _status(p: Any) -> dict[str, Any] | None:
    """The node's /v1/status, or None while it cannot answer."""
    try:
        s = httpx.get(p.url + "/v1/status", timeout=0.5).json()
        return s if isinstance(s, dict) and {"height", "peers", "mempool_txs"} <= s.keys() else None
    except (httpx.HTTPError, ValueError):
        return None


def _down(p: Any) -> str:
    return "starting" if p.proc is not None and p.proc.poll() is None else "exited"


def _status_line(procs: list) -> str:
    """One line for all nodes: ``node0 h=12 peers=3 mempool=0 | node1 …``."""
    parts = []
    for p in procs:
        s = _status(p)
        parts.append(f"{p.home.path.name} " + (
            _down(p) if s is None else
            f"h={s['height']} peers={s['peers']} mempool={s['mempool_txs']}"))
    return time.strftime("%H:%M:%S ") + " | ".join(parts)


def _table(procs: list) -> Table:
    t = Table("node", "pid", "height", "last block", "round", "mempool", "peers", "api")
    for p in procs:
        s = _status(p)
        pid = str(p.proc.pid if p.proc else "-")
        if s is None:
            down = _down(p)
            t.add_row(p.home.path.name, pid, down if down == "starting" else f"[red]{down}[/red]",
                      "-", "-", "-", "-", p.url)
        else:
            t.add_row(p.home.path.name, pid, str(s["height"]), str(s.get("last_block_hash", ""))[:12],
                      _round(s), str(s["mempool_txs"]), str(s["peers"]), p.url)
    return t


def _round(s: dict[str, Any]) -> str:
    """The round and step of the height being decided: a round above 0 means the first
    proposal did not make it (a proposer down, or a slow link)."""
    c = s.get("consensus")
    if not isinstance(c, dict):
        return "-"
    text = f"{c.get('round')} {c.get('step')}"
    return f"[yellow]{text}[/yellow]" if c.get("round") else text
