"""JSON views of chain objects for the HTTP API (bytes as hex, addresses as bech32)."""

from __future__ import annotations

from typing import Any

from sharechain.app.framework import Event, TxResult
from sharechain.chain.types import Block, Commit, Tx, decode_tx
from sharechain.crypto import bech32_address, sha256
from sharechain.errors import ShareChainError


def plain(v: Any) -> Any:
    """Bytes → hex (20-byte addresses → bech32), recursively, for JSON."""
    if isinstance(v, bytes):
        return bech32_address(v) if len(v) == 20 else v.hex()
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def event_json(e: Event) -> dict[str, Any]:
    return {"type": e.type, "attrs": plain(e.attrs)}


def result_json(r: TxResult) -> dict[str, Any]:
    return {"ok": r.ok, "code": r.code, "message": r.message, "fee": r.fee,
            "events": [event_json(e) for e in r.events]}


def header_json(block: Block) -> dict[str, Any]:
    h = block.header
    return {"chain_id": h.chain_id, "height": h.height, "time_ms": h.time_ms,
            "prev_hash": h.prev_hash.hex(), "tx_root": h.tx_root.hex(),
            "state_root": h.state_root.hex(), "results_root": h.results_root.hex(),
            "proposer": bech32_address(h.proposer), "validators_hash": h.validators_hash.hex()}


def commit_json(c: Commit | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"height": c.height, "round": c.round, "block_hash": c.block_hash.hex(),
            "sigs": [{"validator": bech32_address(s.validator), "time_ms": s.time_ms,
                      "sig": s.sig.hex()} for s in c.sigs]}


def block_json(block: Block, commit: Commit | None) -> dict[str, Any]:
    return {"hash": block.hash().hex(), "header": header_json(block),
            "txs": [sha256(t).hex() for t in block.txs], "commit": commit_json(commit)}


def tx_body_json(tx: Tx) -> dict[str, Any]:
    b = tx.body
    return {"chain_id": b.chain_id, "signer": b.signer.hex(), "sender": bech32_address(tx.sender),
            "nonce": b.nonce, "fee": b.fee, "expiry_height": b.expiry_height, "memo": b.memo,
            "msgs": [{"type": t, "body": plain(body)} for t, body in b.msgs]}


def tx_json_from_raw(raw: bytes) -> dict[str, Any] | None:
    try:
        return tx_body_json(decode_tx(raw))
    except ShareChainError:
        return None
