"""identity queries (GET /v1/query/identity/<name>?…)."""

from __future__ import annotations

from typing import Any

from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.identity import keys
from sharechain.modules.identity.common import (
    INVALID_QUERY,
    iter_records,
    q_address,
    q_limit,
    q_str,
)
from sharechain.modules.identity.keeper import IdentityKeeper
from sharechain.modules.identity.types import ROLES, Platform


def make_queries(idk: IdentityKeeper) -> dict[str, Any]:
    def participant(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """participant?address=share1… → the participant, its roles and platform record."""
        addr = q_address(q, "address")
        p = idk.participant(state, addr)
        if p is None:
            raise ShareChainError("not_found", "no participant with this address")
        platform = idk.platform(state, addr)
        out: dict[str, Any] = to_obj(p)
        out["roles"] = list(idk.roles_of(state, addr))
        out["platform"] = None if platform is None else to_obj(platform)
        return out

    def has_role(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """has_role?address=share1…&role=provider → {"has_role": bool}."""
        addr = q_address(q, "address")
        role = _role(q)
        return {"address": addr, "role": role, "has_role": idk.has_role(state, addr, role)}

    def role_holders(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """role_holders?role=platform[&after=share1…][&limit=100] → addresses in key order."""
        role = _role(q)
        limit = q_limit(q)
        start = keys.role_prefix(role)
        if q.get("after"):
            start = keys.role_key(role, q_address(q, "after")) + b"\x00"
        holders = []
        for k, _ in state.iter_range(start, prefix_end(keys.role_prefix(role))):
            holders.append(k[len(keys.role_prefix(role)):])
            if len(holders) >= limit:
                break
        return {"role": role, "holders": holders}

    def platform(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """platform?address=share1… → name and fee rate."""
        p = idk.platform(state, q_address(q, "address"))
        if p is None:
            raise ShareChainError("not_found", "this address is not a platform")
        return to_obj(p)  # type: ignore[no-any-return]

    def platforms(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """platforms[?limit=100] → every platform with its fee rate."""
        limit = q_limit(q)
        out = []
        for _, p in iter_records(state, Platform, keys.PLATFORM_PREFIX):
            out.append(to_obj(p))
            if len(out) >= limit:
                break
        return {"platforms": out}

    def params(state: Readable, q: dict[str, str]) -> dict[str, Any]:
        """params → the grant table and platform fee limits."""
        return to_obj(idk.params(state))  # type: ignore[no-any-return]

    return {"participant": participant, "has_role": has_role, "role_holders": role_holders,
            "platform": platform, "platforms": platforms, "params": params}


def _role(q: dict[str, str]) -> str:
    role = q_str(q, "role")
    if role not in ROLES:
        raise ShareChainError(INVALID_QUERY, f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role
