"""iot genesis: module parameters and (for demo worlds) devices bound from the start.

::

    "iot": {
      "params": {"report_future_ms_max": 60000, "report_age_ms_max": 3600000,
                 "counter_gap_max": 1000, "location_slack_m": 50},
      "devices": [{"pub_key": "<hex>", "asset_code": "BIKE-0001"}, ...]
    }

A genesis device is recorded as bound by the asset's owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sharechain.app.framework import Context
from sharechain.encoding import from_obj, to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.assets.genesis import DEMO_ASSETS, demo_device_key
from sharechain.modules.assets.keeper import AssetsKeeper
from sharechain.modules.iot import keys
from sharechain.modules.iot.keeper import DEFAULT_PARAMS, IotKeeper
from sharechain.modules.iot.types import Params


@dataclass(frozen=True, slots=True)
class GenesisDevice:
    pub_key: str
    asset_code: str


def _bad(msg: str) -> ShareChainError:
    return ShareChainError("invalid_genesis", f"iot: {msg}")


def make_init(ik: IotKeeper, ak: AssetsKeeper) -> Any:
    def init(ctx: Context, data: dict[str, Any]) -> None:
        try:
            merged = dict(to_obj(DEFAULT_PARAMS))
            params_in = data.get("params", {})
            if not isinstance(params_in, dict):
                raise _bad("params must be an object")
            merged.update(params_in)
            params = from_obj(Params, merged, "iot.params")
            devices = [from_obj(GenesisDevice, d, f"iot.devices[{i}]")
                       for i, d in enumerate(data.get("devices", []))]
        except ShareChainError as exc:
            raise _bad(exc.message) from None
        if min(to_obj(params).values()) < 0:
            raise _bad("parameters must not be negative")
        ctx.set_record(keys.PARAMS_KEY, params)
        for g in devices:
            try:
                pub = bytes.fromhex(g.pub_key)
            except ValueError:
                raise _bad(f"pub_key {g.pub_key!r} is not hex") from None
            asset = ak.by_code(ctx.state, g.asset_code)
            if asset is None or len(pub) != 32:
                raise _bad(f"device for {g.asset_code}: unknown asset or bad key")
            if ik.device_for_asset(ctx.state, asset.id) is not None:
                raise _bad(f"asset {g.asset_code} has two devices")
            ik.bind(ctx, pub, asset.id, asset.owner)
    return init


def demo_section(accounts: dict[str, int]) -> dict[str, Any]:
    """The iot genesis section of the devnet demo world: one device per demo asset."""
    devices = [{"pub_key": demo_device_key(code).public_key.hex(), "asset_code": code}
               for code, (_, owner, operator, _) in DEMO_ASSETS.items()
               if owner in accounts and operator in accounts]
    return {"params": to_obj(DEFAULT_PARAMS), "devices": devices}
