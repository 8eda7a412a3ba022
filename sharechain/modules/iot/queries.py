"""iot queries (GET /v1/query/iot/<name>?…); device ids are bech32, asset ids hex."""

from __future__ import annotations

from typing import Any

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.identity.common import INVALID_QUERY, q_address, q_hex, q_int, q_limit
from sharechain.modules.iot import keys
from sharechain.modules.iot.keeper import IotKeeper
from sharechain.modules.iot.types import ASSET_ID_BYTES, KINDS


def make_queries(ik: IotKeeper) -> dict[str, Any]:
    def device(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """device?id=share1… → the device record (counter, report and suspect counts)."""
        d = ik.device(state, q_address(q, "id"))
        if d is None:
            raise ShareChainError("not_found", "no such device")
        return to_obj(d)  # type: ignore[no-any-return]

    def device_for_asset(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """device_for_asset?asset_id=<hex> → the device bound to the asset."""
        d = ik.device_for_asset(state, q_hex(q, "asset_id", ASSET_ID_BYTES))
        if d is None:
            raise ShareChainError("not_found", "no device is bound to this asset")
        return to_obj(d)  # type: ignore[no-any-return]

    def last_report(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """last_report?device=share1…&kind=location → the latest accepted report of that kind
        with its suspect flag ("" if plausible)."""
        kind = q.get("kind", "")
        if kind not in KINDS:
            raise ShareChainError(INVALID_QUERY, f"kind must be one of {', '.join(KINDS)}")
        s = ik.last_report_info(state, q_address(q, "device"), kind)
        if s is None:
            raise ShareChainError("not_found", f"the device has no {kind} report")
        return to_obj(s)  # type: ignore[no-any-return]

    def last_reports(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """last_reports?device=share1… → the latest report of every kind, by kind."""
        dev = q_address(q, "device")
        out = {}
        for kind in KINDS:
            s = ik.last_report_info(state, dev, kind)
            if s is not None:
                out[kind] = to_obj(s)
        return {"device": dev, "reports": out}

    def anchor(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """anchor?id=7 → the anchored Merkle root, count and period."""
        a = ik.anchor(state, q_int(q, "id", lo=1))
        if a is None:
            raise ShareChainError("not_found", "no such anchor")
        return to_obj(a)  # type: ignore[no-any-return]

    def anchors(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """anchors?gateway=share1…[&limit=100] → the gateway's anchors, oldest first."""
        prefix = keys.GATEWAY_ANCHOR_PREFIX + q_address(q, "gateway")
        limit = q_limit(q)
        out = []
        for k, _ in state.iter_range(prefix, prefix_end(prefix)):
            a = ik.anchor(state, int.from_bytes(k[len(prefix):], "big"))
            if a is not None:
                out.append(to_obj(a))
            if len(out) >= limit:
                break
        return {"anchors": out}

    def params(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """params → time tolerances and plausibility bounds."""
        return to_obj(ik.params(state))  # type: ignore[no-any-return]

    return {"device": device, "device_for_asset": device_for_asset,
            "last_report": last_report, "last_reports": last_reports, "anchor": anchor,
            "anchors": anchors, "params": params}
