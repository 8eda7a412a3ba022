"""Write the homes of a multi-validator network: keys, one shared genesis, peer lists."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

from sharechain.crypto import PrivateKey
from sharechain.errors import ShareChainError
from sharechain.node.devnet import demo_genesis
from sharechain.node.home import Home, NodeConfig
from sharechain.sigverify import shared_machine_processes


def write_testnet(out: Path, validators: int, chain_id: str = "sharechain-testnet",
                  host: str = "127.0.0.1", base_p2p_port: int = 26656,
                  base_api_port: int = 8700, block_interval_ms: int = 1000,
                  full_nodes: int = 0, p2p_ports: list[int] | None = None,
                  api_ports: list[int] | None = None,
                  dial_address: Callable[[int, int], str] | None = None,
                  extra_accounts: dict[str, int] | None = None,
                  block_txs_max: int = 10_000,
                  signature_workers: int | None = None,
                  hosts: list[str] | None = None) -> list[Home]:
    """Node homes ``out/node0..`` (validators first, then full nodes); returns them.

    ``hosts``: each node's address (one per node), for a network across machines. Nodes on
    different hosts get the same ports (``base_*_port``); nodes sharing a host, consecutive
    ones. A node on a routable address listens on all interfaces (``0.0.0.0``); one on a
    loopback address (``127.x``, ``localhost``) listens on that address only, so distinct
    loopback addresses can stand for distinct machines on one. Without ``hosts`` every node
    is on ``host`` with consecutive ports. ``p2p_ports``/``api_ports`` override the ports;
    ``dial_address(i, j)`` gives the ``host:port`` node i dials to reach node j (tests route
    links through proxies). The API listens on loopback (the node's own loopback address,
    or ``127.0.0.1``): expose it by editing ``api_host``.
    ``signature_workers`` goes into every config; by default a loopback network, whose
    nodes all run on this machine, gets :func:`shared_machine_processes` of its node count
    (0 for four nodes on two cores), and any other the per-node default (None).
    """
    n = validators + full_nodes
    if hosts is not None and len(hosts) != n:
        raise ShareChainError("invalid_hosts", f"{len(hosts)} hosts for {n} nodes: give one "
                              "address per node, validators first")
    where = list(hosts) if hosts is not None else [host] * n
    if any(not h or any(c in h for c in "@, /") for h in where):
        raise ShareChainError("invalid_hosts", f"not a host name or address: {where}")
    keys = [PrivateKey.generate() for _ in range(validators)]
    doc = demo_genesis(chain_id, keys, block_interval_ms, extra_accounts=extra_accounts,
                       block_txs_max=block_txs_max)
    homes = [Home(out / f"node{i}") for i in range(n)]
    slot = [where[:i].count(where[i]) for i in range(n)]  # earlier nodes on the same host
    p2p = p2p_ports or [base_p2p_port + slot[i] for i in range(n)]
    api = api_ports or [base_api_port + slot[i] for i in range(n)]
    dial = dial_address or (lambda i, j: f"{where[j]}:{p2p[j]}")
    for i, h in enumerate(homes):
        h.save_node_key(keys[i] if i < validators else PrivateKey.generate())
        h.save_genesis(doc)
    ids = [h.p2p_node_id() for h in homes]
    loopback = [_is_loopback(a) for a in where]
    if signature_workers is None and all(loopback):
        signature_workers = shared_machine_processes(n)
    for i, h in enumerate(homes):
        peers = [f"{ids[j]}@{dial(i, j)}" for j in range(n) if j != i]
        h.save_config(NodeConfig(
            moniker=f"node{i}", api_host=where[i] if loopback[i] else "127.0.0.1",
            api_port=api[i], p2p_host=where[i] if loopback[i] else "0.0.0.0", p2p_port=p2p[i],
            persistent_peers=peers, engine="bft", p2p_ban_ip=not any(loopback),
            signature_workers=signature_workers))
    return homes


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return host == "localhost"
