"""A node's home directory.

  HOME/config.json      node settings (API and P2P addresses, consensus engine, limits)
  HOME/genesis.json     the chain's genesis document
  HOME/node_key.json    this node's Ed25519 key (validator and P2P identity), mode 0600
  HOME/data/            LMDB: state, blocks, indexes
  HOME/wal/             consensus write-ahead log (bft engine)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import nacl.signing

from sharechain.crypto import PrivateKey
from sharechain.errors import ShareChainError


@dataclass
class NodeConfig:
    moniker: str = "node"
    api_host: str = "127.0.0.1"
    api_port: int = 8700
    p2p_host: str = "127.0.0.1"
    p2p_port: int = 0          # 0: no P2P listener (single-node chains)
    persistent_peers: list[str] = field(default_factory=list)  # "id@host:port"
    p2p_ban_ip: bool = True    # False on loopback testnets, where all peers share one IP
    local_validators: int = 0  # devnet only: run validators 1..N-1 in this process (LocalBus)
    engine: str = "solo"       # solo | bft
    create_empty_blocks: bool = True
    mempool_bytes_max: int = 64 * 1024 * 1024
    mempool_txs_max: int = 200_000
    check_invariants: bool = False
    log_level: str = "info"
    # Processes that verify tx signatures beside the main thread. None: one per core, at
    # most 2 (a node with the machine to itself). 0: verify on the main thread, which is
    # faster where several nodes share the cores (a loopback testnet; see sigverify).
    signature_workers: int | None = None
    # The most the node's store (LMDB) may grow to, in MiB. The file is sparse and grows
    # only as used; at the limit the node stops with a clear error, and a restart with a
    # larger value resumes (a store keeps whatever size it already has).
    db_map_mib: int = 64 * 1024

    def __post_init__(self) -> None:
        w = self.signature_workers
        if w is not None and (type(w) is not int or not 0 <= w <= 64):
            raise ShareChainError("invalid_config",
                                  f"signature_workers must be null or 0..64, not {w!r}")
        m = self.db_map_mib
        if type(m) is not int or not 1 <= m <= 2**30:
            raise ShareChainError("invalid_config",
                                  f"db_map_mib must be a whole number of MiB from 1, not {m!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NodeConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ShareChainError("invalid_config", f"unknown config field(s): {sorted(unknown)}")
        return cls(**d)


class Home:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def genesis_file(self) -> Path:
        return self.path / "genesis.json"

    @property
    def key_file(self) -> Path:
        return self.path / "node_key.json"

    @property
    def p2p_key_file(self) -> Path:
        return self.path / "p2p_key.json"

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def wal_dir(self) -> Path:
        return self.path / "wal"

    def exists(self) -> bool:
        return self.config_file.exists() and self.genesis_file.exists()

    def load_config(self) -> NodeConfig:
        try:
            return NodeConfig.from_dict(json.loads(self.config_file.read_text()))
        except FileNotFoundError:
            raise ShareChainError("no_home", f"{self.path} is not a node home; run "
                                  f"'sharechain init --home {self.path}' first") from None

    def save_config(self, cfg: NodeConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.config_file, json.dumps(asdict(cfg), indent=2) + "\n")

    def save_genesis(self, doc: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.genesis_file, json.dumps(doc, indent=2) + "\n")

    def node_key(self) -> PrivateKey:
        try:
            d = json.loads(self.key_file.read_text())
            return PrivateKey(bytes.fromhex(d["seed"]))
        except FileNotFoundError:
            raise ShareChainError("no_key", f"no node key at {self.key_file}") from None

    def p2p_key(self) -> "nacl.signing.SigningKey":
        """The node's P2P identity key (separate from the validator key); made on first use."""
        import nacl.signing

        f = self.p2p_key_file
        if not f.exists():
            k = PrivateKey.generate()
            _write_atomic(f, json.dumps({"seed": k.seed.hex()}) + "\n", mode=0o600)
        return nacl.signing.SigningKey(bytes.fromhex(json.loads(f.read_text())["seed"]))

    def p2p_node_id(self) -> str:
        from sharechain.p2p.secret_conn import node_id_from_pubkey

        return node_id_from_pubkey(bytes(self.p2p_key().verify_key))

    def save_node_key(self, key: PrivateKey) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        content = json.dumps({"seed": key.seed.hex(), "pub_key": key.public_key.hex(),
                              "address": key.bech32}, indent=2) + "\n"
        _write_atomic(self.key_file, content, mode=0o600)


def _write_atomic(path: Path, content: str, mode: int = 0o644) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
