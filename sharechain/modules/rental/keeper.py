"""rental keeper: offers, the booking calendar, the lifecycle, settlement and expiry sweeps.

Theory of operation
-------------------
A reservation locks the deposit and the expected fee of the reserved window in one bank
escrow (``rental/<id>``). Every later step pays out of that escrow and nothing else, so a
rental can neither create nor destroy tokens: what goes in at reservation comes out to the
consumer, the owner, the income-share holders, the operator platform and the reward pool.

State changes go through the transition table in ``states.py``. Each rental in a
non-terminal state has exactly one pending deadline (expiry, default, return confirmation or
claim-window close; a pending claim has its own timeout) kept in an index ordered by due time,
and the end-block sweep walks only the due part of that index: its cost is the number of
items due, not the number of rentals. A due action that fails (another module refuses it)
is never dropped: its deadline moves a bounded, growing amount of block time ahead and the
number of failed attempts is kept in the index entry, so the rental stays in its state,
keeps its escrow and is tried again (see ``sweep``).

Bookings of one asset never overlap, so ordered by reserved end they are also ordered by
start: the only booking that can overlap a new window ``[s, e)`` is the first one ending
after ``s``, found with one range seek. A per-asset summary (count, latest end) short-cuts the
common case of booking after everything already booked.

Usage time comes from the device (unlock and lock report times) when the device is trusted,
and from block times (both parties' start signatures, the consumer's return) otherwise. A
suspect device report marks the rental ``device_suspect``: from then on it starts and ends
only by the parties' own messages.
"""

from __future__ import annotations

import dataclasses
from itertools import islice

from sharechain.app.framework import Context
from sharechain.app.state import Readable, prefix_end
from sharechain.encoding import decode_trusted, encode, from_obj, record_from_state, to_obj
from sharechain.errors import ShareChainError, invariant
from sharechain.modules.incentive.keys import REWARD_POOL
from sharechain.modules.rental import keys, settlement
from sharechain.modules.rental.codec import decode_rental, encode_rental
from sharechain.modules.rental.deps import (
    AllowAll,
    AssetsPort,
    BankEscrow,
    CreditGate,
    DeviceView,
    FeeSplitter,
    PayHarmedParty,
    PenaltySink,
    PlatformView,
    RentalListener,
    RentalNotice,
    ReportView,
    operator_takes_all,
)
from sharechain.modules.rental.states import (
    ACTIVE,
    CLAIM_PENDING_STATES,
    CLOSED,
    ENDED,
    OPEN,
    RESERVED,
    RETURNED,
    claim_next,
    rental_next,
)
from sharechain.modules.rental.types import (
    ALREADY_CONFIRMED,
    ALREADY_SIGNED,
    ASSET_BOOKED,
    ASSET_IN_USE,
    CLAIM_ABOVE_CAP,
    CLAIM_NOT_FOUND,
    CLAIM_WINDOW_CLOSED,
    CLAIMS_PER_RENTAL_MAX,
    DEVICE_ASSET_MISMATCH,
    DURATION_OUT_OF_RANGE,
    INVALID_RESOLUTION,
    INVALID_WINDOW,
    NOT_ASSET_PROVIDER,
    NOT_RENTAL_PARTY,
    OFFER_CHANGED,
    OFFER_NOT_FOUND,
    OFFER_STALE,
    RENTAL_ID_BYTES,
    RENTAL_NOT_FOUND,
    SWEEP_RETRY_BASE_MS,
    SWEEP_RETRY_MAX_MS,
    TIME_MS_MAX,
    TOO_EARLY,
    TOO_MANY_CLAIMS,
    Claim,
    ClaimRef,
    FileClaim,
    Offer,
    OfferTerms,
    Params,
    Rental,
    RentalRef,
    Reserve,
    WithdrawOffer,
)

ASSET_NOT_FOUND = "asset_not_found"
DEVICE_KINDS = frozenset({"unlock", "lock", "meter"})

_replace = dataclasses.replace

# The kind of deadline a rental in each state waits for (states not listed have none).
DUE_KIND_OF_STATE = {RESERVED: keys.DUE_EXPIRE, ACTIVE: keys.DUE_DEFAULT,
                     RETURNED: keys.DUE_RETURN, ENDED: keys.DUE_CLOSE}


def sweep_retry_delay_ms(attempt: int) -> int:
    """Block time between failed attempt ``attempt`` (1, 2, ...) of a due action and the
    next try: 1 min, doubling per attempt, at most 1 h (``SWEEP_RETRY_*_MS``)."""
    return min(SWEEP_RETRY_BASE_MS << min(max(attempt, 1) - 1, 32), SWEEP_RETRY_MAX_MS)


def _err(code: str, message: str) -> ShareChainError:
    return ShareChainError(code, message)


