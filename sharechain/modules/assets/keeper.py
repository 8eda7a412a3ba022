"""assets keeper: asset records, rights, pledges, and the interface the rental module uses.

The rental module relies on exactly these methods: :meth:`AssetsKeeper.get`,
:meth:`~AssetsKeeper.asset_class`, :meth:`~AssetsKeeper.require_rentable`,
:meth:`~AssetsKeeper.grant_use_right`, :meth:`~AssetsKeeper.release_use_right`,
:meth:`~AssetsKeeper.record_consumer_confirmation` and
:meth:`~AssetsKeeper.pay_pledge_compensation`. Only this module writes ``assets/`` keys;
pledge tokens move only through the bank's escrow (``b"assets/pledge/" + asset_id``).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.crypto import bech32_address
from sharechain.encoding import decode_trusted as decode  # values this node stored
from sharechain.encoding import encode
from sharechain.errors import ShareChainError
from sharechain.modules.assets import keys
from sharechain.modules.assets.types import (
    ASSET_FROZEN,
    ASSET_NOT_CONFIRMED,
    ASSET_NOT_FOUND,
    ASSET_NOT_PLEDGED,
    ASSET_OPERATOR_INACTIVE,
    LOCK_ID_BYTES_MAX,
    PLEDGE_INSUFFICIENT,
    USE_RIGHT_LOCK_MISMATCH,
    USE_RIGHT_LOCKED,
    USE_RIGHT_TAKEN,
    Asset,
    AssetClass,
    AssetReport,
    Attestation,
    UseRight,
    pledge_escrow_id,
)
from sharechain.modules.identity.common import TIME_MS_MAX, read_record
from sharechain.modules.identity.keeper import RoleView
from sharechain.modules.identity.types import PLATFORM


class PledgeEscrow(Protocol):
    """The narrow bank view assets needs: lock a pledge, pay out of it, read it."""

    def lock(self, ctx: Context, owner: bytes, amount: int, escrow_id: bytes) -> None: ...
    def release(self, ctx: Context, escrow_id: bytes, to: bytes, amount: int) -> None: ...
    def release_all(self, ctx: Context, escrow_id: bytes, to: bytes) -> int: ...


class AssetsKeeper:
    def __init__(self, identity: RoleView, bank: PledgeEscrow) -> None:
        self.identity = identity
        self.bank = bank

    # -------------------------------------------------------------- reads
    def get(self, state: Readable, asset_id: bytes) -> Asset | None:
        return read_record(state, Asset, keys.asset_key(asset_id))  # type: ignore[no-any-return]

    def asset_class(self, state: Readable, name: str) -> AssetClass | None:
        return read_record(state, AssetClass, keys.class_key(name))  # type: ignore[no-any-return]

    def by_code(self, state: Readable, code: str) -> Asset | None:
        raw = state.get(keys.code_key(code))
        return None if raw is None else self.get(state, decode(raw))

    def attestation(self, state: Readable, asset_id: bytes, role: str) -> Attestation | None:
        return read_record(state, Attestation,  # type: ignore[no-any-return]
                           keys.attest_key(asset_id, role))

    def report(self, state: Readable, asset_id: bytes, seq: int) -> AssetReport | None:
        return read_record(state, AssetReport,  # type: ignore[no-any-return]
                           keys.report_key(asset_id, seq))

    def has_used(self, state: Readable, asset_id: bytes, addr: bytes) -> bool:
        return state.get(keys.user_key(asset_id, addr)) is not None

    def has_confirmed(self, state: Readable, asset_id: bytes, addr: bytes) -> bool:
        return state.get(keys.confirm_key(asset_id, addr)) is not None

    def require(self, ctx: Context, asset_id: bytes) -> Asset:
        a = self.get(ctx.state, asset_id)
        if a is None:
            raise ShareChainError(ASSET_NOT_FOUND, f"no asset with id {asset_id.hex()}")
        return a

    def require_class(self, ctx: Context, asset: Asset) -> AssetClass:
        cls = self.asset_class(ctx.state, asset.class_name)
        if cls is None:  # classes are never removed; a missing one is a broken genesis
            raise ShareChainError("unknown_asset_class", f"unknown class {asset.class_name!r}")
        return cls

    def require_rentable(self, ctx: Context, asset_id: bytes) -> Asset:
        """The asset, if it is a confirmed, unfrozen, pledged asset with an active operator."""
        a = self.require(ctx, asset_id)
        if not a.confirmed:
            raise ShareChainError(ASSET_NOT_CONFIRMED,
                                  f"asset {a.code} is not confirmed by its class's attesters")
        if a.frozen:
            raise ShareChainError(ASSET_FROZEN, f"asset {a.code} is frozen: {a.freeze_reason}")
        if not a.pledged:
            raise ShareChainError(ASSET_NOT_PLEDGED, f"asset {a.code} has no provider pledge")
        if not self.identity.has_role(ctx.state, a.operator, PLATFORM):
            raise ShareChainError(ASSET_OPERATOR_INACTIVE,
                                  f"the operator of asset {a.code} is no longer a platform")
        return a

    # -------------------------------------------------------------- record writes
    def put(self, ctx: Context, asset: Asset, old: Asset | None = None) -> None:
        """Store ``asset``, keeping the owner and operator indexes in step with ``old``."""
        if old is None or old.owner != asset.owner:
            if old is not None:
                ctx.delete(keys.owner_key(old.owner, old.id))
            ctx.set_obj(keys.owner_key(asset.owner, asset.id), 1)
        if old is None or old.operator != asset.operator:
            if old is not None:
                ctx.delete(keys.operator_key(old.operator, old.id))
            ctx.set_obj(keys.operator_key(asset.operator, asset.id), 1)
        ctx.set_record(keys.asset_key(asset.id), asset)

    def create(self, ctx: Context, asset: Asset) -> None:
        ctx.set_obj(keys.code_key(asset.code), asset.id)
        self.put(ctx, asset)

    def mark_user(self, ctx: Context, asset_id: bytes, addr: bytes) -> None:
        k = keys.user_key(asset_id, addr)
        if ctx.get(k) is None:
            ctx.state.set(k, encode(ctx.time_ms))

    # -------------------------------------------------------------- use rights (rental)
    def grant_use_right(self, ctx: Context, asset_id: bytes, holder: bytes, until_ms: int,
                        lock_id: bytes) -> None:
        """Give ``holder`` the use right until ``until_ms``, locked by ``lock_id``.

        While locked, neither the owner nor the operator nor the holder can revoke or move
        the use right; only :meth:`release_use_right` with the same lock id ends it. Granting
        again with the same lock id extends or shortens the locked right.
        """
        if not 0 < len(lock_id) <= LOCK_ID_BYTES_MAX:
            raise ShareChainError("invalid_lock_id", f"a lock id has 1 to {LOCK_ID_BYTES_MAX} bytes")
        if not ctx.time_ms < until_ms <= TIME_MS_MAX:
            raise ShareChainError("invalid_until", "until_ms must be after the block time")
        a = self.require(ctx, asset_id)
        if a.frozen:
            raise ShareChainError(ASSET_FROZEN, f"asset {a.code} is frozen: {a.freeze_reason}")
        current = a.active_use_right(ctx.time_ms)
        if current is not None:
            if current.locked_by and current.locked_by != lock_id:
                raise ShareChainError(USE_RIGHT_LOCKED,
                                      f"the use right of asset {a.code} is locked by a rental")
            if not current.locked_by and current.holder != holder:
                raise ShareChainError(USE_RIGHT_TAKEN, f"the use right of asset {a.code} is "
                                      f"held by {bech32_address(current.holder)}")
        self.put(ctx, dataclasses.replace(a, use_right=UseRight(holder, until_ms, lock_id)), a)
        self.mark_user(ctx, asset_id, holder)
        ctx.emit("use_right_granted", asset_id=asset_id, holder=holder, until_ms=until_ms,
                 locked=True)

    def release_use_right(self, ctx: Context, asset_id: bytes, lock_id: bytes) -> None:
        """End the use right locked by ``lock_id`` (the rental ended)."""
        a = self.require(ctx, asset_id)
        u = a.use_right
        if u is None or not lock_id or u.locked_by != lock_id:
            raise ShareChainError(USE_RIGHT_LOCK_MISMATCH,
                                  f"the use right of asset {a.code} is not locked by this id")
        self.put(ctx, dataclasses.replace(a, use_right=None), a)
        ctx.emit("use_right_released", asset_id=asset_id, holder=u.holder)

    # -------------------------------------------------------------- pledge
    def record_consumer_confirmation(self, ctx: Context, asset_id: bytes,
                                     consumer: bytes) -> bool:
        """Count ``consumer``'s confirmation that the asset is real and safe.

        Counts once per consumer and only for a pledged asset whose pledge is not yet
        returned, never for its owner, operator or pledger; returns whether it counted.
        When the class's number of confirmations is reached (and no report is open and the
        asset is not frozen) the pledge goes back to whoever posted it.
        """
        a = self.require(ctx, asset_id)
        if (not a.pledged or a.pledge_returned or consumer in (a.owner, a.operator, a.pledger)
                or self.has_confirmed(ctx.state, asset_id, consumer)):
            return False
        ctx.state.set(keys.confirm_key(asset_id, consumer), encode(ctx.time_ms))
        b = dataclasses.replace(a, consumer_confirmations=a.consumer_confirmations + 1)
        self.put(ctx, b, a)
        ctx.emit("asset_consumer_confirmed", asset_id=asset_id, consumer=consumer,
                 confirmations=b.consumer_confirmations)
        self.maybe_return_pledge(ctx, asset_id)
        return True

    def maybe_return_pledge(self, ctx: Context, asset_id: bytes) -> None:
        a = self.require(ctx, asset_id)
        if not a.pledged or a.pledge_returned or a.frozen or a.open_reports:
            return
        if a.consumer_confirmations < self.require_class(ctx, a).consumer_confirmations:
            return
        returned = self.bank.release_all(ctx, pledge_escrow_id(asset_id), a.pledger)
        self.put(ctx, dataclasses.replace(a, pledge_held=0, pledge_returned=True), a)
        ctx.emit("pledge_returned", asset_id=asset_id, to=a.pledger, amount=returned)

    def pay_pledge_compensation(self, ctx: Context, asset_id: bytes, to: bytes,
                                amount: int) -> None:
        """Pay ``amount`` out of the asset's pledge to ``to`` (an upheld report or ruling)."""
        if type(amount) is not int or amount <= 0:
            raise ShareChainError("invalid_amount", "compensation must be a positive integer")
        a = self.require(ctx, asset_id)
        if amount > a.pledge_held:
            raise ShareChainError(PLEDGE_INSUFFICIENT, f"the pledge of asset {a.code} holds "
                                  f"{a.pledge_held}, not {amount}")
        self.bank.release(ctx, pledge_escrow_id(asset_id), to, amount)
        self.put(ctx, dataclasses.replace(a, pledge_held=a.pledge_held - amount), a)
        ctx.emit("pledge_compensation_paid", asset_id=asset_id, to=to, amount=amount)
