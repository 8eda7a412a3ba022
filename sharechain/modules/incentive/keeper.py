"""incentive keeper: rewards from the pool under per-epoch caps, and penalty routing.

Theory of operation
-------------------
Rewards are paid from the reward pool account, never minted: a reward is a bank transfer
from the pool, so the pool's balance bounds what can be paid and supply never changes. Each
payment is cut to the smallest of the rule's amount, what the account may still earn in the
current epoch (``account_epoch_cap``; epoch = ``time_ms // epoch_ms`` of block time) and the
pool balance; a cut to zero emits ``reward_skipped`` with the reason.

Anti-farming: a rental earns rewards only if its usage fee reaches ``reward_min_fee`` and its
consumer is not the asset's owner, and each of its rewards is at most
``reward_fee_share_bps`` (40 %) of the platform fee it paid — so the two rewards of a rental
(provider and consumer) are together less than the platform fee alone, before transaction
fees. Sock-puppet rentals between one's own accounts through an independent platform
therefore always lose money, and the per-epoch cap bounds what any account can earn,
including a platform renting out assets it operates itself (see the tests).

Penalties taken from a rental's escrow (late fee, cancellation and expiry fees, default
compensation; fraud penalties later) go to the harmed party, except ``penalty_pool_bps`` of
each which goes to the pool; a penalty with no identifiable harmed party (``harmed == b""``)
goes wholly to the pool.
"""

from __future__ import annotations

from typing import Protocol

from sharechain.app.params import ParamStore
from sharechain.app.framework import Context
from sharechain.app.state import Readable
from sharechain.encoding import decode_trusted, encode
from sharechain.modules.identity.types import GATEWAY
from sharechain.modules.incentive import keys
from sharechain.modules.incentive.types import (
    BPS_DENOM,
    REASON_CONSUMER,
    REASON_GATEWAY,
    REASON_PROVIDER,
    AccountRewards,
    Params,
)



class BankPort(Protocol):
    def balance(self, state: Readable, addr: bytes) -> int: ...
    def transfer(self, ctx: Context, frm: bytes, to: bytes, amount: int) -> None: ...
    def release(self, ctx: Context, escrow_id: bytes, to: bytes, amount: int) -> None: ...
    def mint_genesis(self, ctx: Context, addr: bytes, amount: int) -> None: ...


class RoleView(Protocol):
    def has_role(self, state: Readable, addr: bytes, role: str) -> bool: ...


class RentalView(Protocol):
    @property
    def consumer(self) -> bytes: ...
    @property
    def owner(self) -> bytes: ...
    @property
    def platform_fee(self) -> int: ...


class NoticeView(Protocol):
    """The part of a rental notice (``rental.deps.RentalNotice``) rewards depend on."""

    @property
    def kind(self) -> str: ...
    @property
    def rental(self) -> RentalView: ...
    @property
    def on_time(self) -> bool: ...
    @property
    def amount(self) -> int: ...


class ReportView(Protocol):
    @property
    def kind(self) -> str: ...