class RentalKeeper:
    def __init__(self, bank: BankEscrow, assets: AssetsPort, platforms: PlatformView,
                 credit: CreditGate | None = None, penalties: PenaltySink | None = None
                 ) -> None:
        self.bank = bank
        self.assets = assets
        self.platforms = platforms
        self.credit: CreditGate = credit or AllowAll()
        self.penalties: PenaltySink = penalties or PayHarmedParty(bank)
        self.fee_splitter: FeeSplitter = operator_takes_all
        self._listeners: list[RentalListener] = []
        self._params_raw: bytes | None = None
        self._params = Params()

    # ================================================================ wiring seams
    def add_listener(self, fn: RentalListener) -> None:
        """``fn(ctx, notice)`` runs after each step, inside the step's state overlay."""
        self._listeners.append(fn)

    def remove_listener(self, fn: RentalListener) -> None:
        """Unsubscribe ``fn`` (a test or benchmark seam)."""
        self._listeners = [f for f in self._listeners if f != fn]

    def set_credit_gate(self, gate: CreditGate) -> None:
        self.credit = gate

    def set_penalty_sink(self, sink: PenaltySink) -> None:
        self.penalties = sink

    def set_fee_splitter(self, fn: FeeSplitter) -> None:
        """Who receives the operator's part of the platform fee (default: the operator)."""
        self.fee_splitter = fn

    def _notify(self, ctx: Context, kind: str, r: Rental, on_time: bool = False,
                amount: int = 0) -> None:
        if self._listeners:
            notice = RentalNotice(kind, r, on_time, amount)
            for fn in self._listeners:
                fn(ctx, notice)

    # ================================================================ reads
    def params(self, state: Readable) -> Params:
        raw = state.get(keys.PARAMS_KEY)
        if raw is None:
            return Params()
        if raw != self._params_raw:  # decode once per distinct value
            self._params = from_obj(Params, decode_trusted(raw))
            self._params_raw = raw
        return self._params

    def set_params(self, ctx: Context, params: Params) -> None:
        ctx.set_record(keys.PARAMS_KEY, params)

    def offer(self, state: Readable, asset_id: bytes) -> Offer | None:
        raw = state.get(keys.offer_key(asset_id))
        return None if raw is None else record_from_state(Offer, raw)

    def rental(self, state: Readable, rental_id: bytes) -> Rental | None:
        raw = state.get(keys.rental_key(rental_id))
        return None if raw is None else decode_rental(raw)

    def claim(self, state: Readable, claim_id: bytes) -> Claim | None:
        raw = state.get(keys.claim_key(claim_id))
        return None if raw is None else record_from_state(Claim, raw)

    def in_use(self, state: Readable, asset_id: bytes) -> bytes | None:
        return state.get(keys.in_use_key(asset_id))

    def booked_windows(self, state: Readable, asset_id: bytes, from_ms: int, to_ms: int,
                       limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` booked windows ``(start_ms, end_ms)`` of the asset that overlap
        ``[from_ms, to_ms)``, earliest first (bookings never overlap, so ordered by end they
        are ordered by start: the walk stops at the first one starting at or after
        ``to_ms``)."""
        prefix = keys.booking_prefix(asset_id)
        out: list[tuple[int, int]] = []
        for k, v in state.iter_range(prefix + keys.be8(from_ms + 1), prefix_end(prefix)):
            start = int(decode_trusted(v))
            if start >= to_ms or len(out) >= limit:
                break
            out.append((start, int.from_bytes(k[len(prefix):len(prefix) + 8], "big")))
        return out

    def last_seq(self, state: Readable) -> int:
        raw = state.get(keys.SEQ_KEY)
        return 0 if raw is None else int(decode_trusted(raw))

    def _load(self, ctx: Context, rental_id: bytes) -> Rental:
        r = self.rental(ctx.state, rental_id)
        if r is None:
            raise _err(RENTAL_NOT_FOUND, f"no rental {rental_id.hex()}")
        return r

    def _load_claim(self, ctx: Context, claim_id: bytes) -> Claim:
        c = self.claim(ctx.state, claim_id)
        if c is None:
            raise _err(CLAIM_NOT_FOUND, f"no claim {claim_id.hex()}")
        return c

    @staticmethod
    def _save(ctx: Context, r: Rental) -> None:
        ctx.state.set(keys.rental_key(r.id), encode_rental(r))

    @staticmethod
    def _save_claim(ctx: Context, c: Claim) -> None:
        ctx.state.set(keys.claim_key(c.id), encode(to_obj(c)))

    @staticmethod
    def _is_provider(r: Rental, who: bytes) -> bool:
        return who == r.owner or (r.operator != b"" and who == r.operator)

    # ================================================================ offers
    def offer_terms(self, ctx: Context, msg: OfferTerms) -> Offer:
        asset = self.assets.get(ctx.state, msg.asset_id)
        if asset is None:
            raise _err(ASSET_NOT_FOUND, f"no asset {msg.asset_id.hex()}")
        if ctx.sender != asset.owner and not (asset.operator and ctx.sender == asset.operator):
            raise _err(NOT_ASSET_PROVIDER, "only the asset's owner or operator may offer it")
        prev = self.offer(ctx.state, msg.asset_id)
        offer = Offer(msg.asset_id, asset.owner, ctx.sender, msg.terms,
                      1 if prev is None else prev.version + 1, ctx.time_ms)
        ctx.set_record(keys.offer_key(msg.asset_id), offer)
        ctx.emit("rental_offered", asset_id=msg.asset_id, by=ctx.sender, version=offer.version,
                 price_per_unit=msg.terms.price_per_unit, unit_ms=msg.terms.unit_ms,
                 deposit=msg.terms.deposit)
        return offer

    def withdraw_offer(self, ctx: Context, msg: WithdrawOffer) -> None:
        offer = self.offer(ctx.state, msg.asset_id)
        if offer is None:
            raise _err(OFFER_NOT_FOUND, f"asset {msg.asset_id.hex()} has no offer")
        asset = self.assets.get(ctx.state, msg.asset_id)
        allowed = {offer.owner, offer.offered_by}
        if asset is not None:
            allowed |= {asset.owner, asset.operator}
        if ctx.sender not in allowed:
            raise _err(NOT_ASSET_PROVIDER, "only the asset's owner or operator may withdraw it")
        ctx.delete(keys.offer_key(msg.asset_id))
        ctx.emit("rental_offer_withdrawn", asset_id=msg.asset_id, by=ctx.sender)

    # ================================================================ booking calendar
    def _check_free(self, ctx: Context, asset_id: bytes, start_ms: int, end_ms: int) -> None:
        summary = ctx.state.get(keys.booking_summary_key(asset_id))
        if summary is None:
            return
        _count, latest_end = decode_trusted(summary)
        if start_ms >= latest_end:
            return
        prefix = keys.booking_prefix(asset_id)
        for k, v in ctx.state.iter_range(prefix + keys.be8(start_ms + 1), prefix_end(prefix)):
            if decode_trusted(v) < end_ms:
                other = k[len(prefix) + 8:]
                raise _err(ASSET_BOOKED, f"the asset is booked by rental {other.hex()} "
                                         "in an overlapping window")
            return

    def _book(self, ctx: Context, r: Rental) -> None:
        skey = keys.booking_summary_key(r.asset_id)
        raw = ctx.state.get(skey)
        count, latest_end = (0, 0) if raw is None else decode_trusted(raw)
        ctx.state.set(skey, encode([count + 1, max(latest_end, r.end_ms)]))
        ctx.state.set(keys.booking_key(r.asset_id, r.end_ms, r.id), encode(r.start_ms))

    def _unbook(self, ctx: Context, r: Rental) -> None:
        skey = keys.booking_summary_key(r.asset_id)
        raw = ctx.state.get(skey)
        count, latest_end = (1, 0) if raw is None else decode_trusted(raw)
        if count <= 1:
            ctx.state.delete(skey)
        else:
            ctx.state.set(skey, encode([count - 1, latest_end]))
        ctx.state.delete(keys.booking_key(r.asset_id, r.end_ms, r.id))

    # ================================================================ deadlines
    @staticmethod
    def _due(ctx: Context, due_ms: int, kind: int, item_id: bytes) -> None:
        ctx.state.set(keys.deadline_key(due_ms, kind, item_id), b"")

    @staticmethod
    def _undue(ctx: Context, due_ms: int, kind: int, item_id: bytes) -> None:
        ctx.state.delete(keys.deadline_key(due_ms, kind, item_id))

    # ================================================================ reserve
    def reserve(self, ctx: Context, msg: Reserve, consumer: bytes | None = None) -> Rental:
        """Book a window for ``consumer`` (default: the sender). Another module passes the
        consumer when it books on a consumer's signed pre-authorization (market fills)."""
        p = self.params(ctx.state)
        offer = self.offer(ctx.state, msg.asset_id)
        if offer is None:
            raise _err(OFFER_NOT_FOUND, f"asset {msg.asset_id.hex()} is not offered for rent")
        if msg.offer_version and msg.offer_version != offer.version:
            raise _err(OFFER_CHANGED, f"the offer is at version {offer.version}, "
                                      f"not {msg.offer_version}")
        asset = self.assets.require_rentable(ctx, msg.asset_id)
        if asset.owner != offer.owner:
            raise _err(OFFER_STALE, "the asset changed owner since it was offered")
        t = offer.terms
        now = ctx.time_ms
        if msg.start_ms < now - p.reserve_slack_ms or msg.start_ms > now + p.reserve_ahead_ms_max:
            raise _err(INVALID_WINDOW, "the window must start between "
                                       f"{p.reserve_slack_ms} ms ago and "
                                       f"{p.reserve_ahead_ms_max} ms ahead")
        duration = msg.end_ms - msg.start_ms
        if not t.min_duration_ms <= duration <= t.max_duration_ms:
            raise _err(DURATION_OUT_OF_RANGE, f"the window lasts {duration} ms; the offer "
                                              f"allows {t.min_duration_ms} to "
                                              f"{t.max_duration_ms} ms")
        consumer = ctx.sender if consumer is None else consumer
        multiplier = self.credit.check_reserve(ctx, consumer, offer)
        deposit = settlement.deposit_with_multiplier(t.deposit, multiplier)
        prepaid = settlement.usage_units(duration, t.unit_ms) * t.price_per_unit
        self._check_free(ctx, msg.asset_id, msg.start_ms, msg.end_ms)
        seq = self.last_seq(ctx.state) + 1
        rid = keys.rental_id_of(seq)
        self.bank.lock(ctx, consumer, deposit + prepaid, keys.escrow_id(rid))
        operator = asset.operator or b""
        fee_bps = 0
        if operator:
            platform = self.platforms.platform(ctx.state, operator)
            fee_bps = platform.fee_bps if platform is not None else 0
        due = msg.start_ms + p.start_window_ms
        r = Rental(id=rid, asset_id=msg.asset_id, consumer=consumer, owner=asset.owner,
                   operator=operator, platform_fee_bps=fee_bps, terms=t,
                   start_ms=msg.start_ms, end_ms=msg.end_ms, deposit=deposit, prepaid=prepaid,
                   state=RESERVED, reserved_ms=now, due_ms=due)
        ctx.state.set(keys.SEQ_KEY, encode(seq))
        self._save(ctx, r)
        self._book(ctx, r)
        self._due(ctx, due, keys.DUE_EXPIRE, rid)
        ctx.state.set(keys.consumer_key(consumer, rid), b"")
        ctx.emit("rental_reserved", rental_id=rid, asset_id=msg.asset_id, consumer=consumer,
                 start_ms=msg.start_ms, end_ms=msg.end_ms, deposit=deposit, prepaid=prepaid)
        self._notify(ctx, "reserved", r)
        return r

    # ================================================================ start
    def sign_start(self, ctx: Context, msg: RentalRef) -> Rental:
        """One party's ``rental/start``; the rental starts when both have signed."""
        r = self._load(ctx, msg.rental_id)
        who = ctx.sender
        as_consumer = who == r.consumer
        as_provider = self._is_provider(r, who)
        if not (as_consumer or as_provider):
            raise _err(NOT_RENTAL_PARTY, "only the consumer or the provider may start a rental")
        rental_next(r.state, "sign_start")
        consumer_signed = r.consumer_signed or as_consumer
        provider_signed = r.provider_signed or as_provider
        if (consumer_signed, provider_signed) == (r.consumer_signed, r.provider_signed):
            raise _err(ALREADY_SIGNED, "this party already signed the start")
        r = _replace(r, consumer_signed=consumer_signed, provider_signed=provider_signed)
        if consumer_signed and provider_signed:
            return self._activate(ctx, r, ctx.time_ms, by_device=False)
        self._save(ctx, r)
        ctx.emit("rental_start_signed", rental_id=r.id, by=who)
        return r

    def _activate(self, ctx: Context, r: Rental, started_ms: int, by_device: bool) -> Rental:
        new_state = rental_next(r.state, "start")
        p = self.params(ctx.state)
        now = ctx.time_ms
        if now < r.start_ms - p.early_start_ms:
            raise _err(TOO_EARLY, f"the rental may start from {r.start_ms - p.early_start_ms}")
        ukey = keys.in_use_key(r.asset_id)
        if ctx.state.get(ukey) is not None:
            raise _err(ASSET_IN_USE, "the asset is still in use by another rental")
        due = now + r.terms.max_duration_ms + r.terms.grace_ms
        # Rentability was checked at reservation; granting the use right refuses a frozen
        # asset (asset_frozen), which is what can change in between.
        self.assets.grant_use_right(ctx, r.asset_id, r.consumer, due, r.id)
        ctx.state.set(ukey, r.id)
        self._undue(ctx, r.due_ms, keys.DUE_EXPIRE, r.id)
        self._due(ctx, due, keys.DUE_DEFAULT, r.id)
        r = _replace(r, state=new_state, started_ms=min(started_ms, now),
                     started_by_device=by_device, due_ms=due)
        self._save(ctx, r)
        ctx.emit("rental_started", rental_id=r.id, asset_id=r.asset_id, consumer=r.consumer,
                 started_ms=r.started_ms, by_device=by_device)
        self._notify(ctx, "started", r)
        return r

    def confirm_asset(self, ctx: Context, msg: RentalRef) -> None:
        r = self._load(ctx, msg.rental_id)
        if ctx.sender != r.consumer:
            raise _err(NOT_RENTAL_PARTY, "only the consumer confirms the asset")
        rental_next(r.state, "confirm_asset")
        if r.asset_confirmed:
            raise _err(ALREADY_CONFIRMED, "the consumer already confirmed this asset")
        self.assets.record_consumer_confirmation(ctx, r.asset_id, r.consumer)
        self._save(ctx, _replace(r, asset_confirmed=True))
        ctx.emit("rental_asset_confirmed", rental_id=r.id, asset_id=r.asset_id,
                 consumer=r.consumer)

    # ================================================================ end
    def return_(self, ctx: Context, msg: RentalRef) -> None:
        r = self._load(ctx, msg.rental_id)
        if ctx.sender != r.consumer:
            raise _err(NOT_RENTAL_PARTY, "only the consumer returns a rental")
        new_state = rental_next(r.state, "return")
        due = ctx.time_ms + self.params(ctx.state).return_confirm_ms
        self._undue(ctx, r.due_ms, keys.DUE_DEFAULT, r.id)
        self._due(ctx, due, keys.DUE_RETURN, r.id)
        r = _replace(r, state=new_state, returned_ms=ctx.time_ms, due_ms=due)
        self._save(ctx, r)
        ctx.emit("rental_returned", rental_id=r.id, returned_ms=ctx.time_ms)
        self._notify(ctx, "returned", r)

    def confirm_return(self, ctx: Context, msg: RentalRef) -> None:
        r = self._load(ctx, msg.rental_id)
        if not self._is_provider(r, ctx.sender):
            raise _err(NOT_RENTAL_PARTY, "only the provider confirms a return")
        self._end(ctx, r, r.returned_ms, "confirm_return")

    def _end(self, ctx: Context, r: Rental, ended_ms: int, action: str) -> Rental:
        """Settle a rental that ended at ``ended_ms`` (see settlement.py for the rules)."""
        new_state = rental_next(r.state, action)
        p = self.params(ctx.state)
        t = r.terms
        now = ctx.time_ms
        ended_ms = max(r.started_ms, min(ended_ms, now))
        self._release_asset(ctx, r)
        usage_fee = settlement.usage_units(ended_ms - r.started_ms, t.unit_ms) * t.price_per_unit
        late = settlement.late_units(ended_ms, r.end_ms, t.grace_ms, t.unit_ms)
        s = settlement.settle(r.escrow_total, usage_fee, late * t.late_fee_per_unit,
                              r.platform_fee_bps, p.reward_pool_bps, t.damage_cap)
        eid = keys.escrow_id(r.id)
        self._pay_usage(ctx, r, s, eid)
        if s.late_fee:
            self.penalties.pay_penalty(ctx, "late", eid, s.late_fee, r.owner)
        self.bank.release(ctx, eid, r.consumer, s.refund)
        on_time = late == 0
        due = 0
        if s.hold:
            due = now + t.claim_window_ms
            self._due(ctx, due, keys.DUE_CLOSE, r.id)
        else:
            new_state = rental_next(new_state, "close")
        r = _replace(r, state=new_state, ended_ms=ended_ms, settled_ms=now,
                     usage_fee=s.usage_fee, late_fee=s.late_fee, platform_fee=s.platform_fee,
                     hold=s.hold, due_ms=due)
        self._save(ctx, r)
        # One event carries the whole settlement: a gateway's batch of 32 lock reports, each
        # with the events of assets, incentive and credit too, must fit the per-tx cap.
        ctx.emit("rental_completed", rental_id=r.id, asset_id=r.asset_id, consumer=r.consumer,
                 owner=r.owner, on_time=on_time, usage_ms=ended_ms - r.started_ms,
                 usage_fee=s.usage_fee, late_fee=s.late_fee, platform_fee=s.platform_fee,
                 pool_fee=s.pool_fee, hold=s.hold, refund=s.refund, shortfall=s.shortfall,
                 how=action)
        self._notify(ctx, "completed", r, on_time, s.usage_fee)
        if late:
            ctx.emit("rental_late", rental_id=r.id, consumer=r.consumer, late_units=late,
                     late_fee=s.late_fee)
            self._notify(ctx, "late", r, False, s.late_fee)
        return r

    def _release_asset(self, ctx: Context, r: Rental) -> None:
        """Give the use right back and free the calendar (end, default)."""
        self.assets.release_use_right(ctx, r.asset_id, r.id)
        ctx.state.delete(keys.in_use_key(r.asset_id))
        self._unbook(ctx, r)
        self._undue(ctx, r.due_ms, keys.DUE_DEFAULT if r.state == ACTIVE else keys.DUE_RETURN,
                    r.id)

    def _pay_usage(self, ctx: Context, r: Rental, s: settlement.Settlement, eid: bytes) -> None:
        release = self.bank.release
        if s.platform_fee:
            release(ctx, eid, REWARD_POOL, s.pool_fee)
            operator_part = s.platform_fee - s.pool_fee
            parts = self.fee_splitter(ctx, r, operator_part)
            invariant(all(p >= 0 for _, p in parts) and sum(p for _, p in parts)
                      == operator_part, "the fee splitter must conserve the platform fee")
            for to, part in parts:
                release(ctx, eid, to, part)
        if s.income:
            asset = self.assets.get(ctx.state, r.asset_id)
            shares = [(sh.holder, sh.bps) for sh in asset.income_shares] if asset else []
            for holder, amount in settlement.split_shares(s.income, shares, r.owner):
                release(ctx, eid, holder, amount)

    # ================================================================ cancel / expire / default
    def cancel(self, ctx: Context, msg: RentalRef) -> None:
        r = self._load(ctx, msg.rental_id)
        who = ctx.sender
        if who != r.consumer and not self._is_provider(r, who):
            raise _err(NOT_RENTAL_PARTY, "only the consumer or the provider may cancel")
        new_state = rental_next(r.state, "cancel")
        fee = 0
        if who == r.consumer and ctx.time_ms > r.start_ms - r.terms.cancel_window_ms:
            fee = min(r.terms.cancel_fee, r.escrow_total)
        self._close_unstarted(ctx, r, new_state, fee, "cancel")
        ctx.emit("rental_cancelled", rental_id=r.id, by=who, fee=fee)
        self._notify(ctx, "cancelled", _replace(r, state=new_state), False, fee)

    def _close_unstarted(self, ctx: Context, r: Rental, new_state: str, fee: int,
                         kind: str) -> None:
        eid = keys.escrow_id(r.id)
        if fee:
            self.penalties.pay_penalty(ctx, kind, eid, fee, r.owner)
        self.bank.release(ctx, eid, r.consumer, r.escrow_total - fee)
        self._unbook(ctx, r)
        self._undue(ctx, r.due_ms, keys.DUE_EXPIRE, r.id)
        self._save(ctx, _replace(r, state=new_state, due_ms=0))

    def _expire(self, ctx: Context, r: Rental) -> None:
        new_state = rental_next(r.state, "expire")
        asset = self.assets.get(ctx.state, r.asset_id)
        # A consumer who could not start because the asset was frozen owes nothing.
        fee = 0 if asset is None or asset.frozen else min(r.terms.cancel_fee, r.escrow_total)
        self._close_unstarted(ctx, r, new_state, fee, "expire")
        ctx.emit("rental_expired", rental_id=r.id, consumer=r.consumer, fee=fee)
        self._notify(ctx, "expired", _replace(r, state=new_state), False, fee)

    def _default(self, ctx: Context, r: Rental) -> None:
        """Not returned by max duration + grace: charge usage to now, the rest of the escrow
        (the deposit) compensates the owner."""
        new_state = rental_next(r.state, "default")
        p = self.params(ctx.state)
        t = r.terms
        now = ctx.time_ms
        self._release_asset(ctx, r)
        usage_fee = settlement.usage_units(now - r.started_ms, t.unit_ms) * t.price_per_unit
        late = settlement.late_units(now, r.end_ms, t.grace_ms, t.unit_ms)
        s = settlement.settle(r.escrow_total, usage_fee, late * t.late_fee_per_unit,
                              r.platform_fee_bps, p.reward_pool_bps, 0)
        eid = keys.escrow_id(r.id)
        self._pay_usage(ctx, r, s, eid)
        penalty = s.late_fee + s.refund
        if penalty:
            self.penalties.pay_penalty(ctx, "default", eid, penalty, r.owner)
        r = _replace(r, state=new_state, ended_ms=now, settled_ms=now, usage_fee=s.usage_fee,
                     late_fee=s.late_fee, platform_fee=s.platform_fee, due_ms=0)
        self._save(ctx, r)
        ctx.emit("rental_defaulted", rental_id=r.id, asset_id=r.asset_id, consumer=r.consumer,
                 owner=r.owner, usage_fee=s.usage_fee, penalty=penalty, shortfall=s.shortfall)
        self._notify(ctx, "defaulted", r, False, penalty)

    def _return_timeout(self, ctx: Context, r: Rental) -> None:
        """The provider never confirmed the return: settle at the consumer's return time."""
        self._end(ctx, r, r.returned_ms, "return_timeout")

    def _close(self, ctx: Context, r: Rental) -> None:
        new_state = rental_next(r.state, "close")
        if r.hold:
            self.bank.release(ctx, keys.escrow_id(r.id), r.consumer, r.hold)
        self._save(ctx, _replace(r, state=new_state, hold=0, due_ms=0))
        ctx.emit("rental_closed", rental_id=r.id, refund=r.hold, pending_claims=r.held)

    # ================================================================ device reports
    def on_device_report(self, ctx: Context, device: DeviceView, report: ReportView,
                         suspect_reason: str) -> None:
        """iot listener: unlock starts, lock ends, meter is recorded; a suspect report only
        marks the rental so that the parties settle it by their own messages."""
        kind = report.kind
        if kind not in DEVICE_KINDS:
            return
        if kind == "meter":
            self._on_meter(ctx, device, report, suspect_reason)
            return
        rid = report.rental_id
        if not rid:
            return  # an unlock/lock outside any rental (maintenance)
        if len(rid) != RENTAL_ID_BYTES:
            raise _err(RENTAL_NOT_FOUND, "the report names no rental id")
        r = self._load(ctx, rid)
        if bytes(device.asset_id) != r.asset_id:
            raise _err(DEVICE_ASSET_MISMATCH, "the device is bound to another asset")
        at = report.time_ms
        if kind == "lock" and (at < r.started_ms or at < r.last_meter_ms) \
                and not suspect_reason and r.state in (ACTIVE, RETURNED):
            suspect_reason = "lock_before_usage"
        if suspect_reason or r.device_suspect:
            self._flag_suspect(ctx, r, kind, suspect_reason or "rental_device_suspect")
            return
        if kind == "unlock":
            self._activate(ctx, r, at, by_device=True)
        else:
            self._end(ctx, r, at, "device_end")

    def _on_meter(self, ctx: Context, device: DeviceView, report: ReportView,
                  suspect_reason: str) -> None:
        rid = ctx.state.get(keys.in_use_key(bytes(device.asset_id)))
        if rid is None:
            return
        r = self._load(ctx, rid)
        if suspect_reason:
            self._flag_suspect(ctx, r, "meter", suspect_reason)
            return
        if r.state == ACTIVE and report.time_ms > r.last_meter_ms:
            rental_next(r.state, "meter")
            self._save(ctx, _replace(r, last_meter_ms=report.time_ms))

    def _flag_suspect(self, ctx: Context, r: Rental, kind: str, reason: str) -> None:
        rental_next(r.state, "flag_suspect")
        if not r.device_suspect:
            self._save(ctx, _replace(r, device_suspect=True))
        ctx.emit("rental_device_ignored", rental_id=r.id, report_kind=kind, reason=reason)

    # ================================================================ claims
    def file_claim(self, ctx: Context, msg: FileClaim) -> Claim:
        r = self._load(ctx, msg.rental_id)
        if not self._is_provider(r, ctx.sender):
            raise _err(NOT_RENTAL_PARTY, "only the provider files damage claims")
        window_end = r.settled_ms + r.terms.claim_window_ms
        if r.state == CLOSED or (r.state == ENDED and ctx.time_ms > window_end):
            raise _err(CLAIM_WINDOW_CLOSED, "the claim window of this rental is over")
        rental_next(r.state, "claim")
        if r.claims >= CLAIMS_PER_RENTAL_MAX:
            raise _err(TOO_MANY_CLAIMS, f"a rental takes at most {CLAIMS_PER_RENTAL_MAX} claims")
        if msg.amount > r.hold:
            raise _err(CLAIM_ABOVE_CAP, f"at most {r.hold} of the deposit is left to claim")
        p = self.params(ctx.state)
        cid = keys.claim_id_of(r.id, r.claims)
        timeout = ctx.time_ms + p.claim_timeout_ms
        c = Claim(cid, r.id, ctx.sender, msg.amount, msg.reason, msg.evidence, OPEN,
                  ctx.time_ms, timeout)
        self._save_claim(ctx, c)
        self._due(ctx, timeout, keys.DUE_CLAIM, cid)
        r = _replace(r, hold=r.hold - msg.amount, held=r.held + msg.amount, claims=r.claims + 1)
        self._save(ctx, r)
        ctx.emit("claim_filed", claim_id=cid, rental_id=r.id, amount=msg.amount,
                 reason=msg.reason, timeout_ms=timeout)
        self._notify(ctx, "claim_filed", r, False, msg.amount)
        return c

    def accept_claim(self, ctx: Context, msg: ClaimRef) -> None:
        c = self._load_claim(ctx, msg.claim_id)
        r = self._load(ctx, c.rental_id)
        if ctx.sender != r.consumer:
            raise _err(NOT_RENTAL_PARTY, "only the consumer accepts a claim")
        self._settle_claim(ctx, c, r, claim_next(c.state, "accept"), c.amount)

    def dispute_claim(self, ctx: Context, msg: ClaimRef) -> None:
        c = self._load_claim(ctx, msg.claim_id)
        r = self._load(ctx, c.rental_id)
        if ctx.sender != r.consumer:
            raise _err(NOT_RENTAL_PARTY, "only the consumer disputes a claim")
        self._save_claim(ctx, _replace(c, state=claim_next(c.state, "dispute")))
        ctx.emit("claim_disputed", claim_id=c.id, rental_id=r.id, note=msg.note)
        self._notify(ctx, "claim_disputed", r, False, c.amount)

    def resolve_claim(self, ctx: Context, claim_id: bytes, pay_provider: int) -> None:
        """For arbitration: pay ``pay_provider`` of the held amount to the owner and the rest
        back to the consumer."""
        c = self._load_claim(ctx, claim_id)
        if type(pay_provider) is not int or not 0 <= pay_provider <= c.amount:
            raise _err(INVALID_RESOLUTION, f"pay_provider must be 0 to {c.amount}")
        r = self._load(ctx, c.rental_id)
        self._settle_claim(ctx, c, r, claim_next(c.state, "resolve"), pay_provider)

    def set_claim_timeout(self, ctx: Context, claim_id: bytes, timeout_ms: int) -> None:
        """For arbitration: move a pending claim's timeout (far ahead while a dispute runs,
        back to the block time when it ends without a ruling)."""
        c = self._load_claim(ctx, claim_id)
        state = claim_next(c.state, "set_timeout")
        if type(timeout_ms) is not int or not 0 <= timeout_ms <= TIME_MS_MAX:
            raise _err(INVALID_RESOLUTION, f"timeout_ms must be 0 to {TIME_MS_MAX}")
        self._undue(ctx, c.timeout_ms, keys.DUE_CLAIM, c.id)
        self._due(ctx, timeout_ms, keys.DUE_CLAIM, c.id)
        self._save_claim(ctx, _replace(c, state=state, timeout_ms=timeout_ms))
        ctx.emit("claim_timeout_set", claim_id=c.id, timeout_ms=timeout_ms)

    def _settle_claim(self, ctx: Context, c: Claim, r: Rental, new_state: str,
                      pay_provider: int) -> None:
        eid = keys.escrow_id(r.id)
        self.bank.release(ctx, eid, r.owner, pay_provider)
        self.bank.release(ctx, eid, r.consumer, c.amount - pay_provider)
        self._undue(ctx, c.timeout_ms, keys.DUE_CLAIM, c.id)
        self._save_claim(ctx, _replace(c, state=new_state, paid_provider=pay_provider))
        r = _replace(r, held=r.held - c.amount)
        self._save(ctx, r)
        ctx.emit("claim_" + new_state, claim_id=c.id, rental_id=r.id, paid_provider=pay_provider,
                 refunded=c.amount - pay_provider)
        if pay_provider:
            ctx.emit("damage_confirmed", claim_id=c.id, rental_id=r.id, consumer=r.consumer,
                     owner=r.owner, amount=pay_provider)
            self._notify(ctx, "damage_confirmed", r, False, pay_provider)
        if new_state != "accepted":
            self._notify(ctx, "claim_" + new_state, r, False, pay_provider)

    def _claim_timeout(self, ctx: Context, c: Claim) -> None:
        r = self._load(ctx, c.rental_id)
        self._settle_claim(ctx, c, r, claim_next(c.state, "timeout"), 0)

    # ================================================================ end-block sweep
    def sweep(self, ctx: Context) -> None:
        """Process every deadline due at or before this block's time (at most
        ``sweep_items_max`` per block; the rest are due next block, in order). An item whose
        action fails is rescheduled for a retry (``_retry_due``)."""
        end = keys.DEADLINE_PREFIX + keys.be8(ctx.time_ms + 1)
        due = list(islice(ctx.state.iter_range(keys.DEADLINE_PREFIX, end),
                          self.params(ctx.state).sweep_items_max))
        for key, value in due:
            due_ms, kind, item_id = keys.parse_deadline(key)
            child = ctx.branch()
            child.state.delete(key)
            try:
                self._run_due(child, kind, item_id)
            except ShareChainError as exc:
                # The failed action's writes and events are dropped with the child; the item
                # must neither stall the sweep nor be lost (see _retry_due).
                self._retry_due(ctx, key, value, due_ms, kind, item_id, exc)
                continue
            ctx.merge(child)

    def _retry_due(self, ctx: Context, key: bytes, value: bytes, due_ms: int, kind: int,
                   item_id: bytes, exc: ShareChainError) -> None:
        """A due action failed: another module refused it (a penalty sink, the fee splitter,
        the assets module...). Dropping the deadline would leave the rental reserved or
        active with nothing left to end it and its escrow locked for good, so the item moves
        ``sweep_retry_delay_ms(attempt)`` of block time ahead (strictly after this block, so
        this sweep goes on to the next item and a failing item costs one sweep slot per
        try). The attempt count is the index entry's value (``b""`` before any failure):
        state, not memory, so every node computes the same schedule. The record's
        ``due_ms`` (a claim's ``timeout_ms``) follows, so every path that clears the deadline
        (cancel, start, return, an end report, arbitration...) still finds it, and the
        rental stays open to its parties' own actions while it waits. Only an entry that no
        longer matches its record (the record is gone or moved on) is dropped."""
        ctx.state.delete(key)
        attempt = (int(decode_trusted(value)) if value else 0) + 1
        retry_ms = min(ctx.time_ms + sweep_retry_delay_ms(attempt), TIME_MS_MAX)
        if self._reschedule(ctx, due_ms, kind, item_id, retry_ms):
            ctx.state.set(keys.deadline_key(retry_ms, kind, item_id), encode(attempt))
        else:
            retry_ms = 0  # a stale entry: nothing waits for it any more
        ctx.emit("rental_sweep_failed", item_id=item_id, kind=kind, code=exc.code,
                 message=exc.message, attempt=attempt, retry_ms=retry_ms)

    def _reschedule(self, ctx: Context, due_ms: int, kind: int, item_id: bytes,
                    retry_ms: int) -> bool:
        """Move the record's pending deadline from ``due_ms`` to ``retry_ms``; False (and no
        write) when the record no longer waits for that deadline."""
        if kind == keys.DUE_CLAIM:
            c = self.claim(ctx.state, item_id)
            if c is None or c.state not in CLAIM_PENDING_STATES or c.timeout_ms != due_ms:
                return False
            self._save_claim(ctx, _replace(c, timeout_ms=retry_ms))
            return True
        r = self.rental(ctx.state, item_id)
        if r is None or DUE_KIND_OF_STATE.get(r.state) != kind or r.due_ms != due_ms:
            return False
        self._save(ctx, _replace(r, due_ms=retry_ms))
        return True

    def _run_due(self, ctx: Context, kind: int, item_id: bytes) -> None:
        if kind == keys.DUE_CLAIM:
            self._claim_timeout(ctx, self._load_claim(ctx, item_id))
            return
        r = self._load(ctx, item_id)
        if kind == keys.DUE_EXPIRE:
            self._expire(ctx, r)
        elif kind == keys.DUE_DEFAULT:
            self._default(ctx, r)
        elif kind == keys.DUE_RETURN:
            self._return_timeout(ctx, r)
        elif kind == keys.DUE_CLOSE:
            self._close(ctx, r)
