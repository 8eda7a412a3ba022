"""iot key layout (prefix ``iot/``).

  iot/params                       -> Params        time tolerances and plausibility bounds
  iot/d/<device20>                 -> Device        kept after unbinding, so the counter never
                                                    restarts and old reports stay replayed
  iot/da/<asset16>                 -> bytes         the device bound to the asset
  iot/last/<device20><kind>        -> StoredReport  the latest accepted report of each kind
  iot/aseq                         -> int           last anchor id
  iot/anc/<id u64 BE>              -> AnchorRecord
  iot/ga/<gateway20><id u64 BE>    -> 1             index: anchors by gateway
"""

from __future__ import annotations

PARAMS_KEY = b"iot/params"
DEVICE_PREFIX = b"iot/d/"
DEVICE_BY_ASSET_PREFIX = b"iot/da/"
LAST_PREFIX = b"iot/last/"
ANCHOR_SEQ_KEY = b"iot/aseq"
ANCHOR_PREFIX = b"iot/anc/"
GATEWAY_ANCHOR_PREFIX = b"iot/ga/"


def device_key(device: bytes) -> bytes:
    return DEVICE_PREFIX + device


def device_by_asset_key(asset_id: bytes) -> bytes:
    return DEVICE_BY_ASSET_PREFIX + asset_id


def last_key(device: bytes, kind: str) -> bytes:
    return LAST_PREFIX + device + kind.encode()


def anchor_key(anchor_id: int) -> bytes:
    return ANCHOR_PREFIX + anchor_id.to_bytes(8, "big")


def gateway_anchor_key(gateway: bytes, anchor_id: int) -> bytes:
    return GATEWAY_ANCHOR_PREFIX + gateway + anchor_id.to_bytes(8, "big")
