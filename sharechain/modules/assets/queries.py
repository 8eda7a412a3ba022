"""assets queries (GET /v1/query/assets/<name>?…); ids are hex, addresses bech32."""

from __future__ import annotations

from typing import Any

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.assets import keys
from sharechain.modules.assets.keeper import AssetsKeeper
from sharechain.modules.assets.types import (
    ASSET_ID_BYTES,
    ATTEST_ROLES,
    Asset,
    AssetClass,
    AssetReport,
    asset_id_of,
)
from sharechain.modules.identity.common import (
    iter_records,
    q_address,
    q_hex,
    q_int,
    q_limit,
    q_str,
)


def make_queries(ak: AssetsKeeper) -> dict[str, Any]:
    def view(state: Readable, a: Asset, now_ms: int | None) -> dict[str, Any]:
        out: dict[str, Any] = to_obj(a)
        out["attestations"] = [to_obj(att) for r in ATTEST_ROLES
                               if (att := ak.attestation(state, a.id, r)) is not None]
        if now_ms is not None:
            out["use_right_active"] = a.active_use_right(now_ms) is not None
        return out

    def _now(q: dict[str, str]) -> int | None:
        return q_int(q, "now_ms") if q.get("now_ms") else None

    def asset(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """asset?id=<hex> or asset?code=<CODE> [&now_ms=…] → the asset, its rights and
        attestations (with now_ms: whether the use right is in force then)."""
        a = ak.by_code(state, q["code"]) if q.get("code") else \
            ak.get(state, q_hex(q, "id", ASSET_ID_BYTES))
        if a is None:
            raise ShareChainError("not_found", "no such asset")
        return view(state, a, _now(q))

    def asset_id(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """asset_id?class_name=bike&code=BIKE-1 → the id that asset has (or would have)."""
        return {"id": asset_id_of(q_str(q, "class_name"), q_str(q, "code"))}

    def asset_class(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """class?name=bike → the class policy."""
        c = ak.asset_class(state, q_str(q, "name"))
        if c is None:
            raise ShareChainError("not_found", "no such asset class")
        return to_obj(c)  # type: ignore[no-any-return]

    def classes(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """classes → every asset class."""
        return {"classes": [to_obj(c) for _, c in iter_records(state, AssetClass,
                                                                  keys.CLASS_PREFIX)]}

    def _indexed(state: Readable, prefix: bytes, q: dict[str, str]) -> list[dict[str, Any]]:
        limit = q_limit(q)
        out = []
        for k, _ in state.iter_range(prefix, prefix_end(prefix)):
            a = ak.get(state, k[len(prefix):])
            if a is not None:
                out.append(to_obj(a))
            if len(out) >= limit:
                break
        return out

    def by_owner(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """by_owner?owner=share1…[&limit=100] → assets owned by the address."""
        return {"assets": _indexed(state, keys.OWNER_PREFIX + q_address(q, "owner"), q)}

    def by_operator(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """by_operator?operator=share1…[&limit=100] → assets operated by the platform."""
        return {"assets": _indexed(state, keys.OPERATOR_PREFIX + q_address(q, "operator"), q)}

    def reports(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """reports?id=<hex>[&limit=100] → consumer reports on the asset, oldest first."""
        aid = q_hex(q, "id", ASSET_ID_BYTES)
        limit = q_limit(q)
        out = []
        for _, r in iter_records(state, AssetReport, keys.REPORT_PREFIX + aid):
            out.append(to_obj(r))
            if len(out) >= limit:
                break
        return {"reports": out}

    def confirmations(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """confirmations?id=<hex> → consumers who confirmed the asset, and the class target."""
        a = ak.get(state, q_hex(q, "id", ASSET_ID_BYTES))
        if a is None:
            raise ShareChainError("not_found", "no such asset")
        prefix = keys.CONFIRM_PREFIX + a.id
        who = [k[len(prefix):] for k, _ in state.iter_range(prefix, prefix_end(prefix))]
        c = ak.asset_class(state, a.class_name)
        return {"consumers": who, "count": a.consumer_confirmations,
                "required": 0 if c is None else c.consumer_confirmations,
                "pledge_held": a.pledge_held, "pledge_returned": a.pledge_returned}

    return {"asset": asset, "asset_id": asset_id, "class": asset_class, "classes": classes,
            "by_owner": by_owner, "by_operator": by_operator, "reports": reports,
            "confirmations": confirmations}
