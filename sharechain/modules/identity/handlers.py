"""identity message handlers."""

from __future__ import annotations

import dataclasses
from typing import Any

from sharechain.app.framework import Context
from sharechain.crypto import bech32_address
from sharechain.errors import ShareChainError, invariant
from sharechain.modules.identity.keeper import IdentityKeeper
from sharechain.modules.identity.types import (
    ALREADY_REGISTERED,
    FEE_TOO_HIGH,
    GRANT_NOT_ALLOWED,
    ORGANISATION,
    ORGANISATION_REQUIRED,
    ORGANISATION_ROLES,
    PLATFORM,
    REGULATOR,
    ROLE_ALREADY_HELD,
    ROLE_NOT_GRANTABLE,
    ROLE_NOT_HELD,
    GrantRole,
    Participant,
    Register,
    RevokeRole,
    SetPlatformFee,
    UpdateProfile,
)


def make_handlers(idk: IdentityKeeper) -> dict[str, Any]:
    def _check_self_grant(ctx: Context, role: str) -> None:
        if role == REGULATOR:
            raise ShareChainError(ROLE_NOT_GRANTABLE, "the regulator role is never self-granted; "
                                  "it is granted only in genesis or by governance")
        if role not in idk.params(ctx.state).self_grant and not idk.may_grant(
                ctx.state, ctx.sender, role):
            raise ShareChainError(ROLE_NOT_GRANTABLE, f"the {role} role cannot be self-granted")

    def _grant(ctx: Context, p: Participant, role: str) -> None:
        if role in ORGANISATION_ROLES and p.kind != ORGANISATION:
            raise ShareChainError(ORGANISATION_REQUIRED,
                                  f"the {role} role is held only by organisations")
        if idk.has_role(ctx.state, p.address, role):
            raise ShareChainError(ROLE_ALREADY_HELD,
                                  f"{bech32_address(p.address)} already holds the {role} role")
        idk.add_role(ctx, p.address, role, ctx.sender)
        ctx.emit("role_granted", holder=p.address, role=role, granted_by=ctx.sender)

    def register(ctx: Context, msg: Register) -> None:
        if idk.is_registered(ctx.state, ctx.sender):
            raise ShareChainError(ALREADY_REGISTERED,
                                  f"{bech32_address(ctx.sender)} is already registered")
        p = Participant(ctx.sender, msg.kind, msg.name, msg.profile_cid, ctx.time_ms)
        idk.put_participant(ctx, p)
        ctx.emit("participant_registered", address=ctx.sender, kind=msg.kind, name=msg.name)
        for role in msg.roles:
            _check_self_grant(ctx, role)
            _grant(ctx, p, role)

    def update_profile(ctx: Context, msg: UpdateProfile) -> None:
        p = idk.require_registered(ctx, ctx.sender)
        p = dataclasses.replace(
            p, name=p.name if msg.name is None else msg.name,
            profile_cid=p.profile_cid if msg.profile_cid is None else msg.profile_cid)
        idk.put_participant(ctx, p)
        platform = idk.platform(ctx.state, ctx.sender)
        if platform is not None and platform.name != p.name:
            idk.put_platform(ctx, dataclasses.replace(platform, name=p.name))
        ctx.emit("profile_updated", address=ctx.sender)

    def grant_role(ctx: Context, msg: GrantRole) -> None:
        if msg.role == REGULATOR:
            raise ShareChainError(ROLE_NOT_GRANTABLE, "the regulator role is granted only in "
                                  "genesis or by governance")
        idk.require_registered(ctx, ctx.sender)
        grantee = idk.require_registered(ctx, msg.grantee)
        if msg.grantee == ctx.sender:
            _check_self_grant(ctx, msg.role)
        elif not idk.may_grant(ctx.state, ctx.sender, msg.role):
            raise ShareChainError(GRANT_NOT_ALLOWED,
                                  f"{bech32_address(ctx.sender)} holds no role that may grant "
                                  f"the {msg.role} role")
        _grant(ctx, grantee, msg.role)

    def revoke_role(ctx: Context, msg: RevokeRole) -> None:
        if msg.role == REGULATOR:
            raise ShareChainError(ROLE_NOT_GRANTABLE, "the regulator role is revoked only by "
                                  "governance")
        if not idk.has_role(ctx.state, msg.holder, msg.role):
            raise ShareChainError(ROLE_NOT_HELD,
                                  f"{bech32_address(msg.holder)} does not hold the {msg.role} role")
        if msg.holder != ctx.sender and not idk.may_grant(ctx.state, ctx.sender, msg.role):
            raise ShareChainError(GRANT_NOT_ALLOWED,
                                  f"{bech32_address(ctx.sender)} may not revoke the {msg.role} role")
        idk.remove_role(ctx, msg.holder, msg.role)
        ctx.emit("role_revoked", holder=msg.holder, role=msg.role, revoked_by=ctx.sender)

    def set_platform_fee(ctx: Context, msg: SetPlatformFee) -> None:
        idk.require_role(ctx, ctx.sender, PLATFORM)
        platform = idk.platform(ctx.state, ctx.sender)
        invariant(platform is not None, "a platform role without a platform record")
        assert platform is not None
        cap = idk.params(ctx.state).platform_fee_bps_max
        if msg.fee_bps > cap:
            raise ShareChainError(FEE_TOO_HIGH,
                                  f"fee {msg.fee_bps} bps exceeds the maximum of {cap} bps")
        idk.put_platform(ctx, dataclasses.replace(platform, fee_bps=msg.fee_bps))
        ctx.emit("platform_fee_set", platform=ctx.sender, fee_bps=msg.fee_bps)

    return {"register": register, "update_profile": update_profile, "grant_role": grant_role,
            "revoke_role": revoke_role, "set_platform_fee": set_platform_fee}
