"""iot message handlers."""

from __future__ import annotations

from typing import Any

from sharechain.app.framework import Context
from sharechain.crypto import address_of, bech32_address, verify
from sharechain.errors import ShareChainError
from sharechain.modules.assets.keeper import AssetsKeeper
from sharechain.modules.assets.types import NOT_OWNER_OR_OPERATOR, USE_RIGHT_LOCKED
from sharechain.modules.identity.keeper import RoleView
from sharechain.modules.identity.types import GATEWAY
from sharechain.modules.iot.keeper import IotKeeper
from sharechain.modules.iot.types import (
    ASSET_HAS_DEVICE,
    DEVICE_ALREADY_BOUND,
    DEVICE_NOT_BOUND,
    DEVICE_NOT_FOUND,
    INVALID_DEVICE_SIGNATURE,
    AnchorReadings,
    AnchorRecord,
    BindDevice,
    SubmitReports,
    UnbindDevice,
    bind_sign_bytes,
)


def make_handlers(ik: IotKeeper, ak: AssetsKeeper, roles: RoleView) -> dict[str, Any]:
    def _owner_or_operator(ctx: Context, asset_id: bytes) -> None:
        a = ak.require(ctx, asset_id)
        if ctx.sender not in (a.owner, a.operator):
            raise ShareChainError(NOT_OWNER_OR_OPERATOR, f"only the owner or operator of asset "
                                  f"{a.code} may bind or unbind its device")

    def bind_device(ctx: Context, msg: BindDevice) -> None:
        _owner_or_operator(ctx, msg.asset_id)
        dev_id = address_of(msg.pub_key)
        current = ik.device_for_asset(ctx.state, msg.asset_id)
        if current is not None:
            raise ShareChainError(ASSET_HAS_DEVICE, f"the asset already has device "
                                  f"{bech32_address(current.id)}; unbind it first")
        old = ik.device(ctx.state, dev_id)
        if old is not None and old.asset_id:
            raise ShareChainError(DEVICE_ALREADY_BOUND, f"device {bech32_address(dev_id)} is "
                                  "bound to another asset")
        if not verify(msg.pub_key, bind_sign_bytes(ctx.chain_id, msg.asset_id, ctx.sender),
                      msg.device_sig):
            raise ShareChainError(INVALID_DEVICE_SIGNATURE, "the device did not sign its "
                                  "consent to this binding")
        ik.bind(ctx, msg.pub_key, msg.asset_id, ctx.sender)
        ctx.emit("device_bound", device=dev_id, asset_id=msg.asset_id, by=ctx.sender)

    def unbind_device(ctx: Context, msg: UnbindDevice) -> None:
        d = ik.device(ctx.state, msg.device)
        if d is None:
            raise ShareChainError(DEVICE_NOT_FOUND, f"no device {bech32_address(msg.device)}")
        if not d.asset_id:
            raise ShareChainError(DEVICE_NOT_BOUND, "the device is not bound")
        _owner_or_operator(ctx, d.asset_id)
        a = ak.require(ctx, d.asset_id)
        u = a.active_use_right(ctx.time_ms)
        if u is not None and u.locked_by:
            raise ShareChainError(USE_RIGHT_LOCKED, "the device of an asset under an active "
                                  "rental can not be unbound")
        ik.unbind(ctx, d)
        ctx.emit("device_unbound", device=d.id, asset_id=d.asset_id, by=ctx.sender)

    def submit_reports(ctx: Context, msg: SubmitReports) -> None:
        roles.require_role(ctx, ctx.sender, GATEWAY)
        suspects = 0
        for i, signed in enumerate(msg.reports):
            try:
                suspects += 1 if ik.accept_report(ctx, signed, ctx.sender) else 0
            except ShareChainError as exc:
                raise ShareChainError(exc.code, f"report {i}: {exc.message}") from None
        ctx.emit("reports_accepted", gateway=ctx.sender, count=len(msg.reports),
                 suspect=suspects)

    def anchor(ctx: Context, msg: AnchorReadings) -> None:
        roles.require_role(ctx, ctx.sender, GATEWAY)
        if msg.device and ik.device(ctx.state, msg.device) is None:
            raise ShareChainError(DEVICE_NOT_FOUND, f"no device {bech32_address(msg.device)}")
        anchor_id = ik.next_anchor_id(ctx.state)
        ik.add_anchor(ctx, AnchorRecord(anchor_id, ctx.sender, msg.root, msg.count,
                                        msg.period_start_ms, msg.period_end_ms, msg.device,
                                        ctx.height, ctx.time_ms))
        ctx.emit("readings_anchored", anchor_id=anchor_id, gateway=ctx.sender,
                 root=msg.root, count=msg.count)

    return {"bind_device": bind_device, "unbind_device": unbind_device,
            "submit_reports": submit_reports, "anchor": anchor}
