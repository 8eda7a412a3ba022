"""assets message handlers."""

from __future__ import annotations

import dataclasses
from typing import Any

from sharechain.app.framework import Context
from sharechain.encoding import decode_trusted as decode  # values this node stored
from sharechain.encoding import encode
from sharechain.errors import ShareChainError
from sharechain.modules.assets import keys
from sharechain.modules.assets.keeper import AssetsKeeper
from sharechain.modules.assets.types import (
    ALREADY_ATTESTED,
    ALREADY_CONFIRMED,
    ASSET_ALREADY_PLEDGED,
    ASSET_CODE_TAKEN,
    ASSET_FROZEN,
    ASSET_NOT_CONFIRMED,
    ASSET_NOT_FROZEN,
    ASSET_NOT_PLEDGED,
    ATTESTATION_NOT_REQUIRED,
    INCOME_SHARES_MAX,
    INSUFFICIENT_SHARE,
    NO_USE_RIGHT,
    NOT_A_USER,
    NOT_OPERATOR,
    NOT_OWNER,
    NOT_OWNER_OR_OPERATOR,
    NOT_USE_RIGHT_HOLDER,
    REPORT_ALREADY_OPEN,
    REPORT_NOT_FOUND,
    REPORT_NOT_OPEN,
    REPORT_OPEN,
    REPORT_REJECTED,
    REPORT_UPHELD,
    SELF_CONFIRMATION,
    SELF_REPORT,
    SELF_TRANSFER,
    TOO_MANY_SHAREHOLDERS,
    UNKNOWN_CLASS,
    USE_RIGHT_EXPIRED,
    USE_RIGHT_LOCKED,
    Asset,
    AssetReport,
    Attest,
    Attestation,
    ConfirmAsset,
    DefineAsset,
    Freeze,
    GrantUseRight,
    PledgeAsset,
    ReportAsset,
    ResolveReport,
    RevokeUseRight,
    SetOperator,
    Share,
    TransferIncomeShare,
    TransferOwnership,
    TransferUseRight,
    Unfreeze,
    UseRight,
    asset_id_of,
    normalise_shares,
    pledge_escrow_id,
)
from sharechain.modules.identity.keeper import IdentityKeeper
from sharechain.modules.identity.types import CONSUMER, PLATFORM, PROVIDER, REGULATOR


def _not_frozen(a: Asset) -> None:
    if a.frozen:
        raise ShareChainError(ASSET_FROZEN, f"asset {a.code} is frozen: {a.freeze_reason}")


def _owner(ctx: Context, a: Asset) -> None:
    if ctx.sender != a.owner:
        raise ShareChainError(NOT_OWNER, f"only the owner of asset {a.code} may do this")


def _owner_or_operator(ctx: Context, a: Asset) -> None:
    if ctx.sender not in (a.owner, a.operator):
        raise ShareChainError(NOT_OWNER_OR_OPERATOR,
                              f"only the owner or operator of asset {a.code} may do this")


def _unlocked(a: Asset, now_ms: int) -> UseRight | None:
    u = a.active_use_right(now_ms)
    if u is not None and u.locked_by:
        raise ShareChainError(USE_RIGHT_LOCKED, f"the use right of asset {a.code} is locked "
                              "by an active rental")
    return u