class IncentiveKeeper:
    def __init__(self, bank: BankPort, roles: RoleView) -> None:
        self.bank = bank
        self.roles = roles
        self.param_store = ParamStore(Params, keys.PARAMS_KEY, "incentive")

    # ================================================================ reads
    def params(self, state: Readable) -> Params:
        return self.param_store.get(state)

    def set_params(self, ctx: Context, params: Params) -> None:
        self.param_store.set(ctx, params)

    def pool_balance(self, state: Readable) -> int:
        return self.bank.balance(state, keys.REWARD_POOL)

    def account(self, state: Readable, addr: bytes) -> AccountRewards:
        raw = state.get(keys.account_key(addr))
        if raw is None:
            return AccountRewards(0, 0, 0)
        epoch, paid, total = decode_trusted(raw)
        return AccountRewards(epoch, paid, total)

    def reward(self, ctx: Context, to: bytes, amount: int, reason: str) -> int:
        """Pay up to ``amount`` from the pool to ``to``; returns what was paid."""
        if amount <= 0:
            ctx.emit("reward_skipped", to=to, reason=reason, why="zero_amount")
            return 0
        p = self.params(ctx.state)
        epoch = ctx.time_ms // p.epoch_ms
        acct = self.account(ctx.state, to)
        paid_in_epoch = acct.paid_in_epoch if acct.epoch == epoch else 0
        room = p.account_epoch_cap - paid_in_epoch
        pool = self.pool_balance(ctx.state)
        pay = min(amount, room, pool)
        if pay <= 0:
            ctx.emit("reward_skipped", to=to, reason=reason,
                     why="epoch_cap" if room <= 0 else "pool_empty")
            return 0
        self.bank.transfer(ctx, keys.REWARD_POOL, to, pay)
        ctx.state.set(keys.account_key(to),
                      encode([epoch, paid_in_epoch + pay, acct.paid_total + pay]))
        ctx.emit("reward_paid", to=to, amount=pay, reason=reason, epoch=epoch)
        return pay

    def on_rental(self, ctx: Context, notice: NoticeView) -> None:
        """rental listener: rewards for completed rentals and on-time returns."""
        if notice.kind != "completed":
            return
        r = notice.rental
        p = self.params(ctx.state)
        if r.consumer == r.owner:
            ctx.emit("reward_skipped", to=r.owner, reason=REASON_PROVIDER, why="self_dealing")
            return
        if notice.amount < p.reward_min_fee:
            ctx.emit("reward_skipped", to=r.owner, reason=REASON_PROVIDER, why="fee_below_min")
            return
        limit = r.platform_fee * p.reward_fee_share_bps // BPS_DENOM
        self.reward(ctx, r.owner, min(p.provider_reward, limit), REASON_PROVIDER)
        if notice.on_time:
            self.reward(ctx, r.consumer, min(p.consumer_reward, limit), REASON_CONSUMER)

    def on_device_report(self, ctx: Context, device: object, report: ReportView,
                         suspect_reason: str) -> None:
        """iot listener: a gateway that submits an accepted fault report is rewarded."""
        if report.kind != "fault" or suspect_reason:
            return
        if not self.roles.has_role(ctx.state, ctx.sender, GATEWAY):
            return
        self.reward(ctx, ctx.sender, self.params(ctx.state).gateway_fault_reward,
                    REASON_GATEWAY)

    # ================================================================ penalties
    def pay_penalty(self, ctx: Context, kind: str, escrow_id: bytes, amount: int,
                    harmed: bytes) -> None:
        """Route a penalty out of escrow: ``penalty_pool_bps`` (all of it if nobody is
        harmed) to the pool, the rest to the harmed party. Rounding: the pool's part is
        rounded down."""
        if amount <= 0:
            return
        bps = self.params(ctx.state).penalty_pool_bps if harmed else BPS_DENOM
        to_pool = amount * bps // BPS_DENOM
        self.bank.release(ctx, escrow_id, keys.REWARD_POOL, to_pool)
        if harmed:
            self.bank.release(ctx, escrow_id, harmed, amount - to_pool)
        if to_pool:
            # Only worth an event when the pool takes a share: the rental's own event
            # (rental_completed, _expired, _cancelled, _defaulted) already names the penalty,
            # and a gateway's batch of 32 reports must stay under the events-per-tx cap.
            ctx.emit("penalty_paid", kind=kind, amount=amount, to=harmed, to_pool=to_pool)

    # ================================================================ pool
    def fund_pool(self, ctx: Context, amount: int) -> None:
        self.bank.transfer(ctx, ctx.sender, keys.REWARD_POOL, amount)
        ctx.emit("reward_pool_funded", by=ctx.sender, amount=amount)

    def fund_pool_genesis(self, ctx: Context, amount: int) -> None:
        self.bank.mint_genesis(ctx, keys.REWARD_POOL, amount)
