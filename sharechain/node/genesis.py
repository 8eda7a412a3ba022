"""The genesis document: chain id, start time, validators, consensus limits, module state.

Genesis is JSON because people write and review it. Amounts are integers; keys and
addresses are hex and bech32 text. Its canonical CBOR encoding is hashed and stored, and
a node refuses to start on a data directory made from a different genesis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharechain.chain.types import BLOCK_TXS_MAX, Validator, ValidatorSet
from sharechain.crypto import sha256
from sharechain.encoding import encode, from_obj
from sharechain.errors import DecodeError, ShareChainError

BLOCK_INTERVAL_MS_DEFAULT = 1000
BLOCK_TXS_MAX_DEFAULT = 10_000
# The largest block a genesis may allow: below the BFT proposal cap (4 MiB) and the P2P
# frame cap, with room for the header and commit. Also the default.
BLOCK_BYTES_LIMIT = 3 * 1024 * 1024 + 512 * 1024
BLOCK_BYTES_MAX_DEFAULT = BLOCK_BYTES_LIMIT


@dataclass
class ConsensusParams:
    block_interval_ms: int = BLOCK_INTERVAL_MS_DEFAULT
    block_txs_max: int = BLOCK_TXS_MAX_DEFAULT
    block_bytes_max: int = BLOCK_BYTES_MAX_DEFAULT


@dataclass
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validators: ValidatorSet
    consensus: ConsensusParams
    app_state: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return encode(self.raw)

    def hash(self) -> bytes:
        return sha256(self.encoded())


def parse_genesis(doc: dict[str, Any]) -> Genesis:
    def bad(msg: str) -> ShareChainError:
        return ShareChainError("invalid_genesis", msg)

    try:
        chain_id = doc["chain_id"]
        t = doc["genesis_time_ms"]
        vals = [Validator(pub_key=bytes.fromhex(v["pub_key"]), power=int(v["power"]),
                          name=str(v.get("name", ""))) for v in doc["validators"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise bad(f"missing or malformed field: {exc}") from None
    if not isinstance(chain_id, str) or not chain_id or type(t) is not int:
        raise bad("chain_id must be text and genesis_time_ms an integer")
    try:
        cons = from_obj(ConsensusParams, doc.get("consensus", {}), "consensus")
    except DecodeError as exc:  # an unknown field, a value that is not an integer
        raise bad(exc.message) from None
    if cons.block_interval_ms <= 0:
        raise bad("consensus.block_interval_ms must be positive")
    if not 0 < cons.block_txs_max <= BLOCK_TXS_MAX:
        raise bad(f"consensus.block_txs_max must be 1..{BLOCK_TXS_MAX}")
    if not 0 < cons.block_bytes_max <= BLOCK_BYTES_LIMIT:
        raise bad(f"consensus.block_bytes_max must be 1..{BLOCK_BYTES_LIMIT}")
    try:
        vset = ValidatorSet.of(vals)
    except ValueError as exc:
        raise bad(str(exc)) from None
    app_state = doc.get("app_state", {})
    if not isinstance(app_state, dict):
        raise bad("app_state must be an object")
    return Genesis(chain_id, t, vset, cons, app_state, doc)


def load_genesis(path: str | Path) -> Genesis:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ShareChainError("invalid_genesis", f"cannot read genesis {path}: {exc}") from None
    return parse_genesis(doc)