def make_handlers(ak: AssetsKeeper, idk: IdentityKeeper) -> dict[str, Any]:
    def define(ctx: Context, msg: DefineAsset) -> None:
        idk.require_role(ctx, ctx.sender, PROVIDER)
        cls = ak.asset_class(ctx.state, msg.class_name)
        if cls is None:
            raise ShareChainError(UNKNOWN_CLASS, f"no asset class named {msg.class_name!r}")
        if ctx.get(keys.code_key(msg.code)) is not None:
            raise ShareChainError(ASSET_CODE_TAKEN,
                                  f"an asset with code {msg.code} is already registered")
        idk.require_role(ctx, msg.operator, PLATFORM)
        asset_id = asset_id_of(msg.class_name, msg.code)
        shares = msg.income_shares or (Share(ctx.sender, 10_000),)
        a = Asset(id=asset_id, class_name=msg.class_name, code=msg.code,
                  metadata_cid=msg.metadata_cid, owner=ctx.sender, operator=msg.operator,
                  income_shares=normalise_shares({s.holder: s.bps for s in shares}),
                  use_right=None, confirmed=not cls.confirmations, frozen=False,
                  freeze_reason="", pledged=False, pledge_held=0, pledger=b"",
                  pledge_returned=False, consumer_confirmations=0, open_reports=0,
                  created_ms=ctx.time_ms)
        ak.create(ctx, a)
        ctx.emit("asset_defined", asset_id=asset_id, class_name=msg.class_name, code=msg.code,
                 owner=ctx.sender, operator=msg.operator)
        if a.confirmed:
            ctx.emit("asset_confirmed", asset_id=asset_id, code=msg.code)

    def attest(ctx: Context, msg: Attest) -> None:
        a = ak.require(ctx, msg.asset_id)
        cls = ak.require_class(ctx, a)
        if msg.role not in cls.confirmations:
            raise ShareChainError(ATTESTATION_NOT_REQUIRED, f"class {cls.name} does not ask "
                                  f"for a {msg.role} confirmation")
        idk.require_role(ctx, ctx.sender, msg.role)
        if msg.role == PLATFORM and ctx.sender != a.operator:
            raise ShareChainError(NOT_OPERATOR, f"only the operator of asset {a.code} gives "
                                  "its platform confirmation")
        _not_frozen(a)
        if ak.attestation(ctx.state, a.id, msg.role) is not None:
            raise ShareChainError(ALREADY_ATTESTED,
                                  f"asset {a.code} already has a {msg.role} confirmation")
        ctx.set_record(keys.attest_key(a.id, msg.role),
                       Attestation(a.id, msg.role, ctx.sender, msg.evidence_cid, ctx.time_ms))
        ctx.emit("asset_attested", asset_id=a.id, role=msg.role, attester=ctx.sender)
        if not a.confirmed and all(ak.attestation(ctx.state, a.id, r) is not None
                                   for r in cls.confirmations):
            ak.put(ctx, dataclasses.replace(a, confirmed=True), a)
            ctx.emit("asset_confirmed", asset_id=a.id, code=a.code)

    def transfer_ownership(ctx: Context, msg: TransferOwnership) -> None:
        a = ak.require(ctx, msg.asset_id)
        _owner(ctx, a)
        _not_frozen(a)
        if msg.to == ctx.sender:
            raise ShareChainError(SELF_TRANSFER, "the asset already belongs to the sender")
        idk.require_registered(ctx, msg.to)
        ak.put(ctx, dataclasses.replace(a, owner=msg.to), a)
        ctx.emit("ownership_transferred", asset_id=a.id, frm=ctx.sender, to=msg.to)

    def set_operator(ctx: Context, msg: SetOperator) -> None:
        a = ak.require(ctx, msg.asset_id)
        _owner_or_operator(ctx, a)
        _not_frozen(a)
        idk.require_role(ctx, msg.operator, PLATFORM)
        ak.put(ctx, dataclasses.replace(a, operator=msg.operator), a)
        ctx.emit("operator_changed", asset_id=a.id, frm=a.operator, to=msg.operator)

    def grant_use_right(ctx: Context, msg: GrantUseRight) -> None:
        a = ak.require(ctx, msg.asset_id)
        _owner_or_operator(ctx, a)
        _not_frozen(a)
        _unlocked(a, ctx.time_ms)
        if msg.until_ms <= ctx.time_ms:
            raise ShareChainError(USE_RIGHT_EXPIRED, "until_ms must be after the block time")
        idk.require_registered(ctx, msg.holder)
        ak.put(ctx, dataclasses.replace(a, use_right=UseRight(msg.holder, msg.until_ms)), a)
        ak.mark_user(ctx, a.id, msg.holder)
        ctx.emit("use_right_granted", asset_id=a.id, holder=msg.holder, until_ms=msg.until_ms,
                 locked=False)

    def transfer_use_right(ctx: Context, msg: TransferUseRight) -> None:
        a = ak.require(ctx, msg.asset_id)
        u = _unlocked(a, ctx.time_ms)
        if u is None or u.holder != ctx.sender:
            raise ShareChainError(NOT_USE_RIGHT_HOLDER,
                                  f"the sender holds no use right of asset {a.code}")
        if msg.to == ctx.sender:
            raise ShareChainError(SELF_TRANSFER, "the sender already holds this use right")
        _not_frozen(a)
        idk.require_registered(ctx, msg.to)
        ak.put(ctx, dataclasses.replace(a, use_right=UseRight(msg.to, u.until_ms)), a)
        ak.mark_user(ctx, a.id, msg.to)
        ctx.emit("use_right_transferred", asset_id=a.id, frm=ctx.sender, to=msg.to,
                 until_ms=u.until_ms)

    def revoke_use_right(ctx: Context, msg: RevokeUseRight) -> None:
        a = ak.require(ctx, msg.asset_id)
        u = _unlocked(a, ctx.time_ms)
        if u is None:
            raise ShareChainError(NO_USE_RIGHT, f"asset {a.code} has no use right in force")
        if ctx.sender not in (a.owner, a.operator, u.holder):
            raise ShareChainError(NOT_OWNER_OR_OPERATOR, "only the owner, the operator or the "
                                  "holder may revoke a use right")
        ak.put(ctx, dataclasses.replace(a, use_right=None), a)
        ctx.emit("use_right_revoked", asset_id=a.id, holder=u.holder, by=ctx.sender)

    def transfer_income_share(ctx: Context, msg: TransferIncomeShare) -> None:
        a = ak.require(ctx, msg.asset_id)
        have = a.share_of(ctx.sender)
        if have < msg.bps:
            raise ShareChainError(INSUFFICIENT_SHARE, f"the sender holds {have} bps of asset "
                                  f"{a.code}'s income, not {msg.bps}")
        if msg.to == ctx.sender:
            raise ShareChainError(SELF_TRANSFER, "a share can not be transferred to its holder")
        shares = {s.holder: s.bps for s in a.income_shares}
        shares[ctx.sender] = have - msg.bps
        shares[msg.to] = shares.get(msg.to, 0) + msg.bps
        new = normalise_shares(shares)
        if len(new) > INCOME_SHARES_MAX:
            raise ShareChainError(TOO_MANY_SHAREHOLDERS,
                                  f"an asset's income is split among at most {INCOME_SHARES_MAX}")
        ak.put(ctx, dataclasses.replace(a, income_shares=new), a)
        ctx.emit("income_share_transferred", asset_id=a.id, frm=ctx.sender, to=msg.to,
                 bps=msg.bps)

    def freeze(ctx: Context, msg: Freeze) -> None:
        idk.require_role(ctx, ctx.sender, REGULATOR)
        a = ak.require(ctx, msg.asset_id)
        _not_frozen(a)
        ak.put(ctx, dataclasses.replace(a, frozen=True, freeze_reason=msg.reason), a)
        ctx.emit("asset_frozen", asset_id=a.id, reason=msg.reason, by=ctx.sender)

    def unfreeze(ctx: Context, msg: Unfreeze) -> None:
        idk.require_role(ctx, ctx.sender, REGULATOR)
        a = ak.require(ctx, msg.asset_id)
        if not a.frozen:
            raise ShareChainError(ASSET_NOT_FROZEN, f"asset {a.code} is not frozen")
        ak.put(ctx, dataclasses.replace(a, frozen=False, freeze_reason=""), a)
        ctx.emit("asset_unfrozen", asset_id=a.id, reason=msg.reason, by=ctx.sender)
        ak.maybe_return_pledge(ctx, a.id)

    def pledge(ctx: Context, msg: PledgeAsset) -> None:
        a = ak.require(ctx, msg.asset_id)
        _owner(ctx, a)
        idk.require_role(ctx, ctx.sender, PROVIDER)
        _not_frozen(a)
        if not a.confirmed:
            raise ShareChainError(ASSET_NOT_CONFIRMED,
                                  f"asset {a.code} must be confirmed before it is pledged")
        if a.pledged:
            raise ShareChainError(ASSET_ALREADY_PLEDGED, f"asset {a.code} is already pledged")
        amount = ak.require_class(ctx, a).pledge
        if amount:
            ak.bank.lock(ctx, ctx.sender, amount, pledge_escrow_id(a.id))
        ak.put(ctx, dataclasses.replace(a, pledged=True, pledge_held=amount,
                                        pledger=ctx.sender), a)
        ctx.emit("asset_pledged", asset_id=a.id, pledger=ctx.sender, amount=amount)
        ak.maybe_return_pledge(ctx, a.id)

    def confirm(ctx: Context, msg: ConfirmAsset) -> None:
        idk.require_role(ctx, ctx.sender, CONSUMER)
        a = ak.require(ctx, msg.asset_id)
        if not a.pledged:
            raise ShareChainError(ASSET_NOT_PLEDGED, f"asset {a.code} is not pledged")
        if ctx.sender in (a.owner, a.operator, a.pledger):
            raise ShareChainError(SELF_CONFIRMATION,
                                  "the owner, operator or pledger can not confirm the asset")
        if not ak.has_used(ctx.state, a.id, ctx.sender):
            raise ShareChainError(NOT_A_USER, f"only a past user of asset {a.code} may "
                                  "confirm it")
        if ak.has_confirmed(ctx.state, a.id, ctx.sender):
            raise ShareChainError(ALREADY_CONFIRMED, "this consumer already confirmed the asset")
        ak.record_consumer_confirmation(ctx, a.id, ctx.sender)

    def report(ctx: Context, msg: ReportAsset) -> None:
        idk.require_role(ctx, ctx.sender, CONSUMER)
        a = ak.require(ctx, msg.asset_id)
        if ctx.sender in (a.owner, a.operator):
            raise ShareChainError(SELF_REPORT, "an owner or operator can not report "
                                  "their own asset")
        if ctx.get(keys.report_open_key(a.id, ctx.sender)) is not None:
            raise ShareChainError(REPORT_ALREADY_OPEN,
                                  "this consumer already has an open report on the asset")
        raw = ctx.get(keys.report_seq_key(a.id))
        seq = (0 if raw is None else decode(raw)) + 1
        ctx.state.set(keys.report_seq_key(a.id), encode(seq))
        ctx.set_record(keys.report_key(a.id, seq),
                       AssetReport(a.id, seq, ctx.sender, msg.kind, msg.evidence_cid,
                                   REPORT_OPEN, ctx.time_ms))
        ctx.state.set(keys.report_open_key(a.id, ctx.sender), encode(seq))
        ak.put(ctx, dataclasses.replace(a, open_reports=a.open_reports + 1), a)
        ctx.emit("asset_reported", asset_id=a.id, seq=seq, kind=msg.kind, reporter=ctx.sender)

    def resolve_report(ctx: Context, msg: ResolveReport) -> None:
        idk.require_role(ctx, ctx.sender, REGULATOR)
        a = ak.require(ctx, msg.asset_id)
        r = ak.report(ctx.state, a.id, msg.seq)
        if r is None:
            raise ShareChainError(REPORT_NOT_FOUND, f"asset {a.code} has no report {msg.seq}")
        if r.status != REPORT_OPEN:
            raise ShareChainError(REPORT_NOT_OPEN, f"report {msg.seq} is already {r.status}")
        if msg.compensation:
            ak.pay_pledge_compensation(ctx, a.id, r.reporter, msg.compensation)
        a2 = ak.require(ctx, a.id)
        status = REPORT_UPHELD if msg.upheld else REPORT_REJECTED
        ctx.set_record(keys.report_key(a.id, msg.seq), dataclasses.replace(
            r, status=status, resolved_by=ctx.sender, compensation=msg.compensation,
            note=msg.note))
        ctx.delete(keys.report_open_key(a.id, r.reporter))
        a3 = dataclasses.replace(a2, open_reports=a2.open_reports - 1)
        if msg.upheld and not a3.frozen:
            a3 = dataclasses.replace(a3, frozen=True,
                                     freeze_reason=f"report {msg.seq} upheld: {r.kind}")
            ctx.emit("asset_frozen", asset_id=a.id, reason=a3.freeze_reason, by=ctx.sender)
        ak.put(ctx, a3, a2)
        ctx.emit("asset_report_resolved", asset_id=a.id, seq=msg.seq, status=status,
                 compensation=msg.compensation, reporter=r.reporter)
        ak.maybe_return_pledge(ctx, a.id)

    return {"define": define, "attest": attest, "transfer_ownership": transfer_ownership,
            "set_operator": set_operator, "grant_use_right": grant_use_right,
            "transfer_use_right": transfer_use_right, "revoke_use_right": revoke_use_right,
            "transfer_income_share": transfer_income_share, "freeze": freeze,
            "unfreeze": unfreeze, "pledge": pledge, "confirm": confirm, "report": report,
            "resolve_report": resolve_report}
