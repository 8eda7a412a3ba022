"""SDK helpers for IoT devices and gateways: signed reports, binding consent and anchors.

A device (or its firmware simulator) signs its reports with its own key::

    from sharechain.client.iot import sign_report, verify_reading_on_chain
    r = sign_report(device_key, chain_id, asset_id, counter=7, time_ms=now_ms,
                    kind="meter", reading=1520)
    IotAPI(client).submit_reports(gateway_key, [r])

A gateway that keeps readings off chain anchors their Merkle root (RFC 6962, the same tree as
:func:`sharechain.crypto.merkle_root`) and later proves any single reading::

    leaves = [reading_leaf(x) for x in readings]        # canonical CBOR of each reading
    root, count = build_anchor(leaves)                   # submit with IotAPI.anchor(...)
    proof = proof_for(leaves, 5)
    assert verify_reading_on_chain(client, anchor_id, leaves[5], proof)
"""

from __future__ import annotations

from typing import Any

from sharechain.crypto import (
    MerkleProof,
    PrivateKey,
    merkle_proof,
    merkle_root,
    verify_merkle_proof,
)
from sharechain.encoding import encode, from_obj
from sharechain.errors import ShareChainError
from sharechain.modules.iot.types import (
    BindDevice,
    Report,
    SignedReport,
    bind_sign_bytes,
    report_sign_bytes,
)

PAYLOAD_FIELDS = ("reading", "geohash", "percent", "damage", "note_cid", "rental_id")


def make_report(device: bytes, asset_id: bytes, counter: int, time_ms: int, kind: str,
                **payload: Any) -> Report:
    """A report record; ``payload`` holds the kind's fields (reading=, geohash=, percent=,
    damage=, note_cid=, rental_id=). Invalid input raises a DecodeError (``invalid_msg``)."""
    unknown = set(payload) - set(PAYLOAD_FIELDS)
    if unknown:
        raise ShareChainError("invalid_msg", f"unknown payload field(s) {sorted(unknown)}")
    return from_obj(Report, {"device": device, "asset_id": asset_id, "counter": counter,
                             "time_ms": time_ms, "kind": kind,
                             "payload": {k: v for k, v in payload.items() if v is not None}})


def sign_report(device_key: PrivateKey, chain_id: str, asset_id: bytes, counter: int,
                time_ms: int, kind: str, **payload: Any) -> SignedReport:
    """Build and sign a device report with the device's own key."""
    r = make_report(device_key.address, asset_id, counter, time_ms, kind, **payload)
    return SignedReport(r, device_key.sign(report_sign_bytes(chain_id, r)))


def bind_consent(device_key: PrivateKey, chain_id: str, asset_id: bytes,
                 binder: bytes) -> bytes:
    """The device's signature consenting to be bound to ``asset_id`` by ``binder``."""
    return device_key.sign(bind_sign_bytes(chain_id, asset_id, binder))


def bind_msg(device_key: PrivateKey, chain_id: str, asset_id: bytes,
             binder: bytes) -> BindDevice:
    """The ``iot/bind_device`` message ``binder`` (owner or operator) submits."""
    return BindDevice(device_key.public_key, asset_id,
                      bind_consent(device_key, chain_id, asset_id, binder))


# ---------------------------------------------------------------- anchoring

def reading_leaf(reading: Any) -> bytes:
    """The Merkle leaf of one off-chain reading: its canonical CBOR (bytes pass through)."""
    return reading if isinstance(reading, bytes) else encode(reading)


def build_anchor(leaves: list[bytes]) -> tuple[bytes, int]:
    """``(root, count)`` to anchor with ``iot/anchor``."""
    if not leaves:
        raise ShareChainError("invalid_msg", "an anchor needs at least one reading")
    return merkle_root(leaves), len(leaves)


def proof_for(leaves: list[bytes], index: int) -> MerkleProof:
    """The inclusion proof of reading ``index``."""
    return merkle_proof(leaves, index)


def proof_to_json(p: MerkleProof) -> dict[str, Any]:
    return {"index": p.index, "total": p.total, "siblings": [s.hex() for s in p.siblings]}


def proof_from_json(d: dict[str, Any]) -> MerkleProof:
    try:
        return MerkleProof(int(d["index"]), int(d["total"]),
                           tuple(bytes.fromhex(s) for s in d["siblings"]))
    except (KeyError, TypeError, ValueError):
        raise ShareChainError("invalid_proof", "a proof needs index, total and hex siblings") \
            from None


def _as_bytes(v: Any) -> bytes:
    return v if isinstance(v, bytes) else bytes.fromhex(v)


def verify_reading(anchor: dict[str, Any], leaf: bytes, proof: MerkleProof) -> bool:
    """Check ``leaf`` against an anchor record (as returned by the ``iot/anchor`` query)."""
    if proof.total != int(anchor["count"]):
        return False
    return verify_merkle_proof(_as_bytes(anchor["root"]), leaf, proof)


def verify_reading_on_chain(client: Any, anchor_id: int, leaf: bytes,
                            proof: MerkleProof) -> bool:
    """Fetch anchor ``anchor_id`` from the node and check ``leaf`` against it."""
    anchor = client.query("iot", "anchor", id=str(anchor_id))
    return verify_reading(anchor, leaf, proof)
