"""identity genesis: the grant table and the initial participants with their roles.

::

    "identity": {
      "params": {"grants": {"regulator": ["platform", ...], "platform": ["provider", ...]},
                 "self_grant": ["consumer"], "default_platform_fee_bps": 500,
                 "platform_fee_bps_max": 3000},
      "participants": [{"address": "share1…", "kind": "organisation", "name": "BikeCo",
                        "profile_cid": "bafk…", "roles": ["platform"], "fee_bps": 500}, ...]
    }

Genesis is the only place a ``regulator`` role is granted (until governance exists), and the
grant table may never make ``regulator`` grantable or self-grantable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sharechain.app.framework import Context
from sharechain.crypto import PrivateKey, cid_of, parse_address
from sharechain.encoding import from_obj, to_obj
from sharechain.errors import ShareChainError
from sharechain.modules.identity.common import check_bps, check_cid_v1, check_text
from sharechain.modules.identity.keeper import DEFAULT_PARAMS, IdentityKeeper
from sharechain.modules.identity.types import (
    KINDS,
    ORGANISATION,
    ORGANISATION_ROLES,
    PLATFORM,
    REGULATOR,
    ROLES,
    Params,
    Participant,
)


@dataclass(frozen=True, slots=True)
class GenesisParticipant:
    address: str
    kind: str
    name: str
    profile_cid: str = ""
    roles: tuple[str, ...] = ()
    fee_bps: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        check_text(self.name, "name")
        check_cid_v1(self.profile_cid, "profile_cid", allow_empty=True)
        for r in self.roles:
            if r not in ROLES:
                raise ValueError(f"unknown role {r!r}")
            if r in ORGANISATION_ROLES and self.kind != ORGANISATION:
                raise ValueError(f"the {r} role is held only by organisations")
        if self.fee_bps is not None:
            check_bps(self.fee_bps, "fee_bps", allow_zero=True)


def _bad(msg: str) -> ShareChainError:
    return ShareChainError("invalid_genesis", f"identity: {msg}")


def _check_params(p: Params) -> None:
    for granter, granted in sorted(p.grants.items()):
        if granter not in ROLES or any(r not in ROLES for r in granted):
            raise _bad(f"unknown role in the grant table entry {granter!r}")
        if REGULATOR in granted:
            raise _bad("the regulator role can not be made grantable")
    if REGULATOR in p.self_grant or any(r not in ROLES for r in p.self_grant):
        raise _bad("self_grant may list only non-regulator roles")
    if not 0 <= p.default_platform_fee_bps <= p.platform_fee_bps_max <= 10_000:
        raise _bad("platform fee limits must satisfy 0 <= default <= max <= 10000")


def make_init(idk: IdentityKeeper) -> Any:
    def init(ctx: Context, data: dict[str, Any]) -> None:
        try:
            params = DEFAULT_PARAMS
            if "params" in data:
                if not isinstance(data["params"], dict):
                    raise _bad("params must be an object")
                merged = dict(to_obj(DEFAULT_PARAMS))
                merged.update(data["params"])
                params = from_obj(Params, merged, "identity.params")
            participants = [from_obj(GenesisParticipant, p, f"identity.participants[{i}]")
                            for i, p in enumerate(data.get("participants", []))]
        except ShareChainError as exc:
            raise _bad(exc.message) from None
        _check_params(params)
        idk.set_params(ctx, params)
        for gp in participants:
            addr = parse_address(gp.address)
            if idk.is_registered(ctx.state, addr):
                raise _bad(f"participant {gp.address} is listed twice")
            idk.put_participant(ctx, Participant(addr, gp.kind, gp.name, gp.profile_cid,
                                                 ctx.time_ms))
            for role in sorted(set(gp.roles)):
                idk.add_role(ctx, addr, role, b"", gp.fee_bps if role == PLATFORM else None)
            if gp.fee_bps is not None and gp.fee_bps > params.platform_fee_bps_max:
                raise _bad(f"platform fee of {gp.address} exceeds the maximum")
    return init


# ---------------------------------------------------------------- demo world

# name -> (kind, display name, roles, platform fee in bps)
DEMO_PARTICIPANTS: dict[str, tuple[str, str, tuple[str, ...], int | None]] = {
    "regulator": ("organisation", "City Mobility & Housing Regulator", ("regulator",), None),
    "bureau": ("organisation", "Open Credit Bureau", ("bureau",), None),
    "arbitrator": ("organisation", "Sharing Economy Arbitration Panel", ("arbitrator",), None),
    "bikeco": ("organisation", "BikeCo", ("platform",), 500),
    "carshare": ("organisation", "CarShare", ("platform",), 800),
    "gateway": ("organisation", "City IoT Gateway", ("gateway",), None),
    "carol": ("person", "Carol", ("provider", "consumer"), None),
    "dave": ("person", "Dave", ("provider", "consumer"), None),
    "alice": ("person", "Alice", ("consumer",), None),
    "bob": ("person", "Bob", ("consumer",), None),
    "erin": ("person", "Erin", ("consumer",), None),
}


def demo_section(accounts: dict[str, int]) -> dict[str, Any]:
    """The identity genesis section of the devnet demo world (funded names only)."""
    participants = []
    for name, (kind, display, roles, fee) in DEMO_PARTICIPANTS.items():
        if name not in accounts:
            continue
        entry: dict[str, Any] = {
            "address": PrivateKey.from_name(name).bech32, "kind": kind, "name": display,
            "profile_cid": cid_of(f"sharechain demo profile: {name}".encode()),
            "roles": list(roles)}
        if fee is not None:
            entry["fee_bps"] = fee
        participants.append(entry)
    return {"params": to_obj(DEFAULT_PARAMS), "participants": participants}
